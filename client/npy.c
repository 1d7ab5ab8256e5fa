/* The .npy reader and writer (internal to the CLI and tests).  Owns the parsing of the format's
 * preamble (magic, version, header length), of the header's Python dict literal ('descr',
 * 'fortran_order', 'shape' and nothing else), the bounds on every length before allocating, and
 * the numpy-compatible version 1.0 writer.  Input is treated as hostile: every read is
 * bounds-checked, every count overflow-checked, and messages quote file content sanitised. */
#include "npy.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6u
#define NPY_ALIGN 64u                    /* numpy's ARRAY_ALIGN */
#define NPY_GROWTH_DIGITS 21             /* numpy's GROWTH_AXIS_MAX_DIGITS */
#define NPY_STR_MAX 64u                  /* bytes of a header string kept for messages */
#define NPY_PIPE_CHUNK (1u << 20)        /* first allocation when the file size is unknown */

/* ---------------------------------------------------------------- messages */

__attribute__((format(printf, 4, 5)))
static int fail(char *msg, size_t msg_len, int code, const char *fmt, ...)
{
    va_list ap;

    if (msg != NULL && msg_len > 0) {
        va_start(ap, fmt);
        vsnprintf(msg, msg_len, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* Copy n bytes of file content into out (out_len bytes) as printable ASCII: other bytes become
 * '?', and a long string ends in "...". */
static void sanitize(char *out, size_t out_len, const char *s, size_t n)
{
    size_t i, keep = n;

    if (out_len == 0)
        return;
    if (n + 1 > out_len)
        keep = out_len > 4 ? out_len - 4 : 0;   /* room for "..." and the NUL */
    for (i = 0; i < keep; i++) {
        unsigned char ch = (unsigned char)s[i];

        out[i] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
    }
    if (keep < n && out_len > 4) {
        memcpy(out + keep, "...", 3);
        keep += 3;
    }
    out[keep < out_len ? keep : out_len - 1] = '\0';
}

/* ---------------------------------------------------------------- header dict */

typedef struct {
    bool have_descr, have_fortran, have_shape;
    char descr[NPY_STR_MAX + 1];   /* sanitised for messages */
    size_t descr_len;              /* bytes of the string in the file */
    bool descr_is_f4;
    bool descr_structured;         /* a list: a structured dtype */
    bool fortran_order;
    int rank;
    int64_t shape[VKR__NPY_MAX_RANK];
} npy_header_t;

typedef struct {
    const char *p, *end;
    char *msg;
    size_t msg_len;
} cursor_t;

static void skip_ws(cursor_t *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'
                             || *c->p == '\f' || *c->p == '\v'))
        c->p++;
}

static int syntax(cursor_t *c, const char *what, const char *start)
{
    char near[24];

    if (c->p >= c->end)
        return fail(c->msg, c->msg_len, VKR__NPY_E_FORMAT,
                    "bad header: expected %s at offset %zu, found the end of the header", what,
                    (size_t)(c->p - start));
    sanitize(near, sizeof near, c->p, (size_t)(c->end - c->p) < 16 ? (size_t)(c->end - c->p) : 16);
    return fail(c->msg, c->msg_len, VKR__NPY_E_FORMAT,
                "bad header: expected %s at offset %zu, found '%s'", what, (size_t)(c->p - start), near);
}

/* A quoted Python string ('...' or "...", backslash escapes kept verbatim).  *s, *n: its content
 * inside c's buffer.  Returns 0 or a negative code. */
static int parse_string(cursor_t *c, const char *start, const char **s, size_t *n)
{
    char quote;

    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
        return syntax(c, "a quoted string", start);
    quote = *c->p++;
    *s = c->p;
    while (c->p < c->end && *c->p != quote) {
        if (*c->p == '\n')
            return syntax(c, "the end of a string", start);
        if (*c->p == '\\' && c->p + 1 < c->end)
            c->p++;
        c->p++;
    }
    if (c->p >= c->end)
        return syntax(c, "the end of a string", start);
    *n = (size_t)(c->p - *s);
    c->p++;
    return 0;
}

static bool is_ident_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')
           || ch == '_';
}

static bool take_word(cursor_t *c, const char *word)
{
    size_t n = strlen(word);

    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0)
        return false;
    if (c->p + n < c->end && is_ident_char(c->p[n]))
        return false;
    c->p += n;
    return true;
}

