/* Memfd tensors in the daemon.  A client's memfd is mapped only after it is proven that no access
 * within the tensor can fault: it lives on shmem (hugetlbfs could fail a fault when its pool is
 * empty), it is sealed against shrinking (so the size checked now holds for the mapping's whole
 * life) and it is long enough.  Everything else a client can do to its memfd (write to it, punch
 * holes) changes bytes, never mapping validity. */
#include "memfd.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

static size_t page_bytes(void)
{
    long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? (size_t)p : 4096u;
}

void vkr__memfd_unmap(vkr__mapping_t *m)
{
    if (m->base != NULL)
        munmap(m->base, m->map_bytes);
    memset(m, 0, sizeof *m);
}

int vkr__memfd_check(int fd, uint64_t offset, uint64_t bytes, bool writable, const char *field, uint64_t *dev, uint64_t *ino,
                     vkr_error_t *err)
{
    struct statfs fs;
    struct stat st;
    int seals;

    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        return vkr_proto_error_set(err, VKR_E_FD, field, "the descriptor is not a memfd (not a regular file)");
    if (fstatfs(fd, &fs) != 0 || (unsigned long)fs.f_type != (unsigned long)TMPFS_MAGIC)
        return vkr_proto_error_set(err, VKR_E_FD, field, "the descriptor is not a memfd on shmem (filesystem 0x%lx; hugetlbfs memfds are "
                                   "refused)", (unsigned long)fs.f_type);
    seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0)
        return vkr_proto_error_set(err, VKR_E_FD, field, "the memfd cannot be sealed (%s): create it with memfd_create(..., "
                                   "MFD_ALLOW_SEALING)", strerror(errno));
    if (!(seals & F_SEAL_SHRINK))
        return vkr_proto_error_set(err, VKR_E_FD, field, "the memfd is not sealed against shrinking: add F_SEAL_SHRINK "
                                   "(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK)) before sending it");
    if (writable && (seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)))
        return vkr_proto_error_set(err, VKR_E_FD, field, "the output memfd is sealed against writing (seals 0x%x)", (unsigned)seals);
    if ((uint64_t)st.st_size < offset || (uint64_t)st.st_size - offset < bytes)
        return vkr_proto_error_set(err, VKR_E_FD, field, "the memfd holds %llu bytes; the tensor needs %llu (offset %llu + %llu bytes)",
                                   (unsigned long long)st.st_size, (unsigned long long)(offset + bytes), (unsigned long long)offset,
                                   (unsigned long long)bytes);
    *dev = (uint64_t)st.st_dev;
    *ino = (uint64_t)st.st_ino;
    return VKR_OK;
}

int vkr__memfd_map_checked(int fd, uint64_t offset, uint64_t bytes, bool writable, const char *field, vkr__mapping_t *m,
                           vkr_error_t *err)
{
    uint64_t start, span;
    void *p;

    memset(m, 0, sizeof *m);
    if (bytes == 0)
        return VKR_OK;
    start = offset - offset % page_bytes();
    span = offset - start + bytes;
    if (span > SIZE_MAX)
        return vkr_proto_error_set(err, VKR_E_NOMEM, field, "a mapping of %llu bytes does not fit the address space",
                                   (unsigned long long)span);
    p = mmap(NULL, (size_t)span, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, (off_t)start);
    if (p == MAP_FAILED)
        return vkr_proto_error_set(err, errno == ENOMEM ? VKR_E_NOMEM : VKR_E_FD, field, "mmap of %llu bytes at offset %llu%s failed: %s",
                                   (unsigned long long)span, (unsigned long long)start, writable ? " for writing" : "", strerror(errno));
    m->base = p;
    m->map_bytes = (size_t)span;
    m->data = (uint8_t *)p + (offset - start);
    return VKR_OK;
}

int vkr__memfd_map(int fd, uint64_t offset, uint64_t bytes, bool writable, const char *field, vkr__mapping_t *m, vkr_error_t *err)
{
    uint64_t dev, ino;
    int rc;

    memset(m, 0, sizeof *m);
    rc = vkr__memfd_check(fd, offset, bytes, writable, field, &dev, &ino, err);
    return rc != VKR_OK ? rc : vkr__memfd_map_checked(fd, offset, bytes, writable, field, m, err);
}

int vkr__memfd_create(uint64_t bytes, vkr__mapping_t *m, int *fd_out, vkr_error_t *err)
{
    int fd = -1, rc;
    void *p = NULL;

    memset(m, 0, sizeof *m);
    *fd_out = -1;
    if (bytes > SIZE_MAX || bytes > (uint64_t)INT64_MAX)
        return vkr_proto_error_set(err, VKR_E_NOMEM, "output", "an output of %llu bytes does not fit the address space",
                                   (unsigned long long)bytes);
    fd = memfd_create("vkresample-output", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) {
        rc = vkr_proto_error_set(err, VKR_E_NOMEM, "output", "memfd_create: %s", strerror(errno));
        goto fail;
    }
    if (ftruncate(fd, (off_t)bytes) != 0) {
        rc = vkr_proto_error_set(err, VKR_E_NOMEM, "output", "ftruncate of the output memfd to %llu bytes: %s", (unsigned long long)bytes,
                                 strerror(errno));
        goto fail;
    }
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
        rc = vkr_proto_error_set(err, VKR_E_NOMEM, "output", "sealing the output memfd: %s", strerror(errno));
        goto fail;
    }
    if (bytes > 0) {
        p = mmap(NULL, (size_t)bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
            rc = vkr_proto_error_set(err, VKR_E_NOMEM, "output", "mmap of the %llu-byte output memfd: %s", (unsigned long long)bytes,
                                     strerror(errno));
            goto fail;
        }
        m->base = p;
        m->map_bytes = (size_t)bytes;
        m->data = p;
    }
    *fd_out = fd;
    return VKR_OK;

fail:
    if (fd >= 0)
        close(fd);
    return rc;
}
