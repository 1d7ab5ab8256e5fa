/* The Vulkan backend's pipeline cache file (format and checks: vk_pipeline_cache.h). */
#include "vk_pipeline_cache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "le_bytes.h"

static const uint8_t pcache_magic[8] = {'V', 'K', 'R', 'P', 'L', 'C', 'H', 0};
#define PCACHE_VERSION 1u
#define VK_HEADER_BYTES 32u   /* VkPipelineCacheHeaderVersionOne */
#define VK_HEADER_VERSION_ONE 1u

uint64_t vkr__pcache_fnv1a64(const void *data, size_t n)
{
    const uint8_t *p = data;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static void uuid_hex(const uint8_t uuid[16], char out[33])
{
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", uuid[i]);
}

char *vkr__pcache_path(const char *dir, const vkr__pcache_key_t *key)
{
    char hex[33];
    uuid_hex(key->device_uuid, hex);
    size_t len = strlen(dir) + sizeof "/pipelines-.bin" + 32;
    char *p = malloc(len);
    if (p)
        snprintf(p, len, "%s/pipelines-%s.bin", dir, hex);
    return p;
}

/* The header of key and a payload (bytes 0..95). */
static void header_encode(const vkr__pcache_key_t *key, const void *blob, size_t blob_len, uint8_t h[VKR__PCACHE_HEADER_BYTES])
{
    memset(h, 0, VKR__PCACHE_HEADER_BYTES);
    memcpy(h, pcache_magic, sizeof pcache_magic);
    vkr_le_put_u32(h + 8, PCACHE_VERSION);
    vkr_le_put_u32(h + 12, VKR__PCACHE_HEADER_BYTES);
    vkr_le_put_u32(h + 16, key->vendor_id);
    vkr_le_put_u32(h + 20, key->device_id);
    vkr_le_put_u32(h + 24, key->driver_version);
    memcpy(h + 32, key->pipeline_cache_uuid, 16);
    memcpy(h + 48, key->device_uuid, 16);
    vkr_le_put_u64(h + 64, key->sources_hash);
    vkr_le_put_u64(h + 72, (uint64_t)blob_len);
    vkr_le_put_u64(h + 80, vkr__pcache_fnv1a64(blob, blob_len));
    vkr_le_put_u64(h + 88, vkr__pcache_fnv1a64(h, 88));
}

/* Why the file's key (header bytes 16..71) is not key's; NULL when it is. */
static const char *key_mismatch(const uint8_t *h, const vkr__pcache_key_t *key)
{
    if (vkr_le_get_u32(h + 16) != key->vendor_id || vkr_le_get_u32(h + 20) != key->device_id)
        return "another device (vendorID / deviceID)";
    if (memcmp(h + 48, key->device_uuid, 16) != 0)
        return "another device (deviceUUID)";
    if (vkr_le_get_u32(h + 24) != key->driver_version)
        return "another driver version";
    if (memcmp(h + 32, key->pipeline_cache_uuid, 16) != 0)
        return "another driver build (pipelineCacheUUID)";
    if (vkr_le_get_u64(h + 64) != key->sources_hash)
        return "other shader sources (another vkresample build)";
    return NULL;
}

/* Why the payload's VkPipelineCacheHeaderVersionOne does not name key's device; NULL when it does. */
static const char *vk_header_mismatch(const uint8_t *b, size_t n, const vkr__pcache_key_t *key)
{
    if (n < VK_HEADER_BYTES)
        return "its Vulkan header is truncated";
    const uint32_t size = vkr_le_get_u32(b);
    if (size < VK_HEADER_BYTES || size > n)
        return "its Vulkan header's size is wrong";
    if (vkr_le_get_u32(b + 4) != VK_HEADER_VERSION_ONE)
        return "its Vulkan header is not VK_PIPELINE_CACHE_HEADER_VERSION_ONE";
    if (vkr_le_get_u32(b + 8) != key->vendor_id || vkr_le_get_u32(b + 12) != key->device_id)
        return "its Vulkan header names another device (vendorID / deviceID)";
    if (memcmp(b + 16, key->pipeline_cache_uuid, 16) != 0)
        return "its Vulkan header names another driver build (pipelineCacheUUID)";
    return NULL;
}

vkr__pcache_status_t vkr__pcache_load(const char *path, const vkr__pcache_key_t *key, void **blob, size_t *blob_len, char *why,
                                      size_t why_len)
{
    *blob = NULL;
    *blob_len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT)
            return VKR__PCACHE_MISSING;
        snprintf(why, why_len, "cannot open it: %s", strerror(errno));
        return VKR__PCACHE_IGNORED;
    }
    uint8_t *buf = NULL;
    vkr__pcache_status_t st = VKR__PCACHE_IGNORED;
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        snprintf(why, why_len, "not a regular file");
        goto out;
    }
    if ((uint64_t)sb.st_size > VKR__PCACHE_MAX_BYTES) {
        snprintf(why, why_len, "%lld bytes, over the limit of %u", (long long)sb.st_size, VKR__PCACHE_MAX_BYTES);
        goto out;
    }
    const size_t size = (size_t)sb.st_size;
    buf = malloc(size ? size : 1);
    if (!buf) {
        snprintf(why, why_len, "out of memory for %zu bytes", size);
        goto out;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(why, why_len, "read failed: %s", strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    if (got < VKR__PCACHE_HEADER_BYTES) {
        snprintf(why, why_len, "truncated: %zu bytes, the header alone is %u", got, VKR__PCACHE_HEADER_BYTES);
        goto out;
    }
    if (memcmp(buf, pcache_magic, sizeof pcache_magic) != 0) {
        snprintf(why, why_len, "not a vkresample pipeline cache (bad magic)");
        goto out;
    }
    if (vkr_le_get_u32(buf + 8) != PCACHE_VERSION || vkr_le_get_u32(buf + 12) != VKR__PCACHE_HEADER_BYTES) {
        snprintf(why, why_len, "format version %u with a %u-byte header (this build reads version %u, %u bytes)", vkr_le_get_u32(buf + 8),
                 vkr_le_get_u32(buf + 12), PCACHE_VERSION, VKR__PCACHE_HEADER_BYTES);
        goto out;
    }
    if (vkr_le_get_u64(buf + 88) != vkr__pcache_fnv1a64(buf, 88)) {
        snprintf(why, why_len, "corrupt: the header's checksum does not match");
        goto out;
    }
    const char *foreign = key_mismatch(buf, key);
    if (foreign) {
        snprintf(why, why_len, "written for %s", foreign);
        goto out;
    }
    const uint64_t payload = vkr_le_get_u64(buf + 72);
    if (payload != got - VKR__PCACHE_HEADER_BYTES) {
        snprintf(why, why_len, "%s: the header promises %llu bytes of pipeline data, the file holds %zu",
                 payload > got - VKR__PCACHE_HEADER_BYTES ? "truncated" : "corrupt", (unsigned long long)payload,
                 got - VKR__PCACHE_HEADER_BYTES);
        goto out;
    }
    const uint8_t *data = buf + VKR__PCACHE_HEADER_BYTES;
    if (vkr_le_get_u64(buf + 80) != vkr__pcache_fnv1a64(data, (size_t)payload)) {
        snprintf(why, why_len, "corrupt: the pipeline data's checksum does not match");
        goto out;
    }
    const char *vk = vk_header_mismatch(data, (size_t)payload, key);
    if (vk) {
        snprintf(why, why_len, "%s", vk);
        goto out;
    }
    memmove(buf, data, (size_t)payload);
    *blob = buf;
    *blob_len = (size_t)payload;
    buf = NULL;
    st = VKR__PCACHE_LOADED;
out:
    free(buf);
    close(fd);
    return st;
}

/* mkdir -p dir, each created component 0700. */
static int make_dirs(const char *dir, char *why, size_t why_len)
{
    char *p = strdup(dir);
    if (!p) {
        snprintf(why, why_len, "out of memory");
        return -1;
    }
    int rc = 0;
    for (char *s = p + 1;; s++) {
        const bool end = *s == '\0';
        if (*s != '/' && !end)
            continue;
        *s = '\0';
        if (mkdir(p, 0700) != 0 && errno != EEXIST) {
            snprintf(why, why_len, "cannot create directory %s: %s", p, strerror(errno));
            rc = -1;
            break;
        }
        if (end)
            break;
        *s = '/';
    }
    struct stat sb;
    if (rc == 0 && (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))) {
        snprintf(why, why_len, "%s is not a directory", dir);
        rc = -1;
    }
    free(p);
    return rc;
}

