/* Golden frames (proto/vectors/NAME.hex) against the C codec of proto/: each frame is built with
 * proto's encoders and compared byte for byte with its file, and each file is decoded with proto's
 * decoders and every field checked.
 *
 * usage: test_vectors VECTORS_DIR     (TAP output) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "vkr_proto.h"

#define VECTOR_MAX_BYTES 65536u   /* the largest golden frame is about 8.5 KiB */

static const char *vectors_dir;

typedef struct {
    uint8_t bytes[VECTOR_MAX_BYTES];
    size_t len;
} frame_t;

/* Read a .hex vector: '#' comments, two-digit hex bytes.  Returns 0, or -1 with a TAP failure. */
static int load(const char *name, frame_t *f)
{
    char path[4096], line[1024];
    FILE *in;
    int rc = 0;

    snprintf(path, sizeof path, "%s/%s", vectors_dir, name);
    f->len = 0;
    in = fopen(path, "r");
    if (in == NULL) {
        tap_check(0, "%s: cannot open %s", name, path);
        return -1;
    }
    while (rc == 0 && fgets(line, sizeof line, in) != NULL) {
        char *p = line, *hash = strchr(line, '#');

        if (hash != NULL)
            *hash = '\0';
        for (;;) {
            char *end;
            unsigned long v;

            while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
                p++;
            if (*p == '\0')
                break;
            v = strtoul(p, &end, 16);
            if (end != p + 2 || v > 0xff || f->len == VECTOR_MAX_BYTES) {
                tap_check(0, "%s: malformed byte at \"%.8s\"", name, p);
                rc = -1;
                break;
            }
            f->bytes[f->len++] = (uint8_t)v;
            p = end;
        }
    }
    fclose(in);
    return rc;
}

/* Compare what an encoder made with the file, reporting the first difference. */
static void same_bytes(const char *name, const frame_t *want, const uint8_t *got, size_t got_len)
{
    size_t i, n = got_len < want->len ? got_len : want->len;

    for (i = 0; i < n && got[i] == want->bytes[i]; i++)
        ;
    if (i == n && got_len == want->len) {
        tap_check(1, "%s: the C encoders make the golden frame byte for byte (%zu bytes)", name, got_len);
        return;
    }
    tap_check(0, "%s: the C encoders differ from the golden frame at byte %zu (got 0x%02x, want 0x%02x; lengths %zu, %zu)", name, i,
              i < got_len ? got[i] : 0, i < want->len ? want->bytes[i] : 0, got_len, want->len);
}

/* The header of a vector, decoded (type must be want_type). */
static int header_of(const char *name, const frame_t *f, uint16_t want_type, vkr_frame_header_t *h)
{
    vkr_error_t err = {0};
    int rc;

    if (f->len < VKR_FRAME_HEADER_BYTES) {
        tap_check(0, "%s: shorter than a header", name);
        return -1;
    }
    rc = vkr_header_decode(f->bytes, UINT64_MAX, UINT64_MAX, h, &err);
    if (!tap_check(rc == 0 && h->type == want_type && h->body_len == f->len - VKR_FRAME_HEADER_BYTES,
                   "%s: header decodes (type %u, body_len %llu; rc %d %s)", name, h->type, (unsigned long long)h->body_len, rc, err.message))
        return -1;
    return 0;
}

/* Build a frame: header then body parts. */
static size_t build(uint8_t *out, uint16_t type, uint32_t id, uint32_t n_fds, const void *a, size_t a_len, const void *b, size_t b_len)
{
    vkr_frame_header_t h = {.magic = VKR_PROTO_MAGIC, .version = VKR_PROTO_VERSION, .type = type, .request_id = id, .n_fds = n_fds,
                            .body_len = a_len + b_len};
    vkr_header_encode(&h, out);
    if (a_len)
        memcpy(out + VKR_FRAME_HEADER_BYTES, a, a_len);
    if (b_len)
        memcpy(out + VKR_FRAME_HEADER_BYTES + a_len, b, b_len);
    return VKR_FRAME_HEADER_BYTES + a_len + b_len;
}

static void tensor(vkr_tensor_desc_t *t, unsigned rank, const int64_t *shape)
{
    memset(t, 0, sizeof *t);
    t->dtype = VKR_DTYPE_F32;
    t->layout = VKR_LAYOUT_CONTIGUOUS;
    t->rank = (uint8_t)rank;
    memcpy(t->shape, shape, rank * sizeof *shape);
}

