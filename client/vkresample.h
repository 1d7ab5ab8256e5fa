/* libvkresample: the public C client API of vkresample.  This is the one header a program
 * includes; it talks to the vkresampled daemon over its Unix socket (protocol v1, inline tensor
 * bytes) with blocking calls: F.interpolate, F.grid_sample, F.affine_grid and the fused
 * affine_sample (grid_sample of affine_grid).  Status codes, interpolate modes and backend ids come from
 * "vkresample_types.h" and are part of the wire protocol: their values never change.
 *
 * Every function returns VKR_OK (0) or a negative vkr_status_t.  A client handle is not
 * thread-safe: use one handle per thread, or serialise calls on a shared one. */
#ifndef VKRESAMPLE_H
#define VKRESAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "vkresample_types.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(VKR_BUILDING_LIBRARY) && (defined(__GNUC__) || defined(__clang__))
#define VKR_EXPORT __attribute__((visibility("default")))
#else
#define VKR_EXPORT
#endif

/* ---------------------------------------------------------------- limits */
#define VKR_TENSOR_MAX_RANK 8          /* dims a vkr_tensor_t may have */
#define VKR_INTERP_MAX_SPATIAL 3       /* size / scale_factor values per job */
#define VKR_AFFINE_GRID_MAX_SIZE 5     /* affine_grid's size: (N, C, H, W) or (N, C, D, H, W) */
#define VKR_SOCKET_PATH_MAX 108        /* bytes of sockaddr_un.sun_path, NUL included */
#define VKR_SERVER_NAME_MAX 255        /* bytes of a device name, NUL excluded */

/* ---------------------------------------------------------------- types */
/* An open connection to the daemon.  Opaque; made by vkr_connect, freed by vkr_close. */
typedef struct vkr_client vkr_client_t;

/* A dense float32 tensor in C order (contiguous N, C, [D,] [H,] W).  shape[rank..8) is ignored.
 * The caller owns input tensors; an output filled by the library owns `data`, which the caller
 * releases with vkr_tensor_free. */
typedef struct {
    int rank;
    int64_t shape[VKR_TENSOR_MAX_RANK];
    float *data;
} vkr_tensor_t;

/* torch.nn.functional.interpolate's keyword arguments.  A zeroed struct means: size and
 * scale_factor not given, align_corners and recompute_scale_factor None, antialias False,
 * backend auto; only `mode` must be set (it has no zero value).
 *   n_size:  0 = size not given; 1 = size[0] for every spatial axis (a Python int);
 *            2 or 3 = one value per spatial axis (a Python sequence).  Same for n_scale. */
typedef struct {
    vkr_mode_t mode;
    int n_size;
    int64_t size[VKR_INTERP_MAX_SPATIAL];
    int n_scale;
    double scale_factor[VKR_INTERP_MAX_SPATIAL];
    vkr_opt_bool_t align_corners;
    vkr_opt_bool_t recompute_scale_factor;
    int antialias;                     /* 0 or 1 */
    vkr_backend_id_t backend;          /* VKR_BACKEND_AUTO lets the daemon choose */
} vkr_interpolate_args_t;

/* torch.nn.functional.grid_sample's keyword arguments.  A zeroed struct means PyTorch's
 * defaults: mode bilinear, padding_mode zeros, align_corners None (= False), backend auto. */
typedef struct {
    vkr_grid_mode_t mode;              /* 0: VKR_GRID_BILINEAR */
    vkr_padding_t padding_mode;        /* 0: VKR_PADDING_ZEROS */
    vkr_opt_bool_t align_corners;
    vkr_backend_id_t backend;
} vkr_grid_sample_args_t;

/* torch.nn.functional.affine_grid's arguments besides theta: size is (N, C, H, W) (n_size 4) or
 * (N, C, D, H, W) (n_size 5); any other count is refused as PyTorch refuses it. */
typedef struct {
    int n_size;                        /* 0..VKR_AFFINE_GRID_MAX_SIZE on the wire */
    int64_t size[VKR_AFFINE_GRID_MAX_SIZE];
    vkr_opt_bool_t align_corners;
    vkr_backend_id_t backend;
} vkr_affine_grid_args_t;

