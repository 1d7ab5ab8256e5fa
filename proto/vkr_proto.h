/* vkresample wire protocol v1 and job validation: frame layout, message bodies, stable error
 * codes, limits, and the pure encode/decode/plan functions shared by the daemon and the client.
 * No I/O happens here.  Byte-level specification: proto/PROTOCOL.md.
 *
 * Every frame is a 32-byte little-endian header followed by body_len bytes of body.  Decoders
 * check every field and every length against the limits below before anything is allocated;
 * decoded views point into the caller's buffer (no copies of tensor bytes). */
#ifndef VKR_PROTO_H
#define VKR_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vkresample_types.h"

/* ---------------------------------------------------------------- constants and limits */
#define VKR_PROTO_MAGIC 0x31524B56u          /* bytes "VKR1" */
#define VKR_PROTO_VERSION 1u
#define VKR_FRAME_HEADER_BYTES 32u

#define VKR_MAX_RANK 8u                       /* dims a tensor descriptor may carry on the wire */
#define VKR_MAX_SPATIAL 3u                    /* spatial axes an interpolate job may have */
#define VKR_MAX_DIM_EXTENT 0x7fffffffLL       /* per-axis extent: indices are int32 in the kernels */
#define VKR_DEFAULT_MAX_JOB_BYTES (1024ull * 1024 * 1024) /* input or output tensor, bytes */
#define VKR_MAX_CONTROL_BODY_BYTES 4096u      /* body limit of every non-SUBMIT/RESULT message */
#define VKR_ERROR_FIELD_MAX 63u               /* bytes of an error's field name */
#define VKR_ERROR_MESSAGE_MAX 511u            /* bytes of an error's message */
#define VKR_MAX_FDS_PER_FRAME 3u              /* SUBMIT: two tensors' memfds and an output memfd */

/* Name of a code, e.g. "VKR_E_VALUE"; "VKR_E_?" for an unknown one. */
const char *vkr_proto_code_name(int code);

/* A decoded or produced error: code, the field at fault ("" if none) and a message. */
typedef struct {
    int code;
    char field[VKR_ERROR_FIELD_MAX + 1];
    char message[VKR_ERROR_MESSAGE_MAX + 1];
} vkr_error_t;

