/* Unit test (TAP) of client/npy.c: the writer's bytes against what numpy 1.24's np.save writes,
 * round trips through files and memory, versions 1.0 / 2.0 / 3.0, pipes, and one check per
 * refusal (dtype, fortran order, bad header, truncation, rank, overflow, limits), plus every
 * truncation and single-byte corruption of a valid file (no crash, a message on refusal). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "npy.h"
#include "tap.h"

static char tmpdir[] = "/tmp/vkr-test-npy.XXXXXX";
static char msg[VKR__NPY_ERROR_MAX];

/* ---------------------------------------------------------------- helpers */

typedef struct {
    uint8_t *p;
    size_t len;
} buf_t;

/* A .npy image: magic, version major.minor, the header length (2 bytes for 1.x, else 4), the
 * header text as given (no padding added), then data_len bytes of data. */
static buf_t make_npy(unsigned major, unsigned minor, const char *header, const void *data,
                      size_t data_len)
{
    size_t hl = strlen(header), lb = major == 1 ? 2 : 4, off = 0;
    buf_t b;

    b.len = 8 + lb + hl + data_len;
    b.p = malloc(b.len + 1);
    if (b.p == NULL)
        abort();
    memcpy(b.p, "\x93NUMPY", 6);
    b.p[6] = (uint8_t)major;
    b.p[7] = (uint8_t)minor;
    off = 8;
    for (size_t i = 0; i < lb; i++)
        b.p[off++] = (uint8_t)(hl >> (8 * i));
    memcpy(b.p + off, header, hl);
    off += hl;
    if (data_len > 0)
        memcpy(b.p + off, data, data_len);
    return b;
}

static bool read_whole(const char *path, buf_t *out)
{
    FILE *f = fopen(path, "rb");
    long n;

    out->p = NULL;
    out->len = 0;
    if (f == NULL)
        return false;
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return false;
    }
    out->p = malloc((size_t)n + 1);
    out->len = (size_t)n;
    if (out->p == NULL || fread(out->p, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        return false;
    }
    fclose(f);
    return true;
}

