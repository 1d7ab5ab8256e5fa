/* Memfd tensors in the daemon: checking a client's memfd before it is mapped (so that no access
 * can raise SIGBUS), mapping a tensor's byte range, and creating the daemon's own output memfds. */
#ifndef VKR_DAEMON_MEMFD_H
#define VKR_DAEMON_MEMFD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vkr_proto.h"

/* A tensor's bytes in a mapping.  data is NULL for a tensor of 0 bytes (nothing mapped). */
typedef struct {
    void *base;           /* what mmap returned (page-aligned), or NULL */
    size_t map_bytes;     /* the mapping's length */
    uint8_t *data;        /* the tensor's first byte within it */
} vkr__mapping_t;

/* Check that fd is a memfd on shmem (not hugetlbfs) sealed against shrinking (F_SEAL_SHRINK),
 * at least offset + bytes long and, when writable, not sealed against writing; then map
 * [offset, offset + bytes) shared, read-only or read-write.  field names the tensor in errors
 * ("input", "output").  The fd stays the caller's (the mapping outlives it).  Returns VKR_OK or
 * VKR_E_FD (the check that failed and the values), VKR_E_NOMEM with *err filled. */
int vkr__memfd_map(int fd, uint64_t offset, uint64_t bytes, bool writable, const char *field, vkr__mapping_t *m, vkr_error_t *err);

/* The checks of vkr__memfd_map alone (nothing mapped); *dev / *ino: the memfd's identity. */
int vkr__memfd_check(int fd, uint64_t offset, uint64_t bytes, bool writable, const char *field, uint64_t *dev, uint64_t *ino,
                     vkr_error_t *err);

/* The mapping of vkr__memfd_map alone, for a memfd vkr__memfd_check accepted. */
int vkr__memfd_map_checked(int fd, uint64_t offset, uint64_t bytes, bool writable, const char *field, vkr__mapping_t *m,
                           vkr_error_t *err);

/* Create a memfd of bytes (sealed against shrinking, growing and further sealing) and map it
 * read-write.  *fd_out is the caller's to pass on and close.  Returns VKR_OK or VKR_E_NOMEM. */
int vkr__memfd_create(uint64_t bytes, vkr__mapping_t *m, int *fd_out, vkr_error_t *err);

/* Unmap (NULL base is ignored) and zero *m. */
void vkr__memfd_unmap(vkr__mapping_t *m);

#endif