/* grid_sample(input, affine_grid(theta, (N, C) + size)) in one job: size is the output's spatial
 * extents, (H, W) (n_size 2, 4-D input) or (D, H, W) (n_size 3, 5-D input).  mode and
 * padding_mode as in vkr_grid_sample_args_t (0: PyTorch's default). */
typedef struct {
    vkr_grid_mode_t mode;
    vkr_padding_t padding_mode;
    vkr_opt_bool_t align_corners;
    int n_size;                        /* 0..VKR_INTERP_MAX_SPATIAL on the wire */
    int64_t size[VKR_INTERP_MAX_SPATIAL];
    vkr_backend_id_t backend;
} vkr_affine_sample_args_t;

/* What vkr_ping reports about the daemon. */
typedef struct {
    char device_name[VKR_SERVER_NAME_MAX + 1]; /* the Vulkan device, or "cpu"; NUL-terminated */
    uint32_t backend_mask;                     /* bit (1u << vkr_backend_id_t) per backend served */
    vkr_backend_id_t default_backend;          /* what VKR_BACKEND_AUTO selects */
} vkr_server_info_t;

/* ---------------------------------------------------------------- connection */
/* Write the default socket path into buf (len bytes, NUL included): $VKRESAMPLE_SOCKET if set
 * and not empty, else $XDG_RUNTIME_DIR/vkresample.sock if XDG_RUNTIME_DIR is set and not empty,
 * else /tmp/vkresample-<uid>.sock.  Returns VKR_OK, VKR_E_INVALID_ARG (buf NULL) or
 * VKR_E_TOO_LARGE (the path does not fit in len bytes; buf then holds "" if len > 0). */
VKR_EXPORT int vkr_default_socket_path(char *buf, size_t len);

/* Connect to the daemon at socket_path (NULL: vkr_default_socket_path).  On success *out is a
 * new handle owned by the caller (release with vkr_close).  On failure *out is NULL and the
 * return is VKR_E_INVALID_ARG (out NULL, path empty or longer than VKR_SOCKET_PATH_MAX - 1
 * bytes), VKR_E_NOMEM, or VKR_E_IO with errno telling why connect(2) failed. */
VKR_EXPORT int vkr_connect(const char *socket_path, vkr_client_t **out);

/* Close the connection and free the handle.  NULL is ignored. */
VKR_EXPORT void vkr_close(vkr_client_t *c);

/* ---------------------------------------------------------------- requests */
/* Round trip a PING.  If info is not NULL it receives the daemon's device and backends.
 * Returns VKR_OK, or a negative code (details in vkr_last_error). */
VKR_EXPORT int vkr_ping(vkr_client_t *c, vkr_server_info_t *info);

/* Run F.interpolate(input, **args) on the daemon and wait for the result.  input->data holds
 * prod(shape) floats and is sent without being copied.  On success output->rank/shape are the
 * result's and output->data is a new buffer owned by the caller (release with vkr_tensor_free).
 * On failure *output is zeroed and the return is:
 *   - the daemon's code (VKR_E_VALUE, VKR_E_SIZE, VKR_E_NOT_IMPLEMENTED, VKR_E_TOO_LARGE, ...)
 *     when it refused or failed the job; vkr_last_error(c) is then "field: message" as the
 *     daemon sent it (PyTorch's wording where PyTorch would raise);
 *   - VKR_E_INVALID_ARG for arguments that cannot be put on the wire (NULL pointers, rank outside
 *     1..8, negative extents, n_size / n_scale outside 0..3, out-of-range enum values);
 *   - VKR_E_TOO_LARGE when the input's byte size overflows;
 *   - VKR_E_IO when the connection failed, VKR_E_SERVER when the daemon's reply is malformed or
 *     does not match the job (wrong request id, type, or output shape);
 *   - VKR_E_NOMEM.
 * After VKR_E_IO or VKR_E_SERVER the connection is unusable (later calls return VKR_E_IO);
 * after a refused job it stays usable. */