static bool write_whole(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    bool ok;

    if (f == NULL)
        return false;
    ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static void path_in_tmp(char *out, size_t len, const char *name)
{
    snprintf(out, len, "%s/%s", tmpdir, name);
}

/* The parse of b refuses with VKR__NPY_E_FORMAT and a message containing want. */
static void expect_refusal(const char *what, buf_t b, uint64_t max_bytes, const char *want)
{
    vkr__npy_array_t a;
    int rc;

    msg[0] = '\0';
    rc = vkr__npy_parse(b.p, b.len, max_bytes, &a, msg, sizeof msg);
    tap_check(rc == VKR__NPY_E_FORMAT && strstr(msg, want) != NULL && a.data == NULL && a.rank == 0,
              "refuses %s: rc %d (want %d), message \"%s\" (want \"%s\")", what, rc,
              VKR__NPY_E_FORMAT, msg, want);
    free(b.p);
}

static const char hdr_f4_23[] = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";

/* ---------------------------------------------------------------- writer against numpy */

/* np.save writes: magic, 1.0, u16 header length, the dict, growth spaces, padding to 64, '\n'.
 * Lengths below are what numpy 1.24 wrote for these shapes (total header 128 or 192 bytes). */
static void test_writer_matches_numpy(void)
{
    static const struct {
        int rank;
        int64_t shape[8];
        const char *dict;
        size_t total;   /* magic + length + header, as numpy wrote it */
    } cases[] = {
        {2, {2, 3}, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 128},
        {1, {5}, "{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }", 128},
        {0, {0}, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", 128},
        {8, {1, 2, 3, 4, 5, 6, 7, 8},
         "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 3, 4, 5, 6, 7, 8), }", 128},
        {2, {1234567890123, 0},
         "{'descr': '<f4', 'fortran_order': False, 'shape': (1234567890123, 0), }", 128},
        /* 10 + 117 + growth 20 + '\n' = 128 exactly: numpy pads a full 64 more. */
        {8, {0, 1000, 1000, 1000, 1000, 1000, 1000, 100},
         "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 1000, 1000, 1000, 1000, 1000, "
         "1000, 100), }", 192},
    };

    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char path[256];
        uint64_t n = 1;
        float *data;
        buf_t got;
        uint8_t want[256];
        size_t dl = strlen(cases[k].dict);
        int rc;

        for (int i = 0; i < cases[k].rank; i++)
            n *= (uint64_t)cases[k].shape[i];
        data = malloc(n * sizeof(float) + 1);
        for (uint64_t i = 0; i < n; i++)
            data[i] = (float)i * 0.5f - 3.0f;
        path_in_tmp(path, sizeof path, "golden.npy");
        rc = vkr__npy_write_file(path, data, cases[k].rank, cases[k].shape, msg, sizeof msg);
        tap_check(rc == VKR__NPY_OK, "write shape #%zu: rc %d (%s)", k, rc, rc ? msg : "");
        memcpy(want, "\x93NUMPY\x01\x00", 8);
        want[8] = (uint8_t)((cases[k].total - 10) & 0xff);
        want[9] = (uint8_t)((cases[k].total - 10) >> 8);
        memcpy(want + 10, cases[k].dict, dl);
        memset(want + 10 + dl, ' ', cases[k].total - 11 - dl);
        want[cases[k].total - 1] = '\n';
        if (!read_whole(path, &got)) {
            tap_check(0, "read back %s: %s", path, strerror(errno));
            free(data);
            continue;
        }
        tap_check(got.len == cases[k].total + n * 4 && memcmp(got.p, want, cases[k].total) == 0
                      && memcmp(got.p + cases[k].total, data, n * 4) == 0,
                  "writer bytes equal numpy's for %s (file %zu bytes, want %zu)", cases[k].dict,
                  got.len, (size_t)(cases[k].total + n * 4));
        free(got.p);
        free(data);
    }
}

/* ---------------------------------------------------------------- round trips */

static void test_round_trip(void)
{
    static const struct {
        int rank;
        int64_t shape[8];
    } cases[] = {
        {0, {0}}, {1, {7}}, {2, {3, 4}}, {4, {2, 3, 5, 7}}, {5, {1, 2, 3, 4, 5}},
        {8, {2, 1, 2, 1, 2, 1, 2, 3}}, {3, {4, 0, 5}},
    };

    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char path[256];
        vkr__npy_array_t a, m;
        uint64_t n = 1;
        float *data;
        buf_t file;
        bool same;
        int rc;

        for (int i = 0; i < cases[k].rank; i++)
            n *= (uint64_t)cases[k].shape[i];
        data = malloc(n * sizeof(float) + 1);
        for (uint64_t i = 0; i < n; i++) {
            uint32_t bits = (uint32_t)(i * 2654435761u);   /* every bit pattern kind, NaNs too */
            memcpy(&data[i], &bits, 4);
        }
        path_in_tmp(path, sizeof path, "rt.npy");
        rc = vkr__npy_write_file(path, data, cases[k].rank, cases[k].shape, msg, sizeof msg);
        tap_check(rc == VKR__NPY_OK, "round trip #%zu: write rc %d %s", k, rc, rc ? msg : "");
        rc = vkr__npy_read_file(path, UINT64_MAX, &a, msg, sizeof msg);
        same = rc == VKR__NPY_OK && a.rank == cases[k].rank && a.n_elements == n
               && memcmp(a.shape, cases[k].shape, sizeof(int64_t) * (size_t)cases[k].rank) == 0
               && (n == 0 || memcmp(a.data, data, n * 4) == 0);
        tap_check(same, "round trip #%zu (rank %d, %" PRIu64 " values) through a file: rc %d %s",
                  k, cases[k].rank, n, rc, rc ? msg : "");
        if (read_whole(path, &file)) {
            rc = vkr__npy_parse(file.p, file.len, UINT64_MAX, &m, msg, sizeof msg);
            tap_check(rc == VKR__NPY_OK && m.rank == a.rank && m.n_elements == n
                          && (n == 0 || memcmp(m.data, data, n * 4) == 0),
                      "round trip #%zu through memory: rc %d %s", k, rc, rc ? msg : "");
            vkr__npy_free(&m);
            free(file.p);
        }
        vkr__npy_free(&a);
        free(data);
    }
}

/* Versions 2.0 and 3.0 (4-byte header length), Python 2 'L' suffixes, double quotes, other
 * key orders and spacing: all as numpy reads them. */
