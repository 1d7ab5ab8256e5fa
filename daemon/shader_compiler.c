/* Shader compilation: turns an embedded compute shader (shader_sources.h) into SPIR-V with
 * glslang's C API, targeting Vulkan 1.1 / SPIR-V 1.3.  glslang 12's C API has no include
 * callback, so the quoted `#include` lines are spliced here with the embedded texts they name,
 * with GL_GOOGLE_cpp_style_line_directive `#line`s so diagnostics name the original file and line.
 * Owns glslang's process-wide initialisation (once, never finalised). */
#include "shader_compiler.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <glslang/Include/glslang_c_interface.h>
#include <glslang/Public/resource_limits_c.h>

#include "log.h"
#include "shader_sources.h"

#define SPLICE_MAX_FILES 64    /* distinct files one shader may pull in */
#define SPLICE_MAX_DEPTH 16    /* include nesting */
#define SPLICE_NAME_MAX 256    /* bytes of an include name */

typedef struct {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf_t;

typedef struct {
    const char *names[SPLICE_MAX_FILES];   /* files already spliced (pointers into the table) */
    int n;
    bool line_directives;                  /* the top file has #version: emit #line */
} splice_state_t;

static void sb_put(sbuf_t *sb, const char *s, size_t n)
{
    if (sb->oom)
        return;
    if (sb->len + n + 1 > sb->cap) {
        size_t cap = sb->cap ? sb->cap : 4096;
        while (cap < sb->len + n + 1)
            cap *= 2;
        char *p = realloc(sb->p, cap);
        if (!p) {
            sb->oom = true;
            return;
        }
        sb->p = p;
        sb->cap = cap;
    }
    memcpy(sb->p + sb->len, s, n);
    sb->len += n;
    sb->p[sb->len] = '\0';
}

static void sb_printf(sbuf_t *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf_t *sb, const char *fmt, ...)
{
    char tmp[SPLICE_NAME_MAX + 64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        sb_put(sb, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static const vkr_embedded_source_t *find_source(const char *name)
{
    for (const vkr_embedded_source_t *s = vkr_embedded_sources; s->name; s++)
        if (strcmp(s->name, name) == 0)
            return s;
    return NULL;
}

/* If line [p, end) is `#include "X"`, copy X into name and return true. */
static bool parse_include(const char *p, const char *end, char name[SPLICE_NAME_MAX])
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (p == end || *p++ != '#')
        return false;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if ((size_t)(end - p) < 7 || memcmp(p, "include", 7) != 0)
        return false;
    p += 7;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (p == end || *p++ != '"')
        return false;
    const char *q = memchr(p, '"', (size_t)(end - p));
    if (!q || q == p || (size_t)(q - p) >= SPLICE_NAME_MAX)
        return false;
    memcpy(name, p, (size_t)(q - p));
    name[q - p] = '\0';
    return true;
}

/* Resolve include `inc` written in file `from`: next to `from` first, then from the root. */
static const vkr_embedded_source_t *resolve_include(const char *from, const char *inc)
{
    const char *slash = strrchr(from, '/');
    if (slash) {
        char path[2 * SPLICE_NAME_MAX];
        int n = snprintf(path, sizeof path, "%.*s/%s", (int)(slash - from), from, inc);
        if (n > 0 && (size_t)n < sizeof path) {
            const vkr_embedded_source_t *s = find_source(path);
            if (s)
                return s;
        }
    }
    return find_source(inc);
}

static int splice_file(const vkr_embedded_source_t *src, int depth, splice_state_t *st, sbuf_t *sb, vkr_error_t *err)
{
    if (depth > SPLICE_MAX_DEPTH)
        return vkr_proto_error_set(err, VKR_E_BACKEND, "backend", "shader %s: #include nesting deeper than %d", src->name,
                                   SPLICE_MAX_DEPTH);
    if (st->n == SPLICE_MAX_FILES)
        return vkr_proto_error_set(err, VKR_E_BACKEND, "backend", "shader %s: more than %d included files", src->name,
                                   SPLICE_MAX_FILES);
    st->names[st->n++] = src->name;
    const char *p = src->text;
    int line = 1;
    while (*p) {
        const char *nl = strchr(p, '\n');
        const char *end = nl ? nl : p + strlen(p);
        const char *next = nl ? nl + 1 : end;
        char inc[SPLICE_NAME_MAX];
        const vkr_embedded_source_t *child = parse_include(p, end, inc) ? resolve_include(src->name, inc) : NULL;
        if (!child) {
            /* An ordinary line, or an include we do not serve (left to glslang: it is either in an
             * inactive #if branch, like spec_common.h's <math.h>, or an error glslang reports). */
            sb_put(sb, p, (size_t)(end - p));
            sb_put(sb, "\n", 1);
            if (depth == 0 && line == 1 && st->line_directives)
                sb_printf(sb, "#extension GL_GOOGLE_cpp_style_line_directive : require\n#line 2 \"%s\"\n", src->name);
        } else {
            bool seen = false;
            for (int i = 0; i < st->n; i++)
                seen |= st->names[i] == child->name;
            if (seen) {
                sb_put(sb, "\n", 1);   /* already spliced: its include guard would skip it anyway */
            } else {
                if (st->line_directives)
                    sb_printf(sb, "#line 1 \"%s\"\n", child->name);
                int rc = splice_file(child, depth + 1, st, sb, err);
                if (rc)
                    return rc;
                if (st->line_directives)
                    sb_printf(sb, "#line %d \"%s\"\n", line + 1, src->name);
            }
        }
        p = next;
        line++;
    }
    return VKR_OK;
}

int vkr__shader_splice(const char *name, char **out, vkr_error_t *err)
{
    const vkr_embedded_source_t *src = find_source(name);
    if (!src)
        return vkr_proto_error_set(err, VKR_E_BACKEND, "backend", "no embedded shader source named '%s'", name);
    splice_state_t st = {.n = 0, .line_directives = strncmp(src->text, "#version", 8) == 0};
    sbuf_t sb = {0};
    int rc = splice_file(src, 0, &st, &sb, err);
    if (rc == VKR_OK && sb.oom)
        rc = vkr_proto_error_set(err, VKR_E_NOMEM, "backend", "out of memory splicing shader %s", name);
    if (rc) {
        free(sb.p);
        return rc;
    }
    *out = sb.p;
    return VKR_OK;
}

static pthread_once_t glslang_once = PTHREAD_ONCE_INIT;
static int glslang_ready;

static void glslang_init_once(void) { glslang_ready = glslang_initialize_process(); }

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Fill *err with a glslang failure: the stage that failed and the first part of its log; the
 * whole log goes to the daemon log. */
static int glslang_fail(vkr_error_t *err, const char *name, const char *stage, const char *log)
{
    if (!log || !*log)
        log = "(no log)";
    vkr__log(VKR_LOG_ERROR, "glslang %s of %s failed:\n%s", stage, name, log);
    return vkr_proto_error_set(err, VKR_E_BACKEND, "backend", "glslang %s of shader %s failed: %s", stage, name, log);
}

/* text with `defines` and a #line 2 after its first line (the #version line); NULL: out of memory. */
static char *with_defines(const char *text, const char *defines)
{
    const char *nl = strchr(text, '\n');
    const size_t head = nl ? (size_t)(nl - text) + 1 : strlen(text);
    static const char line2[] = "#line 2\n";
    const size_t n = strlen(text) + strlen(defines) + sizeof line2 + 1;
    char *out = malloc(n);
    if (!out)
        return NULL;
    memcpy(out, text, head);
    snprintf(out + head, n - head, "%s%s%s", nl ? "" : "\n", defines, line2);
    strcat(out, text + head);
    return out;
}

int vkr__shader_compile(const char *name, const char *defines, uint32_t **words, size_t *n_words, vkr_error_t *err)
{
    const int messages = GLSLANG_MSG_SPV_RULES_BIT | GLSLANG_MSG_VULKAN_RULES_BIT;
    double t0 = now_ms();
    pthread_once(&glslang_once, glslang_init_once);
    if (!glslang_ready)
        return vkr_proto_error_set(err, VKR_E_BACKEND, "backend", "glslang_initialize_process failed");

    char *text = NULL;
    glslang_shader_t *shader = NULL;
    glslang_program_t *program = NULL;
    int rc = vkr__shader_splice(name, &text, err);
    if (rc)
        goto out;
    if (defines && *defines) {
        char *t = with_defines(text, defines);
        if (!t) {
            rc = vkr_proto_error_set(err, VKR_E_NOMEM, "backend", "out of memory for the defines of shader %s", name);
            goto out;
        }
        free(text);
        text = t;
    }

    const glslang_input_t input = {
        .language = GLSLANG_SOURCE_GLSL,
        .stage = GLSLANG_STAGE_COMPUTE,
        .client = GLSLANG_CLIENT_VULKAN,
        .client_version = GLSLANG_TARGET_VULKAN_1_1,
        .target_language = GLSLANG_TARGET_SPV,
        .target_language_version = GLSLANG_TARGET_SPV_1_3,
        .code = text,
        .default_version = 450,
        .default_profile = GLSLANG_NO_PROFILE,
        .force_default_version_and_profile = false,
        .forward_compatible = false,
        .messages = messages,
        .resource = glslang_default_resource(),
    };
    shader = glslang_shader_create(&input);
    if (!shader) {
        rc = vkr_proto_error_set(err, VKR_E_NOMEM, "backend", "glslang_shader_create failed for %s", name);
        goto out;
    }
    if (!glslang_shader_preprocess(shader, &input)) {
        rc = glslang_fail(err, name, "preprocessing", glslang_shader_get_info_log(shader));
        goto out;
    }
    if (!glslang_shader_parse(shader, &input)) {
        rc = glslang_fail(err, name, "compilation", glslang_shader_get_info_log(shader));
        goto out;
    }
    program = glslang_program_create();
    if (!program) {
        rc = vkr_proto_error_set(err, VKR_E_NOMEM, "backend", "glslang_program_create failed for %s", name);
        goto out;
    }
    glslang_program_add_shader(program, shader);
    if (!glslang_program_link(program, messages)) {
        rc = glslang_fail(err, name, "link", glslang_program_get_info_log(program));
        goto out;
    }
    glslang_program_SPIRV_generate(program, GLSLANG_STAGE_COMPUTE);
    const char *spv_msg = glslang_program_SPIRV_get_messages(program);
    if (spv_msg && *spv_msg)
        vkr__log(VKR_LOG_WARN, "glslang SPIR-V messages for %s: %s", name, spv_msg);
    size_t n = glslang_program_SPIRV_get_size(program);
    if (n == 0) {
        rc = vkr_proto_error_set(err, VKR_E_BACKEND, "backend", "glslang produced no SPIR-V for %s", name);
        goto out;
    }
    uint32_t *w = malloc(n * sizeof *w);
    if (!w) {
        rc = vkr_proto_error_set(err, VKR_E_NOMEM, "backend", "out of memory for the SPIR-V of %s", name);
        goto out;
    }
    glslang_program_SPIRV_get(program, w);
    *words = w;
    *n_words = n;
    vkr__log(VKR_LOG_INFO, "compiled shader %s in %.1f ms (%zu SPIR-V words)", name, now_ms() - t0, n);
    rc = VKR_OK;
out:
    if (program)
        glslang_program_delete(program);
    if (shader)
        glslang_shader_delete(shader);
    free(text);
    return rc;
}