static int write_all(int fd, const void *data, size_t n)
{
    const uint8_t *p = data;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int vkr__pcache_save(const char *dir, const char *path, const vkr__pcache_key_t *key, const void *blob, size_t blob_len, char *why,
                     size_t why_len)
{
    if (make_dirs(dir, why, why_len) != 0)
        return -1;
    size_t len = strlen(path) + sizeof ".XXXXXX";
    char *tmp = malloc(len);
    if (!tmp) {
        snprintf(why, why_len, "out of memory");
        return -1;
    }
    snprintf(tmp, len, "%s.XXXXXX", path);
    int fd = mkostemp(tmp, O_CLOEXEC);   /* mode 0600 */
    if (fd < 0) {
        snprintf(why, why_len, "cannot create a temporary file in %s: %s", dir, strerror(errno));
        free(tmp);
        return -1;
    }
    uint8_t h[VKR__PCACHE_HEADER_BYTES];
    header_encode(key, blob, blob_len, h);
    int rc = 0;
    if (write_all(fd, h, sizeof h) != 0 || write_all(fd, blob, blob_len) != 0) {
        snprintf(why, why_len, "writing %s failed: %s", tmp, strerror(errno));
        rc = -1;
    } else if (fsync(fd) != 0) {
        snprintf(why, why_len, "fsync of %s failed: %s", tmp, strerror(errno));
        rc = -1;
    }
    if (close(fd) != 0 && rc == 0) {
        snprintf(why, why_len, "closing %s failed: %s", tmp, strerror(errno));
        rc = -1;
    }
    if (rc == 0 && rename(tmp, path) != 0) {
        snprintf(why, why_len, "renaming %s to %s failed: %s", tmp, path, strerror(errno));
        rc = -1;
    }
    if (rc != 0) {
        unlink(tmp);
    } else {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);   /* the rename itself, durable */
        if (dfd >= 0) {
            (void)fsync(dfd);
            close(dfd);
        }
    }
    free(tmp);
    return rc;
}