VKR_EXPORT int vkr_interpolate(vkr_client_t *c, const vkr_interpolate_args_t *args,
                               const vkr_tensor_t *input, vkr_tensor_t *output);

/* Run F.grid_sample(input, grid, **args): input (N, C, H, W) with grid (N, Ho, Wo, 2), or
 * input (N, C, D, H, W) with grid (N, Do, Ho, Wo, 3); the output is (N, C, Ho, Wo) or
 * (N, C, Do, Ho, Wo).  Both tensors are sent without being copied.  Same ownership and return
 * codes as vkr_interpolate (the daemon's refusals carry PyTorch's grid_sampler() wording). */
VKR_EXPORT int vkr_grid_sample(vkr_client_t *c, const vkr_grid_sample_args_t *args,
                               const vkr_tensor_t *input, const vkr_tensor_t *grid,
                               vkr_tensor_t *output);

/* Run F.affine_grid(theta, size, align_corners): theta (N, 2, 3) for a 4-element size, (N, 3, 4)
 * for a 5-element one; the output grid is (N, H, W, 2) or (N, D, H, W, 3).  Same ownership and
 * return codes as vkr_interpolate. */
VKR_EXPORT int vkr_affine_grid(vkr_client_t *c, const vkr_affine_grid_args_t *args,
                               const vkr_tensor_t *theta, vkr_tensor_t *output);

/* Run grid_sample(input, affine_grid(theta, (N, C) + size, align_corners), mode, padding_mode,
 * align_corners) as one job, without the grid crossing the socket: input (N, C, H, W) with theta
 * (N, 2, 3), or (N, C, D, H, W) with (N, 3, 4).  The output is (N, C) + size.  Same ownership and
 * return codes as vkr_interpolate. */
VKR_EXPORT int vkr_affine_sample(vkr_client_t *c, const vkr_affine_sample_args_t *args,
                                 const vkr_tensor_t *input, const vkr_tensor_t *theta,
                                 vkr_tensor_t *output);

/* Free a tensor's data that the library allocated and zero the struct.  NULL is ignored. */
VKR_EXPORT void vkr_tensor_free(vkr_tensor_t *t);

/* ---------------------------------------------------------------- errors and names */
/* The description of the last failure on c: "field: message" for a daemon ERROR (or just the
 * message when the daemon named no field), or a local description.  "" if the last call
 * succeeded.  The string belongs to c and is valid until the next call on c. */
VKR_EXPORT const char *vkr_last_error(const vkr_client_t *c);

/* A static one-line description of a status code ("unknown status code" if unknown). */
VKR_EXPORT const char *vkr_strerror(int code);

/* The code's name, e.g. "VKR_E_VALUE"; "VKR_E_?" if unknown.  Static string. */
VKR_EXPORT const char *vkr_code_name(int code);

/* Mode and backend names as PyTorch / the CLI spell them ("nearest", "nearest-exact",
 * "bilinear", ...; "auto", "vulkan", "cpu").  *_from_name returns the id, or VKR_E_INVALID_ARG
 * for an unknown name; *_name returns a static string, or NULL for an unknown id. */
VKR_EXPORT int vkr_mode_from_name(const char *name);
VKR_EXPORT const char *vkr_mode_name(int mode);
VKR_EXPORT int vkr_backend_from_name(const char *name);
VKR_EXPORT const char *vkr_backend_name(int backend);

/* grid_sample's mode and padding_mode names as PyTorch spells them ("bilinear", "nearest",
 * "bicubic"; "zeros", "border", "reflection"), with the same conventions as above. */
VKR_EXPORT int vkr_grid_mode_from_name(const char *name);
VKR_EXPORT const char *vkr_grid_mode_name(int mode);
VKR_EXPORT int vkr_padding_from_name(const char *name);
VKR_EXPORT const char *vkr_padding_name(int padding);

#ifdef __cplusplus
}
#endif

#endif /* VKRESAMPLE_H */
