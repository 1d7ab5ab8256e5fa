/* Unit tests of proto/: header and body codecs (round trips and every rejection) and the planner
 * (PyTorch's output-size arithmetic and every rejection, with PyTorch's wording). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "vkr_proto.h"

#define MAX_BYTES (64ull * 1024 * 1024)

static bool starts_with(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

/* ---------------------------------------------------------------- header */
static vkr_frame_header_t good_header(uint16_t type, uint64_t body_len)
{
    return (vkr_frame_header_t){.magic = VKR_PROTO_MAGIC, .version = VKR_PROTO_VERSION, .type = type, .request_id = 77,
                                .body_len = body_len};
}

static void expect_header_error(vkr_frame_header_t h, int code, const char *field, const char *what)
{
    uint8_t b[VKR_FRAME_HEADER_BYTES];
    vkr_frame_header_t out;
    vkr_error_t err = {0};
    vkr_header_encode(&h, b);
    int rc = vkr_header_decode(b, MAX_BYTES, MAX_BYTES, &out, &err);
    tap_check(rc == code && strcmp(err.field, field) == 0, "header %s -> %s [%s] (got %d [%s] %s)", what,
              vkr_proto_code_name(code), field, rc, err.field, err.message);
}

static void test_header(void)
{
    uint8_t b[VKR_FRAME_HEADER_BYTES];
    vkr_frame_header_t h = good_header(VKR_MSG_SUBMIT, 1234), out;
    vkr_error_t err;
    vkr_header_encode(&h, b);
    tap_check(memcmp(b, "VKR1", 4) == 0 && b[4] == 1 && b[6] == VKR_MSG_SUBMIT && b[12] == 77 && b[24] == (1234 & 0xff) && b[25] == 1234 >> 8,
              "header bytes are little-endian with magic \"VKR1\"");
    int rc = vkr_header_decode(b, MAX_BYTES, MAX_BYTES, &out, &err);
    tap_check(rc == 0 && out.type == VKR_MSG_SUBMIT && out.request_id == 77 && out.body_len == 1234, "header round trip (rc %d)", rc);

    h = good_header(VKR_MSG_PING, 0);
    h.magic = 0x31524B57;
    expect_header_error(h, VKR_E_PROTOCOL, "magic", "bad magic");
    h = good_header(VKR_MSG_PING, 0);
    h.version = 2;
    expect_header_error(h, VKR_E_VERSION, "version", "version 2");
    h = good_header(99, 0);
    expect_header_error(h, VKR_E_PROTOCOL, "type", "type 99");
    h = good_header(0, 0);
    expect_header_error(h, VKR_E_PROTOCOL, "type", "type 0");
    h = good_header(VKR_MSG_PING, 0);
    h.flags = 1;
    expect_header_error(h, VKR_E_PROTOCOL, "flags", "flags 1");
    h = good_header(VKR_MSG_PING, 0);
    h.n_fds = 3;
    expect_header_error(h, VKR_E_PROTOCOL, "n_fds", "n_fds 3");
    h = good_header(VKR_MSG_PING, 0);
    h.reserved = 9;
    expect_header_error(h, VKR_E_PROTOCOL, "reserved", "reserved 9");
    expect_header_error(good_header(VKR_MSG_PING, 1), VKR_E_PROTOCOL, "body_len", "PING with a body");
    expect_header_error(good_header(VKR_MSG_SUBMIT, MAX_BYTES + 1), VKR_E_TOO_LARGE, "body_len", "SUBMIT over the limit");
    expect_header_error(good_header(VKR_MSG_SUBMIT, UINT64_MAX), VKR_E_TOO_LARGE, "body_len", "SUBMIT body_len 2^64-1");
    expect_header_error(good_header(VKR_MSG_ERROR, VKR_MAX_CONTROL_BODY_BYTES + 1), VKR_E_PROTOCOL, "body_len", "ERROR over 4096");
}

/* ---------------------------------------------------------------- SUBMIT */
typedef struct {
    uint8_t *bytes;
    uint64_t len;
} body_t;

static vkr_job_t base_job(int rank, const int64_t *shape)
{
    vkr_job_t j = {.op = VKR_OP_INTERPOLATE, .backend = VKR_BACKEND_CPU, .n_tensors = 1};
    j.interp.mode = VKR_MODE_NEAREST;
    j.interp.n_size = 1;
    j.interp.size[0] = 3;
    j.input.dtype = VKR_DTYPE_F32;
    j.input.layout = VKR_LAYOUT_CONTIGUOUS;
    j.input.rank = (uint8_t)rank;
    for (int i = 0; i < rank; i++)
        j.input.shape[i] = shape[i];
    return j;
}

