/* Compilation of the embedded compute shaders to SPIR-V with glslang's C API (Vulkan 1.1, SPIR-V
 * 1.3).  The quoted #include lines of a shader are spliced with the embedded texts they name. */
#ifndef VKR_DAEMON_SHADER_COMPILER_H
#define VKR_DAEMON_SHADER_COMPILER_H

#include <stddef.h>
#include <stdint.h>

#include "vkr_proto.h"

/* The text of embedded shader `name` with every `#include "X"` that names an embedded file
 * replaced by that file's text (recursively, each file at most once; a bare name is looked up
 * next to the including file first).  `#line` directives keep glslang's messages pointing at
 * the original files.  On success *out is a malloc'd NUL-terminated string the caller frees.
 * Returns VKR_OK, VKR_E_BACKEND (unknown name, include nesting too deep) or VKR_E_NOMEM. */
int vkr__shader_splice(const char *name, char **out, vkr_error_t *err);

/* Compile embedded compute shader `name` to SPIR-V; logs the time it took.  defines (NULL: none):
 * lines such as "#define VKR_FP64 1\n" put right after the shader's #version line.  On success *words is
 * a malloc'd array of *n_words 32-bit words the caller frees.  Returns VKR_OK, or VKR_E_BACKEND
 * with glslang's info log in the message, or VKR_E_NOMEM.  Thread-safe; glslang's process-wide
 * state is initialised once on first use and lives until exit. */
int vkr__shader_compile(const char *name, const char *defines, uint32_t **words, size_t *n_words, vkr_error_t *err);

#endif