static void test_control(void)
{
    static uint8_t out[VECTOR_MAX_BYTES];
    static frame_t f;
    vkr_frame_header_t h;
    vkr_error_t err = {0};

    struct { const char *name; uint16_t type; uint32_t id; } empty[] = {
        {"ping.hex", VKR_MSG_PING, 1}, {"cancel.hex", VKR_MSG_CANCEL, 8}, {"stats.hex", VKR_MSG_STATS, 15}};
    for (size_t i = 0; i < sizeof empty / sizeof empty[0]; i++) {
        if (load(empty[i].name, &f) || header_of(empty[i].name, &f, empty[i].type, &h))
            continue;
        tap_check(h.request_id == empty[i].id && h.body_len == 0 && h.n_fds == 0, "%s: request_id %u, no body", empty[i].name, h.request_id);
        same_bytes(empty[i].name, &f, out, build(out, empty[i].type, empty[i].id, 0, NULL, 0, NULL, 0));
    }

    if (load("pong.hex", &f) == 0 && header_of("pong.hex", &f, VKR_MSG_PONG, &h) == 0) {
        vkr_pong_t p = {.backend_mask = 6, .default_backend = VKR_BACKEND_VULKAN}, back;
        uint8_t body[VKR_PONG_BODY_MAX];
        snprintf(p.device_name, sizeof p.device_name, "llvmpipe (LLVM 15.0.6, 256 bits)");
        same_bytes("pong.hex", &f, out, build(out, VKR_MSG_PONG, 1, 0, body, vkr_pong_encode(&p, body), NULL, 0));
        int rc = vkr_pong_decode(f.bytes + VKR_FRAME_HEADER_BYTES, h.body_len, &back, &err);
        tap_check(rc == 0 && back.backend_mask == 6 && back.default_backend == 1 && strcmp(back.device_name, p.device_name) == 0,
                  "pong.hex: decodes to mask 6, default vulkan, \"%s\"", back.device_name);
    }

    struct { const char *name; uint32_t id; int code; const char *field, *message; } errors[] = {
        {"error.hex", 13, VKR_E_VALUE, "align_corners",
         "align_corners option can only be set with the interpolating modes: linear | bilinear | bicubic | trilinear"},
        {"error_busy.hex", 14, VKR_E_BUSY, "queue", "client queue full: 64 jobs in flight on this connection (--max-client-jobs 64)"}};
    for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++) {
        vkr_error_t e = {.code = errors[i].code}, back;
        uint8_t body[VKR_ERROR_BODY_MAX];
        if (load(errors[i].name, &f) || header_of(errors[i].name, &f, VKR_MSG_ERROR, &h))
            continue;
        snprintf(e.field, sizeof e.field, "%s", errors[i].field);
        snprintf(e.message, sizeof e.message, "%s", errors[i].message);
        same_bytes(errors[i].name, &f, out, build(out, VKR_MSG_ERROR, errors[i].id, 0, body, vkr_error_encode(&e, body), NULL, 0));
        int rc = vkr_error_decode(f.bytes + VKR_FRAME_HEADER_BYTES, h.body_len, &back, &err);
        tap_check(rc == 0 && h.request_id == errors[i].id && back.code == e.code && strcmp(back.field, e.field) == 0 &&
                      strcmp(back.message, e.message) == 0,
                  "%s: decodes to %s [%s]", errors[i].name, vkr_proto_code_name(back.code), back.field);
    }

    if (load("stats_reply.hex", &f) == 0 && header_of("stats_reply.hex", &f, VKR_MSG_STATS_REPLY, &h) == 0) {
        vkr_stats_t st, back;
        uint8_t body[VKR_STATS_BODY_MAX];
        memset(&st, 0, sizeof st);
        st.uptime_ms = 3723004;
        st.bytes_in = 1048576;
        st.bytes_out = 2097152;
        st.memfd_bytes_in = 4096;
        st.memfd_bytes_out = 8192;
        st.queued = 2;
        st.running = 1;
        st.clients = 3;
        st.workers = 4;
        st.latency_p50_us = 250;
        st.latency_p99_us = 12000;
        st.jobs_busy = 5;
        st.jobs_cancelled = 6;
        st.frames_refused = 7;
        st.flags = VKR_STATS_VULKAN_LOST;
        st.jobs_moved_to_cpu = 8;
        st.connections_refused = 9;
        st.connections_timed_out = 10;
        st.accept_pauses = 11;
        st.n_rows = 2;
        st.rows[0] = (vkr_stats_row_t){VKR_OP_INTERPOLATE, VKR_BACKEND_CPU, 100, 3, 2};
        st.rows[1] = (vkr_stats_row_t){VKR_OP_GRID_SAMPLE, VKR_BACKEND_CPU, 40, 1, 1};
        snprintf(st.device_name, sizeof st.device_name, "cpu");
        same_bytes("stats_reply.hex", &f, out, build(out, VKR_MSG_STATS_REPLY, 15, 0, body, vkr_stats_encode(&st, body), NULL, 0));
        int rc = vkr_stats_decode(f.bytes + VKR_FRAME_HEADER_BYTES, h.body_len, &back, &err);
        tap_check(rc == 0 && memcmp(&st, &back, sizeof st) == 0, "stats_reply.hex: decodes to every field (rc %d %s)", rc, err.message);
    }
}

