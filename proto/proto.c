/* Wire format v1: little-endian encode/decode of frame headers and message bodies, with every
 * field and length validated before anything is allocated.  Pure functions, no I/O; decoded
 * tensor views point into the caller's buffer.  Byte layout: proto/PROTOCOL.md. */
#include "vkr_proto.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "le_bytes.h"

/* ---------------------------------------------------------------- little-endian helpers */
static void put_f64(uint8_t *p, double d)
{
    uint64_t v;
    memcpy(&v, &d, sizeof v);
    vkr_le_put_u64(p, v);
}
static double get_f64(const uint8_t *p)
{
    uint64_t v = vkr_le_get_u64(p);
    double d;
    memcpy(&d, &v, sizeof d);
    return d;
}


/* ---------------------------------------------------------------- names and errors */
const char *vkr_proto_code_name(int code)
{
    switch (code) {
    case VKR_OK: return "VKR_OK";
    case VKR_E_IO: return "VKR_E_IO";
    case VKR_E_PROTOCOL: return "VKR_E_PROTOCOL";
    case VKR_E_VERSION: return "VKR_E_VERSION";
    case VKR_E_TOO_LARGE: return "VKR_E_TOO_LARGE";
    case VKR_E_VALUE: return "VKR_E_VALUE";
    case VKR_E_NOT_IMPLEMENTED: return "VKR_E_NOT_IMPLEMENTED";
    case VKR_E_SIZE: return "VKR_E_SIZE";
    case VKR_E_DTYPE: return "VKR_E_DTYPE";
    case VKR_E_BACKEND_UNAVAILABLE: return "VKR_E_BACKEND_UNAVAILABLE";
    case VKR_E_BACKEND: return "VKR_E_BACKEND";
    case VKR_E_NOMEM: return "VKR_E_NOMEM";
    case VKR_E_SHUTDOWN: return "VKR_E_SHUTDOWN";
    case VKR_E_UNSUPPORTED: return "VKR_E_UNSUPPORTED";
    case VKR_E_INVALID_ARG: return "VKR_E_INVALID_ARG";
    case VKR_E_SERVER: return "VKR_E_SERVER";
    case VKR_E_BUSY: return "VKR_E_BUSY";
    case VKR_E_CANCELLED: return "VKR_E_CANCELLED";
    case VKR_E_TIMEOUT: return "VKR_E_TIMEOUT";
    case VKR_E_FD: return "VKR_E_FD";
    case VKR_E_PERMISSION: return "VKR_E_PERMISSION";
    default: return "VKR_E_?";
    }
}