static void test_accepted_variants(void)
{
    static const float v[6] = {1, 2, 3, 4, 5, 6};
    static const struct {
        unsigned major;
        const char *header;
        int rank;
    } cases[] = {
        {2, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }      \n", 2},
        {3, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n", 2},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 3L), }\n", 2},
        {1, "{\"shape\": (6,), \"descr\": \"<f4\", \"fortran_order\": False}", 1},
        {1, "  {'fortran_order':False,'shape':(1,2,3),'descr':'<f4'}\n\n", 3},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': ( 2 , 3 , ), }\n", 2},
    };

    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        buf_t b = make_npy(cases[k].major, 0, cases[k].header, v, sizeof v);
        vkr__npy_array_t a;
        int rc = vkr__npy_parse(b.p, b.len, UINT64_MAX, &a, msg, sizeof msg);

        tap_check(rc == VKR__NPY_OK && a.rank == cases[k].rank && a.n_elements == 6
                      && memcmp(a.data, v, sizeof v) == 0,
                  "accepts variant #%zu (version %u.0): rc %d %s", k, cases[k].major, rc,
                  rc ? msg : "");
        vkr__npy_free(&a);
        free(b.p);
    }
}

/* ---------------------------------------------------------------- refusals */

static void test_refusals(void)
{
    static const float v[8] = {0};   /* 8: room for the trailing-bytes cases */
    char big[VKR__NPY_MAX_HEADER_BYTES + 64];
    buf_t b;

    expect_refusal("'<f8'", make_npy(1, 0, "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }",
                                     v, 24),
                   UINT64_MAX, "dtype '<f8' is not supported: vkresample takes float32 ('<f4')");
    expect_refusal("big-endian '>f4'",
                   make_npy(1, 0, "{'descr': '>f4', 'fortran_order': False, 'shape': (6,), }", v, 24),
                   UINT64_MAX, "dtype '>f4' is not supported");
    expect_refusal("object arrays",
                   make_npy(1, 0, "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", v, 16),
                   UINT64_MAX, "object arrays");
    expect_refusal("'<f2'", make_npy(1, 0, "{'descr': '<f2', 'fortran_order': False, 'shape': (6,), }",
                                     v, 12),
                   UINT64_MAX, "dtype '<f2'");
    expect_refusal("structured dtypes",
                   make_npy(1, 0, "{'descr': [('a', '<f4'), ('b', '<f4')], 'fortran_order': False, "
                            "'shape': (3,), }", v, 24),
                   UINT64_MAX, "structured dtype");
    expect_refusal("fortran_order True",
                   make_npy(1, 0, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", v, 24),
                   UINT64_MAX, "fortran_order True is not supported");
    expect_refusal("a non-printable dtype (sanitised)",
                   make_npy(1, 0, "{'descr': '\x01" "f4', 'fortran_order': False, 'shape': (6,), }", v, 24),
                   UINT64_MAX, "dtype '?f4'");

    b = make_npy(1, 0, hdr_f4_23, v, 24);
    b.p[1] = 'n';
    expect_refusal("a bad magic", b, UINT64_MAX, "not a .npy file");
    expect_refusal("version 4.0", make_npy(4, 0, hdr_f4_23, v, 24), UINT64_MAX,
                   "format version 4.0 is not supported");
    expect_refusal("version 1.1", make_npy(1, 1, hdr_f4_23, v, 24), UINT64_MAX,
                   "format version 1.1");
    b.p = malloc(4);
    memcpy(b.p, "\x93NU", 4);
    b.len = 4;
    expect_refusal("a 4-byte file", b, UINT64_MAX, "too short");
    b = make_npy(1, 0, hdr_f4_23, v, 24);
    b.len = 9;
    expect_refusal("a cut header length", b, UINT64_MAX, "header length is cut off");
    b = make_npy(1, 0, hdr_f4_23, v, 24);
    b.len = 40;
    expect_refusal("a truncated header", b, UINT64_MAX, "truncated file");
    b = make_npy(1, 0, hdr_f4_23, v, 24);
    b.len -= 1;
    expect_refusal("truncated data", b, UINT64_MAX, "truncated data: shape needs 24 bytes, the file holds 23");
    expect_refusal("trailing bytes", make_npy(1, 0, hdr_f4_23, v, 28), UINT64_MAX, "4 trailing bytes");

    expect_refusal("9 dimensions",
                   make_npy(1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1, "
                            "1, 1, 1, 1), }", v, 4),
                   UINT64_MAX, "more than 8 dimensions");
    expect_refusal("an overflowing shape",
                   make_npy(1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': "
                            "(4611686018427387904, 4611686018427387904), }", v, 0),
                   UINT64_MAX, "shape overflows");
    expect_refusal("a dimension over int64",
                   make_npy(1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': "
                            "(99999999999999999999,), }", v, 0),
                   UINT64_MAX, "dimension over");
    expect_refusal("a negative dimension",
                   make_npy(1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3), }", v, 0),
                   UINT64_MAX, "negative dimensions");
    expect_refusal("an int shape",
                   make_npy(1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (6), }", v, 24),
                   UINT64_MAX, "not a tuple");
    expect_refusal("a list shape",
                   make_npy(1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': [2, 3], }", v, 24),
                   UINT64_MAX, "must be a tuple");
    expect_refusal("a float dimension",
                   make_npy(1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (2.0, 3), }", v, 24),
                   UINT64_MAX, "expected an integer");
    expect_refusal("leading zeros",
                   make_npy(1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (02, 3), }", v, 24),
                   UINT64_MAX, "without leading zeros");
    expect_refusal("a missing key",
                   make_npy(1, 0, "{'descr': '<f4', 'shape': (2, 3), }", v, 24), UINT64_MAX,
                   "key 'fortran_order' is missing");
    expect_refusal("an unexpected key",
                   make_npy(1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), "
                            "'extra': 1}", v, 24),
                   UINT64_MAX, "unexpected key 'extra'");
    expect_refusal("a repeated key",
                   make_npy(1, 0, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, "
                            "'shape': (2, 3)}", v, 24),
                   UINT64_MAX, "'descr' appears twice");
    expect_refusal("fortran_order 0",
                   make_npy(1, 0, "{'descr': '<f4', 'fortran_order': 0, 'shape': (2, 3), }", v, 24),
                   UINT64_MAX, "True or False");
    expect_refusal("fortran_order Falsey",
                   make_npy(1, 0, "{'descr': '<f4', 'fortran_order': Falsey, 'shape': (2, 3), }", v, 24),
                   UINT64_MAX, "True or False");
    expect_refusal("text after the dict",
                   make_npy(1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } x", v, 24),
                   UINT64_MAX, "the end of the header");
    expect_refusal("a header that is not a dict", make_npy(1, 0, "[1, 2]", v, 24), UINT64_MAX,
                   "'{' opening the header dict");
    expect_refusal("an empty header", make_npy(1, 0, "", v, 24), UINT64_MAX, "found the end");
    expect_refusal("an unterminated string",
                   make_npy(1, 0, "{'descr': '<f4, 'fortran_order': False}", v, 0), UINT64_MAX,
                   "bad header");
    expect_refusal("a NUL in the header",
                   make_npy(1, 0, "{'descr': '<f4', \x01'fortran_order': False, 'shape': (), }", v, 4),
                   UINT64_MAX, "bad header");
    expect_refusal("an unclosed shape",
                   make_npy(1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3", v, 0),
                   UINT64_MAX, "bad header");

    /* A v2 header length of 4 GiB - 1: refused before anything is allocated. */
    b = make_npy(2, 0, hdr_f4_23, v, 24);
    b.p[8] = b.p[9] = b.p[10] = b.p[11] = 0xff;
    expect_refusal("a 4 GiB header length", b, UINT64_MAX, "header length 4294967295 is over the limit");
    memset(big, ' ', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    memcpy(big, hdr_f4_23, sizeof hdr_f4_23 - 1);
    expect_refusal("a 64 KiB + 63 header", make_npy(2, 0, big, v, 24), UINT64_MAX, "over the limit of 65536");

    expect_refusal("an array over max_data_bytes", make_npy(1, 0, hdr_f4_23, v, 24), 20,
                   "array of 6 float32 values (24 bytes) is over the limit of 20 bytes");
}

/* ---------------------------------------------------------------- files and pipes */

static void test_files(void)
{
    char path[256];
    vkr__npy_array_t a;
    static const float v[8] = {1, 2, 3, 4, 5, 6, 7, 8};   /* 6 values + room for trailing bytes */
    buf_t b;
    int rc;

    path_in_tmp(path, sizeof path, "missing.npy");
    rc = vkr__npy_read_file(path, UINT64_MAX, &a, msg, sizeof msg);
    tap_check(rc == VKR__NPY_E_IO && strstr(msg, "No such file") != NULL,
              "a missing file: rc %d, \"%s\"", rc, msg);
    rc = vkr__npy_read_file(tmpdir, UINT64_MAX, &a, msg, sizeof msg);
    tap_check(rc == VKR__NPY_E_IO && strstr(msg, "directory") != NULL, "a directory: rc %d, \"%s\"",
              rc, msg);

    /* A file whose header claims far more data than it holds: refused from its size alone. */
    b = make_npy(1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000,), }", v, 24);
    path_in_tmp(path, sizeof path, "huge.npy");
    write_whole(path, b.p, b.len);
    rc = vkr__npy_read_file(path, UINT64_MAX, &a, msg, sizeof msg);
    tap_check(rc == VKR__NPY_E_FORMAT && strstr(msg, "truncated data") != NULL,
              "a file claiming 4 TB of data: rc %d, \"%s\"", rc, msg);
    free(b.p);

    b = make_npy(1, 0, hdr_f4_23, v, 24);
    path_in_tmp(path, sizeof path, "short.npy");
    write_whole(path, b.p, 30);
    rc = vkr__npy_read_file(path, UINT64_MAX, &a, msg, sizeof msg);
    tap_check(rc == VKR__NPY_E_FORMAT && strstr(msg, "truncated") != NULL && strstr(msg, path) != NULL,
              "a file cut in its header: rc %d, \"%s\"", rc, msg);
    path_in_tmp(path, sizeof path, "trailing.npy");
    free(b.p);
    b = make_npy(1, 0, hdr_f4_23, v, 24);
    write_whole(path, b.p, b.len);
    {
        FILE *f = fopen(path, "ab");

        fputs("xx", f);
        fclose(f);
    }
    rc = vkr__npy_read_file(path, UINT64_MAX, &a, msg, sizeof msg);
    tap_check(rc == VKR__NPY_E_FORMAT && strstr(msg, "2 trailing bytes") != NULL,
              "a file with trailing bytes: rc %d, \"%s\"", rc, msg);
    free(b.p);

    /* Pipes: the size is unknown, data is read in growing chunks. */
    for (int k = 0; k < 3; k++) {
        int fds[2];
        pid_t pid;
        char fdpath[64];

        if (k == 0)
            b = make_npy(1, 0, hdr_f4_23, v, 24);                  /* valid */
        else if (k == 1)
            b = make_npy(1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (268435456,), }",
                         v, 24);                                    /* claims 1 GiB, holds 24 */
        else
            b = make_npy(1, 0, hdr_f4_23, v, 24 + 4);                /* trailing bytes */
        if (pipe(fds) != 0) {
            tap_check(0, "pipe: %s", strerror(errno));
            free(b.p);
            continue;
        }
        pid = fork();
        if (pid == 0) {
            close(fds[0]);
            if (write(fds[1], b.p, b.len) != (ssize_t)b.len)
                _exit(1);
            _exit(0);
        }
        close(fds[1]);
        snprintf(fdpath, sizeof fdpath, "/dev/fd/%d", fds[0]);
        rc = vkr__npy_read_file(fdpath, UINT64_MAX, &a, msg, sizeof msg);
        close(fds[0]);
        waitpid(pid, NULL, 0);
        if (k == 0)
            tap_check(rc == VKR__NPY_OK && a.n_elements == 6 && memcmp(a.data, v, 24) == 0,
                      "reads a valid array from a pipe: rc %d %s", rc, rc ? msg : "");
        else if (k == 1)
            tap_check(rc == VKR__NPY_E_FORMAT && strstr(msg, "truncated data") != NULL,
                      "a pipe claiming 1 GiB and holding 24 bytes: rc %d, \"%s\"", rc, msg);
        else
            tap_check(rc == VKR__NPY_E_FORMAT && strstr(msg, "trailing") != NULL,
                      "a pipe with trailing bytes: rc %d, \"%s\"", rc, msg);
        vkr__npy_free(&a);
        free(b.p);
    }
}

