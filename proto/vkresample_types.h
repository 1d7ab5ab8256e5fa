/* Public enums shared by the wire protocol and the client API (installed with vkresample.h):
 * ops, status codes, interpolate and grid modes, paddings, backends.  Values are part of protocol v1: never renumber. */
#ifndef VKRESAMPLE_TYPES_H
#define VKRESAMPLE_TYPES_H

/* The ops a job may ask for (the SUBMIT's op field). */
typedef enum {
    VKR_OP_INTERPOLATE = 1,    /* tensors: input */
    VKR_OP_GRID_SAMPLE = 2,    /* tensors: input, grid */
    VKR_OP_AFFINE_GRID = 3,    /* tensors: theta */
    VKR_OP_AFFINE_SAMPLE = 4,  /* tensors: input, theta (grid_sample of affine_grid, fused) */
} vkr_op_t;

/* Status codes: 0 or negative, stable across versions. */
typedef enum {
    VKR_OK = 0,
    VKR_E_IO = -1,                 /* socket error, peer closed, short read/write */
    VKR_E_PROTOCOL = -2,           /* malformed frame: magic, type, lengths, reserved bits */
    VKR_E_VERSION = -3,            /* unsupported protocol version */
    VKR_E_TOO_LARGE = -4,          /* a length or tensor is over a limit */
    VKR_E_VALUE = -5,              /* invalid argument (PyTorch: ValueError / TypeError) */
    VKR_E_NOT_IMPLEMENTED = -6,    /* mode / rank combination PyTorch does not implement */
    VKR_E_SIZE = -7,               /* PyTorch RuntimeError on sizes (e.g. output size <= 0) */
    VKR_E_DTYPE = -8,              /* dtype or layout not supported */
    VKR_E_BACKEND_UNAVAILABLE = -9,/* the requested backend does not exist in this daemon */
    VKR_E_BACKEND = -10,           /* the backend failed while running the job */
    VKR_E_NOMEM = -11,             /* allocation failed */
    VKR_E_SHUTDOWN = -12,          /* the daemon is shutting down */
    VKR_E_UNSUPPORTED = -13,       /* valid for PyTorch but not (yet) served by vkresample */
    VKR_E_INVALID_ARG = -14,       /* bad argument to a library call (client side) */
    VKR_E_SERVER = -15,            /* unexpected reply from the daemon (client side) */
    VKR_E_BUSY = -16,              /* a queue limit of the daemon is full: retry later */
    VKR_E_CANCELLED = -17,         /* the job was cancelled (CANCEL message, or a timeout) */
    VKR_E_TIMEOUT = -18,           /* the job's time limit passed (client side) */
    VKR_E_FD = -19,                /* a passed descriptor cannot be used: not a sealed memfd, too short */
    VKR_E_PERMISSION = -20,        /* the peer's uid / groups may not use this daemon (--allow-uid, --allow-group) */
} vkr_status_t;

typedef enum { VKR_BACKEND_AUTO = 0, VKR_BACKEND_VULKAN = 1, VKR_BACKEND_CPU = 2 } vkr_backend_id_t;
typedef enum {
    VKR_MODE_NEAREST = 1,
    VKR_MODE_NEAREST_EXACT = 2,
    VKR_MODE_LINEAR = 3,
    VKR_MODE_BILINEAR = 4,
    VKR_MODE_BICUBIC = 5,
    VKR_MODE_TRILINEAR = 6,
    VKR_MODE_AREA = 7,
} vkr_mode_t;
/* grid_sample's mode and padding_mode. */
typedef enum { VKR_GRID_BILINEAR = 1, VKR_GRID_NEAREST = 2, VKR_GRID_BICUBIC = 3 } vkr_grid_mode_t;
typedef enum { VKR_PADDING_ZEROS = 1, VKR_PADDING_BORDER = 2, VKR_PADDING_REFLECTION = 3 } vkr_padding_t;
/* Tri-state for PyTorch's Optional[bool] arguments. */
typedef enum { VKR_OPT_UNSET = 0, VKR_OPT_FALSE = 1, VKR_OPT_TRUE = 2 } vkr_opt_bool_t;


#endif /* VKRESAMPLE_TYPES_H */