static void test_submit(void)
{
    static uint8_t out[VECTOR_MAX_BYTES];
    static frame_t f;
    uint8_t fixed[VKR_SUBMIT_MAX_FIXED_BYTES];
    float data[2048];
    size_t fixed_len;
    uint64_t body_len;
    vkr_frame_header_t h;
    vkr_error_t err = {0};
    vkr_job_t j, back;
    int rc;

    /* interpolate: PROTOCOL.md's worked example */
    memset(&j, 0, sizeof j);
    j.op = VKR_OP_INTERPOLATE;
    j.backend = VKR_BACKEND_CPU;
    j.n_tensors = 1;
    j.interp.mode = VKR_MODE_NEAREST;
    j.interp.n_size = 1;
    j.interp.size[0] = 4;
    tensor(&j.input, 4, (const int64_t[]){1, 2, 2, 2});
    for (int i = 0; i < 8; i++)
        data[i] = (float)i;
    body_len = vkr_submit_encode_fixed(&j, fixed, &fixed_len);
    if (load("submit_interpolate.hex", &f) == 0 && header_of("submit_interpolate.hex", &f, VKR_MSG_SUBMIT, &h) == 0) {
        same_bytes("submit_interpolate.hex", &f, out, build(out, VKR_MSG_SUBMIT, 7, 0, fixed, fixed_len, data, body_len - fixed_len));
        rc = vkr_submit_decode(f.bytes + VKR_FRAME_HEADER_BYTES, h.body_len, UINT64_MAX / 8, h.n_fds, &back, &err);
        tap_check(rc == 0 && h.request_id == 7 && back.op == VKR_OP_INTERPOLATE && back.backend == VKR_BACKEND_CPU && back.interp.mode == VKR_MODE_NEAREST &&
                      back.interp.n_size == 1 && back.interp.size[0] == 4 && back.input.rank == 4 && back.input.shape[1] == 2 &&
                      ((const float *)back.input.data)[7] == 7.0f,
                  "submit_interpolate.hex: decodes to nearest, size 4, (1, 2, 2, 2), data 0..7 (rc %d %s)", rc, err.message);
    }

    /* grid_sample, two inline tensors */
    memset(&j, 0, sizeof j);
    j.op = VKR_OP_GRID_SAMPLE;
    j.backend = VKR_BACKEND_CPU;
    j.n_tensors = 2;
    j.grid.mode = VKR_GRID_BILINEAR;
    j.grid.padding_mode = VKR_PADDING_ZEROS;
    j.grid.align_corners = VKR_OPT_TRUE;
    tensor(&j.input, 4, (const int64_t[]){1, 1, 2, 2});
    tensor(&j.aux, 4, (const int64_t[]){1, 1, 2, 2});
    const float gs_data[8] = {0, 1, 2, 3, -1, -1, 0.5f, 0.25f};
    body_len = vkr_submit_encode_fixed(&j, fixed, &fixed_len);
    if (load("submit_grid_sample.hex", &f) == 0 && header_of("submit_grid_sample.hex", &f, VKR_MSG_SUBMIT, &h) == 0) {
        same_bytes("submit_grid_sample.hex", &f, out, build(out, VKR_MSG_SUBMIT, 8, 0, fixed, fixed_len, gs_data, body_len - fixed_len));
        rc = vkr_submit_decode(f.bytes + VKR_FRAME_HEADER_BYTES, h.body_len, UINT64_MAX / 8, h.n_fds, &back, &err);
        tap_check(rc == 0 && back.op == VKR_OP_GRID_SAMPLE && back.grid.mode == VKR_GRID_BILINEAR && back.grid.padding_mode == VKR_PADDING_ZEROS &&
                      back.grid.align_corners == VKR_OPT_TRUE && back.input.data_offset == 240 && back.aux.data_offset == 256 &&
                      ((const float *)back.aux.data)[2] == 0.5f,
                  "submit_grid_sample.hex: decodes to bilinear/zeros/True, tensors at 240 and 256 (rc %d %s)", rc, err.message);
    }

    /* affine_grid */
    memset(&j, 0, sizeof j);
    j.op = VKR_OP_AFFINE_GRID;
    j.n_tensors = 1;
    j.grid.align_corners = VKR_OPT_FALSE;
    j.grid.n_size = 4;
    memcpy(j.grid.size, (const int64_t[]){1, 1, 2, 3}, 4 * sizeof(int64_t));
    tensor(&j.input, 3, (const int64_t[]){1, 2, 3});
    const float identity[6] = {1, 0, 0, 0, 1, 0};
    body_len = vkr_submit_encode_fixed(&j, fixed, &fixed_len);
    if (load("submit_affine_grid.hex", &f) == 0 && header_of("submit_affine_grid.hex", &f, VKR_MSG_SUBMIT, &h) == 0) {
        same_bytes("submit_affine_grid.hex", &f, out, build(out, VKR_MSG_SUBMIT, 9, 0, fixed, fixed_len, identity, body_len - fixed_len));
        rc = vkr_submit_decode(f.bytes + VKR_FRAME_HEADER_BYTES, h.body_len, UINT64_MAX / 8, h.n_fds, &back, &err);
        tap_check(rc == 0 && back.op == VKR_OP_AFFINE_GRID && back.backend == VKR_BACKEND_AUTO && back.grid.n_size == 4 && back.grid.size[3] == 3 &&
                      back.grid.align_corners == VKR_OPT_FALSE && back.input.rank == 3,
                  "submit_affine_grid.hex: decodes to size (1, 1, 2, 3), align_corners False (rc %d %s)", rc, err.message);
    }

    /* affine_sample */
    memset(&j, 0, sizeof j);
    j.op = VKR_OP_AFFINE_SAMPLE;
    j.backend = VKR_BACKEND_VULKAN;
    j.n_tensors = 2;
    j.grid.mode = VKR_GRID_NEAREST;
    j.grid.padding_mode = VKR_PADDING_BORDER;
    j.grid.n_size = 2;
    j.grid.size[0] = 3;
    j.grid.size[1] = 3;
    tensor(&j.input, 4, (const int64_t[]){1, 1, 2, 2});
    tensor(&j.aux, 3, (const int64_t[]){1, 2, 3});
    const float as_data[10] = {0, 1, 2, 3, 1, 0, 0, 0, 1, 0};
    body_len = vkr_submit_encode_fixed(&j, fixed, &fixed_len);
    if (load("submit_affine_sample.hex", &f) == 0 && header_of("submit_affine_sample.hex", &f, VKR_MSG_SUBMIT, &h) == 0) {
        same_bytes("submit_affine_sample.hex", &f, out, build(out, VKR_MSG_SUBMIT, 10, 0, fixed, fixed_len, as_data, body_len - fixed_len));
        rc = vkr_submit_decode(f.bytes + VKR_FRAME_HEADER_BYTES, h.body_len, UINT64_MAX / 8, h.n_fds, &back, &err);
        tap_check(rc == 0 && back.op == VKR_OP_AFFINE_SAMPLE && back.backend == VKR_BACKEND_VULKAN && back.grid.mode == VKR_GRID_NEAREST &&
                      back.grid.padding_mode == VKR_PADDING_BORDER && back.grid.align_corners == VKR_OPT_UNSET && back.grid.n_size == 2 &&
                      back.aux.shape[2] == 3,
                  "submit_affine_sample.hex: decodes to nearest/border/None, size (3, 3) (rc %d %s)", rc, err.message);
    }

    /* memfd input, inline grid, output into the client's memfd */
    memset(&j, 0, sizeof j);
    j.op = VKR_OP_GRID_SAMPLE;
    j.backend = VKR_BACKEND_CPU;
    j.n_tensors = 2;
    j.result_storage = VKR_RESULT_INTO_FD;
    j.grid.mode = VKR_GRID_BILINEAR;
    j.grid.padding_mode = VKR_PADDING_ZEROS;
    tensor(&j.input, 4, (const int64_t[]){1, 3, 64, 64});
    j.input.storage = VKR_STORAGE_MEMFD;
    j.input.fd_index = 0;
    j.input.data_offset = 4096;
    tensor(&j.aux, 4, (const int64_t[]){1, 32, 32, 2});
    memset(data, 0, sizeof data);
    body_len = vkr_submit_encode_fixed(&j, fixed, &fixed_len);
    if (load("submit_memfd.hex", &f) == 0 && header_of("submit_memfd.hex", &f, VKR_MSG_SUBMIT, &h) == 0) {
        same_bytes("submit_memfd.hex", &f, out, build(out, VKR_MSG_SUBMIT, 11, 2, fixed, fixed_len, data, body_len - fixed_len));
        rc = vkr_submit_decode(f.bytes + VKR_FRAME_HEADER_BYTES, h.body_len, UINT64_MAX / 8, h.n_fds, &back, &err);
        tap_check(rc == 0 && h.n_fds == 2 && back.result_storage == VKR_RESULT_INTO_FD && back.input.storage == VKR_STORAGE_MEMFD &&
                      back.input.fd_index == 0 && back.input.data_offset == 4096 && back.input.data == NULL && back.input.data_bytes == 49152 &&
                      back.aux.storage == VKR_STORAGE_INLINE && back.aux.data_offset == 240,
                  "submit_memfd.hex: decodes to a memfd input at 4096, an inline grid at 240, output into descriptor 1 (rc %d %s)", rc,
                  err.message);
    }
}