/* Fill *err (if not NULL) and return code.  printf-style message. */
int vkr_proto_error_set(vkr_error_t *err, int code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---------------------------------------------------------------- frame header */
typedef enum {
    VKR_MSG_PING = 1,     /* client -> daemon, empty body */
    VKR_MSG_PONG = 2,     /* daemon -> client, vkr_pong_t */
    VKR_MSG_SUBMIT = 3,   /* client -> daemon, job */
    VKR_MSG_RESULT = 4,   /* daemon -> client, output tensor */
    VKR_MSG_ERROR = 5,    /* daemon -> client, vkr_error_t */
    VKR_MSG_CANCEL = 6,   /* client -> daemon, empty body: cancel the job with this request_id */
    VKR_MSG_STATS = 7,    /* client -> daemon, empty body */
    VKR_MSG_STATS_REPLY = 8, /* daemon -> client, vkr_stats_t */
} vkr_msg_type_t;

typedef struct {
    uint32_t magic;       /* VKR_PROTO_MAGIC */
    uint16_t version;     /* VKR_PROTO_VERSION */
    uint16_t type;        /* vkr_msg_type_t */
    uint32_t flags;       /* must be 0 in v1 */
    uint32_t request_id;  /* chosen by the client, echoed in the reply */
    uint32_t n_fds;       /* descriptors sent with the frame (SCM_RIGHTS, with its first byte):
                           * SUBMIT 0..VKR_MAX_FDS_PER_FRAME, RESULT 0..1, every other type 0 */
    uint32_t reserved;    /* must be 0 */
    uint64_t body_len;    /* bytes following the header */
} vkr_frame_header_t;

void vkr_header_encode(const vkr_frame_header_t *h, uint8_t out[VKR_FRAME_HEADER_BYTES]);

/* Decode and validate a header.  max_submit_body limits SUBMIT bodies (the daemon passes its
 * --max-job-bytes plus descriptor room); RESULT bodies are limited by max_result_body; PING,
 * CANCEL and STATS carry no body; every other type is limited by VKR_MAX_CONTROL_BODY_BYTES.
 * n_fds is checked against its type's limit (whether that many arrived is the reader's check).
 * Returns VKR_OK or a negative code with *err filled. */
int vkr_header_decode(const uint8_t in[VKR_FRAME_HEADER_BYTES], uint64_t max_submit_body,
                      uint64_t max_result_body, vkr_frame_header_t *h, vkr_error_t *err);

/* ---------------------------------------------------------------- tensors */
typedef enum { VKR_DTYPE_F32 = 1 } vkr_dtype_t;
typedef enum { VKR_LAYOUT_CONTIGUOUS = 1 } vkr_layout_t;   /* C-order, NCHW / NCDHW */
/* Where a tensor's bytes are.  INLINE: in the body at data_offset.  MEMFD: in the frame's
 * descriptor fd_index, from byte data_offset (a multiple of 4); the memfd must be sealed against
 * shrinking (F_SEAL_SHRINK) and hold data_offset + data_bytes bytes.  OUTPUT_FD (RESULT only): in
 * the output memfd the SUBMIT supplied, from byte 0. */
typedef enum { VKR_STORAGE_INLINE = 0, VKR_STORAGE_MEMFD = 1, VKR_STORAGE_OUTPUT_FD = 2 } vkr_storage_t;

#define VKR_TENSOR_DESC_BYTES 88u
typedef struct {
    uint16_t dtype, layout;
    uint8_t rank, storage;
    uint16_t fd_index;      /* MEMFD: which of the frame's descriptors (0 otherwise) */
    int64_t shape[VKR_MAX_RANK];
    uint64_t data_offset;   /* inline: offset of the bytes within the body; MEMFD: within the fd */
    uint64_t data_bytes;    /* must equal prod(shape) * sizeof(dtype) */
    const void *data;       /* decoded view into the body; NULL for MEMFD (not on the wire) */
} vkr_tensor_desc_t;

/* Product of shape[0..rank) with overflow detection: false if it overflows or exceeds limit. */
bool vkr_shape_elements(const int64_t *shape, unsigned rank, uint64_t limit, uint64_t *out);

/* ---------------------------------------------------------------- jobs (SUBMIT) */
/* vkr_op_t (the ops and their tensors) is in vkresample_types.h. */
const char *vkr_proto_op_name(int op);              /* "interpolate", "grid_sample", ...; NULL if unknown */
const char *vkr_proto_mode_name(int mode);          /* "nearest", ...; NULL if unknown */
int vkr_proto_mode_from_name(const char *name);     /* vkr_mode_t, or 0 if unknown */
const char *vkr_proto_grid_mode_name(int mode);     /* "bilinear", "nearest", "bicubic"; NULL if unknown */
int vkr_proto_grid_mode_from_name(const char *name);/* vkr_grid_mode_t, or 0 */
const char *vkr_proto_padding_name(int padding);    /* "zeros", "border", "reflection"; NULL if unknown */
int vkr_proto_padding_from_name(const char *name);  /* vkr_padding_t, or 0 */
const char *vkr_proto_backend_name(int backend);    /* "auto", "vulkan", "cpu"; NULL if unknown */
int vkr_proto_backend_from_name(const char *name);  /* vkr_backend_id_t, or -1 if unknown */

/* F.interpolate's arguments as the user gave them (before PyTorch's rules are applied). */
#define VKR_INTERP_PARAMS_BYTES 56u
typedef struct {
    uint16_t mode;                     /* vkr_mode_t */
    uint8_t align_corners;             /* vkr_opt_bool_t */
    uint8_t recompute_scale_factor;    /* vkr_opt_bool_t */
    uint8_t antialias;                 /* 0 or 1 */
    uint8_t n_size;                    /* 0: not given, 1: one value for every axis, else per axis */
    uint8_t n_scale;                   /* same, for scale_factor */
    int64_t size[VKR_MAX_SPATIAL];
    double scale_factor[VKR_MAX_SPATIAL];
} vkr_interp_params_t;

/* grid_sample / affine_grid / affine_sample arguments (the same 56-byte parameter block). */
typedef struct {
    uint16_t mode;                     /* vkr_grid_mode_t (grid_sample, affine_sample) */
    uint16_t padding_mode;             /* vkr_padding_t (grid_sample, affine_sample) */
    uint8_t align_corners;             /* vkr_opt_bool_t; unset means False, as in PyTorch */
    uint8_t n_size;                    /* entries of size: affine_grid 4 or 5; affine_sample 2 or 3 */
    int64_t size[5];                   /* affine_grid: (N, C, H, W[, D]); affine_sample: output (H, W) / (D, H, W) */
} vkr_grid_params_t;

/* Where the daemon puts a job's output.  INLINE: in the RESULT body.  INTO_FD: into the output
 * memfd the SUBMIT passes as its last descriptor (sealed against shrinking, at least the output's
 * bytes long), from byte 0.  DAEMON_FD: into a memfd of the daemon's, passed with the RESULT. */
typedef enum { VKR_RESULT_INLINE = 0, VKR_RESULT_INTO_FD = 1, VKR_RESULT_DAEMON_FD = 2 } vkr_result_storage_t;

#define VKR_JOB_HEADER_BYTES 8u
#define VKR_MAX_TENSORS 2u
typedef struct {
    uint16_t op;                       /* vkr_op_t */
    uint16_t backend;                  /* vkr_backend_id_t */
    uint16_t n_tensors;                /* 1 (interpolate, affine_grid) or 2 (grid_sample, affine_sample) */
    uint16_t result_storage;           /* vkr_result_storage_t */
    unsigned n_fds;                    /* descriptors the frame carries (decode: the header's) */
    vkr_interp_params_t interp;        /* op == VKR_OP_INTERPOLATE */
    vkr_grid_params_t grid;            /* the grid ops */
    vkr_tensor_desc_t input;           /* first tensor: the image; theta for affine_grid */
    vkr_tensor_desc_t aux;             /* second tensor: the grid, or theta for affine_sample */
} vkr_job_t;

/* Bytes of a SUBMIT body before the inline tensor data: VKR_SUBMIT_FIXED_BYTES for one tensor,
 * VKR_SUBMIT_MAX_FIXED_BYTES for two. */
#define VKR_SUBMIT_FIXED_BYTES (VKR_JOB_HEADER_BYTES + VKR_INTERP_PARAMS_BYTES + VKR_TENSOR_DESC_BYTES)
#define VKR_SUBMIT_MAX_FIXED_BYTES (VKR_JOB_HEADER_BYTES + VKR_INTERP_PARAMS_BYTES + VKR_MAX_TENSORS * VKR_TENSOR_DESC_BYTES)

/* Tensors an op takes (0 for an unknown op). */
unsigned vkr_op_tensors(int op);

/* Encode the fixed part of a SUBMIT body (job header, params, descriptors) into out.  Each
 * tensor's data_bytes is filled in by this call, and data_offset for the INLINE ones; the caller
 * sends the inline tensors' bytes right after, in order (MEMFD tensors keep the fd_index and
 * data_offset the caller set).  Returns the body length (fixed + inline data); *fixed_len gets
 * the fixed part. */
uint64_t vkr_submit_encode_fixed(vkr_job_t *job, uint8_t out[VKR_SUBMIT_MAX_FIXED_BYTES], size_t *fixed_len);

/* Decode and validate a SUBMIT body that came with n_fds descriptors: every enum, reserved byte,
 * rank, extent and length, the exact payload size, and the descriptor indices (each of the
 * frame's input descriptors used by a tensor, the output memfd last when result_storage is
 * INTO_FD; job->n_fds = n_fds).  Inline tensors' data point into body; MEMFD tensors' data is NULL
 * (the daemon maps them).  Argument rules of PyTorch are the planner's (vkr_plan_job).  Returns
 * VKR_OK or a negative code with *err filled (VKR_E_FD for descriptor indices and counts). */
int vkr_submit_decode(const uint8_t *body, uint64_t body_len, uint64_t max_tensor_bytes, unsigned n_fds,
                      vkr_job_t *job, vkr_error_t *err);

/* ---------------------------------------------------------------- plan */
/* A job after PyTorch 1.13's argument rules: output shape and what the kernel receives. */
typedef struct {
    int mode;                          /* vkr_mode_t */
    int spatial_rank;                  /* 1, 2 or 3 */
    int64_t batch, channels;           /* N, C */
    int64_t in_size[VKR_MAX_SPATIAL];  /* spatial extents, outer to inner (D, H, W) */
    int64_t out_size[VKR_MAX_SPATIAL];
    bool align_corners;                /* resolved (None -> False) */
    bool antialias;                    /* bilinear / bicubic with antialias=True */
    bool has_scale[VKR_MAX_SPATIAL];   /* the user's scale reaches the kernel (not recomputed) */
    double scale[VKR_MAX_SPATIAL];     /* that scale_factor, when has_scale */
    uint64_t in_elements, out_elements;
} vkr_interp_plan_t;

/* Apply F.interpolate's rules (pytorch-semantics.md §1, §11) to a decoded job.  Rejects what
 * PyTorch rejects with VKR_E_VALUE / VKR_E_NOT_IMPLEMENTED / VKR_E_SIZE and a message saying
 * what PyTorch's says, and outputs larger than max_tensor_bytes with VKR_E_TOO_LARGE.  Modes
 * PyTorch accepts that this build does not serve give VKR_E_UNSUPPORTED. */
int vkr_plan_interpolate(const vkr_job_t *job, uint64_t max_tensor_bytes, vkr_interp_plan_t *plan,
                         vkr_error_t *err);

/* Output tensor shape of a plan: rank = spatial_rank + 2. */
void vkr_plan_output_shape(const vkr_interp_plan_t *plan, int64_t shape[VKR_MAX_RANK]);

/* grid_sample / affine_grid / affine_sample after PyTorch's rules (pytorch-semantics.md sec. 8,
 * 9).  Spatial extents are outer to inner: (H, W) or (D, H, W). */
typedef struct {
    int op;                            /* VKR_OP_GRID_SAMPLE, VKR_OP_AFFINE_GRID, VKR_OP_AFFINE_SAMPLE */
    int mode;                          /* vkr_grid_mode_t */
    int padding_mode;                  /* vkr_padding_t */
    bool align_corners;
    int spatial_rank;                  /* 2 or 3 */
    int64_t batch, channels;           /* N, C (C of the input; affine_grid: size[1], unused) */
    int64_t in_size[VKR_MAX_SPATIAL];  /* the input image's extents (grid_sample, affine_sample) */
    int64_t out_size[VKR_MAX_SPATIAL]; /* the sampled / generated extents */
    uint64_t in_elements, aux_elements, out_elements;
} vkr_grid_plan_t;

/* Any job after PyTorch's rules: the op's own plan and the output tensor's shape. */
typedef struct {
    int op;
    vkr_interp_plan_t interp;          /* op == VKR_OP_INTERPOLATE */
    vkr_grid_plan_t grid;              /* the other ops */
    unsigned out_rank;
    int64_t out_shape[VKR_MAX_RANK];
    uint64_t out_elements;
} vkr_plan_t;

/* Plan any decoded job (interpolate goes through vkr_plan_interpolate).  Same error contract. */
int vkr_plan_job(const vkr_job_t *job, uint64_t max_tensor_bytes, vkr_plan_t *plan, vkr_error_t *err);

/* ---------------------------------------------------------------- replies */
#define VKR_RESULT_FIXED_BYTES (8u + VKR_TENSOR_DESC_BYTES)
typedef struct {
    uint16_t backend_used;             /* vkr_backend_id_t that ran the job */
    vkr_tensor_desc_t output;
} vkr_result_t;

/* Encode the fixed part of a RESULT body.  res->output.storage says where the data is: INLINE
 * (it follows, data_offset 96), MEMFD (the frame's descriptor 0, data_offset 0) or OUTPUT_FD (the
 * request's output memfd, data_offset 0).  Returns the body length (96 + inline data bytes). */
uint64_t vkr_result_encode_fixed(vkr_result_t *res, uint8_t out[VKR_RESULT_FIXED_BYTES]);
/* Decode a RESULT body that came with n_fds descriptors (MEMFD needs exactly 1, the others 0);
 * res->output.data points into body for INLINE, else NULL. */
int vkr_result_decode(const uint8_t *body, uint64_t body_len, unsigned n_fds, vkr_result_t *res,
                      vkr_error_t *err);

/* ERROR body: i32 code, u16 field_len, u16 message_len, field, message.  Returns bytes written
 * (at most 8 + VKR_ERROR_FIELD_MAX + VKR_ERROR_MESSAGE_MAX). */
#define VKR_ERROR_BODY_MAX (8u + VKR_ERROR_FIELD_MAX + VKR_ERROR_MESSAGE_MAX)
size_t vkr_error_encode(const vkr_error_t *e, uint8_t out[VKR_ERROR_BODY_MAX]);
int vkr_error_decode(const uint8_t *body, uint64_t body_len, vkr_error_t *out, vkr_error_t *err);

/* PONG body: u32 backend_mask (bit 1 << vkr_backend_id_t), u16 default_backend, u16 name_len,
 * device name (the Vulkan device, or "cpu"). */
#define VKR_DEVICE_NAME_MAX 255u
typedef struct {
    uint32_t backend_mask;
    uint16_t default_backend;
    char device_name[VKR_DEVICE_NAME_MAX + 1];
} vkr_pong_t;
#define VKR_PONG_BODY_MAX (8u + VKR_DEVICE_NAME_MAX)
size_t vkr_pong_encode(const vkr_pong_t *p, uint8_t out[VKR_PONG_BODY_MAX]);
int vkr_pong_decode(const uint8_t *body, uint64_t body_len, vkr_pong_t *out, vkr_error_t *err);

/* ---------------------------------------------------------------- STATS_REPLY */
/* Counters of one (op, backend) pair. */
typedef struct {
    uint16_t op, backend;              /* vkr_op_t, vkr_backend_id_t (1 vulkan, 2 cpu) */
    uint64_t done;                     /* answered with a RESULT */
    uint64_t failed;                   /* decoded, then answered with an ERROR (not busy / cancelled) */
    uint64_t in_flight;                /* queued or running now */
} vkr_stats_row_t;

#define VKR_STATS_MAX_ROWS 16u         /* rows a STATS_REPLY may carry (4 ops x 2 backends today) */
#define VKR_STATS_FIXED_BYTES 136u     /* STATS_REPLY bytes before the rows */
#define VKR_STATS_VULKAN_LOST 0x1u     /* flags: the Vulkan device was lost; Vulkan work runs on the CPU */
#define VKR_STATS_ROW_BYTES 32u
typedef struct {
    uint64_t uptime_ms;
    uint64_t bytes_in, bytes_out;      /* bytes read from / written to client sockets */
    uint64_t memfd_bytes_in, memfd_bytes_out;   /* tensor bytes passed in memfds */
    uint32_t queued, running;          /* jobs waiting for a worker / on a worker now */
    uint32_t clients, workers;         /* open connections; worker threads */
    uint64_t latency_p50_us, latency_p99_us;    /* frame read to reply queued, recent jobs */
    uint64_t jobs_busy;                /* SUBMITs refused with VKR_E_BUSY */
    uint64_t jobs_cancelled;           /* jobs answered VKR_E_CANCELLED */
    uint64_t frames_refused;           /* frames answered with an ERROR before a job existed */
    uint32_t flags;                    /* VKR_STATS_VULKAN_LOST; every other bit 0 */
    uint64_t jobs_moved_to_cpu;        /* jobs bound for Vulkan that ran on the CPU after the device was lost */
    uint64_t connections_refused;      /* connections closed at accept: --allow-uid / --allow-group,
                                        * --max-connections-per-uid */
    uint64_t connections_timed_out;    /* connections closed mid-frame: --idle-timeout, --frame-timeout */
    uint64_t accept_pauses;            /* times accepting paused: out of descriptors, --max-connections */
    uint16_t n_rows;
    vkr_stats_row_t rows[VKR_STATS_MAX_ROWS];
    char device_name[VKR_DEVICE_NAME_MAX + 1];
} vkr_stats_t;
#define VKR_STATS_BODY_MAX (VKR_STATS_FIXED_BYTES + VKR_STATS_MAX_ROWS * VKR_STATS_ROW_BYTES + VKR_DEVICE_NAME_MAX)

/* Encode a STATS_REPLY body (layout: PROTOCOL.md).  Returns bytes written. */
size_t vkr_stats_encode(const vkr_stats_t *s, uint8_t out[VKR_STATS_BODY_MAX]);
/* Decode a STATS_REPLY body: lengths, row count, flags, reserved bytes.  Returns VKR_OK or VKR_E_PROTOCOL. */
int vkr_stats_decode(const uint8_t *body, uint64_t body_len, vkr_stats_t *out, vkr_error_t *err);

#endif /* VKR_PROTO_H */
