/* libvkresample: the public C client API of vkresample.  This is the one header a program
 * includes; it talks to the vkresampled daemon over its Unix socket (protocol v1): F.interpolate,
 * F.grid_sample, F.affine_grid and the fused affine_sample (grid_sample of affine_grid), each as
 * a blocking call or as an asynchronous job (submit, then wait / poll / cancel; many jobs in
 * flight on one connection, completed in any order).  Tensors travel inline in the frame or, above
 * VKR_MEMFD_THRESHOLD_BYTES, in sealed memfds (no copy through the socket).  Ops, status codes,
 * modes and backend ids come from "vkresample_types.h" and are part of the wire protocol: their
 * values never change.
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
#define VKR_MEMFD_THRESHOLD_BYTES (1u << 20)   /* VKR_TRANSPORT_AUTO: a tensor of at least this many
                                                * bytes goes in a memfd, a smaller one inline */
#define VKR_SERVER_STATS_MAX_ROWS 16   /* (op, backend) rows a vkr_server_stats_t holds */

/* ---------------------------------------------------------------- types */
/* An open connection to the daemon.  Opaque; made by vkr_connect, freed by vkr_close. */
typedef struct vkr_client vkr_client_t;

/* A submitted job: made by a vkr_submit_* call, released by exactly one vkr_wait or vkr_cancel
 * (or by vkr_close).  Opaque. */
typedef struct vkr_request vkr_request_t;

/* Where a library-made tensor's memory lives (a memfd mapping).  Opaque. */
typedef struct vkr_tensor_storage vkr_tensor_storage_t;

/* A dense float32 tensor in C order (contiguous N, C, [D,] [H,] W).  shape[rank..8) is ignored.
 * The caller owns input tensors it fills itself (storage NULL).  Tensors the library makes
 * (outputs, vkr_tensor_alloc) own their data, which the caller releases with vkr_tensor_free;
 * when storage is not NULL the data is a shared memfd mapping, and passing such a tensor as a
 * job's input sends the memfd itself: no byte is copied. */
typedef struct {
    int rank;
    int64_t shape[VKR_TENSOR_MAX_RANK];
    float *data;
    vkr_tensor_storage_t *storage;     /* NULL for the caller's own memory */
} vkr_tensor_t;

/* How a job's tensors travel.  AUTO: each tensor of at least VKR_MEMFD_THRESHOLD_BYTES (inputs
 * and the output alike) in a sealed memfd, smaller ones inline, a memfd-backed input
 * (storage != NULL) always by its memfd.  INLINE: every byte through the socket.  MEMFD: every
 * tensor in a memfd. */
typedef enum { VKR_TRANSPORT_AUTO = 0, VKR_TRANSPORT_INLINE = 1, VKR_TRANSPORT_MEMFD = 2 } vkr_transport_t;

/* Per-job options; NULL (or a zeroed struct) means no time limit and VKR_TRANSPORT_AUTO. */
typedef struct {
    uint32_t timeout_ms;               /* 0: none; else the job fails with VKR_E_TIMEOUT once this
                                        * long has passed since its submit, and is cancelled on the
                                        * daemon (queued work dropped, running work's result ignored) */
    vkr_transport_t transport;
} vkr_job_options_t;

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

/* One (op, backend) row of vkr_server_stats_t. */
typedef struct {
    vkr_op_t op;
    vkr_backend_id_t backend;
    uint64_t done;                     /* answered with a result */
    uint64_t failed;                   /* accepted, then answered with an error (not busy / cancelled) */
    uint64_t in_flight;                /* queued or running now */
} vkr_server_stats_row_t;