static body_t encode_job(vkr_job_t *j)
{
    uint8_t fixed[VKR_SUBMIT_MAX_FIXED_BYTES];
    size_t fixed_len;
    uint64_t len = vkr_submit_encode_fixed(j, fixed, &fixed_len);
    body_t b = {calloc(1, len), len};
    memcpy(b.bytes, fixed, fixed_len);
    float *data = (float *)(b.bytes + fixed_len);
    for (uint64_t i = 0; i < (len - fixed_len) / 4; i++)
        data[i] = (float)i;
    return b;
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Mutate one byte/field of a valid body and expect a decode error. */
static void expect_submit_error(body_t b, int code, const char *field, const char *what)
{
    vkr_job_t out;
    vkr_error_t err = {0};
    int rc = vkr_submit_decode(b.bytes, b.len, MAX_BYTES, 0, &out, &err);
    tap_check(rc == code && strcmp(err.field, field) == 0, "submit %s -> %s [%s] (got %s [%s] %s)", what, vkr_proto_code_name(code),
              field, vkr_proto_code_name(rc), err.field, err.message);
    free(b.bytes);
}

static body_t good_body(void)
{
    int64_t shape[4] = {1, 2, 5, 6};
    vkr_job_t j = base_job(4, shape);
    return encode_job(&j);
}

static void test_submit(void)
{
    int64_t shape[5] = {2, 3, 4, 5, 6};
    vkr_job_t j = base_job(5, shape);
    j.interp.mode = VKR_MODE_TRILINEAR;
    j.interp.align_corners = VKR_OPT_TRUE;
    j.interp.recompute_scale_factor = VKR_OPT_FALSE;
    j.interp.n_size = 0;
    j.interp.size[0] = 0;
    j.interp.n_scale = 3;
    j.interp.scale_factor[0] = 0.5;
    j.interp.scale_factor[1] = 7.0 / 3.0;
    j.interp.scale_factor[2] = 2.5;
    body_t b = encode_job(&j);
    vkr_job_t out;
    vkr_error_t err;
    int rc = vkr_submit_decode(b.bytes, b.len, MAX_BYTES, 0, &out, &err);
    tap_check(rc == 0 && out.interp.mode == VKR_MODE_TRILINEAR && out.interp.align_corners == VKR_OPT_TRUE &&
                  out.interp.recompute_scale_factor == VKR_OPT_FALSE && out.interp.n_scale == 3 && out.interp.scale_factor[1] == 7.0 / 3.0 &&
                  out.input.rank == 5 && out.input.shape[4] == 6 && out.input.data == b.bytes + VKR_SUBMIT_FIXED_BYTES &&
                  out.input.data_bytes == 720 * 4 && b.len == VKR_SUBMIT_FIXED_BYTES + 720 * 4,
              "submit round trip (rc %d %s)", rc, rc ? err.message : "");
    tap_check(((const float *)out.input.data)[719] == 719.0f, "decoded tensor view points at the inline bytes");
    free(b.bytes);

    b = good_body();
    b.len = VKR_SUBMIT_FIXED_BYTES - 1;
    expect_submit_error(b, VKR_E_PROTOCOL, "body_len", "shorter than its descriptors");
    b = good_body();
    b.bytes[0] = 9;
    expect_submit_error(b, VKR_E_PROTOCOL, "op", "op 9");
    b = good_body();
    b.bytes[2] = 3;
    expect_submit_error(b, VKR_E_VALUE, "backend", "backend 3");
    b = good_body();
    b.bytes[4] = 2;
    expect_submit_error(b, VKR_E_PROTOCOL, "n_tensors", "n_tensors 2");
    b = good_body();
    b.bytes[7] = 1;
    expect_submit_error(b, VKR_E_PROTOCOL, "result_storage", "result_storage 256");
    b = good_body();
    b.bytes[6] = 3;
    expect_submit_error(b, VKR_E_PROTOCOL, "result_storage", "result_storage 3");
    b = good_body();
    b.bytes[6] = VKR_RESULT_INTO_FD;
    expect_submit_error(b, VKR_E_FD, "n_fds", "result into an output memfd, but no descriptor");
    b = good_body();
    b.bytes[8] = 0;
    expect_submit_error(b, VKR_E_NOT_IMPLEMENTED, "mode", "mode 0");
    b = good_body();
    b.bytes[8] = 8;
    expect_submit_error(b, VKR_E_NOT_IMPLEMENTED, "mode", "mode 8");
    b = good_body();
    b.bytes[10] = 3;
    expect_submit_error(b, VKR_E_PROTOCOL, "align_corners", "align_corners 3");
    b = good_body();
    b.bytes[11] = 7;
    expect_submit_error(b, VKR_E_PROTOCOL, "recompute_scale_factor", "recompute_scale_factor 7");
    b = good_body();
    b.bytes[12] = 2;
    expect_submit_error(b, VKR_E_PROTOCOL, "antialias", "antialias 2");
    b = good_body();
    b.bytes[13] = 4;
    expect_submit_error(b, VKR_E_PROTOCOL, "n_size", "n_size 4");
    b = good_body();
    b.bytes[14] = 4;
    expect_submit_error(b, VKR_E_PROTOCOL, "n_scale", "n_scale 4");
    b = good_body();
    b.bytes[15] = 1;
    expect_submit_error(b, VKR_E_PROTOCOL, "reserved", "reserved parameter byte");
    b = good_body();
    put64(b.bytes + 24, 5);
    expect_submit_error(b, VKR_E_PROTOCOL, "size", "size[1] beyond n_size");
    b = good_body();
    b.bytes[56] = 1;
    expect_submit_error(b, VKR_E_PROTOCOL, "scale_factor", "scale_factor[2] beyond n_scale");
    double bad_scales[3] = {NAN, INFINITY, -INFINITY};
    for (int i = 0; i < 3; i++) {
        b = good_body();
        b.bytes[13] = 0;
        put64(b.bytes + 16, 0);
        b.bytes[14] = 1;
        uint64_t bits;
        memcpy(&bits, &bad_scales[i], 8);
        put64(b.bytes + 40, bits);
        expect_submit_error(b, VKR_E_VALUE, "scale_factor", i == 0 ? "scale NaN" : i == 1 ? "scale +inf" : "scale -inf");
    }
    b = good_body();
    b.bytes[64] = 2;
    expect_submit_error(b, VKR_E_DTYPE, "input.dtype", "dtype 2");
    b = good_body();
    b.bytes[66] = 2;
    expect_submit_error(b, VKR_E_DTYPE, "input.layout", "layout 2");
    b = good_body();
    b.bytes[69] = 3;
    expect_submit_error(b, VKR_E_PROTOCOL, "input.storage", "storage 3");
    b = good_body();
    b.bytes[69] = VKR_STORAGE_OUTPUT_FD;
    expect_submit_error(b, VKR_E_PROTOCOL, "input.storage", "storage 2 (a RESULT's) in a SUBMIT");
    b = good_body();
    b.bytes[69] = VKR_STORAGE_MEMFD;
    expect_submit_error(b, VKR_E_FD, "input.fd_index", "memfd storage with no descriptor in the frame");
    b = good_body();
    b.bytes[70] = 1;
    expect_submit_error(b, VKR_E_PROTOCOL, "input.reserved", "reserved descriptor bytes");
    b = good_body();
    b.bytes[68] = 0;
    expect_submit_error(b, VKR_E_PROTOCOL, "input.rank", "rank 0");
    b = good_body();
    b.bytes[68] = 9;
    expect_submit_error(b, VKR_E_PROTOCOL, "input.rank", "rank 9");
    b = good_body();
    put64(b.bytes + 72 + 8 * 5, 1);
    expect_submit_error(b, VKR_E_PROTOCOL, "input.shape", "shape beyond rank");
    b = good_body();
    put64(b.bytes + 72, 1ull << 31);
    expect_submit_error(b, VKR_E_TOO_LARGE, "input.shape", "extent 2^31");
    b = good_body();
    put64(b.bytes + 72, UINT64_MAX);
    expect_submit_error(b, VKR_E_TOO_LARGE, "input.shape", "extent 2^64-1 (negative as int64)");
    b = good_body();
    for (int i = 0; i < 4; i++)
        put64(b.bytes + 72 + 8 * i, 0x7fffffff);
    expect_submit_error(b, VKR_E_TOO_LARGE, "input.shape", "shape product overflows 64 bits");
    b = good_body();
    put64(b.bytes + 72, 1000000);
    expect_submit_error(b, VKR_E_TOO_LARGE, "input.shape", "tensor over the byte limit");
    b = good_body();
    put64(b.bytes + 136, 160);
    expect_submit_error(b, VKR_E_PROTOCOL, "input.data_offset", "data_offset off by 8");
    b = good_body();
    put64(b.bytes + 144, 4);
    expect_submit_error(b, VKR_E_PROTOCOL, "input.data_bytes", "data_bytes not matching the shape");
    b = good_body();
    b.len -= 1;
    expect_submit_error(b, VKR_E_PROTOCOL, "body_len", "body one byte short of the data");
    b = good_body();
    uint8_t *grown = realloc(b.bytes, b.len + 4);
    b.bytes = grown;
    b.len += 4;
    expect_submit_error(b, VKR_E_PROTOCOL, "body_len", "body with 4 trailing bytes");
}

/* ---------------------------------------------------------------- planner */
static vkr_job_t job_of(int mode, int rank, const int64_t *shape)
{
    vkr_job_t j = base_job(rank, shape);
    j.interp.mode = (uint16_t)mode;
    j.interp.n_size = 0;
    j.interp.size[0] = 0;
    return j;
}

static void with_size(vkr_job_t *j, int n, int64_t a, int64_t b, int64_t c)
{
    j->interp.n_size = (uint8_t)n;
    j->interp.size[0] = a;
    j->interp.size[1] = b;
    j->interp.size[2] = c;
}

static void with_scale(vkr_job_t *j, int n, double a, double b, double c)
{
    j->interp.n_scale = (uint8_t)n;
    j->interp.scale_factor[0] = a;
    j->interp.scale_factor[1] = b;
    j->interp.scale_factor[2] = c;
}

static void expect_plan_error(vkr_job_t j, int code, const char *message, const char *what)
{
    vkr_interp_plan_t p;
    vkr_error_t err = {0};
    int rc = vkr_plan_interpolate(&j, MAX_BYTES, &p, &err);
    tap_check(rc == code && strcmp(err.message, message) == 0, "plan %s -> %s \"%s\" (got %s \"%s\")", what, vkr_proto_code_name(code),
              message, vkr_proto_code_name(rc), err.message);
}

static void expect_plan_prefix(vkr_job_t j, int code, const char *prefix, const char *what)
{
    vkr_interp_plan_t p;
    vkr_error_t err = {0};
    int rc = vkr_plan_interpolate(&j, MAX_BYTES, &p, &err);
    tap_check(rc == code && starts_with(err.message, prefix), "plan %s -> %s \"%s...\" (got %s \"%s\")", what, vkr_proto_code_name(code),
              prefix, vkr_proto_code_name(rc), err.message);
}

static void test_plan_rejections(void)
{
    const int64_t s3[3] = {1, 2, 5}, s4[4] = {1, 2, 5, 6}, s5[5] = {1, 2, 3, 4, 5}, s2[2] = {2, 5}, s6[6] = {1, 1, 2, 2, 2, 2};
    vkr_job_t j;

    j = job_of(VKR_MODE_NEAREST, 4, s4);
    with_size(&j, 1, 3, 0, 0);
    with_scale(&j, 1, 2, 0, 0);
    expect_plan_error(j, VKR_E_VALUE, "only one of size or scale_factor should be defined", "size and scale_factor");
    j = job_of(VKR_MODE_NEAREST, 4, s4);
    expect_plan_error(j, VKR_E_VALUE, "either size or scale_factor should be defined", "neither");
    j = job_of(VKR_MODE_NEAREST, 4, s4);
    with_size(&j, 3, 3, 3, 3);
    expect_plan_error(j, VKR_E_VALUE,
                      "Input and output must have the same number of spatial dimensions, but got input with spatial dimensions of [5, 6] "
                      "and output size of [3, 3, 3]. Please provide input tensor in (N, C, d1, d2, ...,dK) format and output size in "
                      "(o1, o2, ...,oK) format.",
                      "size of the wrong arity");
    j = job_of(VKR_MODE_NEAREST, 4, s4);
    with_scale(&j, 3, 2, 2, 2);
    expect_plan_prefix(j, VKR_E_VALUE,
                       "Input and scale_factor must have the same number of spatial dimensions, but got input with spatial dimensions of "
                       "[5, 6] and scale_factor of shape [2.0, 2.0, 2.0].",
                       "scale_factor of the wrong arity");
    const char *ac = "align_corners option can only be set with the interpolating modes: linear | bilinear | bicubic | trilinear";
    int no_ac_modes[3] = {VKR_MODE_NEAREST, VKR_MODE_NEAREST_EXACT, VKR_MODE_AREA};
    for (int m = 0; m < 3; m++)
        for (int v = VKR_OPT_FALSE; v <= VKR_OPT_TRUE; v++) {
            j = job_of(no_ac_modes[m], 4, s4);
            with_size(&j, 1, 3, 0, 0);
            j.interp.align_corners = (uint8_t)v;
            char what[64];
            snprintf(what, sizeof what, "%s with align_corners=%s", vkr_proto_mode_name(no_ac_modes[m]), v == VKR_OPT_TRUE ? "True" : "False");
            expect_plan_error(j, VKR_E_VALUE, ac, what);
        }
    j = job_of(VKR_MODE_NEAREST, 4, s4);
    with_size(&j, 1, 3, 0, 0);
    j.interp.recompute_scale_factor = VKR_OPT_TRUE;
    expect_plan_error(j, VKR_E_VALUE, "recompute_scale_factor is not meaningful with an explicit size.", "recompute with size");
    const char *aa = "Anti-alias option is only supported for bilinear and bicubic modes";
    j = job_of(VKR_MODE_NEAREST, 4, s4);
    with_size(&j, 1, 3, 0, 0);
    j.interp.antialias = 1;
    expect_plan_error(j, VKR_E_VALUE, aa, "antialias with nearest");
    j = job_of(VKR_MODE_LINEAR, 3, s3);
    with_size(&j, 1, 3, 0, 0);
    j.interp.antialias = 1;
    expect_plan_error(j, VKR_E_VALUE, aa, "antialias with linear");
    j = job_of(VKR_MODE_AREA, 4, s4);
    with_size(&j, 1, 3, 0, 0);
    j.interp.antialias = 1;
    expect_plan_error(j, VKR_E_VALUE, aa, "antialias with area");

    struct { int mode, rank; const char *msg; } wrong_rank[] = {
        {VKR_MODE_BILINEAR, 3, "Got 3D input, but bilinear mode needs 4D input"},
        {VKR_MODE_TRILINEAR, 3, "Got 3D input, but trilinear mode needs 5D input"},
        {VKR_MODE_LINEAR, 4, "Got 4D input, but linear mode needs 3D input"},
        {VKR_MODE_TRILINEAR, 4, "Got 4D input, but trilinear mode needs 5D input"},
        {VKR_MODE_LINEAR, 5, "Got 5D input, but linear mode needs 3D input"},
        {VKR_MODE_BILINEAR, 5, "Got 5D input, but bilinear mode needs 4D input"},
    };
    for (size_t i = 0; i < sizeof wrong_rank / sizeof wrong_rank[0]; i++) {
        j = job_of(wrong_rank[i].mode, wrong_rank[i].rank, wrong_rank[i].rank == 3 ? s3 : wrong_rank[i].rank == 4 ? s4 : s5);
        with_size(&j, 1, 3, 0, 0);
        expect_plan_error(j, VKR_E_NOT_IMPLEMENTED, wrong_rank[i].msg, wrong_rank[i].msg);
    }
    const char *only = "Input Error: Only 3D, 4D and 5D input Tensors supported (got %dD) for the modes: nearest | linear | bilinear | "
                       "bicubic | trilinear | area | nearest-exact (got %s)";
    struct { int mode, rank; const int64_t *shape; } unsupported_rank[] = {
        {VKR_MODE_BICUBIC, 3, s3}, {VKR_MODE_BICUBIC, 5, s5}, {VKR_MODE_NEAREST, 2, s2}, {VKR_MODE_NEAREST, 6, s6}, {VKR_MODE_BILINEAR, 6, s6}};
    for (size_t i = 0; i < sizeof unsupported_rank / sizeof unsupported_rank[0]; i++) {
        char msg[300];
        snprintf(msg, sizeof msg, only, unsupported_rank[i].rank, vkr_proto_mode_name(unsupported_rank[i].mode));
        j = job_of(unsupported_rank[i].mode, unsupported_rank[i].rank, unsupported_rank[i].shape);
        with_size(&j, 1, 3, 0, 0);
        expect_plan_error(j, VKR_E_NOT_IMPLEMENTED, msg, msg);
    }

    j = job_of(VKR_MODE_NEAREST, 4, s4);
    with_size(&j, 1, 0, 0, 0);
    expect_plan_error(j, VKR_E_SIZE, "Input and output sizes should be greater than 0, but got input (H: 5, W: 6) output (H: 0, W: 0)", "size=0");
    j = job_of(VKR_MODE_BILINEAR, 4, s4);
    with_size(&j, 2, 3, -1, 0);
    expect_plan_error(j, VKR_E_SIZE, "Input and output sizes should be greater than 0, but got input (H: 5, W: 6) output (H: 3, W: -1)", "size=(3,-1)");
    j = job_of(VKR_MODE_LINEAR, 3, s3);
    with_size(&j, 1, -2, 0, 0);
    expect_plan_error(j, VKR_E_SIZE, "Input and output sizes should be greater than 0, but got input (W: 5) and output (W: -2)", "1-D size=-2");
    j = job_of(VKR_MODE_NEAREST, 5, s5);
    with_scale(&j, 1, 0.1, 0, 0);
    expect_plan_error(j, VKR_E_SIZE, "Input and output sizes should be greater than 0, but got input (D: 3, H: 4, W: 5) output (D: 0, H: 0, W: 0)",
                      "3-D scale 0.1 floors to 0");
    j = job_of(VKR_MODE_NEAREST, 4, s4);
    with_scale(&j, 1, -2.0, 0, 0);
    expect_plan_error(j, VKR_E_SIZE, "Input and output sizes should be greater than 0, but got input (H: 5, W: 6) output (H: -10, W: -12)", "scale -2");
    const int64_t h0[4] = {1, 2, 0, 6};
    j = job_of(VKR_MODE_NEAREST, 4, h0);
    with_size(&j, 1, 3, 0, 0);
    expect_plan_error(j, VKR_E_SIZE, "Input and output sizes should be greater than 0, but got input (H: 0, W: 6) output (H: 3, W: 3)", "input H=0");
    const int64_t c0[4] = {1, 0, 5, 6};
    j = job_of(VKR_MODE_BILINEAR, 4, c0);
    with_size(&j, 1, 3, 0, 0);
    expect_plan_error(j, VKR_E_SIZE, "Non-empty 4D data tensor expected but got a tensor with sizes [1, 0, 5, 6]", "C=0");
    j = job_of(VKR_MODE_NEAREST, 4, s4);
    with_scale(&j, 1, 1e300, 0, 0);
    expect_plan_prefix(j, VKR_E_SIZE, "scale_factor 1e+300 gives an output size that cannot be represented", "scale 1e300");
    j = job_of(VKR_MODE_NEAREST, 4, s4);
    with_size(&j, 2, 4096, 4096, 0);
    expect_plan_prefix(j, VKR_E_TOO_LARGE, "output of shape [1, 2, 4096, 4096] is over the job limit", "output over --max-job-bytes");
    j = job_of(VKR_MODE_AREA, 4, s4);
    with_size(&j, 2, -1, 3, 0);
    expect_plan_error(j, VKR_E_SIZE, "adaptive_avg_pool2d: elements of output_size must be greater than or equal to 0 but received {-1, 3}",
                      "area size (-1, 3)");
    j = job_of(VKR_MODE_AREA, 3, s3);
    with_size(&j, 1, -1, 0, 0);
    expect_plan_error(j, VKR_E_SIZE, "adaptive_avg_pool2d: elements of output_size must be greater than or equal to 0 but received {1, -1}",
                      "1-D area size -1 (viewed as 2-D)");
    j = job_of(VKR_MODE_AREA, 5, s5);
    with_size(&j, 3, -1, 2, 3);
    expect_plan_error(j, VKR_E_SIZE, "adaptive_avg_pool2d: elements of output_size must be greater than or equal to 0 but received {-1, 2,3}",
                      "3-D area size (-1, 2, 3), torch's own spacing");
    j = job_of(VKR_MODE_AREA, 4, h0);
    with_size(&j, 1, 3, 0, 0);
    expect_plan_error(j, VKR_E_SIZE, "adaptive_avg_pool2d(): Expected input to have non-zero size for non-batch dimensions, but input has "
                      "sizes [1, 2, 0, 6] with dimension 2 being empty", "area input H=0");
    const int64_t c0_3d[5] = {1, 0, 3, 4, 5};
    j = job_of(VKR_MODE_AREA, 5, c0_3d);
    with_size(&j, 1, 2, 0, 0);
    expect_plan_error(j, VKR_E_SIZE, "adaptive_avg_pool3d(): Expected input to have non-zero size for non-batch dimensions, but input has "
                      "sizes [1, 0, 3, 4, 5] with dimension 1 being empty", "3-D area C=0");
    j = job_of(VKR_MODE_AREA, 4, c0);
    with_size(&j, 1, 3, 0, 0);
    vkr_interp_plan_t empty;
    vkr_error_t e2;
    int rc = vkr_plan_interpolate(&j, MAX_BYTES, &empty, &e2);
    tap_check(rc == 0 && empty.out_elements == 0, "2-D area with C=0 gives an empty output, as torch (rc %d)", rc);
    j = job_of(VKR_MODE_AREA, 4, s4);
    with_scale(&j, 1, 0.1, 0, 0);
    rc = vkr_plan_interpolate(&j, MAX_BYTES, &empty, &e2);
    tap_check(rc == 0 && empty.out_elements == 0 && empty.out_size[0] == 0 && !empty.has_scale[0],
              "area with scale 0.1: recomputed size 0, empty output (rc %d)", rc);
}

static void test_plan_sizes(void)
{
    struct { int64_t n; double s; int64_t expect; } cases[] = {
        {30, 4.1, 122}, {90, 0.7, 62}, {27, 7.0 / 3.0, 63}, {5, 1.1, 5}, {10, 2.09, 20}, {1, 0.5, 0}, {7, 1.0 / 3.0, 2}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (cases[i].expect == 0)
            continue;
        const int64_t shape[3] = {1, 2, cases[i].n};
        vkr_job_t j = job_of(VKR_MODE_NEAREST, 3, shape);
        with_scale(&j, 1, cases[i].s, 0, 0);
        vkr_interp_plan_t p;
        vkr_error_t err;
        int rc = vkr_plan_interpolate(&j, MAX_BYTES, &p, &err);
        tap_check(rc == 0 && p.out_size[0] == cases[i].expect && p.has_scale[0] && p.scale[0] == cases[i].s,
                  "n=%lld s=%.17g -> output %lld (got %lld, rc %d)", (long long)cases[i].n, cases[i].s, (long long)cases[i].expect,
                  (long long)p.out_size[0], rc);
    }
    const int64_t shape[5] = {2, 3, 4, 5, 6};
    vkr_job_t j = job_of(VKR_MODE_TRILINEAR, 5, shape);
    with_scale(&j, 3, 0.5, 7.0 / 3.0, 2.5);
    j.interp.recompute_scale_factor = VKR_OPT_TRUE;
    vkr_interp_plan_t p;
    vkr_error_t err;
    int rc = vkr_plan_interpolate(&j, MAX_BYTES, &p, &err);
    tap_check(rc == 0 && p.out_size[0] == 2 && p.out_size[1] == 11 && p.out_size[2] == 15 && !p.has_scale[0] && !p.has_scale[1] &&
                  !p.has_scale[2] && p.out_elements == 2 * 3 * 2 * 11 * 15 && !p.align_corners,
              "recompute_scale_factor=True drops the scales and floors n*s (rc %d)", rc);
    j = job_of(VKR_MODE_BILINEAR, 4, shape);
    with_size(&j, 2, 7, 9, 0);
    j.interp.align_corners = VKR_OPT_TRUE;
    j.interp.recompute_scale_factor = VKR_OPT_FALSE;
    rc = vkr_plan_interpolate(&j, MAX_BYTES, &p, &err);
    tap_check(rc == 0 && p.out_size[0] == 7 && p.out_size[1] == 9 && !p.has_scale[0] && p.align_corners,
              "explicit size, recompute_scale_factor=False accepted, align_corners=True (rc %d)", rc);
    const int64_t n0[4] = {0, 3, 4, 5};
    j = job_of(VKR_MODE_NEAREST, 4, n0);
    with_size(&j, 1, 8, 0, 0);
    rc = vkr_plan_interpolate(&j, MAX_BYTES, &p, &err);
    tap_check(rc == 0 && p.out_elements == 0 && p.in_elements == 0, "N=0 gives an empty output (rc %d)", rc);
}

static void test_replies(void)
{
    vkr_error_t e = {.code = VKR_E_VALUE}, out, err;
    snprintf(e.field, sizeof e.field, "size");
    snprintf(e.message, sizeof e.message, "either size or scale_factor should be defined");
    uint8_t buf[VKR_ERROR_BODY_MAX];
    size_t n = vkr_error_encode(&e, buf);
    int rc = vkr_error_decode(buf, n, &out, &err);
    tap_check(rc == 0 && out.code == VKR_E_VALUE && strcmp(out.field, "size") == 0 && strcmp(out.message, e.message) == 0,
              "error round trip (rc %d)", rc);
    tap_check(vkr_error_decode(buf, n - 1, &out, &err) == VKR_E_PROTOCOL, "error body one byte short refused");
    buf[0] = 1, buf[1] = buf[2] = buf[3] = 0;
    tap_check(vkr_error_decode(buf, n, &out, &err) == VKR_E_PROTOCOL, "error with a non-negative code refused");

    vkr_pong_t p = {.backend_mask = 6, .default_backend = 1}, po;
    snprintf(p.device_name, sizeof p.device_name, "llvmpipe");
    uint8_t pb[VKR_PONG_BODY_MAX];
    n = vkr_pong_encode(&p, pb);
    rc = vkr_pong_decode(pb, n, &po, &err);
    tap_check(rc == 0 && po.backend_mask == 6 && po.default_backend == 1 && strcmp(po.device_name, "llvmpipe") == 0, "pong round trip");
    tap_check(vkr_pong_decode(pb, n + 1, &po, &err) == VKR_E_PROTOCOL, "pong with a wrong name length refused");

    vkr_result_t r = {.backend_used = VKR_BACKEND_CPU}, ro;
    r.output.rank = 4;
    r.output.shape[0] = 1, r.output.shape[1] = 2, r.output.shape[2] = 3, r.output.shape[3] = 4;
    uint8_t rb[VKR_RESULT_FIXED_BYTES + 24 * 4] = {0};
    uint64_t len = vkr_result_encode_fixed(&r, rb);
    rc = vkr_result_decode(rb, len, 0, &ro, &err);
    tap_check(len == sizeof rb && rc == 0 && ro.backend_used == VKR_BACKEND_CPU && ro.output.shape[3] == 4 &&
                  ro.output.data == rb + VKR_RESULT_FIXED_BYTES,
              "result round trip (rc %d)", rc);
    tap_check(vkr_result_decode(rb, len - 4, 0, &ro, &err) == VKR_E_PROTOCOL, "result with missing data refused");
    tap_check(vkr_result_decode(rb, len, 1, &ro, &err) == VKR_E_FD, "inline result with a descriptor refused");

    r.output.storage = VKR_STORAGE_MEMFD;
    len = vkr_result_encode_fixed(&r, rb);
    rc = vkr_result_decode(rb, len, 1, &ro, &err);
    tap_check(len == VKR_RESULT_FIXED_BYTES && rc == 0 && ro.output.storage == VKR_STORAGE_MEMFD && ro.output.data == NULL &&
                  ro.output.data_offset == 0 && ro.output.data_bytes == 24 * 4,
              "memfd result round trip: a 96-byte body, the data in descriptor 0 (rc %d %s)", rc, rc ? err.message : "");
    rc = vkr_result_decode(rb, len, 0, &ro, &err);
    tap_check(rc == VKR_E_FD && strcmp(err.field, "output.fd_index") == 0, "memfd result without its descriptor refused (%s)", err.message);
    r.output.storage = VKR_STORAGE_OUTPUT_FD;
    len = vkr_result_encode_fixed(&r, rb);
    rc = vkr_result_decode(rb, len, 0, &ro, &err);
    tap_check(len == VKR_RESULT_FIXED_BYTES && rc == 0 && ro.output.storage == VKR_STORAGE_OUTPUT_FD,
              "result in the request's output memfd round trip (rc %d)", rc);
    rc = vkr_result_decode(rb, len, 1, &ro, &err);
    tap_check(rc == VKR_E_FD, "result in the request's memfd that carries a descriptor refused (%s)", err.message);
    put64(rb + 8 + 72, 64);
    rc = vkr_result_decode(rb, len, 0, &ro, &err);
    tap_check(rc == VKR_E_PROTOCOL && strcmp(err.field, "output.data_offset") == 0, "memfd result at a non-zero offset refused (%s)",
              err.message);
}

/* ---------------------------------------------------------------- memfd tensors, new messages */
static void test_memfd_jobs(void)
{
    const int64_t x4[4] = {1, 2, 5, 6}, g4[4] = {1, 3, 4, 2};
    vkr_job_t j = {.op = VKR_OP_GRID_SAMPLE, .backend = VKR_BACKEND_CPU, .n_tensors = 2};
    j.grid.mode = VKR_GRID_BILINEAR;
    j.grid.padding_mode = VKR_PADDING_ZEROS;
    vkr_tensor_desc_t *t[2] = {&j.input, &j.aux};
    const int64_t *sh[2] = {x4, g4};
    for (int k = 0; k < 2; k++) {
        t[k]->dtype = VKR_DTYPE_F32;
        t[k]->layout = VKR_LAYOUT_CONTIGUOUS;
        t[k]->rank = 4;
        memcpy(t[k]->shape, sh[k], 4 * sizeof(int64_t));
    }
    j.input.storage = VKR_STORAGE_MEMFD;
    j.input.fd_index = 0;
    j.input.data_offset = 4096;
    j.result_storage = VKR_RESULT_INTO_FD;
    body_t b = encode_job(&j);
    vkr_job_t out;
    vkr_error_t err = {0};
    int rc = vkr_submit_decode(b.bytes, b.len, MAX_BYTES, 2, &out, &err);
    tap_check(rc == 0 && b.len == VKR_SUBMIT_MAX_FIXED_BYTES + 24 * 4 && out.input.storage == VKR_STORAGE_MEMFD && out.input.data == NULL &&
                  out.input.data_offset == 4096 && out.input.data_bytes == 60 * 4 && out.aux.data_offset == VKR_SUBMIT_MAX_FIXED_BYTES &&
                  out.aux.data == b.bytes + VKR_SUBMIT_MAX_FIXED_BYTES && out.result_storage == VKR_RESULT_INTO_FD && out.n_fds == 2,
              "memfd input + inline grid + output memfd: only the inline bytes in the body (rc %d %s)", rc, rc ? err.message : "");
    rc = vkr_submit_decode(b.bytes, b.len, MAX_BYTES, 3, &out, &err);
    tap_check(rc == VKR_E_FD && strcmp(err.field, "n_fds") == 0, "a descriptor no tensor uses is refused (%s)", err.message);
    rc = vkr_submit_decode(b.bytes, b.len, MAX_BYTES, 1, &out, &err);
    tap_check(rc == VKR_E_FD && strcmp(err.field, "input.fd_index") == 0, "the output memfd cannot double as an input (%s)", err.message);
    free(b.bytes);

    j.input.data_offset = 6;
    b = encode_job(&j);
    rc = vkr_submit_decode(b.bytes, b.len, MAX_BYTES, 2, &out, &err);
    tap_check(rc == VKR_E_PROTOCOL && strcmp(err.field, "input.data_offset") == 0, "memfd data_offset not a multiple of 4 refused (%s)",
              err.message);
    free(b.bytes);

    j.input.data_offset = 0;
    j.aux.storage = VKR_STORAGE_MEMFD;
    j.aux.fd_index = 0;
    j.aux.data_offset = 60 * 4;
    j.result_storage = VKR_RESULT_DAEMON_FD;
    b = encode_job(&j);
    rc = vkr_submit_decode(b.bytes, b.len, MAX_BYTES, 1, &out, &err);
    tap_check(rc == 0 && b.len == VKR_SUBMIT_MAX_FIXED_BYTES && out.aux.fd_index == 0 && out.aux.data_offset == 240,
              "two tensors in one memfd at different offsets, result in a daemon memfd (rc %d %s)", rc, rc ? err.message : "");
    free(b.bytes);
    j.aux.fd_index = 1;
    b = encode_job(&j);
    rc = vkr_submit_decode(b.bytes, b.len, MAX_BYTES, 1, &out, &err);
    tap_check(rc == VKR_E_FD && strcmp(err.field, "grid.fd_index") == 0, "fd_index beyond the frame's descriptors refused (%s)", err.message);
    free(b.bytes);

    expect_header_error(good_header(VKR_MSG_CANCEL, 4), VKR_E_PROTOCOL, "body_len", "CANCEL with a body");
    expect_header_error(good_header(VKR_MSG_STATS, 1), VKR_E_PROTOCOL, "body_len", "STATS with a body");
    expect_header_error(good_header(VKR_MSG_STATS_REPLY, VKR_MAX_CONTROL_BODY_BYTES + 1), VKR_E_PROTOCOL, "body_len", "STATS_REPLY over 4096");
    vkr_frame_header_t h = good_header(VKR_MSG_SUBMIT, 200);
    h.n_fds = VKR_MAX_FDS_PER_FRAME + 1;
    expect_header_error(h, VKR_E_PROTOCOL, "n_fds", "SUBMIT with 4 descriptors");
    h = good_header(VKR_MSG_RESULT, 96);
    h.n_fds = 2;
    expect_header_error(h, VKR_E_PROTOCOL, "n_fds", "RESULT with 2 descriptors");
    h = good_header(VKR_MSG_CANCEL, 0);
    h.n_fds = 1;
    expect_header_error(h, VKR_E_PROTOCOL, "n_fds", "CANCEL with a descriptor");
    h = good_header(VKR_MSG_SUBMIT, 200);
    h.n_fds = VKR_MAX_FDS_PER_FRAME;
    uint8_t hb[VKR_FRAME_HEADER_BYTES];
    vkr_frame_header_t ho;
    vkr_header_encode(&h, hb);
    tap_check(vkr_header_decode(hb, MAX_BYTES, MAX_BYTES, &ho, &err) == 0 && ho.n_fds == 3, "SUBMIT with 3 descriptors accepted");
}

static void test_stats(void)
{
    vkr_stats_t st, back;
    memset(&st, 0, sizeof st);
    st.uptime_ms = 123456;
    st.bytes_in = 1ull << 40;
    st.bytes_out = 77;
    st.memfd_bytes_in = 5;
    st.memfd_bytes_out = 6;
    st.queued = 3;
    st.running = 2;
    st.clients = 9;
    st.workers = 4;
    st.latency_p50_us = 150;
    st.latency_p99_us = 9000;
    st.jobs_busy = 11;
    st.jobs_cancelled = 12;
    st.frames_refused = 13;
    st.flags = VKR_STATS_VULKAN_LOST;
    st.jobs_moved_to_cpu = 14;
    st.connections_refused = 15;
    st.connections_timed_out = 16;
    st.accept_pauses = 17;
    st.n_rows = 2;
    st.rows[0] = (vkr_stats_row_t){VKR_OP_INTERPOLATE, VKR_BACKEND_CPU, 100, 2, 1};
    st.rows[1] = (vkr_stats_row_t){VKR_OP_GRID_SAMPLE, VKR_BACKEND_VULKAN, 7, 0, 3};
    snprintf(st.device_name, sizeof st.device_name, "llvmpipe (LLVM 15.0.6, 256 bits)");
    uint8_t buf[VKR_STATS_BODY_MAX];
    size_t n = vkr_stats_encode(&st, buf);
    vkr_error_t err = {0};
    int rc = vkr_stats_decode(buf, n, &back, &err);
    tap_check(rc == 0 && n == VKR_STATS_FIXED_BYTES + 2 * VKR_STATS_ROW_BYTES + strlen(st.device_name) && memcmp(&st, &back, sizeof st) == 0,
              "stats round trip, every field (rc %d, %zu bytes)", rc, n);
    tap_check(vkr_stats_decode(buf, n - 1, &back, &err) == VKR_E_PROTOCOL, "stats with a short name refused");
    buf[96] = VKR_STATS_MAX_ROWS + 1;
    tap_check(vkr_stats_decode(buf, n, &back, &err) == VKR_E_PROTOCOL && strcmp(err.field, "n_rows") == 0, "stats with 17 rows refused");
    buf[96] = 2;
    buf[VKR_STATS_FIXED_BYTES + 5] = 1;
    tap_check(vkr_stats_decode(buf, n, &back, &err) == VKR_E_PROTOCOL && strcmp(err.field, "reserved") == 0, "stats row reserved bytes refused");
    buf[VKR_STATS_FIXED_BYTES + 5] = 0;
    buf[100] = 0x3;
    tap_check(vkr_stats_decode(buf, n, &back, &err) == VKR_E_PROTOCOL && strcmp(err.field, "flags") == 0,
              "stats flags other than vulkan-lost refused (%s)", err.message);
    buf[100] = 0x1;
    tap_check(vkr_stats_decode(buf, n, &back, &err) == VKR_OK && back.flags == VKR_STATS_VULKAN_LOST && back.jobs_moved_to_cpu == 14 &&
                  back.connections_refused == 15 && back.connections_timed_out == 16 && back.accept_pauses == 17,
              "stats: vulkan lost, jobs moved, refused / timed-out connections and accept pauses decode");
    tap_check(strcmp(vkr_proto_code_name(VKR_E_BUSY), "VKR_E_BUSY") == 0 && strcmp(vkr_proto_code_name(VKR_E_FD), "VKR_E_FD") == 0 &&
                  strcmp(vkr_proto_code_name(VKR_E_CANCELLED), "VKR_E_CANCELLED") == 0 && strcmp(vkr_proto_code_name(VKR_E_TIMEOUT), "VKR_E_TIMEOUT") == 0 &&
                  strcmp(vkr_proto_code_name(VKR_E_PERMISSION), "VKR_E_PERMISSION") == 0 && VKR_E_PERMISSION == -20,
              "the new codes have names");
}

/* ---------------------------------------------------------------- grid ops */
static vkr_job_t grid_job(int op, int r0, const int64_t *s0, int r1, const int64_t *s1)
{
    vkr_job_t j = {.op = (uint16_t)op, .backend = VKR_BACKEND_CPU, .n_tensors = (uint16_t)vkr_op_tensors(op)};
    j.grid.mode = op == VKR_OP_AFFINE_GRID ? 0 : VKR_GRID_BILINEAR;
    j.grid.padding_mode = op == VKR_OP_AFFINE_GRID ? 0 : VKR_PADDING_ZEROS;
    vkr_tensor_desc_t *t[2] = {&j.input, &j.aux};
    const int64_t *sh[2] = {s0, s1};
    int rk[2] = {r0, r1};
    for (int k = 0; k < j.n_tensors; k++) {
        t[k]->dtype = VKR_DTYPE_F32;
        t[k]->layout = VKR_LAYOUT_CONTIGUOUS;
        t[k]->rank = (uint8_t)rk[k];
        for (int i = 0; i < rk[k]; i++)
            t[k]->shape[i] = sh[k][i];
    }
    return j;
}

static void expect_job_error(vkr_job_t j, int code, const char *message, const char *what)
{
    vkr_plan_t p;
    vkr_error_t err = {0};
    int rc = vkr_plan_job(&j, MAX_BYTES, &p, &err);
    tap_check(rc == code && strcmp(err.message, message) == 0, "plan %s -> %s \"%s\" (got %s \"%s\")", what, vkr_proto_code_name(code), message,
              vkr_proto_code_name(rc), err.message);
}

static void test_grid_ops(void)
{
    const int64_t x4[4] = {1, 2, 5, 6}, g4[4] = {1, 3, 4, 2}, x5[5] = {1, 2, 3, 4, 5}, g5[5] = {1, 2, 3, 4, 3};
    vkr_job_t j = grid_job(VKR_OP_GRID_SAMPLE, 4, x4, 4, g4);
    j.grid.mode = VKR_GRID_BICUBIC;
    j.grid.padding_mode = VKR_PADDING_REFLECTION;
    j.grid.align_corners = VKR_OPT_TRUE;
    body_t b = encode_job(&j);
    vkr_job_t out;
    vkr_error_t err;
    int rc = vkr_submit_decode(b.bytes, b.len, MAX_BYTES, 0, &out, &err);
    tap_check(rc == 0 && out.op == VKR_OP_GRID_SAMPLE && out.grid.mode == VKR_GRID_BICUBIC && out.grid.padding_mode == VKR_PADDING_REFLECTION &&
                  out.input.data_offset == VKR_SUBMIT_MAX_FIXED_BYTES && out.aux.data_offset == VKR_SUBMIT_MAX_FIXED_BYTES + 60 * 4 &&
                  b.len == VKR_SUBMIT_MAX_FIXED_BYTES + (60 + 24) * 4,
              "grid_sample job round trip: two tensors back to back (rc %d %s)", rc, rc ? err.message : "");
    vkr_plan_t p;
    rc = vkr_plan_job(&out, MAX_BYTES, &p, &err);
    tap_check(rc == 0 && p.out_rank == 4 && p.out_shape[1] == 2 && p.out_shape[2] == 3 && p.out_shape[3] == 4 && p.grid.align_corners,
              "grid_sample plan: output (N, C, Ho, Wo) (rc %d)", rc);
    b.bytes[8] = 4;
    expect_submit_error(b, VKR_E_VALUE, "mode", "grid_sample mode 4");
    b = encode_job(&j);
    b.bytes[10] = 0;
    expect_submit_error(b, VKR_E_VALUE, "padding_mode", "grid_sample padding_mode 0");
    b = encode_job(&j);
    b.bytes[13] = 1;
    expect_submit_error(b, VKR_E_PROTOCOL, "n_size", "grid_sample with a size");
    b = encode_job(&j);
    put64(b.bytes + 136 + 88, 4);
    expect_submit_error(b, VKR_E_PROTOCOL, "grid.data_offset", "grid data_offset not right after the input's bytes");
    b = encode_job(&j);
    b.bytes[4] = 1;
    expect_submit_error(b, VKR_E_PROTOCOL, "n_tensors", "grid_sample with one tensor");

    const int64_t g4b[4] = {2, 3, 4, 3}, g3[3] = {1, 3, 2}, x3[3] = {1, 2, 5}, x4e[4] = {1, 2, 5, 0}, g5b[5] = {1, 2, 3, 4, 2};
    expect_job_error(grid_job(VKR_OP_GRID_SAMPLE, 4, x4, 4, g4b), VKR_E_SIZE,
                     "grid_sampler(): expected grid and input to have same batch size, but got input with sizes [1, 2, 5, 6] and grid with sizes [2, 3, 4, 3]",
                     "batch mismatch first");
    expect_job_error(grid_job(VKR_OP_GRID_SAMPLE, 3, x3, 3, g3), VKR_E_SIZE,
                     "grid_sampler(): expected grid to have size 1 in last dimension, but got grid with sizes [1, 3, 2]", "3-D input");
    expect_job_error(grid_job(VKR_OP_GRID_SAMPLE, 5, x5, 4, g4), VKR_E_SIZE,
                     "grid_sampler(): expected grid to have size 3 in last dimension, but got grid with sizes [1, 3, 4, 2]", "5-D input, 4-D grid");
    expect_job_error(grid_job(VKR_OP_GRID_SAMPLE, 4, x4e, 4, g4), VKR_E_SIZE,
                     "grid_sampler(): expected input to have non-empty spatial dimensions, but input has sizes [1, 2, 5, 0] with dimension 3 being empty",
                     "empty W");
    expect_job_error(grid_job(VKR_OP_GRID_SAMPLE, 4, x4, 5, g5b), VKR_E_SIZE,
                     "grid_sampler(): expected 4D input and grid with same number of dimensions, but got input with sizes [1, 2, 5, 6] and grid with sizes [1, 2, 3, 4, 2]",
                     "4-D input, 5-D grid");
    j = grid_job(VKR_OP_GRID_SAMPLE, 5, x5, 5, g5);
    j.grid.mode = VKR_GRID_BICUBIC;
    expect_job_error(j, VKR_E_SIZE, "grid_sampler(): bicubic interpolation only supports 4D input", "bicubic 5-D");

    const int64_t th2[3] = {1, 2, 3};
    j = grid_job(VKR_OP_AFFINE_GRID, 3, th2, 0, NULL);
    j.grid.n_size = 4;
    j.grid.size[0] = 1, j.grid.size[1] = 1, j.grid.size[2] = 4, j.grid.size[3] = 5;
    rc = vkr_plan_job(&j, MAX_BYTES, &p, &err);
    tap_check(rc == 0 && p.out_rank == 4 && p.out_shape[0] == 1 && p.out_shape[1] == 4 && p.out_shape[2] == 5 && p.out_shape[3] == 2,
              "affine_grid plan: output (N, H, W, 2) (rc %d)", rc);
    vkr_job_t k = j;
    k.input.shape[1] = 3;
    expect_job_error(k, VKR_E_VALUE, "Expected a batch of 2D affine matrices of shape Nx2x3 for size [1, 1, 4, 5]. Got torch.Size([1, 3, 3]).",
                     "theta 1x3x3 for a 4-D size");
    k = j;
    k.grid.n_size = 3;
    k.grid.size[3] = 0;
    expect_job_error(k, VKR_E_NOT_IMPLEMENTED,
                     "affine_grid only supports 4D and 5D sizes, for 2D and 3D affine transforms, respectively. Got size [1, 1, 4].", "size of 3");
    k = j;
    k.grid.size[2] = 0;
    expect_job_error(k, VKR_E_VALUE, "Expected non-zero, positive output size. Got [1, 1, 0, 5]", "size with a 0");
    k = j;
    k.input.shape[0] = 2;
    expect_job_error(k, VKR_E_SIZE, "Expected size for first two dimensions of batch2 tensor to be: [1, 3] but got: [2, 3].", "theta batch 2 for N=1");
    k = j;
    k.grid.align_corners = VKR_OPT_TRUE;
    k.grid.size[0] = -1;
    k.grid.size[2] = 1;
    k.grid.size[3] = 3;
    expect_job_error(k, VKR_E_SIZE, "Trying to create tensor with negative dimension -1: [-1, 1, 3, 3]",
                     "align_corners with a unit extent skips the size check; N=-1 then fails as in torch");

    j = grid_job(VKR_OP_AFFINE_SAMPLE, 4, x4, 3, th2);
    j.grid.n_size = 2;
    j.grid.size[0] = 7, j.grid.size[1] = 9;
    rc = vkr_plan_job(&j, MAX_BYTES, &p, &err);
    tap_check(rc == 0 && p.out_rank == 4 && p.out_shape[1] == 2 && p.out_shape[2] == 7 && p.out_shape[3] == 9 && p.grid.in_size[1] == 6,
              "affine_sample plan: output (N, C, 7, 9) (rc %d)", rc);
    k = j;
    k.aux.shape[1] = 3, k.aux.shape[2] = 4;
    expect_job_error(k, VKR_E_VALUE, "Expected a batch of 2D affine matrices of shape Nx2x3 for size [1, 2, 7, 9]. Got torch.Size([1, 3, 4]).",
                     "affine_sample with a 3-D theta");
    k = j;
    k.grid.n_size = 3;
    k.grid.size[2] = 2;
    expect_job_error(k, VKR_E_VALUE, "affine_sample: size must give the 2 output spatial extents of a 4D input, got 3 value(s)", "affine_sample size arity");
}

static void test_names(void)
{
    bool ok = true;
    for (int m = VKR_MODE_NEAREST; m <= VKR_MODE_AREA; m++)
        ok = ok && vkr_proto_mode_from_name(vkr_proto_mode_name(m)) == m;
    tap_check(ok && vkr_proto_mode_from_name("cubic") == 0 && vkr_proto_mode_name(0) == NULL, "mode names round trip, unknown refused");
    tap_check(vkr_proto_backend_from_name("vulkan") == VKR_BACKEND_VULKAN && vkr_proto_backend_from_name("gpu") == -1,
              "backend names");
}

int main(void)
{
    test_header();
    test_submit();
    test_plan_rejections();
    test_plan_sizes();
    test_replies();
    test_grid_ops();
    test_memfd_jobs();
    test_stats();
    test_names();
    return tap_done();
}
