/* Internal: the .npy reader and writer of the vkresample CLI and tests (not installed, not part
 * of libvkresample).  Reads format versions 1.0, 2.0 and 3.0 holding a little-endian float32
 * ('<f4') array in C order with at most VKR__NPY_MAX_RANK dims; refuses everything else with a
 * message naming what was wrong.  Writes version 1.0 files as numpy.save does. */
#ifndef VKR_NPY_H
#define VKR_NPY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define VKR__NPY_MAX_RANK 8
#define VKR__NPY_MAX_HEADER_BYTES 65536u   /* header dict bytes a reader accepts (v2/v3 allow 4 GiB) */
#define VKR__NPY_ERROR_MAX 256u            /* bytes of an error message buffer, NUL included */

enum {
    VKR__NPY_OK = 0,
    VKR__NPY_E_IO = -1,       /* the file could not be opened, read or written (errno text in msg) */
    VKR__NPY_E_FORMAT = -2,   /* not a .npy file, a malformed one, or one vkresample does not take */
    VKR__NPY_E_NOMEM = -3,
    VKR__NPY_E_ARG = -4,      /* bad argument to a writer (rank, negative extent, NULL data) */
};

/* A float32 array in C order.  data holds n_elements floats (NULL when n_elements is 0) and is
 * owned by the struct: release it with vkr__npy_free. */
typedef struct {
    int rank;
    int64_t shape[VKR__NPY_MAX_RANK];
    uint64_t n_elements;
    float *data;
} vkr__npy_array_t;

/* Parse a whole .npy file held in buf[0..len).  max_data_bytes bounds the array's bytes.  On
 * VKR__NPY_OK *out holds a copy of the data (caller frees with vkr__npy_free); otherwise *out is
 * zeroed and msg (msg_len bytes, may be NULL) says what was wrong.  Never reads outside buf. */
int vkr__npy_parse(const void *buf, size_t len, uint64_t max_data_bytes, vkr__npy_array_t *out,
                   char *msg, size_t msg_len);

/* Read the .npy file at path ("-" is not special).  The header is bounded by
 * VKR__NPY_MAX_HEADER_BYTES and the data by max_data_bytes and, for a regular file, by the file's
 * size, before anything is allocated; data from a pipe is read in growing chunks.  Returns as
 * vkr__npy_parse; VKR__NPY_E_IO when the file cannot be opened or read. */
int vkr__npy_read_file(const char *path, uint64_t max_data_bytes, vkr__npy_array_t *out,
                       char *msg, size_t msg_len);

/* Write a version 1.0 .npy file of a '<f4' C-order array to f (the stream stays open and
 * unflushed-state is the caller's).  data may be NULL only when the array is empty.  Returns
 * VKR__NPY_OK, VKR__NPY_E_ARG (rank outside 0..8, negative extent, element count overflow) or
 * VKR__NPY_E_IO, with msg filled. */
int vkr__npy_write(FILE *f, const float *data, int rank, const int64_t *shape, char *msg,
                   size_t msg_len);

/* vkr__npy_write to a new file at path (created or truncated, then closed).  On failure the
 * partial file is left for the caller to remove. */
int vkr__npy_write_file(const char *path, const float *data, int rank, const int64_t *shape,
                        char *msg, size_t msg_len);

/* Free a's data and zero it.  NULL is ignored. */
void vkr__npy_free(vkr__npy_array_t *a);

#endif /* VKR_NPY_H */
