/* The backend interface of the daemon: what a resampling backend (cpu, vulkan) offers to the
 * server.  A backend is created once at start-up and its run functions are called from libuv's
 * worker threads, possibly several at once: each backend serialises internally what it must. */
#ifndef VKR_DAEMON_BACKEND_H
#define VKR_DAEMON_BACKEND_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "vkr_proto.h"

typedef struct vkr_backend_s vkr_backend_s;

/* The uid on whose behalf the calling thread runs a job now: set by the daemon's queue around
 * every job it runs (queue.h), VKR__NO_UID anywhere else (in-process tests, start-up).  A backend
 * that shares one device among uids reads it (the Vulkan backend's device gate). */
#define VKR__NO_UID 0xFFFFFFFFu
extern _Thread_local unsigned vkr__job_uid;

/* A job tensor that lives in a mapping of a memfd (the zero-copy path: the client's memfd, or the
 * daemon's output memfd).  A zeroed entry means ordinary heap memory.  The last two fields were
 * added after the first five (a server that fills only those leaves them zero, which is safe):
 *   data        the tensor's first byte, for a heap tensor too (base NULL).  A backend can run a job
 *               whose tensors are partly mapped, partly inline only when every inline tensor's data
 *               is given; NULL: not given (such a job goes to interpolate / grid).
 *   persistent  the server keeps this mapping (the same base for later jobs of the same memfd
 *               range) until it calls release_mapped for it, and never calls it while a job that
 *               was given the region runs.  Only then may a backend keep an import of the region
 *               past the run_mapped call that made it; otherwise it drops it before returning. */
typedef struct {
    const void *base;      /* page-aligned start of the mapping, NULL when not mapped */
    size_t map_bytes;      /* the mapping's length */
    size_t offset;         /* the tensor's first byte within the mapping */
    uint64_t dev, ino;     /* the memfd's identity: the same for every job that uses the same memfd,
                            * so a backend can import a region once and reuse the import */
    const void *data;      /* the tensor's first byte, mapped or on the heap; NULL: not given */
    bool persistent;       /* mapped until release_mapped(base, map_bytes) (see above) */
} vkr_host_region_t;
#define VKR_HOST_REGIONS 3 /* [0] the first input, [1] the grid / theta, [2] the output */

/* Cancel: every run function takes `cancel`, NULL (never cancelled) or a flag the server sets
 * from another thread (the job was cancelled, or its client is gone).  A backend reads it at its
 * boundaries (cpu: before each task, a run of rows or a block of points of one plane; vulkan:
 * before each submission and before a staged output is copied to the caller's memory) and, once
 * it reads true, starts no more work and writes nothing more into the output, waits for what the
 * device already has in flight, and returns VKR_E_CANCELLED (err filled, field "cancel"): the
 * output is then partly written or not at all.  When the function returns, nothing of the job
 * touches the output any more, whatever the code. */