int vkr_proto_error_set(vkr_error_t *err, int code, const char *field, const char *fmt, ...)
{
    if (!err)
        return code;
    err->code = code;
    snprintf(err->field, sizeof err->field, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return code;
}

static const char *const mode_names[] = {
    [VKR_MODE_NEAREST] = "nearest",   [VKR_MODE_NEAREST_EXACT] = "nearest-exact",
    [VKR_MODE_LINEAR] = "linear",     [VKR_MODE_BILINEAR] = "bilinear",
    [VKR_MODE_BICUBIC] = "bicubic",   [VKR_MODE_TRILINEAR] = "trilinear",
    [VKR_MODE_AREA] = "area",
};
#define N_MODE_NAMES (sizeof mode_names / sizeof mode_names[0])

const char *vkr_proto_mode_name(int mode)
{
    return mode > 0 && (size_t)mode < N_MODE_NAMES ? mode_names[mode] : NULL;
}

int vkr_proto_mode_from_name(const char *name)
{
    for (size_t m = 1; name && m < N_MODE_NAMES; m++)
        if (strcmp(name, mode_names[m]) == 0)
            return (int)m;
    return 0;
}

static const char *const backend_names[] = {
    [VKR_BACKEND_AUTO] = "auto", [VKR_BACKEND_VULKAN] = "vulkan", [VKR_BACKEND_CPU] = "cpu"};

const char *vkr_proto_backend_name(int backend)
{
    return backend >= 0 && backend <= VKR_BACKEND_CPU ? backend_names[backend] : NULL;
}

int vkr_proto_backend_from_name(const char *name)
{
    for (int b = 0; name && b <= VKR_BACKEND_CPU; b++)
        if (strcmp(name, backend_names[b]) == 0)
            return b;
    return -1;
}

static const char *const grid_mode_names[] = {[VKR_GRID_BILINEAR] = "bilinear", [VKR_GRID_NEAREST] = "nearest",
                                               [VKR_GRID_BICUBIC] = "bicubic"};
static const char *const padding_names[] = {[VKR_PADDING_ZEROS] = "zeros", [VKR_PADDING_BORDER] = "border",
                                            [VKR_PADDING_REFLECTION] = "reflection"};

const char *vkr_proto_grid_mode_name(int mode)
{
    return mode >= VKR_GRID_BILINEAR && mode <= VKR_GRID_BICUBIC ? grid_mode_names[mode] : NULL;
}

int vkr_proto_grid_mode_from_name(const char *name)
{
    for (int m = VKR_GRID_BILINEAR; name && m <= VKR_GRID_BICUBIC; m++)
        if (strcmp(name, grid_mode_names[m]) == 0)
            return m;
    return 0;
}

const char *vkr_proto_padding_name(int padding)
{
    return padding >= VKR_PADDING_ZEROS && padding <= VKR_PADDING_REFLECTION ? padding_names[padding] : NULL;
}

int vkr_proto_padding_from_name(const char *name)
{
    for (int p = VKR_PADDING_ZEROS; name && p <= VKR_PADDING_REFLECTION; p++)
        if (strcmp(name, padding_names[p]) == 0)
            return p;
    return 0;
}

const char *vkr_proto_op_name(int op)
{
    static const char *const names[] = {[VKR_OP_INTERPOLATE] = "interpolate", [VKR_OP_GRID_SAMPLE] = "grid_sample",
                                        [VKR_OP_AFFINE_GRID] = "affine_grid", [VKR_OP_AFFINE_SAMPLE] = "affine_sample"};
    return op >= VKR_OP_INTERPOLATE && op <= VKR_OP_AFFINE_SAMPLE ? names[op] : NULL;
}

unsigned vkr_op_tensors(int op)
{
    switch (op) {
    case VKR_OP_INTERPOLATE:
    case VKR_OP_AFFINE_GRID: return 1;
    case VKR_OP_GRID_SAMPLE:
    case VKR_OP_AFFINE_SAMPLE: return 2;
    default: return 0;
    }
}

/* ---------------------------------------------------------------- header */
void vkr_header_encode(const vkr_frame_header_t *h, uint8_t out[VKR_FRAME_HEADER_BYTES])
{
    vkr_le_put_u32(out + 0, h->magic);
    vkr_le_put_u16(out + 4, h->version);
    vkr_le_put_u16(out + 6, h->type);
    vkr_le_put_u32(out + 8, h->flags);
    vkr_le_put_u32(out + 12, h->request_id);
    vkr_le_put_u32(out + 16, h->n_fds);
    vkr_le_put_u32(out + 20, h->reserved);
    vkr_le_put_u64(out + 24, h->body_len);
}

int vkr_header_decode(const uint8_t in[VKR_FRAME_HEADER_BYTES], uint64_t max_submit_body,
                      uint64_t max_result_body, vkr_frame_header_t *h, vkr_error_t *err)
{
    h->magic = vkr_le_get_u32(in + 0);
    h->version = vkr_le_get_u16(in + 4);
    h->type = vkr_le_get_u16(in + 6);
    h->flags = vkr_le_get_u32(in + 8);
    h->request_id = vkr_le_get_u32(in + 12);
    h->n_fds = vkr_le_get_u32(in + 16);
    h->reserved = vkr_le_get_u32(in + 20);
    h->body_len = vkr_le_get_u64(in + 24);

    if (h->magic != VKR_PROTO_MAGIC)
        return vkr_proto_error_set(err, VKR_E_PROTOCOL, "magic", "bad magic 0x%08x (expected 0x%08x, \"VKR1\")",
                                   h->magic, VKR_PROTO_MAGIC);
    if (h->version != VKR_PROTO_VERSION)
        return vkr_proto_error_set(err, VKR_E_VERSION, "version", "protocol version %u is not supported (this build speaks %u)",
                                   h->version, VKR_PROTO_VERSION);
    if (h->flags != 0)
        return vkr_proto_error_set(err, VKR_E_PROTOCOL, "flags", "flags 0x%x: no flags are defined in version 1", h->flags);
    if (h->reserved != 0)
        return vkr_proto_error_set(err, VKR_E_PROTOCOL, "reserved", "reserved header field is 0x%x, must be 0", h->reserved);

    uint64_t limit;
    uint32_t max_fds = 0;
    switch (h->type) {
    case VKR_MSG_SUBMIT: limit = max_submit_body; max_fds = VKR_MAX_FDS_PER_FRAME; break;
    case VKR_MSG_RESULT: limit = max_result_body; max_fds = 1; break;
    case VKR_MSG_PING:
    case VKR_MSG_CANCEL:
    case VKR_MSG_STATS: limit = 0; break;
    case VKR_MSG_PONG:
    case VKR_MSG_ERROR:
    case VKR_MSG_STATS_REPLY: limit = VKR_MAX_CONTROL_BODY_BYTES; break;
    default:
        return vkr_proto_error_set(err, VKR_E_PROTOCOL, "type", "unknown message type %u", h->type);
    }
    if (h->n_fds > max_fds)
        return vkr_proto_error_set(err, VKR_E_PROTOCOL, "n_fds", "n_fds %u is over the limit of %u for message type %u", h->n_fds,
                                   max_fds, h->type);
    if (h->body_len > limit)
        return vkr_proto_error_set(err, h->type == VKR_MSG_SUBMIT || h->type == VKR_MSG_RESULT ? VKR_E_TOO_LARGE : VKR_E_PROTOCOL,
                                   "body_len", "body_len %llu is over the limit of %llu bytes for message type %u",
                                   (unsigned long long)h->body_len, (unsigned long long)limit, h->type);
    return VKR_OK;
}

/* ---------------------------------------------------------------- tensors */
bool vkr_shape_elements(const int64_t *shape, unsigned rank, uint64_t limit, uint64_t *out)
{
    uint64_t n = 1;
    for (unsigned i = 0; i < rank; i++) {
        if (shape[i] < 0)
            return false;
        uint64_t d = (uint64_t)shape[i];
        if (d != 0 && n > limit / d)
            return false;
        n *= d;
    }
    if (n > limit)
        return false;
    *out = n;
    return true;
}

static void tensor_desc_encode(const vkr_tensor_desc_t *t, uint8_t *p)
{
    memset(p, 0, VKR_TENSOR_DESC_BYTES);
    vkr_le_put_u16(p + 0, t->dtype);
    vkr_le_put_u16(p + 2, t->layout);
    p[4] = t->rank;
    p[5] = t->storage;
    vkr_le_put_u16(p + 6, t->storage == VKR_STORAGE_MEMFD ? t->fd_index : 0);
    for (unsigned i = 0; i < VKR_MAX_RANK; i++)
        vkr_le_put_u64(p + 8 + 8 * i, i < t->rank ? (uint64_t)t->shape[i] : 0);
    vkr_le_put_u64(p + 72, t->data_offset);
    vkr_le_put_u64(p + 80, t->data_bytes);
}

/* Where a decoded descriptor's bytes may be: a SUBMIT's inputs (INLINE or MEMFD with an index
 * below n_fds) or a RESULT's output (INLINE, MEMFD with the frame's one descriptor, OUTPUT_FD). */
typedef struct {
    bool result;
    unsigned n_fds;
} desc_rules_t;

/* Decode and check a tensor descriptor at p.  An INLINE tensor's data must start at expect_offset
 * and lie within a body of body_len bytes.  prefix names the tensor in error fields ("input"). */
static int tensor_desc_decode(const uint8_t *p, const uint8_t *body, uint64_t body_len, uint64_t expect_offset,
                              uint64_t max_tensor_bytes, const desc_rules_t *rules, const char *prefix, vkr_tensor_desc_t *t,
                              vkr_error_t *err)
{
    char field[VKR_ERROR_FIELD_MAX + 1];
#define FIELD(name) (snprintf(field, sizeof field, "%s.%s", prefix, name), field)
    memset(t, 0, sizeof *t);
    t->dtype = vkr_le_get_u16(p + 0);
    t->layout = vkr_le_get_u16(p + 2);
    t->rank = p[4];
    t->storage = p[5];
    t->fd_index = vkr_le_get_u16(p + 6);
    if (t->dtype != VKR_DTYPE_F32)
        return vkr_proto_error_set(err, VKR_E_DTYPE, FIELD("dtype"), "dtype %u is not supported: vkresample takes float32 (dtype 1)", t->dtype);
    if (t->layout != VKR_LAYOUT_CONTIGUOUS)
        return vkr_proto_error_set(err, VKR_E_DTYPE, FIELD("layout"), "layout %u is not supported: tensors must be contiguous (layout 1)", t->layout);
    if (t->storage != VKR_STORAGE_INLINE && t->storage != VKR_STORAGE_MEMFD && !(rules->result && t->storage == VKR_STORAGE_OUTPUT_FD))
        return vkr_proto_error_set(err, VKR_E_PROTOCOL, FIELD("storage"), "storage %u is not supported here: 0 (inline), 1 (memfd)%s", t->storage,
                                   rules->result ? " or 2 (the request's output memfd)" : "");
    if (t->storage != VKR_STORAGE_MEMFD && t->fd_index != 0)
        return vkr_proto_error_set(err, VKR_E_PROTOCOL, FIELD("reserved"), "reserved descriptor bytes must be 0 (fd_index %u for storage %u)",
                                   t->fd_index, t->storage);
    if (t->rank < 1 || t->rank > VKR_MAX_RANK)
        return vkr_proto_error_set(err, VKR_E_PROTOCOL, FIELD("rank"), "rank %u is out of range 1..%u", t->rank, VKR_MAX_RANK);
    for (unsigned i = 0; i < VKR_MAX_RANK; i++) {
        uint64_t d = vkr_le_get_u64(p + 8 + 8 * i);
        if (i >= t->rank) {
            if (d != 0)
                return vkr_proto_error_set(err, VKR_E_PROTOCOL, FIELD("shape"), "shape[%u] = %llu beyond rank %u must be 0", i,
                                           (unsigned long long)d, t->rank);
            continue;
        }
        if (d > (uint64_t)VKR_MAX_DIM_EXTENT)
            return vkr_proto_error_set(err, VKR_E_TOO_LARGE, FIELD("shape"), "shape[%u] = %llu is over the per-axis limit of %lld", i,
                                       (unsigned long long)d, (long long)VKR_MAX_DIM_EXTENT);
        t->shape[i] = (int64_t)d;
    }
    t->data_offset = vkr_le_get_u64(p + 72);
    t->data_bytes = vkr_le_get_u64(p + 80);
    uint64_t elements;
    if (!vkr_shape_elements(t->shape, t->rank, max_tensor_bytes / sizeof(float), &elements))
        return vkr_proto_error_set(err, VKR_E_TOO_LARGE, FIELD("shape"), "tensor of this shape is over the limit of %llu bytes",
                                   (unsigned long long)max_tensor_bytes);
    if (t->data_bytes != elements * sizeof(float))
        return vkr_proto_error_set(err, VKR_E_PROTOCOL, FIELD("data_bytes"), "data_bytes %llu does not match the shape (%llu elements x 4 bytes)",
                                   (unsigned long long)t->data_bytes, (unsigned long long)elements);
    if (t->storage == VKR_STORAGE_INLINE) {
        if (t->data_offset != expect_offset)
            return vkr_proto_error_set(err, VKR_E_PROTOCOL, FIELD("data_offset"), "data_offset %llu, expected %llu",
                                       (unsigned long long)t->data_offset, (unsigned long long)expect_offset);
        if (body_len < expect_offset || body_len - expect_offset < t->data_bytes)
            return vkr_proto_error_set(err, VKR_E_PROTOCOL, "body_len", "body_len %llu is short of %s's %llu data bytes at offset %llu",
                                       (unsigned long long)body_len, prefix, (unsigned long long)t->data_bytes, (unsigned long long)expect_offset);
        t->data = body + expect_offset;
        return VKR_OK;
    }
    /* in a descriptor: where it is was checked against the frame's fds; the fd itself is the
     * daemon's (or client's) to check when it maps it */
    if (rules->result) {
        if (t->data_offset != 0)
            return vkr_proto_error_set(err, VKR_E_PROTOCOL, FIELD("data_offset"), "data_offset %llu: an output in a memfd starts at 0",
                                       (unsigned long long)t->data_offset);
        if (t->storage == VKR_STORAGE_MEMFD && (t->fd_index != 0 || rules->n_fds != 1))
            return vkr_proto_error_set(err, VKR_E_FD, FIELD("fd_index"), "fd_index %u with %u descriptor(s): a memfd RESULT carries exactly one",
                                       t->fd_index, rules->n_fds);
        if (t->storage == VKR_STORAGE_OUTPUT_FD && rules->n_fds != 0)
            return vkr_proto_error_set(err, VKR_E_FD, "n_fds", "a RESULT in the request's output memfd carries no descriptor, got %u",
                                       rules->n_fds);
        return VKR_OK;
    }
    if (t->fd_index >= rules->n_fds)
        return vkr_proto_error_set(err, VKR_E_FD, FIELD("fd_index"), "fd_index %u, but the frame's tensors have %u descriptor(s)", t->fd_index,
                                   rules->n_fds);
    if (t->data_offset % sizeof(float) != 0 || t->data_offset > UINT64_MAX - t->data_bytes)
        return vkr_proto_error_set(err, VKR_E_PROTOCOL, FIELD("data_offset"), "data_offset %llu in the memfd must be a multiple of 4 and end within 2^64",
                                   (unsigned long long)t->data_offset);
    return VKR_OK;
#undef FIELD
}

/* ---------------------------------------------------------------- SUBMIT */
static uint64_t tensor_bytes(const vkr_tensor_desc_t *t)
{
    uint64_t elements = 1;
    for (unsigned i = 0; i < t->rank && i < VKR_MAX_RANK; i++)
        elements *= (uint64_t)t->shape[i];
    return elements * sizeof(float);
}

uint64_t vkr_submit_encode_fixed(vkr_job_t *job, uint8_t out[VKR_SUBMIT_MAX_FIXED_BYTES], size_t *fixed_len)
{
    unsigned n = job->n_tensors > VKR_MAX_TENSORS ? VKR_MAX_TENSORS : job->n_tensors;
    size_t fixed = VKR_JOB_HEADER_BYTES + VKR_INTERP_PARAMS_BYTES + n * VKR_TENSOR_DESC_BYTES;
    memset(out, 0, fixed);
    vkr_le_put_u16(out + 0, job->op);
    vkr_le_put_u16(out + 2, job->backend);
    vkr_le_put_u16(out + 4, job->n_tensors);
    vkr_le_put_u16(out + 6, job->result_storage);
    uint8_t *p = out + VKR_JOB_HEADER_BYTES;
    if (job->op == VKR_OP_INTERPOLATE) {
        const vkr_interp_params_t *ip = &job->interp;
        vkr_le_put_u16(p + 0, ip->mode);
        p[2] = ip->align_corners;
        p[3] = ip->recompute_scale_factor;
        p[4] = ip->antialias;
        p[5] = ip->n_size;
        p[6] = ip->n_scale;
        for (unsigned i = 0; i < VKR_MAX_SPATIAL; i++) {
            vkr_le_put_u64(p + 8 + 8 * i, (uint64_t)ip->size[i]);
            put_f64(p + 32 + 8 * i, ip->scale_factor[i]);
        }
    } else {
        const vkr_grid_params_t *gp = &job->grid;
        vkr_le_put_u16(p + 0, gp->mode);
        vkr_le_put_u16(p + 2, gp->padding_mode);
        p[4] = gp->align_corners;
        p[5] = gp->n_size;
        for (unsigned i = 0; i < 5; i++)
            vkr_le_put_u64(p + 8 + 8 * i, (uint64_t)gp->size[i]);
    }
    vkr_tensor_desc_t *tensors[VKR_MAX_TENSORS] = {&job->input, &job->aux};
    uint64_t offset = fixed;
    for (unsigned k = 0; k < n; k++) {
        tensors[k]->data_bytes = tensor_bytes(tensors[k]);
        if (tensors[k]->storage == VKR_STORAGE_INLINE) {
            tensors[k]->data_offset = offset;
            offset += tensors[k]->data_bytes;
        }
        tensor_desc_encode(tensors[k], out + VKR_JOB_HEADER_BYTES + VKR_INTERP_PARAMS_BYTES + k * VKR_TENSOR_DESC_BYTES);
    }
    if (fixed_len)
        *fixed_len = fixed;
    return offset;
}

static int opt_bool_check(uint8_t v, const char *field, vkr_error_t *err)
{
    if (v > VKR_OPT_TRUE)
        return vkr_proto_error_set(err, VKR_E_PROTOCOL, field, "%s = %u: expected 0 (unset), 1 (false) or 2 (true)", field, v);
    return VKR_OK;
}

static int interp_params_decode(const uint8_t *p, vkr_interp_params_t *ip, vkr_error_t *err)
{
    int rc;
    ip->mode = vkr_le_get_u16(p + 0);
    ip->align_corners = p[2];
    ip->recompute_scale_factor = p[3];
    ip->antialias = p[4];
    ip->n_size = p[5];
    ip->n_scale = p[6];
    if (!vkr_proto_mode_name(ip->mode))
        return vkr_proto_error_set(err, VKR_E_NOT_IMPLEMENTED, "mode", "unknown mode %u: expected nearest | linear | bilinear | bicubic | trilinear | area | nearest-exact (1..7)", ip->mode);
    if ((rc = opt_bool_check(ip->align_corners, "align_corners", err)) ||
        (rc = opt_bool_check(ip->recompute_scale_factor, "recompute_scale_factor", err)))
        return rc;
    if (ip->antialias > 1)
        return vkr_proto_error_set(err, VKR_E_PROTOCOL, "antialias", "antialias = %u: expected 0 or 1", ip->antialias);
    if (ip->n_size > VKR_MAX_SPATIAL)
        return vkr_proto_error_set(err, VKR_E_PROTOCOL, "n_size", "n_size = %u is over %u", ip->n_size, VKR_MAX_SPATIAL);
    if (ip->n_scale > VKR_MAX_SPATIAL)
        return vkr_proto_error_set(err, VKR_E_PROTOCOL, "n_scale", "n_scale = %u is over %u", ip->n_scale, VKR_MAX_SPATIAL);
    if (p[7] != 0)
        return vkr_proto_error_set(err, VKR_E_PROTOCOL, "reserved", "reserved parameter byte must be 0");
    for (unsigned i = 0; i < VKR_MAX_SPATIAL; i++) {
        ip->size[i] = (int64_t)vkr_le_get_u64(p + 8 + 8 * i);
        ip->scale_factor[i] = get_f64(p + 32 + 8 * i);
        if (i >= ip->n_size && ip->size[i] != 0)
            return vkr_proto_error_set(err, VKR_E_PROTOCOL, "size", "size[%u] = %lld beyond n_size %u must be 0", i, (long long)ip->size[i], ip->n_size);
        if (i >= ip->n_scale && ip->scale_factor[i] != 0.0)
            return vkr_proto_error_set(err, VKR_E_PROTOCOL, "scale_factor", "scale_factor[%u] beyond n_scale %u must be 0", i, ip->n_scale);
        if (i < ip->n_scale && !isfinite(ip->scale_factor[i]))
            return vkr_proto_error_set(err, VKR_E_VALUE, "scale_factor", "scale_factor[%u] = %g is not a finite number", i, ip->scale_factor[i]);
    }
    return VKR_OK;
}

static int grid_params_decode(const uint8_t *p, int op, vkr_grid_params_t *gp, vkr_error_t *err)
{
    gp->mode = vkr_le_get_u16(p + 0);
    gp->padding_mode = vkr_le_get_u16(p + 2);
    gp->align_corners = p[4];
    gp->n_size = p[5];
    const bool samples = op != VKR_OP_AFFINE_GRID;
    if (samples && !vkr_proto_grid_mode_name(gp->mode))
        return vkr_proto_error_set(err, VKR_E_VALUE, "mode",
                                   "nn.functional.grid_sample(): expected mode to be 'bilinear', 'nearest' or 'bicubic', but got: mode %u", gp->mode);
    if (samples && !vkr_proto_padding_name(gp->padding_mode))
        return vkr_proto_error_set(err, VKR_E_VALUE, "padding_mode",
                                   "nn.functional.grid_sample(): expected padding_mode to be 'zeros', 'border', or 'reflection', but got: padding_mode %u",
                                   gp->padding_mode);
    if (!samples && (gp->mode || gp->padding_mode))
        return vkr_proto_error_set(err, VKR_E_PROTOCOL, "mode", "affine_grid takes no mode or padding_mode: both must be 0");
    int rc = opt_bool_check(gp->align_corners, "align_corners", err);
    if (rc)
        return rc;
    unsigned max_size = op == VKR_OP_GRID_SAMPLE ? 0 : op == VKR_OP_AFFINE_GRID ? 5 : VKR_MAX_SPATIAL;
    if (gp->n_size > max_size)
        return vkr_proto_error_set(err, VKR_E_PROTOCOL, "n_size", "n_size = %u is over %u for this op", gp->n_size, max_size);
    if (vkr_le_get_u16(p + 6) != 0 || vkr_le_get_u64(p + 48) != 0)
        return vkr_proto_error_set(err, VKR_E_PROTOCOL, "reserved", "reserved parameter bytes must be 0");
    for (unsigned i = 0; i < 5; i++) {
        gp->size[i] = (int64_t)vkr_le_get_u64(p + 8 + 8 * i);
        if (i >= gp->n_size && gp->size[i] != 0)
            return vkr_proto_error_set(err, VKR_E_PROTOCOL, "size", "size[%u] = %lld beyond n_size %u must be 0", i, (long long)gp->size[i], gp->n_size);
    }
    return VKR_OK;
}

int vkr_submit_decode(const uint8_t *body, uint64_t body_len, uint64_t max_tensor_bytes, unsigned n_fds, vkr_job_t *job,
                      vkr_error_t *err)
{
    static const char *const tensor_names[VKR_OP_AFFINE_SAMPLE + 1][VKR_MAX_TENSORS] = {
        [VKR_OP_INTERPOLATE] = {"input", ""}, [VKR_OP_GRID_SAMPLE] = {"input", "grid"},
        [VKR_OP_AFFINE_GRID] = {"theta", ""}, [VKR_OP_AFFINE_SAMPLE] = {"input", "theta"}};
    int rc;
    memset(job, 0, sizeof *job);
    job->n_fds = n_fds;
    if (body_len < VKR_SUBMIT_FIXED_BYTES)
        return vkr_proto_error_set(err, VKR_E_PROTOCOL, "body_len", "SUBMIT body of %llu bytes is shorter than its %u-byte descriptors",
                                   (unsigned long long)body_len, VKR_SUBMIT_FIXED_BYTES);
    job->op = vkr_le_get_u16(body + 0);
    job->backend = vkr_le_get_u16(body + 2);
    job->n_tensors = vkr_le_get_u16(body + 4);
    job->result_storage = vkr_le_get_u16(body + 6);
    const unsigned n = vkr_op_tensors(job->op);
    if (!n)
        return vkr_proto_error_set(err, VKR_E_PROTOCOL, "op", "unknown op %u (1 interpolate, 2 grid_sample, 3 affine_grid, 4 affine_sample)", job->op);
    if (job->backend > VKR_BACKEND_CPU)
        return vkr_proto_error_set(err, VKR_E_VALUE, "backend", "backend %u is not one of 0 (auto), 1 (vulkan), 2 (cpu)", job->backend);
    if (job->n_tensors != n)
        return vkr_proto_error_set(err, VKR_E_PROTOCOL, "n_tensors", "this op takes %u tensor(s), got n_tensors = %u", n, job->n_tensors);
    if (job->result_storage > VKR_RESULT_DAEMON_FD)
        return vkr_proto_error_set(err, VKR_E_PROTOCOL, "result_storage", "result_storage %u is not 0 (inline), 1 (into the last descriptor) or 2 (a daemon memfd)",
                                   job->result_storage);
    const unsigned out_fds = job->result_storage == VKR_RESULT_INTO_FD ? 1 : 0;
    if (n_fds < out_fds)
        return vkr_proto_error_set(err, VKR_E_FD, "n_fds", "result_storage 1 needs the output memfd as the frame's last descriptor, but it has none");
    const uint64_t fixed = VKR_JOB_HEADER_BYTES + VKR_INTERP_PARAMS_BYTES + (uint64_t)n * VKR_TENSOR_DESC_BYTES;
    if (body_len < fixed)
        return vkr_proto_error_set(err, VKR_E_PROTOCOL, "body_len", "SUBMIT body of %llu bytes is shorter than its %llu-byte descriptors",
                                   (unsigned long long)body_len, (unsigned long long)fixed);

    const uint8_t *p = body + VKR_JOB_HEADER_BYTES;
    rc = job->op == VKR_OP_INTERPOLATE ? interp_params_decode(p, &job->interp, err) : grid_params_decode(p, job->op, &job->grid, err);
    if (rc)
        return rc;
    const desc_rules_t rules = {.result = false, .n_fds = n_fds - out_fds};
    vkr_tensor_desc_t *tensors[VKR_MAX_TENSORS] = {&job->input, &job->aux};
    uint64_t offset = fixed;
    unsigned used = 0;   /* bit per input descriptor a tensor refers to */
    for (unsigned k = 0; k < n; k++) {
        rc = tensor_desc_decode(p + VKR_INTERP_PARAMS_BYTES + k * VKR_TENSOR_DESC_BYTES, body, body_len, offset, max_tensor_bytes, &rules,
                                tensor_names[job->op][k], tensors[k], err);
        if (rc)
            return rc;
        if (tensors[k]->storage == VKR_STORAGE_INLINE)
            offset += tensors[k]->data_bytes;
        else
            used |= 1u << tensors[k]->fd_index;
    }
    if (used != (1u << rules.n_fds) - 1)
        return vkr_proto_error_set(err, VKR_E_FD, "n_fds", "the frame carries %u descriptor(s) but its tensors%s use %u of them", n_fds,
                                   out_fds ? " and output" : "", (unsigned)__builtin_popcount(used) + out_fds);
    if (offset != body_len)
        return vkr_proto_error_set(err, VKR_E_PROTOCOL, "body_len", "body_len %llu does not equal %llu descriptor bytes + %llu data bytes",
                                   (unsigned long long)body_len, (unsigned long long)fixed, (unsigned long long)(offset - fixed));
    return VKR_OK;
}

/* ---------------------------------------------------------------- RESULT */
uint64_t vkr_result_encode_fixed(vkr_result_t *res, uint8_t out[VKR_RESULT_FIXED_BYTES])
{
    memset(out, 0, VKR_RESULT_FIXED_BYTES);
    vkr_le_put_u16(out + 0, res->backend_used);
    uint64_t elements = 1;
    for (unsigned i = 0; i < res->output.rank && i < VKR_MAX_RANK; i++)
        elements *= (uint64_t)res->output.shape[i];
    const bool inline_data = res->output.storage == VKR_STORAGE_INLINE;
    res->output.dtype = VKR_DTYPE_F32;
    res->output.layout = VKR_LAYOUT_CONTIGUOUS;
    res->output.fd_index = 0;
    res->output.data_offset = inline_data ? VKR_RESULT_FIXED_BYTES : 0;
    res->output.data_bytes = elements * sizeof(float);
    tensor_desc_encode(&res->output, out + 8);
    return VKR_RESULT_FIXED_BYTES + (inline_data ? res->output.data_bytes : 0);
}

int vkr_result_decode(const uint8_t *body, uint64_t body_len, unsigned n_fds, vkr_result_t *res, vkr_error_t *err)
{
    memset(res, 0, sizeof *res);
    if (body_len < VKR_RESULT_FIXED_BYTES)
        return vkr_proto_error_set(err, VKR_E_PROTOCOL, "body_len", "RESULT body of %llu bytes is shorter than %u",
                                   (unsigned long long)body_len, VKR_RESULT_FIXED_BYTES);
    res->backend_used = vkr_le_get_u16(body);
    if (res->backend_used < VKR_BACKEND_VULKAN || res->backend_used > VKR_BACKEND_CPU)
        return vkr_proto_error_set(err, VKR_E_PROTOCOL, "backend_used", "backend_used = %u", res->backend_used);
    if (vkr_le_get_u16(body + 2) != 0 || vkr_le_get_u32(body + 4) != 0)
        return vkr_proto_error_set(err, VKR_E_PROTOCOL, "reserved", "reserved RESULT bytes must be 0");
    const desc_rules_t rules = {.result = true, .n_fds = n_fds};
    int rc = tensor_desc_decode(body + 8, body, body_len, VKR_RESULT_FIXED_BYTES, UINT64_MAX, &rules, "output", &res->output, err);
    if (rc != VKR_OK)
        return rc;
    const uint64_t data = res->output.storage == VKR_STORAGE_INLINE ? res->output.data_bytes : 0;
    if (res->output.storage == VKR_STORAGE_INLINE && n_fds != 0)
        return vkr_proto_error_set(err, VKR_E_FD, "n_fds", "an inline RESULT carries no descriptor, got %u", n_fds);
    if (body_len - VKR_RESULT_FIXED_BYTES != data)
        return vkr_proto_error_set(err, VKR_E_PROTOCOL, "body_len", "RESULT body_len %llu does not equal %u + %llu data bytes",
                                   (unsigned long long)body_len, VKR_RESULT_FIXED_BYTES, (unsigned long long)data);
    return VKR_OK;
}

/* ---------------------------------------------------------------- ERROR */
size_t vkr_error_encode(const vkr_error_t *e, uint8_t out[VKR_ERROR_BODY_MAX])
{
    size_t fl = strnlen(e->field, VKR_ERROR_FIELD_MAX);
    size_t ml = strnlen(e->message, VKR_ERROR_MESSAGE_MAX);
    vkr_le_put_u32(out + 0, (uint32_t)e->code);
    vkr_le_put_u16(out + 4, (uint16_t)fl);
    vkr_le_put_u16(out + 6, (uint16_t)ml);
    memcpy(out + 8, e->field, fl);
    memcpy(out + 8 + fl, e->message, ml);
    return 8 + fl + ml;
}

int vkr_error_decode(const uint8_t *body, uint64_t body_len, vkr_error_t *out, vkr_error_t *err)
{
    memset(out, 0, sizeof *out);
    if (body_len < 8)
        return vkr_proto_error_set(err, VKR_E_PROTOCOL, "body_len", "ERROR body of %llu bytes is shorter than 8", (unsigned long long)body_len);
    int32_t code = (int32_t)vkr_le_get_u32(body);
    uint16_t fl = vkr_le_get_u16(body + 4), ml = vkr_le_get_u16(body + 6);
    if (code >= 0)
        return vkr_proto_error_set(err, VKR_E_PROTOCOL, "code", "ERROR code %d is not negative", code);
    if (fl > VKR_ERROR_FIELD_MAX || ml > VKR_ERROR_MESSAGE_MAX || body_len != 8u + fl + ml)
        return vkr_proto_error_set(err, VKR_E_PROTOCOL, "body_len", "ERROR lengths (field %u, message %u) do not match body_len %llu",
                                   fl, ml, (unsigned long long)body_len);
    out->code = code;
    memcpy(out->field, body + 8, fl);
    memcpy(out->message, body + 8 + fl, ml);
    return VKR_OK;
}

/* ---------------------------------------------------------------- PONG */
size_t vkr_pong_encode(const vkr_pong_t *p, uint8_t out[VKR_PONG_BODY_MAX])
{
    size_t nl = strnlen(p->device_name, VKR_DEVICE_NAME_MAX);
    vkr_le_put_u32(out + 0, p->backend_mask);
    vkr_le_put_u16(out + 4, p->default_backend);
    vkr_le_put_u16(out + 6, (uint16_t)nl);
    memcpy(out + 8, p->device_name, nl);
    return 8 + nl;
}

int vkr_pong_decode(const uint8_t *body, uint64_t body_len, vkr_pong_t *out, vkr_error_t *err)
{
    memset(out, 0, sizeof *out);
    if (body_len < 8)
        return vkr_proto_error_set(err, VKR_E_PROTOCOL, "body_len", "PONG body of %llu bytes is shorter than 8", (unsigned long long)body_len);
    out->backend_mask = vkr_le_get_u32(body);
    out->default_backend = vkr_le_get_u16(body + 4);
    uint16_t nl = vkr_le_get_u16(body + 6);
    if (nl > VKR_DEVICE_NAME_MAX || body_len != 8u + nl)
        return vkr_proto_error_set(err, VKR_E_PROTOCOL, "body_len", "PONG name length %u does not match body_len %llu", nl,
                                   (unsigned long long)body_len);
    memcpy(out->device_name, body + 8, nl);
    return VKR_OK;
}

/* ---------------------------------------------------------------- STATS_REPLY */
size_t vkr_stats_encode(const vkr_stats_t *s, uint8_t out[VKR_STATS_BODY_MAX])
{
    const unsigned n_rows = s->n_rows > VKR_STATS_MAX_ROWS ? VKR_STATS_MAX_ROWS : s->n_rows;
    const size_t nl = strnlen(s->device_name, VKR_DEVICE_NAME_MAX);
    memset(out, 0, VKR_STATS_FIXED_BYTES + n_rows * VKR_STATS_ROW_BYTES);
    vkr_le_put_u64(out + 0, s->uptime_ms);
    vkr_le_put_u64(out + 8, s->bytes_in);
    vkr_le_put_u64(out + 16, s->bytes_out);
    vkr_le_put_u64(out + 24, s->memfd_bytes_in);
    vkr_le_put_u64(out + 32, s->memfd_bytes_out);
    vkr_le_put_u32(out + 40, s->queued);
    vkr_le_put_u32(out + 44, s->running);
    vkr_le_put_u32(out + 48, s->clients);
    vkr_le_put_u32(out + 52, s->workers);
    vkr_le_put_u64(out + 56, s->latency_p50_us);
    vkr_le_put_u64(out + 64, s->latency_p99_us);
    vkr_le_put_u64(out + 72, s->jobs_busy);
    vkr_le_put_u64(out + 80, s->jobs_cancelled);
    vkr_le_put_u64(out + 88, s->frames_refused);
    vkr_le_put_u16(out + 96, (uint16_t)n_rows);
    vkr_le_put_u16(out + 98, (uint16_t)nl);
    vkr_le_put_u32(out + 100, s->flags);
    vkr_le_put_u64(out + 104, s->jobs_moved_to_cpu);
    vkr_le_put_u64(out + 112, s->connections_refused);
    vkr_le_put_u64(out + 120, s->connections_timed_out);
    vkr_le_put_u64(out + 128, s->accept_pauses);
    uint8_t *r = out + VKR_STATS_FIXED_BYTES;
    for (unsigned i = 0; i < n_rows; i++, r += VKR_STATS_ROW_BYTES) {
        vkr_le_put_u16(r + 0, s->rows[i].op);
        vkr_le_put_u16(r + 2, s->rows[i].backend);
        vkr_le_put_u64(r + 8, s->rows[i].done);
        vkr_le_put_u64(r + 16, s->rows[i].failed);
        vkr_le_put_u64(r + 24, s->rows[i].in_flight);
    }
    memcpy(r, s->device_name, nl);
    return (size_t)(r - out) + nl;
}

int vkr_stats_decode(const uint8_t *body, uint64_t body_len, vkr_stats_t *out, vkr_error_t *err)
{
    memset(out, 0, sizeof *out);
    if (body_len < VKR_STATS_FIXED_BYTES)
        return vkr_proto_error_set(err, VKR_E_PROTOCOL, "body_len", "STATS_REPLY body of %llu bytes is shorter than %u",
                                   (unsigned long long)body_len, VKR_STATS_FIXED_BYTES);
    out->n_rows = vkr_le_get_u16(body + 96);
    const uint16_t nl = vkr_le_get_u16(body + 98);
    out->flags = vkr_le_get_u32(body + 100);
    if ((out->flags & ~VKR_STATS_VULKAN_LOST) != 0)
        return vkr_proto_error_set(err, VKR_E_PROTOCOL, "flags", "STATS_REPLY flags 0x%x: only bit 0 (vulkan lost) is defined",
                                   (unsigned)out->flags);
    if (out->n_rows > VKR_STATS_MAX_ROWS)
        return vkr_proto_error_set(err, VKR_E_PROTOCOL, "n_rows", "n_rows %u is over %u", out->n_rows, VKR_STATS_MAX_ROWS);
    if (nl > VKR_DEVICE_NAME_MAX || body_len != VKR_STATS_FIXED_BYTES + (uint64_t)out->n_rows * VKR_STATS_ROW_BYTES + nl)
        return vkr_proto_error_set(err, VKR_E_PROTOCOL, "body_len", "STATS_REPLY with %u rows and a %u-byte name does not match body_len %llu",
                                   out->n_rows, nl, (unsigned long long)body_len);
    out->uptime_ms = vkr_le_get_u64(body + 0);
    out->bytes_in = vkr_le_get_u64(body + 8);
    out->bytes_out = vkr_le_get_u64(body + 16);
    out->memfd_bytes_in = vkr_le_get_u64(body + 24);
    out->memfd_bytes_out = vkr_le_get_u64(body + 32);
    out->queued = vkr_le_get_u32(body + 40);
    out->running = vkr_le_get_u32(body + 44);
    out->clients = vkr_le_get_u32(body + 48);
    out->workers = vkr_le_get_u32(body + 52);
    out->latency_p50_us = vkr_le_get_u64(body + 56);
    out->latency_p99_us = vkr_le_get_u64(body + 64);
    out->jobs_busy = vkr_le_get_u64(body + 72);
    out->jobs_cancelled = vkr_le_get_u64(body + 80);
    out->frames_refused = vkr_le_get_u64(body + 88);
    out->jobs_moved_to_cpu = vkr_le_get_u64(body + 104);
    out->connections_refused = vkr_le_get_u64(body + 112);
    out->connections_timed_out = vkr_le_get_u64(body + 120);
    out->accept_pauses = vkr_le_get_u64(body + 128);
    const uint8_t *r = body + VKR_STATS_FIXED_BYTES;
    for (unsigned i = 0; i < out->n_rows; i++, r += VKR_STATS_ROW_BYTES) {
        if (vkr_le_get_u32(r + 4) != 0)
            return vkr_proto_error_set(err, VKR_E_PROTOCOL, "reserved", "reserved bytes of STATS_REPLY row %u must be 0", i);
        out->rows[i].op = vkr_le_get_u16(r + 0);
        out->rows[i].backend = vkr_le_get_u16(r + 2);
        out->rows[i].done = vkr_le_get_u64(r + 8);
        out->rows[i].failed = vkr_le_get_u64(r + 16);
        out->rows[i].in_flight = vkr_le_get_u64(r + 24);
    }
    memcpy(out->device_name, r, nl);
    return VKR_OK;
}
