/* The Vulkan backend's pipeline cache on disk: one file per device under --cache-dir holding the
 * driver's VkPipelineCache data behind vkresample's own header.
 *
 * File DIR/pipelines-<deviceUUID in hex>.bin, little-endian:
 *   0  magic "VKRPLCH\0"           8 bytes
 *   8  format version (1)          u32
 *  12  header bytes (96)           u32
 *  16  vendorID, deviceID, driverVersion, 0 (VkPhysicalDeviceProperties)   4 x u32
 *  32  pipelineCacheUUID           16 bytes
 *  48  deviceUUID                  16 bytes (VkPhysicalDeviceIDProperties)
 *  64  embedded shader sources hash (vkr_embedded_sources_hash)            u64
 *  72  payload bytes               u64
 *  80  FNV-1a 64 of the payload    u64
 *  88  FNV-1a 64 of bytes 0..87    u64
 *  96  payload: what vkGetPipelineCacheData returned (its own VkPipelineCacheHeaderVersionOne first)
 *
 * The key (bytes 16..71) must equal the running device's and build's, both checksums must hold, the
 * payload's length must be the file's rest, and the payload's Vulkan header must name this
 * device (header size, VK_PIPELINE_CACHE_HEADER_VERSION_ONE, vendorID, deviceID,
 * pipelineCacheUUID) before any byte reaches the driver.  Writes go to a temporary file in the same
 * directory (0600), fsync'd, renamed over the old file, and the directory fsync'd. */
#ifndef VKR_DAEMON_VK_PIPELINE_CACHE_H
#define VKR_DAEMON_VK_PIPELINE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#define VKR__PCACHE_HEADER_BYTES 96u
#define VKR__PCACHE_MAX_BYTES (256u << 20)   /* a bigger file is refused unread */

typedef struct {
    uint32_t vendor_id, device_id, driver_version;
    uint8_t pipeline_cache_uuid[16];
    uint8_t device_uuid[16];
    uint64_t sources_hash;
} vkr__pcache_key_t;

typedef enum {
    VKR__PCACHE_LOADED = 0,    /* *blob holds the checked payload */
    VKR__PCACHE_MISSING = 1,   /* no file: a cold start */
    VKR__PCACHE_IGNORED = 2,   /* unreadable, corrupt, truncated or foreign: why says which */
} vkr__pcache_status_t;

/* FNV-1a, 64 bits. */
uint64_t vkr__pcache_fnv1a64(const void *data, size_t n);

/* DIR/pipelines-<deviceUUID hex>.bin, malloc'd; NULL when out of memory. */
char *vkr__pcache_path(const char *dir, const vkr__pcache_key_t *key);

/* Read and check the file at path.  VKR__PCACHE_LOADED: *blob (malloc'd, the caller frees) and
 * *blob_len hold the Vulkan pipeline cache data.  Otherwise *blob is NULL and, for
 * VKR__PCACHE_IGNORED, why says what was wrong. */
vkr__pcache_status_t vkr__pcache_load(const char *path, const vkr__pcache_key_t *key, void **blob, size_t *blob_len, char *why,
                                      size_t why_len);

/* Write header + blob to path atomically, creating dir (and missing parents) with mode 0700.
 * Returns 0, or -1 with why filled (nothing at path changed). */
int vkr__pcache_save(const char *dir, const char *path, const vkr__pcache_key_t *key, const void *blob, size_t blob_len, char *why,
                     size_t why_len);

#endif