/* What vkr_stats reports about the daemon. */
typedef struct {
    uint64_t uptime_ms;
    uint64_t bytes_in, bytes_out;              /* bytes read from / written to client sockets */
    uint64_t memfd_bytes_in, memfd_bytes_out;  /* tensor bytes passed in memfds */
    uint32_t queued, running;                  /* jobs waiting for a worker / on a worker now */
    uint32_t clients, workers;                 /* open connections; worker threads */
    uint64_t latency_p50_us, latency_p99_us;   /* request read to reply queued, recent jobs */
    uint64_t jobs_busy;                        /* refused with VKR_E_BUSY */
    uint64_t jobs_cancelled;                   /* answered VKR_E_CANCELLED */
    uint64_t frames_refused;                   /* requests refused before they became jobs */
    int vulkan_lost;                           /* 1: the Vulkan device was lost, Vulkan work runs on the CPU */
    uint64_t jobs_moved_to_cpu;                /* jobs bound for Vulkan that ran on the CPU after the loss */
    uint64_t connections_refused;              /* closed at accept: --allow-uid / --allow-group, per-uid cap */
    uint64_t connections_timed_out;            /* closed mid-frame: --idle-timeout / --frame-timeout */
    uint64_t accept_pauses;                    /* accepting paused: out of descriptors, --max-connections */
    int n_rows;
    vkr_server_stats_row_t rows[VKR_SERVER_STATS_MAX_ROWS];
    char device_name[VKR_SERVER_NAME_MAX + 1];
} vkr_server_stats_t;

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

/* Ask the daemon for its counters (STATS).  Returns VKR_OK with *out filled, or a negative code
 * (details in vkr_last_error). */
VKR_EXPORT int vkr_stats(vkr_client_t *c, vkr_server_stats_t *out);

/* Run F.interpolate(input, **args) on the daemon and wait for the result (vkr_submit_interpolate
 * then vkr_wait, with the default options).  On success output->rank/shape are the result's and
 * output->data is memory owned by the caller (release with vkr_tensor_free).  On failure *output
 * is zeroed and the return is:
 *   - the daemon's code (VKR_E_VALUE, VKR_E_SIZE, VKR_E_NOT_IMPLEMENTED, VKR_E_TOO_LARGE,
 *     VKR_E_BUSY, VKR_E_FD, ...) when it refused or failed the job; vkr_last_error(c) is then
 *     "field: message" as the daemon sent it (PyTorch's wording where PyTorch would raise);
 *   - VKR_E_INVALID_ARG for arguments that cannot be put on the wire (NULL pointers, rank outside
 *     1..8, negative extents, n_size / n_scale outside 0..3, out-of-range enum values);
 *   - VKR_E_TOO_LARGE when the input's byte size overflows;
 *   - VKR_E_IO when the connection failed, VKR_E_SERVER when the daemon's reply is malformed or
 *     does not match the job (wrong type, output shape or descriptor);
 *   - VKR_E_NOMEM.
 * After VKR_E_IO or VKR_E_SERVER the connection is unusable (later calls return VKR_E_IO and
 * every other job in flight fails with it); after a refused job it stays usable. */
VKR_EXPORT int vkr_interpolate(vkr_client_t *c, const vkr_interpolate_args_t *args,
                               const vkr_tensor_t *input, vkr_tensor_t *output);

/* Run F.grid_sample(input, grid, **args): input (N, C, H, W) with grid (N, Ho, Wo, 2), or
 * input (N, C, D, H, W) with grid (N, Do, Ho, Wo, 3); the output is (N, C, Ho, Wo) or
 * (N, C, Do, Ho, Wo).  Same ownership and return codes as vkr_interpolate (the daemon's
 * refusals carry PyTorch's grid_sampler() wording). */
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

/* ---------------------------------------------------------------- asynchronous jobs */
/* Submit a job and return at once with *req, its handle (the frame has been written; inline
 * tensors' bytes may be reused by the caller, a memfd-backed input must stay unchanged until the
 * job completes).  opts may be NULL.  The job's outcome (the codes listed at vkr_interpolate,
 * VKR_E_TIMEOUT, VKR_E_CANCELLED, VKR_E_IO when the connection fails) is returned by vkr_wait.
 * The submit itself fails, with *req NULL, only with VKR_E_INVALID_ARG (arguments),
 * VKR_E_TOO_LARGE, VKR_E_NOMEM, or VKR_E_IO when the connection had already failed; a job
 * PyTorch refuses is still submitted (the daemon's refusal is the outcome).  While a submit
 * writes, it also reads the replies that arrive, so the connection never stalls both ways. */
VKR_EXPORT int vkr_submit_interpolate(vkr_client_t *c, const vkr_interpolate_args_t *args,
                                      const vkr_tensor_t *input, const vkr_job_options_t *opts,
                                      vkr_request_t **req);