/* A Python int literal as numpy writes it (decimal, optional sign, optional Python 2 'L'). */
static int parse_int(cursor_t *c, const char *start, int64_t *out)
{
    bool neg = false;
    uint64_t v = 0;
    const char *digits;

    if (c->p < c->end && (*c->p == '-' || *c->p == '+')) {
        neg = *c->p == '-';
        c->p++;
        skip_ws(c);
    }
    digits = c->p;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        unsigned d = (unsigned)(*c->p - '0');

        if (v > ((uint64_t)INT64_MAX - d) / 10u)
            return fail(c->msg, c->msg_len, VKR__NPY_E_FORMAT,
                        "bad header: shape has a dimension over %" PRId64, INT64_MAX);
        v = v * 10u + d;
        c->p++;
    }
    if (c->p == digits)
        return syntax(c, "an integer", start);
    if (c->p - digits > 1 && *digits == '0') {
        c->p = digits;
        return syntax(c, "an integer without leading zeros", start);
    }
    if (c->p < c->end && (*c->p == 'L' || *c->p == 'l'))
        c->p++;
    if (c->p < c->end && (is_ident_char(*c->p) || *c->p == '.'))
        return syntax(c, "an integer", start);
    *out = neg ? -(int64_t)v : (int64_t)v;
    return 0;
}

/* shape: a tuple of ints.  "(5)" is an int, not a tuple, and is refused like a list. */
static int parse_shape(cursor_t *c, const char *start, npy_header_t *h)
{
    bool trailing_comma = false;
    int n = 0, rc;

    if (c->p >= c->end || *c->p != '(')
        return fail(c->msg, c->msg_len, VKR__NPY_E_FORMAT,
                    "bad header: 'shape' must be a tuple of ints");
    c->p++;
    skip_ws(c);
    while (c->p < c->end && *c->p != ')') {
        int64_t v = 0;

        if (n == VKR__NPY_MAX_RANK)
            return fail(c->msg, c->msg_len, VKR__NPY_E_FORMAT,
                        "shape has more than %d dimensions: vkresample takes at most %d",
                        VKR__NPY_MAX_RANK, VKR__NPY_MAX_RANK);
        rc = parse_int(c, start, &v);
        if (rc != 0)
            return rc;
        if (v < 0)
            return fail(c->msg, c->msg_len, VKR__NPY_E_FORMAT,
                        "bad header: shape[%d] is %" PRId64 ": negative dimensions are not allowed",
                        n, v);
        h->shape[n++] = v;
        skip_ws(c);
        trailing_comma = false;
        if (c->p < c->end && *c->p == ',') {
            trailing_comma = true;
            c->p++;
            skip_ws(c);
        } else if (c->p < c->end && *c->p != ')') {
            return syntax(c, "',' or ')' in 'shape'", start);
        }
    }
    if (c->p >= c->end)
        return syntax(c, "')' closing 'shape'", start);
    c->p++;
    if (n == 1 && !trailing_comma)
        return fail(c->msg, c->msg_len, VKR__NPY_E_FORMAT,
                    "bad header: 'shape' is (%" PRId64 "), an int, not a tuple of ints", h->shape[0]);
    h->rank = n;
    return 0;
}

/* descr: a dtype string, or a list (structured dtype) that is skipped by bracket depth. */
static int parse_descr(cursor_t *c, const char *start, npy_header_t *h)
{
    const char *s;
    size_t n;
    int rc;

    if (c->p < c->end && *c->p == '[') {
        int depth = 0;

        h->descr_structured = true;
        for (; c->p < c->end; c->p++) {
            if (*c->p == '[' || *c->p == '(')
                depth++;
            else if (*c->p == ']' || *c->p == ')')
                depth--;
            else if (*c->p == '\'' || *c->p == '"') {
                rc = parse_string(c, start, &s, &n);
                if (rc != 0)
                    return rc;
                c->p--;
            }
            if (depth == 0)
                break;
        }
        if (c->p >= c->end)
            return syntax(c, "']' closing 'descr'", start);
        c->p++;
        sanitize(h->descr, sizeof h->descr, "structured", 10);
        return 0;
    }
    rc = parse_string(c, start, &s, &n);
    if (rc != 0)
        return rc;
    h->descr_len = n;
    h->descr_is_f4 = n == 3 && memcmp(s, "<f4", 3) == 0;
    sanitize(h->descr, sizeof h->descr, s, n);
    return 0;
}

