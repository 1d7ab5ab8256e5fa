/* The shader and kernel-spec sources embedded in the daemon at build time: shaders/meson.build runs
 * shaders/embed_sources.py, which writes shader_sources.c defining these two symbols.  Names are
 * paths relative to shaders/ ("spec/interp_rules.h", "interpolate_nearest.comp"). */
#ifndef VKR_DAEMON_SHADER_SOURCES_H
#define VKR_DAEMON_SHADER_SOURCES_H

typedef struct {
    const char *name;   /* path relative to shaders/; NULL in the terminating entry */
    const char *text;   /* the file's full text, NUL-terminated */
} vkr_embedded_source_t;

/* Every embedded file, in the order shaders/meson.build lists them, terminated by {0, 0}. */
extern const vkr_embedded_source_t vkr_embedded_sources[];

/* 64-bit FNV-1a over every (name, NUL, text): keys caches on the exact sources of this build. */
extern const unsigned long long vkr_embedded_sources_hash;

#endif