VKR_EXPORT int vkr_submit_grid_sample(vkr_client_t *c, const vkr_grid_sample_args_t *args,
                                      const vkr_tensor_t *input, const vkr_tensor_t *grid,
                                      const vkr_job_options_t *opts, vkr_request_t **req);
VKR_EXPORT int vkr_submit_affine_grid(vkr_client_t *c, const vkr_affine_grid_args_t *args,
                                      const vkr_tensor_t *theta, const vkr_job_options_t *opts,
                                      vkr_request_t **req);
VKR_EXPORT int vkr_submit_affine_sample(vkr_client_t *c, const vkr_affine_sample_args_t *args,
                                        const vkr_tensor_t *input, const vkr_tensor_t *theta,
                                        const vkr_job_options_t *opts, vkr_request_t **req);

/* Block until req completes (or its time limit passes), fill *output as the blocking calls do
 * (output may be NULL to drop the result) and release req.  Returns the job's outcome; the
 * message is in vkr_last_error(c). */
VKR_EXPORT int vkr_wait(vkr_client_t *c, vkr_request_t *req, vkr_tensor_t *output);

/* Read whatever replies have arrived, without blocking, and expire jobs past their time limit.
 * Returns 1 if req (not NULL) has completed (vkr_wait on it returns at once), 0 if not (or req is
 * NULL), or VKR_E_IO / VKR_E_SERVER when the connection failed. */
VKR_EXPORT int vkr_poll(vkr_client_t *c, vkr_request_t *req);

/* Block until one of this connection's unreleased jobs has completed, for at most timeout_ms
 * (-1: no limit), and set *done to it (the one that completed first; still to be released with
 * vkr_wait).  Returns VKR_OK, VKR_E_TIMEOUT when none completed in time, VKR_E_INVALID_ARG when no
 * job is in flight, or VKR_E_IO / VKR_E_SERVER. */
VKR_EXPORT int vkr_wait_any(vkr_client_t *c, int timeout_ms, vkr_request_t **done);

/* Cancel req and release it.  A job still queued on the daemon is dropped there; a running one
 * finishes but its result is thrown away; the daemon's late reply is read and ignored.  Returns
 * VKR_OK (also when the job had already completed), or VKR_E_IO when the CANCEL could not be sent
 * (req is released anyway). */
VKR_EXPORT int vkr_cancel(vkr_client_t *c, vkr_request_t *req);

/* The request_id req carries on the wire (for logs; replies are matched by the library). */
VKR_EXPORT uint32_t vkr_request_id(const vkr_request_t *req);

/* The connection's socket, for the caller's poll loop: when it is readable, call vkr_poll.  -1
 * once the connection has failed.  The library never needs the caller to watch for writability. */
VKR_EXPORT int vkr_fd(const vkr_client_t *c);

/* The timeout a poll loop should use before calling vkr_poll again: 0 when a job has finished
 * and waits for vkr_wait (its reply was already read, so the socket may never become readable
 * again for it) or a time limit has passed; else milliseconds until the earliest time limit of a
 * job in flight; -1 when no job has one. */
VKR_EXPORT int vkr_next_timeout_ms(const vkr_client_t *c);

/* ---------------------------------------------------------------- tensors */
/* Allocate a tensor of the given shape in a sealed memfd, mapped read-write and zero-filled:
 * fill it and pass it as a job's input without its bytes being copied.  Release it with
 * vkr_tensor_free.  Returns VKR_OK, VKR_E_INVALID_ARG (rank outside 1..8, a negative extent,
 * out NULL), VKR_E_TOO_LARGE (the byte size overflows) or VKR_E_NOMEM. */
VKR_EXPORT int vkr_tensor_alloc(int rank, const int64_t *shape, vkr_tensor_t *out);

/* Free a tensor's data that the library allocated (heap or memfd mapping) and zero the struct.
 * NULL is ignored. */
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

/* The op's name ("interpolate", "grid_sample", "affine_grid", "affine_sample"); NULL if unknown. */
VKR_EXPORT const char *vkr_op_name(int op);

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