/* Parse the header dict text[0..len).  Returns 0 or VKR__NPY_E_FORMAT with msg. */
static int parse_dict(const char *text, size_t len, npy_header_t *h, char *msg, size_t msg_len)
{
    cursor_t c = {text, text + len, msg, msg_len};
    int rc;

    memset(h, 0, sizeof *h);
    skip_ws(&c);
    if (c.p >= c.end || *c.p != '{')
        return syntax(&c, "'{' opening the header dict", text);
    c.p++;
    for (;;) {
        const char *key;
        size_t key_len;

        skip_ws(&c);
        if (c.p < c.end && *c.p == '}')
            break;
        rc = parse_string(&c, text, &key, &key_len);
        if (rc != 0)
            return rc;
        skip_ws(&c);
        if (c.p >= c.end || *c.p != ':')
            return syntax(&c, "':' after a key", text);
        c.p++;
        skip_ws(&c);
        if (key_len == 5 && memcmp(key, "descr", 5) == 0) {
            if (h->have_descr)
                return fail(msg, msg_len, VKR__NPY_E_FORMAT, "bad header: key 'descr' appears twice");
            h->have_descr = true;
            rc = parse_descr(&c, text, h);
        } else if (key_len == 13 && memcmp(key, "fortran_order", 13) == 0) {
            if (h->have_fortran)
                return fail(msg, msg_len, VKR__NPY_E_FORMAT,
                            "bad header: key 'fortran_order' appears twice");
            h->have_fortran = true;
            if (take_word(&c, "True"))
                h->fortran_order = true;
            else if (take_word(&c, "False"))
                h->fortran_order = false;
            else
                rc = syntax(&c, "True or False for 'fortran_order'", text);
        } else if (key_len == 5 && memcmp(key, "shape", 5) == 0) {
            if (h->have_shape)
                return fail(msg, msg_len, VKR__NPY_E_FORMAT, "bad header: key 'shape' appears twice");
            h->have_shape = true;
            rc = parse_shape(&c, text, h);
        } else {
            char name[40];

            sanitize(name, sizeof name, key, key_len);
            return fail(msg, msg_len, VKR__NPY_E_FORMAT,
                        "bad header: unexpected key '%s' (a .npy header has 'descr', "
                        "'fortran_order' and 'shape')", name);
        }
        if (rc != 0)
            return rc;
        skip_ws(&c);
        if (c.p < c.end && *c.p == ',') {
            c.p++;
            continue;
        }
        if (c.p < c.end && *c.p == '}')
            break;
        return syntax(&c, "',' or '}' in the header dict", text);
    }
    c.p++;
    skip_ws(&c);
    if (c.p != c.end)
        return syntax(&c, "the end of the header after '}'", text);
    if (!h->have_descr || !h->have_fortran || !h->have_shape)
        return fail(msg, msg_len, VKR__NPY_E_FORMAT, "bad header: key '%s' is missing",
                    !h->have_descr ? "descr" : !h->have_fortran ? "fortran_order" : "shape");
    return 0;
}

/* Everything the dict says that vkresample does not take, then the data size.  Returns 0 with
 * *elements and *bytes, or VKR__NPY_E_FORMAT. */
static int check_header(const npy_header_t *h, uint64_t max_data_bytes, uint64_t *elements,
                        uint64_t *bytes, char *msg, size_t msg_len)
{
    uint64_t n = 1;
    int i;

    if (h->descr_structured)
        return fail(msg, msg_len, VKR__NPY_E_FORMAT,
                    "structured dtype (a 'descr' list) is not supported: vkresample takes "
                    "float32 ('<f4')");
    if (!h->descr_is_f4)
        return fail(msg, msg_len, VKR__NPY_E_FORMAT,
                    "dtype '%s' is not supported: vkresample takes float32 ('<f4')%s", h->descr,
                    strcmp(h->descr, ">f4") == 0 ? " in little-endian byte order"
                    : (h->descr_len == 2 && h->descr[1] == 'O') ? " (object arrays are never read)"
                    : "");
    if (h->fortran_order)
        return fail(msg, msg_len, VKR__NPY_E_FORMAT,
                    "fortran_order True is not supported: vkresample takes C-order arrays "
                    "(save numpy.ascontiguousarray(x))");
    for (i = 0; i < h->rank; i++) {
        uint64_t d = (uint64_t)h->shape[i];

        if (d != 0 && n > UINT64_MAX / sizeof(float) / d)
            return fail(msg, msg_len, VKR__NPY_E_FORMAT,
                        "shape overflows: the product of its %d dimensions does not fit in 64 bits",
                        h->rank);
        n *= d;
    }
    if (n * sizeof(float) > max_data_bytes || n * sizeof(float) > (uint64_t)SIZE_MAX)
        return fail(msg, msg_len, VKR__NPY_E_FORMAT,
                    "array of %" PRIu64 " float32 values (%" PRIu64 " bytes) is over the limit of %"
                    PRIu64 " bytes", n, n * (uint64_t)sizeof(float),
                    max_data_bytes < (uint64_t)SIZE_MAX ? max_data_bytes : (uint64_t)SIZE_MAX);
    *elements = n;
    *bytes = n * sizeof(float);
    return 0;
}