static void test_writer_arguments(void)
{
    char path[256];
    int64_t shape[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    float one = 1.0f;
    int rc;

    path_in_tmp(path, sizeof path, "w.npy");
    rc = vkr__npy_write_file(path, &one, 9, shape, msg, sizeof msg);
    tap_check(rc == VKR__NPY_E_ARG, "writer refuses rank 9: rc %d \"%s\"", rc, msg);
    shape[1] = -2;
    rc = vkr__npy_write_file(path, &one, 2, shape, msg, sizeof msg);
    tap_check(rc == VKR__NPY_E_ARG && strstr(msg, "negative") != NULL,
              "writer refuses a negative extent: rc %d \"%s\"", rc, msg);
    shape[0] = shape[1] = INT64_MAX / 2;
    rc = vkr__npy_write_file(path, &one, 2, shape, msg, sizeof msg);
    tap_check(rc == VKR__NPY_E_ARG && strstr(msg, "overflows") != NULL,
              "writer refuses an overflowing shape: rc %d \"%s\"", rc, msg);
    shape[0] = 3;
    rc = vkr__npy_write_file(path, NULL, 1, shape, msg, sizeof msg);
    tap_check(rc == VKR__NPY_E_ARG, "writer refuses NULL data: rc %d \"%s\"", rc, msg);
    rc = vkr__npy_write_file("/nonexistent-dir/x.npy", &one, 0, shape, msg, sizeof msg);
    tap_check(rc == VKR__NPY_E_IO && strstr(msg, "No such file") != NULL,
              "writer reports an unwritable path: rc %d \"%s\"", rc, msg);
}

/* ---------------------------------------------------------------- hostile bytes */

/* Every prefix and every single-byte change of a valid file: accepted only when the result is
 * consistent, otherwise refused with a message; never a crash or out-of-bounds read (the
 * buffers are exact-size heap blocks, so ASan sees any overrun). */
static void test_corruptions(void)
{
    static const float v[6] = {1, 2, 3, 4, 5, 6};
    static const uint8_t flips[] = {0x00, 0x01, 0x20, 0x27, 0x28, 0x29, 0x2c, 0x30, 0x39, 0x7b,
                                    0x7d, 0x80, 0xff};
    buf_t b = make_npy(1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n", v, 24);
    size_t bad_prefix = 0, bad_flip = 0, checked = 0;

    for (size_t n = 0; n < b.len; n++) {
        uint8_t *p = malloc(n > 0 ? n : 1);
        vkr__npy_array_t a;
        int rc;

        memcpy(p, b.p, n);
        msg[0] = '\0';
        rc = vkr__npy_parse(p, n, UINT64_MAX, &a, msg, sizeof msg);
        if (rc != VKR__NPY_E_FORMAT || msg[0] == '\0')
            bad_prefix++;
        vkr__npy_free(&a);
        free(p);
    }
    tap_check(bad_prefix == 0, "all %zu proper prefixes are refused with a message (%zu not)",
              b.len, bad_prefix);

    for (size_t i = 0; i < b.len - 24; i++) {
        for (size_t f = 0; f < sizeof flips; f++) {
            uint8_t *p;
            vkr__npy_array_t a;
            int rc;

            if (b.p[i] == flips[f])
                continue;
            p = malloc(b.len);
            memcpy(p, b.p, b.len);
            p[i] = flips[f];
            msg[0] = '\0';
            rc = vkr__npy_parse(p, b.len, UINT64_MAX, &a, msg, sizeof msg);
            checked++;
            if (rc == VKR__NPY_OK) {
                uint64_t n = 1;

                for (int d = 0; d < a.rank; d++)
                    n *= (uint64_t)a.shape[d];
                if (n != a.n_elements || a.rank > VKR__NPY_MAX_RANK)
                    bad_flip++;
            } else if (rc != VKR__NPY_E_FORMAT || msg[0] == '\0') {
                bad_flip++;
            }
            vkr__npy_free(&a);
            free(p);
        }
    }
    tap_check(bad_flip == 0, "%zu single-byte corruptions: consistent or refused (%zu not)",
              checked, bad_flip);
    free(b.p);
}

int main(void)
{
    char path[256];

    if (mkdtemp(tmpdir) == NULL) {
        printf("Bail out! mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    test_writer_matches_numpy();
    test_round_trip();
    test_accepted_variants();
    test_refusals();
    test_files();
    test_writer_arguments();
    test_corruptions();

    static const char *const names[] = {"golden.npy", "rt.npy", "huge.npy", "short.npy",
                                        "trailing.npy", "w.npy"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        path_in_tmp(path, sizeof path, names[i]);
        unlink(path);
    }
    rmdir(tmpdir);
    return tap_done();
}