struct vkr_backend_s {
    const char *name;                      /* "cpu" or "vulkan" */
    char device_name[VKR_DEVICE_NAME_MAX + 1];
    /* Run one planned interpolate job.  in: plan->in_elements floats (contiguous N,C,spatial);
     * out: plan->out_elements floats, written completely on success.  Returns VKR_OK or a
     * negative code with *err filled (field "backend" and what failed). */
    int (*interpolate)(vkr_backend_s *self, const vkr_interp_plan_t *plan, const float *in, float *out,
                       const atomic_bool *cancel, vkr_error_t *err);
    /* Run one planned grid_sample / affine_grid / affine_sample job (NULL: not served yet).
     * image: the input tensor (NULL for affine_grid); coords: the grid (grid_sample) or theta
     * (affine_grid, affine_sample); out: plan->out_elements floats.  Same contract as above. */
    int (*grid)(vkr_backend_s *self, const vkr_grid_plan_t *plan, const float *image, const float *coords, float *out,
                const atomic_bool *cancel, vkr_error_t *err);
    /* Zero-copy hook for VK_EXT_external_memory_host (NULL: not offered).  Called on the worker
     * thread instead of interpolate / grid when at least one of the job's tensors is in a memfd
     * mapping: regions[k] says where (see vkr_host_region_t; the same memory the pointers in/out
     * of interpolate / grid would point into), plan is the job's.  The backend may import the
     * mappings and run the job straight from them, returning VKR_OK with the output written;
     * VKR_E_UNSUPPORTED makes the server call interpolate / grid with the mapped pointers instead
     * (the staging-copy path); any other code fails the job. */
    int (*run_mapped)(vkr_backend_s *self, const vkr_plan_t *plan, const vkr_host_region_t regions[VKR_HOST_REGIONS],
                      const atomic_bool *cancel, vkr_error_t *err);
    /* The server is about to unmap [base, base + map_bytes), a mapping it passed to run_mapped as
     * persistent: the backend drops what it imported of it.  Any thread; no job given the region
     * may be running (a backend that finds one in use waits for it).  NULL: nothing to release. */
    void (*release_mapped)(vkr_backend_s *self, const void *base, size_t map_bytes);
    /* Several jobs of one plan (the same op, shapes, modes and parameters: plan is every job's) in
     * one go (NULL: not offered; the cpu backend).  Job k reads inputs[k] (the first tensor; theta
     * for affine_grid) and aux[k] (the grid / theta, NULL when the op has none) and writes
     * outputs[k] (plan->out_elements floats).  The Vulkan backend records every job's dispatches
     * into one command buffer (one vkQueueSubmit, one fence wait, one pipeline), each job with its
     * own buffers.  Returns VKR_OK when it ran them: statuses[k] is job k's VKR_OK or negative
     * code with errs[k] filled, one job's failure leaving the others alone; VKR_E_UNSUPPORTED when
     * it runs none (the server then runs each alone).  cancels[k]: job k's cancel flag (see
     * above; cancels or an entry NULL: never cancelled): a cancelled job gets VKR_E_CANCELLED
     * and its output is not written after the flag was read true. */
    int (*run_batch)(vkr_backend_s *self, const vkr_plan_t *plan, unsigned n, const float *const *inputs, const float *const *aux,
                     float *const *outputs, const atomic_bool *const *cancels, int *statuses, vkr_error_t *errs);
    /* True once any of the backend's device calls reported the device lost (Vulkan:
     * VK_ERROR_DEVICE_LOST): every later call fails too.  A job that failed while this is true
     * failed for that reason.  Any thread.  NULL: the backend cannot lose its device (cpu). */
    bool (*device_lost)(vkr_backend_s *self);
    /* Messages reported by VK_LAYER_KHRONOS_validation so far (0 for cpu, or when not enabled). */
    unsigned (*validation_messages)(vkr_backend_s *self);
    void (*destroy)(vkr_backend_s *self);
};

typedef struct {
    int device_index;          /* --device N, or -1: discrete > integrated > virtual > cpu type */
    bool validation;           /* enable VK_LAYER_KHRONOS_validation + debug messenger */
    const char *cache_dir;     /* --cache-dir: where the pipeline cache lives (default
                                * $XDG_CACHE_HOME/vkresample, else ~/.cache/vkresample); NULL: no cache */
} vkr_vulkan_options_t;

/* Create the CPU backend (never fails except for memory). */
int vkr__backend_cpu_create(vkr_backend_s **out, vkr_error_t *err);

/* Create the Vulkan backend: instance, device choice, glslang compile of every embedded shader
 * (compile time logged per shader), pipelines (through the VkPipelineCache kept under
 * opts->cache_dir, read before and written after), one warm-up dispatch per pipeline; the
 * start-up time is logged split into its parts, cold or warm.  A pipeline cache that cannot be
 * read or written is logged, never fatal.  Returns VKR_E_BACKEND_UNAVAILABLE with a message when
 * no usable device exists. */
int vkr__backend_vulkan_create(const vkr_vulkan_options_t *opts, vkr_backend_s **out, vkr_error_t *err);

#endif