/* ---------------------------------------------------------------- preamble */

/* Check magic and version in p[0..avail) (avail >= 8).  *len_bytes: 2 or 4. */
static int parse_magic(const uint8_t *p, size_t avail, unsigned *len_bytes, char *msg,
                       size_t msg_len)
{
    if (avail < NPY_MAGIC_LEN + 2 || memcmp(p, NPY_MAGIC, NPY_MAGIC_LEN) != 0)
        return fail(msg, msg_len, VKR__NPY_E_FORMAT,
                    "not a .npy file: it does not start with \"\\x93NUMPY\"");
    if ((p[6] != 1 && p[6] != 2 && p[6] != 3) || p[7] != 0)
        return fail(msg, msg_len, VKR__NPY_E_FORMAT,
                    "format version %u.%u is not supported (1.0, 2.0 and 3.0 are)", p[6], p[7]);
    *len_bytes = p[6] == 1 ? 2u : 4u;
    return 0;
}

static uint32_t read_le(const uint8_t *p, unsigned n)
{
    uint32_t v = 0;

    while (n-- > 0)
        v = (v << 8) | p[n];
    return v;
}

static bool host_is_little_endian(void)
{
    const uint16_t one = 1;
    uint8_t b;

    memcpy(&b, &one, 1);
    return b == 1;
}

static void swap32(void *buf, size_t n_words)
{
    uint8_t *p = buf;
    size_t i;

    for (i = 0; i < n_words; i++, p += 4) {
        uint8_t t0 = p[0], t1 = p[1];

        p[0] = p[3];
        p[1] = p[2];
        p[2] = t1;
        p[3] = t0;
    }
}

/* ---------------------------------------------------------------- reader */

int vkr__npy_parse(const void *buf, size_t len, uint64_t max_data_bytes, vkr__npy_array_t *out,
                   char *msg, size_t msg_len)
{
    const uint8_t *p = buf;
    npy_header_t h;
    uint64_t elements = 0, bytes = 0;
    uint32_t header_len;
    unsigned len_bytes = 0;
    size_t off;
    float *data = NULL;
    int rc;

    if (out == NULL)
        return fail(msg, msg_len, VKR__NPY_E_ARG, "out is NULL");
    memset(out, 0, sizeof *out);
    if (buf == NULL && len > 0)
        return fail(msg, msg_len, VKR__NPY_E_ARG, "buf is NULL");
    if (len < NPY_MAGIC_LEN + 2)
        return fail(msg, msg_len, VKR__NPY_E_FORMAT,
                    "not a .npy file: %zu bytes is too short for the magic string", len);
    rc = parse_magic(p, len, &len_bytes, msg, msg_len);
    if (rc != 0)
        return rc;
    off = NPY_MAGIC_LEN + 2;
    if (len - off < len_bytes)
        return fail(msg, msg_len, VKR__NPY_E_FORMAT, "truncated file: the header length is cut off");
    header_len = read_le(p + off, len_bytes);
    off += len_bytes;
    if (header_len > VKR__NPY_MAX_HEADER_BYTES)
        return fail(msg, msg_len, VKR__NPY_E_FORMAT,
                    "header length %" PRIu32 " is over the limit of %u bytes", header_len,
                    VKR__NPY_MAX_HEADER_BYTES);
    if (len - off < header_len)
        return fail(msg, msg_len, VKR__NPY_E_FORMAT,
                    "truncated file: the header needs %" PRIu32 " bytes, %zu remain", header_len,
                    len - off);
    rc = parse_dict((const char *)p + off, header_len, &h, msg, msg_len);
    if (rc != 0)
        return rc;
    off += header_len;
    rc = check_header(&h, max_data_bytes, &elements, &bytes, msg, msg_len);
    if (rc != 0)
        return rc;
    if (len - off < bytes)
        return fail(msg, msg_len, VKR__NPY_E_FORMAT,
                    "truncated data: shape needs %" PRIu64 " bytes, the file holds %zu", bytes,
                    len - off);
    if (len - off > bytes)
        return fail(msg, msg_len, VKR__NPY_E_FORMAT,
                    "%zu trailing bytes after the %" PRIu64 " data bytes", len - off - (size_t)bytes,
                    bytes);
    if (bytes > 0) {
        data = malloc((size_t)bytes);
        if (data == NULL)
            return fail(msg, msg_len, VKR__NPY_E_NOMEM, "cannot allocate %" PRIu64 " bytes", bytes);
        memcpy(data, p + off, (size_t)bytes);
        if (!host_is_little_endian())
            swap32(data, (size_t)elements);
    }
    out->rank = h.rank;
    memcpy(out->shape, h.shape, sizeof out->shape);
    out->n_elements = elements;
    out->data = data;
    return VKR__NPY_OK;
}