static void test_result(void)
{
    static uint8_t out[VECTOR_MAX_BYTES];
    static frame_t f;
    uint8_t fixed[VKR_RESULT_FIXED_BYTES];
    float data[32];
    vkr_frame_header_t h;
    vkr_error_t err = {0};
    vkr_result_t r, back;
    uint64_t body_len;
    int rc;

    memset(&r, 0, sizeof r);
    r.backend_used = VKR_BACKEND_CPU;
    r.output.rank = 4;
    memcpy(r.output.shape, (const int64_t[]){1, 2, 4, 4}, 4 * sizeof(int64_t));
    for (int i = 0; i < 32; i++)
        data[i] = (float)((i / 16) * 4 + ((i / 4) % 4 / 2) * 2 + (i % 4) / 2);
    body_len = vkr_result_encode_fixed(&r, fixed);
    if (load("result_inline.hex", &f) == 0 && header_of("result_inline.hex", &f, VKR_MSG_RESULT, &h) == 0) {
        same_bytes("result_inline.hex", &f, out, build(out, VKR_MSG_RESULT, 7, 0, fixed, sizeof fixed, data, body_len - sizeof fixed));
        rc = vkr_result_decode(f.bytes + VKR_FRAME_HEADER_BYTES, h.body_len, h.n_fds, &back, &err);
        tap_check(rc == 0 && back.backend_used == VKR_BACKEND_CPU && back.output.storage == VKR_STORAGE_INLINE && back.output.shape[3] == 4 &&
                      back.output.data_bytes == 128 && memcmp(back.output.data, data, sizeof data) == 0,
                  "result_inline.hex: decodes to (1, 2, 4, 4) with the 2x2 repeats (rc %d %s)", rc, err.message);
    }

    struct { const char *name; uint32_t id; unsigned n_fds; uint16_t backend; uint8_t storage; } fd_results[] = {
        {"result_memfd.hex", 12, 1, VKR_BACKEND_VULKAN, VKR_STORAGE_MEMFD}, {"result_output_fd.hex", 11, 0, VKR_BACKEND_CPU, VKR_STORAGE_OUTPUT_FD}};
    for (size_t i = 0; i < sizeof fd_results / sizeof fd_results[0]; i++) {
        memset(&r, 0, sizeof r);
        r.backend_used = fd_results[i].backend;
        r.output.rank = 4;
        r.output.storage = fd_results[i].storage;
        memcpy(r.output.shape, (const int64_t[]){1, 3, 32, 32}, 4 * sizeof(int64_t));
        body_len = vkr_result_encode_fixed(&r, fixed);
        if (load(fd_results[i].name, &f) || header_of(fd_results[i].name, &f, VKR_MSG_RESULT, &h))
            continue;
        same_bytes(fd_results[i].name, &f, out, build(out, VKR_MSG_RESULT, fd_results[i].id, fd_results[i].n_fds, fixed, body_len, NULL, 0));
        rc = vkr_result_decode(f.bytes + VKR_FRAME_HEADER_BYTES, h.body_len, h.n_fds, &back, &err);
        tap_check(rc == 0 && h.n_fds == fd_results[i].n_fds && back.output.storage == fd_results[i].storage && back.output.data == NULL &&
                      back.output.data_bytes == 12288 && back.backend_used == fd_results[i].backend,
                  "%s: decodes to storage %u, 12288 bytes, %u descriptor(s) (rc %d %s)", fd_results[i].name, back.output.storage, h.n_fds, rc,
                  err.message);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_vectors VECTORS_DIR\n");
        return 2;
    }
    vectors_dir = argv[1];
    test_control();
    test_submit();
    test_result();
    return tap_done();
}
