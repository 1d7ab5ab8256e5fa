/* libvkresample: tensors whose memory the library owns.  A heap tensor is one malloc'd block; a
 * memfd tensor (vkr_tensor_alloc, or an output the daemon wrote into a memfd) is a shared mapping
 * of a memfd sealed against shrinking and growing, so the daemon can map the same pages and
 * neither side can make the other's mapping fault. */
#include "client_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MEMFD_SEALS (F_SEAL_SHRINK | F_SEAL_GROW)

/* A sealable memfd of bytes, not yet sealed.  Returns the fd or -1 (errno set). */
static int memfd_of_size(const char *name, uint64_t bytes)
{
    int fd, saved;

    if (bytes > (uint64_t)INT64_MAX) {
        errno = EFBIG;
        return -1;
    }
    fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -1;
    if (ftruncate(fd, (off_t)bytes) != 0) {
        saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int vkr__memfd_copy(const void *data, uint64_t bytes)
{
    const uint8_t *p = data;
    uint64_t done = 0;
    int fd, saved;

    fd = memfd_of_size("vkresample-input", bytes);
    if (fd < 0)
        return -1;
    /* write(), not mmap + memcpy: pages are filled once, never zeroed first */
    while (done < bytes) {
        size_t step = bytes - done > (1u << 30) ? (1u << 30) : (size_t)(bytes - done);
        ssize_t n = pwrite(fd, p + done, step, (off_t)done);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto fail;
        done += (uint64_t)n;
    }
    if (fcntl(fd, F_ADD_SEALS, MEMFD_SEALS) != 0)
        goto fail;
    return fd;

fail:
    saved = errno != 0 ? errno : EIO;
    close(fd);
    errno = saved;
    return -1;
}

int vkr__storage_create(uint64_t bytes, vkr_tensor_storage_t **out)
{
    vkr_tensor_storage_t *st = NULL;
    int fd = -1;

    *out = NULL;
    if (bytes > SIZE_MAX)
        return VKR_E_NOMEM;
    st = calloc(1, sizeof *st);
    if (st == NULL)
        goto fail;
    fd = memfd_of_size("vkresample-tensor", bytes);
    if (fd < 0 || fcntl(fd, F_ADD_SEALS, MEMFD_SEALS) != 0)
        goto fail;
    st->fd = fd;
    st->map_bytes = (size_t)bytes;
    *out = st;
    return VKR_OK;

fail:
    if (fd >= 0)
        close(fd);
    free(st);
    return VKR_E_NOMEM;
}

int vkr__storage_map(vkr_tensor_storage_t *st)
{
    void *p;

    if (st->map != NULL || st->map_bytes == 0)
        return VKR_OK;
    p = mmap(NULL, st->map_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, st->fd, 0);
    if (p == MAP_FAILED)
        return VKR_E_NOMEM;
    st->map = p;
    return VKR_OK;
}

void vkr__storage_free(vkr_tensor_storage_t *st)
{
    if (st == NULL)
        return;
    if (st->map != NULL)
        munmap(st->map, st->map_bytes);
    if (st->fd >= 0)
        close(st->fd);
    free(st);
}

VKR_EXPORT int vkr_tensor_alloc(int rank, const int64_t *shape, vkr_tensor_t *out)
{
    vkr_tensor_storage_t *st = NULL;
    uint64_t elements;
    int rc, i;

    if (out == NULL)
        return VKR_E_INVALID_ARG;
    memset(out, 0, sizeof *out);
    if (rank < 1 || rank > VKR_TENSOR_MAX_RANK || shape == NULL)
        return VKR_E_INVALID_ARG;
    for (i = 0; i < rank; i++)
        if (shape[i] < 0)
            return VKR_E_INVALID_ARG;
    if (!vkr_shape_elements(shape, (unsigned)rank, SIZE_MAX / sizeof(float), &elements))
        return VKR_E_TOO_LARGE;
    rc = vkr__storage_create(elements * sizeof(float), &st);
    if (rc == VKR_OK)
        rc = vkr__storage_map(st);
    if (rc != VKR_OK) {
        vkr__storage_free(st);
        return rc;
    }
    out->rank = rank;
    memcpy(out->shape, shape, (size_t)rank * sizeof *shape);
    out->data = st->map;
    out->storage = st;
    return VKR_OK;
}

VKR_EXPORT void vkr_tensor_free(vkr_tensor_t *t)
{
    if (t == NULL)
        return;
    if (t->storage != NULL)
        vkr__storage_free(t->storage);
    else
        free(t->data);
    memset(t, 0, sizeof *t);
}