/* fread exactly n bytes.  Returns the count read (short: end of file or error, see ferror). */
static size_t read_exact(FILE *f, void *buf, size_t n)
{
    return n > 0 ? fread(buf, 1, n, f) : 0;
}

static int read_error(FILE *f, const char *path, const char *what, char *msg, size_t msg_len)
{
    if (ferror(f))
        return fail(msg, msg_len, VKR__NPY_E_IO, "%s: reading %s failed: %s", path, what,
                    strerror(errno));
    return fail(msg, msg_len, VKR__NPY_E_FORMAT, "%s: truncated file: it ends within %s", path, what);
}

int vkr__npy_read_file(const char *path, uint64_t max_data_bytes, vkr__npy_array_t *out,
                       char *msg, size_t msg_len)
{
    char sub[VKR__NPY_ERROR_MAX];
    uint8_t pre[NPY_MAGIC_LEN + 2 + 4];
    struct stat st;
    npy_header_t h;
    FILE *f = NULL;
    char *header = NULL;
    uint8_t *data = NULL;
    uint64_t elements = 0, bytes = 0;
    uint32_t header_len;
    unsigned len_bytes = 0;
    size_t got, cap;
    bool regular;
    int rc;

    if (out == NULL || path == NULL)
        return fail(msg, msg_len, VKR__NPY_E_ARG, "out or path is NULL");
    memset(out, 0, sizeof *out);
    f = fopen(path, "rb");
    if (f == NULL)
        return fail(msg, msg_len, VKR__NPY_E_IO, "%s: %s", path, strerror(errno));
    if (fstat(fileno(f), &st) != 0) {
        rc = fail(msg, msg_len, VKR__NPY_E_IO, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (S_ISDIR(st.st_mode)) {
        rc = fail(msg, msg_len, VKR__NPY_E_IO, "%s: %s", path, strerror(EISDIR));
        goto out;
    }
    regular = S_ISREG(st.st_mode);

    got = read_exact(f, pre, NPY_MAGIC_LEN + 2);
    if (got < NPY_MAGIC_LEN + 2) {
        if (ferror(f)) {
            rc = read_error(f, path, "the magic string", msg, msg_len);
            goto out;
        }
        rc = fail(msg, msg_len, VKR__NPY_E_FORMAT,
                  "%s: not a .npy file: %zu bytes is too short for the magic string", path, got);
        goto out;
    }
    rc = parse_magic(pre, got, &len_bytes, sub, sizeof sub);
    if (rc != 0) {
        rc = fail(msg, msg_len, rc, "%s: %s", path, sub);
        goto out;
    }
    if (read_exact(f, pre + NPY_MAGIC_LEN + 2, len_bytes) != len_bytes) {
        rc = read_error(f, path, "the header length", msg, msg_len);
        goto out;
    }
    header_len = read_le(pre + NPY_MAGIC_LEN + 2, len_bytes);
    if (header_len > VKR__NPY_MAX_HEADER_BYTES) {
        rc = fail(msg, msg_len, VKR__NPY_E_FORMAT,
                  "%s: header length %" PRIu32 " is over the limit of %u bytes", path, header_len,
                  VKR__NPY_MAX_HEADER_BYTES);
        goto out;
    }
    header = malloc(header_len > 0 ? header_len : 1);
    if (header == NULL) {
        rc = fail(msg, msg_len, VKR__NPY_E_NOMEM, "%s: cannot allocate the header", path);
        goto out;
    }
    if (read_exact(f, header, header_len) != header_len) {
        rc = read_error(f, path, "the header", msg, msg_len);
        goto out;
    }
    rc = parse_dict(header, header_len, &h, sub, sizeof sub);
    if (rc == 0)
        rc = check_header(&h, max_data_bytes, &elements, &bytes, sub, sizeof sub);
    if (rc != 0) {
        rc = fail(msg, msg_len, rc, "%s: %s", path, sub);
        goto out;
    }

    if (regular) {
        /* The size is known: compare before allocating. */
        uint64_t pre_len = NPY_MAGIC_LEN + 2 + (uint64_t)len_bytes + header_len;
        uint64_t size = st.st_size > 0 ? (uint64_t)st.st_size : 0;
        uint64_t remain = size > pre_len ? size - pre_len : 0;

        if (remain < bytes) {
            rc = fail(msg, msg_len, VKR__NPY_E_FORMAT,
                      "%s: truncated data: shape needs %" PRIu64 " bytes, the file holds %" PRIu64,
                      path, bytes, remain);
            goto out;
        }
        if (remain > bytes) {
            rc = fail(msg, msg_len, VKR__NPY_E_FORMAT,
                      "%s: %" PRIu64 " trailing bytes after the %" PRIu64 " data bytes", path,
                      remain - bytes, bytes);
            goto out;
        }
        cap = (size_t)bytes;
    } else {
        cap = bytes < NPY_PIPE_CHUNK ? (size_t)bytes : NPY_PIPE_CHUNK;
    }
    if (bytes > 0) {
        data = malloc(cap);
        if (data == NULL) {
            rc = fail(msg, msg_len, VKR__NPY_E_NOMEM, "%s: cannot allocate %zu bytes", path, cap);
            goto out;
        }
    }
    got = 0;
    while (got < bytes) {
        size_t n;

        if (got == cap) {
            size_t next = cap > (size_t)bytes / 2 ? (size_t)bytes : cap * 2;
            uint8_t *grown = realloc(data, next);

            if (grown == NULL) {
                rc = fail(msg, msg_len, VKR__NPY_E_NOMEM, "%s: cannot allocate %zu bytes", path,
                          next);
                goto out;
            }
            data = grown;
            cap = next;
        }
        n = fread(data + got, 1, cap - got, f);
        got += n;
        if (n == 0)
            break;
    }
    if (got < bytes) {
        if (ferror(f)) {
            rc = read_error(f, path, "the data", msg, msg_len);
            goto out;
        }
        rc = fail(msg, msg_len, VKR__NPY_E_FORMAT,
                  "%s: truncated data: shape needs %" PRIu64 " bytes, the file holds %zu", path,
                  bytes, got);
        goto out;
    }
    if (!regular && fgetc(f) != EOF) {
        rc = fail(msg, msg_len, VKR__NPY_E_FORMAT, "%s: trailing bytes after the %" PRIu64
                  " data bytes", path, bytes);
        goto out;
    }
    if (data != NULL && !host_is_little_endian())
        swap32(data, (size_t)elements);
    out->rank = h.rank;
    memcpy(out->shape, h.shape, sizeof out->shape);
    out->n_elements = elements;
    out->data = (float *)(void *)data;
    data = NULL;
    rc = VKR__NPY_OK;

out:
    free(data);
    free(header);
    if (f != NULL)
        fclose(f);
    return rc;
}

void vkr__npy_free(vkr__npy_array_t *a)
{
    if (a == NULL)
        return;
    free(a->data);
    memset(a, 0, sizeof *a);
}

/* ---------------------------------------------------------------- writer */

int vkr__npy_write(FILE *f, const float *data, int rank, const int64_t *shape, char *msg,
                   size_t msg_len)
{
    /* Longest header: 60 fixed chars, 8 dims of 19 digits + ", ", growth padding, alignment. */
    char header[512];
    size_t hlen, total;
    uint64_t n = 1;
    int i, growth;

    if (f == NULL || rank < 0 || rank > VKR__NPY_MAX_RANK || (rank > 0 && shape == NULL))
        return fail(msg, msg_len, VKR__NPY_E_ARG, "bad arguments: rank %d (0..%d), shape %s",
                    rank, VKR__NPY_MAX_RANK, shape == NULL ? "NULL" : "given");
    for (i = 0; i < rank; i++) {
        uint64_t d;

        if (shape[i] < 0)
            return fail(msg, msg_len, VKR__NPY_E_ARG, "shape[%d] is %" PRId64 ": negative", i,
                        shape[i]);
        d = (uint64_t)shape[i];
        if (d != 0 && n > UINT64_MAX / sizeof(float) / d)
            return fail(msg, msg_len, VKR__NPY_E_ARG, "shape overflows 64 bits");
        n *= d;
    }
    if (n * sizeof(float) > (uint64_t)SIZE_MAX)
        return fail(msg, msg_len, VKR__NPY_E_ARG, "array does not fit in memory");
    if (n > 0 && data == NULL)
        return fail(msg, msg_len, VKR__NPY_E_ARG, "data is NULL for %" PRIu64 " values", n);

    /* numpy's _write_array_header: sorted keys, repr of the shape tuple, growth spaces. */
    hlen = (size_t)snprintf(header, sizeof header, "%s",
                            "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    for (i = 0; i < rank; i++)
        hlen += (size_t)snprintf(header + hlen, sizeof header - hlen, "%s%" PRId64,
                                 i > 0 ? ", " : "", shape[i]);
    hlen += (size_t)snprintf(header + hlen, sizeof header - hlen, "%s), }", rank == 1 ? "," : "");
    if (rank > 0) {
        char first[24];

        growth = NPY_GROWTH_DIGITS - snprintf(first, sizeof first, "%" PRId64, shape[0]);
        for (; growth > 0; growth--)
            header[hlen++] = ' ';
    }
    /* numpy's _wrap_header: pad with spaces so that magic + length + header + '\n' is a multiple
     * of 64 (a full 64 extra when already aligned, as numpy does). */
    total = NPY_MAGIC_LEN + 2 + 2 + hlen + 1;
    for (i = (int)(NPY_ALIGN - total % NPY_ALIGN); i > 0; i--)
        header[hlen++] = ' ';
    header[hlen++] = '\n';

    {
        uint8_t pre[NPY_MAGIC_LEN + 4];

        memcpy(pre, NPY_MAGIC, NPY_MAGIC_LEN);
        pre[6] = 1;
        pre[7] = 0;
        pre[8] = (uint8_t)(hlen & 0xff);
        pre[9] = (uint8_t)(hlen >> 8);
        if (fwrite(pre, 1, sizeof pre, f) != sizeof pre || fwrite(header, 1, hlen, f) != hlen)
            return fail(msg, msg_len, VKR__NPY_E_IO, "writing the header failed: %s", strerror(errno));
    }
    if (n == 0)
        return VKR__NPY_OK;
    if (host_is_little_endian()) {
        if (fwrite(data, sizeof(float), (size_t)n, f) != (size_t)n)
            return fail(msg, msg_len, VKR__NPY_E_IO, "writing the data failed: %s", strerror(errno));
    } else {
        float chunk[1024];
        size_t done = 0;

        while (done < n) {
            size_t k = (size_t)n - done < 1024 ? (size_t)n - done : 1024;

            memcpy(chunk, data + done, k * sizeof(float));
            swap32(chunk, k);
            if (fwrite(chunk, sizeof(float), k, f) != k)
                return fail(msg, msg_len, VKR__NPY_E_IO, "writing the data failed: %s",
                            strerror(errno));
            done += k;
        }
    }
    return VKR__NPY_OK;
}

int vkr__npy_write_file(const char *path, const float *data, int rank, const int64_t *shape,
                        char *msg, size_t msg_len)
{
    char sub[VKR__NPY_ERROR_MAX];
    FILE *f;
    int rc;

    if (path == NULL)
        return fail(msg, msg_len, VKR__NPY_E_ARG, "path is NULL");
    f = fopen(path, "wb");
    if (f == NULL)
        return fail(msg, msg_len, VKR__NPY_E_IO, "%s: %s", path, strerror(errno));
    rc = vkr__npy_write(f, data, rank, shape, sub, sizeof sub);
    if (rc != VKR__NPY_OK) {
        fclose(f);
        return fail(msg, msg_len, rc, "%s: %s", path, sub);
    }
    if (fclose(f) != 0)
        return fail(msg, msg_len, VKR__NPY_E_IO, "%s: %s", path, strerror(errno));
    return VKR__NPY_OK;
}
