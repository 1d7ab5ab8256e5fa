/* The Vulkan backend: owns the instance (with VK_LAYER_KHRONOS_validation and a debug messenger
 * when asked), the device choice, the compute pipelines built once at start-up from the embedded
 * shaders (shaders/interpolate_*.comp, grid_sample.comp, affine_grid.comp, compiled by
 * shader_compiler.c), and the running of planned interpolate jobs of every mode and of the grid
 * ops (grid_sample, affine_grid, the fused affine_sample): host-visible buffers per job, the
 * host's per-axis tables uploaded once per job, and the work cut into chunks so that no binding
 * exceeds maxStorageBufferRange (whole N*C planes per chunk, or one plane's range of indices
 * along its outermost spatial axis with just the source rows and table entries that range reads;
 * area's global mean reads one plane through up to three bindings; the grid ops bind whole input
 * planes: several whole batches per chunk when they fit, else groups of a batch's channels, else
 * one channel's output points in ranges whose grid, output and tables fit) and dispatches split
 * so that no grid exceeds maxComputeWorkGroupCount.  antialias
 * runs two passes (W, then H) through an intermediate buffer.  Long sequential sums (area
 * windows, antialias filters) are added in steps of at most max_loop terms per dispatch, the
 * partial sum kept in the output, and a grid op's channels in groups per dispatch: llvmpipe
 * (lavapipe) silently ends the loops of a shader invocation after 65535 iterations in all.  Jobs
 * are serialised by one mutex (the queue, the command buffer, the descriptor pool and the fence
 * are shared); their tables are built before it is taken.  No source coordinate or weight is
 * computed here: scales, indices, taps, windows, filters and affine base coordinates come from
 * shaders/spec/ (axis_tables.c, interp_rules.h, grid_rules.h in the shaders).
 *
 * Start-up goes through a VkPipelineCache kept on disk under --cache-dir (vk_pipeline_cache.c:
 * keyed by the device, the driver and the embedded shader sources; anything else is ignored
 * with one log line) and logs its time split into glslang, pipeline creation and warm-up, with
 * the cache cold or warm.
 *
 * Memfd jobs (run_mapped): where the device offers VK_EXT_external_memory_host, a tensor in a
 * memfd mapping is imported as VkDeviceMemory (the mapping's range aligned to
 * minImportedHostPointerAlignment, one storage buffer over it, bound from the tensor's offset)
 * and the shaders read and write it in place: no staging buffer, no copy.  A tensor that cannot
 * be imported (alignment, memory type, a refused import) is copied through a staging buffer as
 * usual.  An import of a mapping the server keeps (vkr_host_region_t.persistent) is cached by
 * (dev, ino, base, length), at most VKR_VK_IMPORT_CACHE_ENTRIES of them, until the server calls
 * release_mapped; any other import lives for its job only.
 *
 * Test knobs (environment, read at creation, can only lower the device's limits):
 *   VKR_VULKAN_MAX_BINDING_BYTES  bytes one storage-buffer binding may span
 *   VKR_VULKAN_MAX_GROUP_COUNT    workgroups per dispatch along x and along y
 *   VKR_VULKAN_MAX_LOOP_ITERATIONS  terms of an area / antialias sum one dispatch may add (grid
 *                                 ops: loop iterations, so channels per dispatch)
 *   VKR_VULKAN_NO_HOST_IMPORT=1   never import memfd mappings (memfd jobs take staging copies)
 *   VKR_VULKAN_NO_BUFFER_POOL=1   every job allocates its buffers (no pool: for comparisons)
 *
 * No per-job descriptor work: the pool's VKR_VK_SETS_PER_SUBMIT sets are allocated once and
 * rewritten by each submission; and job buffers go back to a small pool (VKR_VK_POOL_*) for the
 * next jobs instead of being freed.
 *
 * Batches (run_batch): several jobs of one plan prepared once and recorded into one command
 * buffer, one submission and one fence wait, each job with its own buffers.
 *
 * Work per invocation: nearest, linear and cubic write VKR_VK_PLANES_PER_INV planes at one
 * output position (its decomposition, taps and weights computed or loaded once), with the
 * position's divisions done as multiplications by host-computed magic numbers (fast_div_magic);
 * the grid ops prepare a point once for all of a dispatch's channels. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <vulkan/vulkan.h>

#include "backend.h"
#include "log.h"
#include "shader_compiler.h"
#include "shader_sources.h"
#include "vk_pipeline_cache.h"
#include "spec/axis_tables.h"
#include "spec/interp_rules.h"

#define VKR_VK_LOCAL_SIZE 64u                  /* invocations per workgroup (spec constant 0) */
#define VKR_VK_PLANES_PER_INV 16u              /* nearest, linear, cubic: planes one invocation
                                                * writes at its (od, oh, ow) (spec constant 3) */
#define VKR_VK_SETS_PER_SUBMIT 64u             /* descriptor sets (= chunks) per submission */
#define VKR_VK_BINDINGS 4u                     /* input, output, table A, table B (the minimum
                                                  maxPerStageDescriptorStorageBuffers is 4) */
#define VKR_VK_MEAN_BINDINGS 3u                /* area mean: input bindings of one plane */
#define VKR_VK_MAX_BINDING_CAP (1ull << 31)    /* bytes per binding, whatever the device allows:
                                                  keeps every shader index within uint32 */
#define VKR_VK_VALIDATION_LAYER "VK_LAYER_KHRONOS_validation"
/* llvmpipe's gallivm ends the loops of a shader invocation after LP_MAX_TGSI_LOOP_ITERATIONS
 * (65535) iterations in all, without an error; leave room for the shaders' short loops. */
#define VKR_VK_LLVMPIPE_MAX_LOOP 60000u
#define VKR_VK_IMPORT_CACHE_ENTRIES 32u        /* cached imports of persistent mappings, at most */
#define VKR_VK_IMPORT_CACHE_BYTES (8ull << 30) /* and the bytes they span, at most */
#define VKR_VK_POOL_BUFFERS 16u                /* idle job buffers kept for the next jobs, at most */
#define VKR_VK_POOL_BYTES (192ull << 20)       /* and the bytes they hold, at most */
#define VKR_VK_POOL_MAX_BUFFER (64ull << 20)   /* a larger buffer is freed, never kept */
#define VKR_VK_POOL_SLACK 2u                   /* a kept buffer serves a job needing >= 1/2 of it */

/* Push constants of every shader; mirrors `Params` in shaders/interpolate_params.glsl. */
typedef struct {
    uint32_t in_base, out_base;   /* element 0 of the chunk's first plane in the bound ranges (mod 2^32) */
    uint32_t count;               /* output elements of the chunk (area mean: planes) */
    uint32_t first, row;          /* first element of this dispatch; elements per grid row */
    uint32_t e_off;               /* flat index of the chunk's first output element in its plane */
    int32_t in_d, in_h, in_w, out_d, out_h, out_w;   /* absent outer axes: 1 */
    float scale_d, scale_h, scale_w;                  /* nearest: vkr_spec_area_pixel_scale */
    uint32_t tab[3];              /* word of each axis's entry 0 in its table binding (mod 2^32) */
    uint32_t aux;                 /* antialias: weights per entry; area mean: elements per binding */
    uint32_t term0, term1;        /* area, antialias: the terms of each output's sum this dispatch adds */
    uint32_t span;                /* nearest, linear, cubic: output elements of each plane of the chunk */
    uint32_t planes;              /* nearest, linear, cubic: planes of the chunk (0: other shaders) */
    uint32_t div_w[2], div_h[2], div_span[2];   /* nearest, linear, cubic: fast_div of out_w, out_h, span */
    uint32_t cl_channels, cl_vec; /* channels-last linear: C and C - C % 8 (its vector-lane channels) */
    uint32_t cl_c0;               /* and the channel of the chunk's first plane */
} vkr_vk_push_t;
_Static_assert(sizeof(vkr_vk_push_t) == 128, "push constants must match the shaders' Params block");

/* Push constants of grid_sample.comp and affine_grid.comp; mirrors `GridParams` in
 * shaders/grid_params.glsl. */
typedef struct {
    uint32_t in_base, out_base;   /* bindings 0, 1: the dispatch's first plane, at point 0 (mod 2^32) */
    uint32_t crd_base, row_base;  /* bindings 2, 3: grid point 0 / W base table entry 0; row table row 0 */
    uint32_t theta_base;          /* binding 3: the chunk's first theta, or VKR_VK_THETA_PUSHED */
    uint32_t count;               /* points of the chunk */
    uint32_t first, row;          /* first point of this dispatch (chunk-relative); points per grid row */
    uint32_t p0;                  /* the chunk's first point, counted from its first batch's point 0 */
    uint32_t channels;            /* channels of this dispatch */
    uint32_t in_plane, out_plane; /* channel strides of bindings 0 and 1 */
    uint32_t in_batch, out_batch; /* batch strides of bindings 0 and 1 (mod 2^32) */
    int32_t in_d, in_h, in_w;     /* the input's extents (2-D: in_d = 1) */
    int32_t out_w;                /* the output's W */
    uint32_t align_corners;
    float theta[12];              /* affine ops, one batch per chunk: its theta, R x (R + 1) */
} vkr_vk_grid_push_t;
#define VKR_VK_THETA_PUSHED UINT32_MAX
_Static_assert(sizeof(vkr_vk_grid_push_t) == 124, "push constants must match the shaders' GridParams block");

enum {
    PIPE_NEAREST, PIPE_NEAREST_EXACT, PIPE_LINEAR_1D, PIPE_LINEAR_2D, PIPE_LINEAR_3D, PIPE_CUBIC,
    PIPE_AREA_1D, PIPE_AREA_2D, PIPE_AREA_3D, PIPE_AREA_MEAN, PIPE_AA_H, PIPE_AA_V,
    PIPE_NEAREST_CL, PIPE_LINEAR_CL_2D, PIPE_LINEAR_CL_3D, PIPE_COUNT
};
enum {
    SHADER_NEAREST, SHADER_LINEAR, SHADER_CUBIC, SHADER_AREA, SHADER_AA, SHADER_GRID_SAMPLE, SHADER_AFFINE_GRID, SHADER_COUNT
};
static const char *const shader_names[SHADER_COUNT] = {"interpolate_nearest.comp", "interpolate_linear.comp",
                                                       "interpolate_cubic.comp", "interpolate_area.comp",
                                                       "interpolate_antialias.comp", "grid_sample.comp",
                                                       "affine_grid.comp"};
/* Pipeline = shader + specialisation constants 1 (EXACT, RANK or VERTICAL) and 2 (MEAN,
 * CHANNELS_LAST: torch 1.13's channels-last kernels, vkr_spec_channels_last_kernel); 3 is
 * VKR_VK_PLANES_PER_INV for every one (only nearest, linear and cubic declare it). */
static const struct {
    int shader;
    uint32_t spec1, spec2;
    const char *what;
} pipe_defs[PIPE_COUNT] = {
    {SHADER_NEAREST, 0, 0, "nearest"},   {SHADER_NEAREST, 1, 0, "nearest-exact"},
    {SHADER_LINEAR, 1, 0, "linear"},     {SHADER_LINEAR, 2, 0, "bilinear"},
    {SHADER_LINEAR, 3, 0, "trilinear"},  {SHADER_CUBIC, 0, 0, "bicubic"},
    {SHADER_AREA, 1, 0, "area (1-D)"},   {SHADER_AREA, 2, 0, "area (2-D)"},
    {SHADER_AREA, 3, 0, "area (3-D)"},   {SHADER_AREA, 1, 1, "area (mean)"},
    {SHADER_AA, 0, 0, "antialias (W pass)"}, {SHADER_AA, 1, 0, "antialias (H pass)"},
    {SHADER_NEAREST, 0, 1, "nearest (channels-last)"}, {SHADER_LINEAR, 2, 1, "bilinear (channels-last)"},
    {SHADER_LINEAR, 3, 1, "trilinear (channels-last)"},
};

/* An import of a memfd mapping (VK_EXT_external_memory_host): the host range [lo, hi) as
 * VkDeviceMemory, with one storage buffer over all of it. */
typedef struct vk_import_s {
    struct vk_import_s *next;        /* b->imports (cached imports only) */
    const void *base;                /* the mapping it was made of: start, length, memfd */
    size_t map_bytes;
    uint64_t dev, ino;
    uintptr_t lo, hi;                /* the imported host range */
    VkBuffer buf;
    VkDeviceMemory mem;
    unsigned busy;                   /* jobs using it now (b->imports_lock) */
    bool cached;                     /* in b->imports: kept until release_mapped or eviction */
    uint64_t last_use;               /* b->import_clock when a job last took it */
} vk_import_t;

/* A job at the device gate (device_enter .. device_leave): on its worker thread's stack. */
typedef struct vk_turn_s {
    struct vk_turn_s *next;          /* the gate's jobs, in arrival order */
    unsigned uid;                    /* vkr__job_uid when it came */
    uint64_t seq;                    /* its arrival (kept through device_yield) */
    uint64_t last;                   /* the grant at which its uid last had the device (0: not while here) */
    bool granted;                    /* it holds the gate */
} vk_turn_t;

/* The device gate (see device_enter): who runs on the device next. */
typedef struct {
    pthread_mutex_t lock;            /* everything below */
    pthread_cond_t cond;             /* a grant was made */
    bool ready;
    vk_turn_t *turns;                /* the holder and every waiter */
    vk_turn_t *holder;               /* NULL: free (then no job waits) */
    uint64_t seq, grants;
} vk_gate_t;

typedef struct {
    vkr_backend_s base;
    atomic_uint validation_count;
    VkInstance instance;
    VkDebugUtilsMessengerEXT messenger;
    PFN_vkDestroyDebugUtilsMessengerEXT destroy_messenger;
    VkPhysicalDevice phys;
    VkPhysicalDeviceProperties props;
    VkPhysicalDeviceMemoryProperties mem_props;
    uint8_t device_uuid[VK_UUID_SIZE];
    VkDeviceSize max_alloc;         /* maxMemoryAllocationSize */
    uint64_t max_binding;           /* bytes one binding may span (limits, cap, test knob) */
    uint32_t max_groups[2];         /* workgroups per dispatch along x, y */
    uint32_t loop_limit;            /* loop iterations a shader invocation may run (llvmpipe) */
    uint32_t max_loop;              /* terms of a sum per dispatch: loop_limit, or the test knob */
    uint32_t queue_family;
    VkDevice device;
    VkQueue queue;
    VkDescriptorSetLayout set_layout;
    VkPipelineLayout pipe_layout;
    VkPipeline pipes[PIPE_COUNT];
    VkPipelineLayout grid_layout;   /* the set layout with vkr_vk_grid_push_t */
    /* grid_sample.comp per [rank - 2][mode - 1][padding - 1][affine] (3-D bicubic: none), and
     * affine_grid.comp per [rank - 2] */
    VkPipeline grid_pipes[2][3][3][2];
    VkPipeline affine_grid_pipes[2];
    unsigned n_pipes;               /* pipelines built */
    VkDescriptorPool desc_pool;
    VkDescriptorSet sets[VKR_VK_SETS_PER_SUBMIT];   /* all of desc_pool's, allocated at start-up */
    /* idle staging buffers kept for reuse (b->lock): at most VKR_VK_POOL_BUFFERS, VKR_VK_POOL_BYTES */
    struct vk_buf_s *pool;
    unsigned n_pool;
    uint64_t pool_bytes;
    atomic_ulong pool_hits, pool_misses;
    VkCommandPool cmd_pool;
    VkCommandBuffer cmd;
    VkFence fence;
    pthread_mutex_t lock;           /* one job at a time on everything below `device` */
    bool lock_ready;
    vk_gate_t gate;                 /* which job takes `lock` next (device_enter) */
    /* start-up: the pipeline cache and the time it took */
    VkPipelineCache pcache;         /* VK_NULL_HANDLE: none (no --cache-dir, or it failed) */
    char *pcache_dir, *pcache_path; /* NULL: no cache on disk */
    bool pcache_warm;               /* a checked file was handed to the driver */
    size_t pcache_loaded_bytes;     /* its pipeline data */
    uint64_t pcache_loaded_hash;    /* FNV-1a of it: unchanged data is not written back */
    bool feedback;                  /* VK_EXT_pipeline_creation_feedback enabled */
    bool fp64;                      /* shaderFloat64 enabled: the channels-last linear sums are bit-exact */
    unsigned pcache_hits;           /* pipelines the driver says came from the cache */
    double compile_ms, pipes_ms;    /* glslang (+ shader modules); vkCreateComputePipelines */
    /* memfd jobs: VK_EXT_external_memory_host */
    bool host_import;               /* enabled, storage buffers importable, not switched off */
    VkDeviceSize import_align;      /* minImportedHostPointerAlignment */
    PFN_vkGetMemoryHostPointerPropertiesEXT get_host_pointer_props;
    pthread_mutex_t imports_lock;   /* the cache below and every import's busy count */
    pthread_cond_t imports_idle;    /* an import's busy count dropped */
    bool imports_ready;
    vk_import_t *imports;           /* cached imports of persistent mappings */
    unsigned n_imports;
    uint64_t import_bytes, import_clock;
    atomic_ulong jobs_imported, jobs_part_imported, jobs_staged, imports_made, imports_reused;
    atomic_bool lost;               /* a Vulkan call returned VK_ERROR_DEVICE_LOST (device_lost hook) */
    atomic_ulong batches, batched_jobs;   /* run_batch calls that ran > 1 job in a submission, and their jobs */
} vk_backend_t;

/* One host-visible, host-coherent buffer, mapped for its whole life; or (borrowed) an import's
 * buffer, whose element 0 is `origin` bytes in. */
typedef struct vk_buf_s {
    VkBuffer buf;
    VkDeviceMemory mem;
    void *map;
    VkDeviceSize size;              /* bytes the job uses */
    VkDeviceSize capacity;          /* bytes the buffer has (a pooled one may be larger than size) */
    VkDeviceSize origin;            /* bytes before element 0 (imports) */
    bool borrowed;                  /* an import's: buf_destroy leaves it alone */
} vk_buf_t;

/* A job tensor as the runners see it: host memory (copied through a staging buffer), or an
 * import whose buffer the shaders bind in place. */
typedef struct {
    const void *host;               /* the tensor's first byte */
    const vk_import_t *imp;         /* NULL: staged */
} vk_src_t;

/* Buffers of a job. */
enum { BUF_IN, BUF_OUT, BUF_TMP, BUF_TAB, BUF_COUNT };

/* How a pass's split-axis entries name their source range (src_range). */
typedef enum { RANGE_NEAREST, RANGE_NEAREST_CL, RANGE_NEAREST_EXACT, RANGE_IDENTITY, RANGE_LINEAR, RANGE_CUBIC, RANGE_AREA, RANGE_AA } range_kind_t;

/* Output indices [a0, a1) along a pass's split axis and the source indices [lo, hi] they read
 * along it (hi < lo: none). */
typedef struct {
    int64_t a0, a1, lo, hi;
} vk_seg_t;

/* One pipeline over every plane of a job (antialias has two), and how it is cut into chunks. */
typedef struct {
    int pipe;
    int axis;                        /* split axis: the outermost spatial one (0 D, 1 H, 2 W, padded) */
    int src, dst;                    /* BUF_* */
    int64_t in[3], out[3];           /* extents of one plane, padded to D, H, W (absent: 1) */
    uint64_t in_plane, out_plane;    /* elements of one plane */
    uint64_t in_inner, out_inner;    /* elements per index of the split axis */
    float scale[3];                  /* nearest */
    uint64_t cl_channels;            /* channels-last linear: C (0: another pipeline) */
    uint32_t aux;                    /* antialias: weights per entry */
    uint64_t steps;                  /* dispatches per chunk, max_loop terms of each sum apiece */
    bool mean;                       /* area with an all-ones output: one invocation per plane */
    range_kind_t range;
    /* Tables, in words of the job's table buffer: the split axis's (A) and the others' (B). */
    uint64_t tab_a, tab_a_stride;    /* entry 0; words per entry (0: no table) */
    uint64_t tab_b, tab_b_words;     /* the B range (0 words: none) */
    uint64_t tab_rel[3];             /* B axes: word of the axis's entry 0 in the B range */
    unsigned tab_b_axes;             /* bit a: axis a's table is in B */
    /* Chunks: whole planes, or one plane at a time in segs along the split axis. */
    uint64_t planes_per_chunk;       /* 0: segs */
    uint64_t mean_seg;               /* area mean of a plane over several bindings: elements each */
    vk_seg_t *segs;
    uint64_t n_segs, chunks;
} vk_pass_t;

typedef struct {
    const char *what;                /* mode name for messages */
    uint64_t planes;                 /* N*C */
    uint64_t elements[BUF_COUNT];    /* floats (BUF_TAB: words) of each buffer; 0: not used */
    uint32_t *tab;                   /* the tables, uploaded to BUF_TAB */
    int n_pass;
    vk_pass_t pass[2];
} vk_job_t;

/* ------------------------------------------------------------------ errors */

static const char *vk_result_name(VkResult r)
{
    switch (r) {
#define VKR_RESULT_CASE(x) \
    case x: return #x;
        VKR_RESULT_CASE(VK_SUCCESS)
        VKR_RESULT_CASE(VK_NOT_READY)
        VKR_RESULT_CASE(VK_TIMEOUT)
        VKR_RESULT_CASE(VK_INCOMPLETE)
        VKR_RESULT_CASE(VK_ERROR_OUT_OF_HOST_MEMORY)
        VKR_RESULT_CASE(VK_ERROR_OUT_OF_DEVICE_MEMORY)
        VKR_RESULT_CASE(VK_ERROR_INITIALIZATION_FAILED)
        VKR_RESULT_CASE(VK_ERROR_DEVICE_LOST)
        VKR_RESULT_CASE(VK_ERROR_MEMORY_MAP_FAILED)
        VKR_RESULT_CASE(VK_ERROR_LAYER_NOT_PRESENT)
        VKR_RESULT_CASE(VK_ERROR_EXTENSION_NOT_PRESENT)
        VKR_RESULT_CASE(VK_ERROR_FEATURE_NOT_PRESENT)
        VKR_RESULT_CASE(VK_ERROR_INCOMPATIBLE_DRIVER)
        VKR_RESULT_CASE(VK_ERROR_TOO_MANY_OBJECTS)
        VKR_RESULT_CASE(VK_ERROR_FORMAT_NOT_SUPPORTED)
        VKR_RESULT_CASE(VK_ERROR_FRAGMENTED_POOL)
        VKR_RESULT_CASE(VK_ERROR_UNKNOWN)
        VKR_RESULT_CASE(VK_ERROR_OUT_OF_POOL_MEMORY)
        VKR_RESULT_CASE(VK_ERROR_INVALID_EXTERNAL_HANDLE)
        VKR_RESULT_CASE(VK_ERROR_FRAGMENTATION)
        VKR_RESULT_CASE(VK_ERROR_INVALID_OPAQUE_CAPTURE_ADDRESS)
        VKR_RESULT_CASE(VK_ERROR_INVALID_SHADER_NV)
#undef VKR_RESULT_CASE
    default: return "VkResult";
    }
}

/* Note a lost device: every failing call goes through here (or vk_fail), so that the server
 * learns of a loss from the device_lost hook, never from an error's text. */
static VkResult vk_note(vk_backend_t *b, VkResult r)
{
    if (r == VK_ERROR_DEVICE_LOST && !atomic_exchange(&b->lost, true))
        vkr__log(VKR_LOG_ERROR, "vulkan: VK_ERROR_DEVICE_LOST: the device is lost for good");
    return r;
}

/* A failed Vulkan call: VKR_E_BACKEND naming the call and the result (a lost device noted). */
static int vk_fail(vk_backend_t *b, vkr_error_t *err, const char *call, VkResult r)
{
    vk_note(b, r);
    return vkr_proto_error_set(err, VKR_E_BACKEND, "backend", "vulkan: %s failed: %s (%d)", call, vk_result_name(r), (int)r);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ------------------------------------------------------------------ the device gate */
/* Fair share of the device among uids (issue 11).  Every job takes the gate before b->lock and
 * gives both back at its end (device_enter, device_leave); between two submissions of its own a
 * job passes the device on when a job of another uid waits (device_yield).  The gate goes to the
 * waiting job whose uid had it least recently (a uid with no job at the gate counts as never:
 * first), the oldest of that uid's jobs first: round-robin across uids at submission boundaries,
 * first-come first-served within a uid.  So a uid with many jobs at the gate holds another uid's
 * job back by at most one submission of each uid waiting (a job of one submission: the rest of
 * it), not by all its jobs.  Bounded: one vk_turn_t per job at the gate (at most one per worker
 * thread), on that thread's stack.  The uid is vkr__job_uid (backend.h): outside the daemon's
 * queue every job has VKR__NO_UID and the gate is a first-come first-served lock. */

static _Thread_local vk_turn_t *my_turn;   /* this thread's job at the gate, NULL: none */

static int gate_init(vk_gate_t *g)
{
    memset(g, 0, sizeof *g);
    if (pthread_mutex_init(&g->lock, NULL) != 0)
        return -1;
    if (pthread_cond_init(&g->cond, NULL) != 0) {
        pthread_mutex_destroy(&g->lock);
        return -1;
    }
    g->ready = true;
    return 0;
}

static void gate_destroy(vk_gate_t *g)
{
    if (!g->ready)
        return;
    pthread_cond_destroy(&g->cond);
    pthread_mutex_destroy(&g->lock);
    g->ready = false;
}

/* With g->lock held and the gate free: grant it to the waiter whose uid had it least recently,
 * the oldest first among equals, and wake the waiters. */
static void gate_grant_next(vk_gate_t *g)
{
    vk_turn_t *best = NULL;
    for (vk_turn_t *t = g->turns; t != NULL; t = t->next)
        if (!t->granted && (best == NULL || t->last < best->last || (t->last == best->last && t->seq < best->seq)))
            best = t;
    g->holder = best;
    if (best == NULL)
        return;
    best->granted = true;
    g->grants++;
    for (vk_turn_t *t = g->turns; t != NULL; t = t->next)
        if (t->uid == best->uid)
            t->last = g->grants;
    pthread_cond_broadcast(&g->cond);
}

/* Take the device for the calling thread's job (its uid from vkr__job_uid): wait for the gate's
 * grant, then b->lock.  t lives on the caller's stack until device_leave. */
static void device_enter(vk_backend_t *b, vk_turn_t *t)
{
    vk_gate_t *g = &b->gate;
    vk_turn_t **end = &g->turns;

    pthread_mutex_lock(&g->lock);
    *t = (vk_turn_t){.uid = vkr__job_uid, .seq = ++g->seq};
    for (; *end != NULL; end = &(*end)->next)
        if ((*end)->uid == t->uid)
            t->last = (*end)->last;   /* its uid's jobs here share one */
    *end = t;
    if (g->holder == NULL)
        gate_grant_next(g);
    while (!t->granted)
        pthread_cond_wait(&g->cond, &g->lock);
    pthread_mutex_unlock(&g->lock);
    my_turn = t;
    pthread_mutex_lock(&b->lock);
}

/* Give back b->lock and the gate taken by device_enter(b, t). */
static void device_leave(vk_backend_t *b, vk_turn_t *t)
{
    vk_gate_t *g = &b->gate;

    pthread_mutex_unlock(&b->lock);
    my_turn = NULL;
    pthread_mutex_lock(&g->lock);
    for (vk_turn_t **p = &g->turns; *p != NULL; p = &(*p)->next)
        if (*p == t) {
            *p = t->next;
            break;
        }
    gate_grant_next(g);
    pthread_mutex_unlock(&g->lock);
}

/* Between two submissions of the calling thread's job (b->lock held, nothing of its own in flight
 * on the device): if a job of another uid waits at the gate, let it have the device first (its
 * uid had it less recently), then take it back.  Otherwise (or outside device_enter) nothing. */
static void device_yield(vk_backend_t *b)
{
    vk_gate_t *g = &b->gate;
    vk_turn_t *t = my_turn;
    bool other = false;

    if (t == NULL)
        return;
    pthread_mutex_lock(&g->lock);
    for (vk_turn_t *u = g->turns; u != NULL && !other; u = u->next)
        other = !u->granted && u->uid != t->uid;
    if (other) {
        pthread_mutex_unlock(&b->lock);
        t->granted = false;
        gate_grant_next(g);
        while (!t->granted)
            pthread_cond_wait(&g->cond, &g->lock);
    }
    pthread_mutex_unlock(&g->lock);
    if (other)
        pthread_mutex_lock(&b->lock);
}

/* ------------------------------------------------------------------ instance and device */

static VKAPI_ATTR VkBool32 VKAPI_CALL debug_cb(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                               VkDebugUtilsMessageTypeFlagsEXT types,
                                               const VkDebugUtilsMessengerCallbackDataEXT *data, void *user)
{
    (void)types;
    vk_backend_t *b = user;
    if (severity & (VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT)) {
        atomic_fetch_add(&b->validation_count, 1u);
        vkr__log(VKR_LOG_ERROR, "vulkan validation: %s", data && data->pMessage ? data->pMessage : "(no message)");
    }
    return VK_FALSE;
}

static bool layer_present(const char *name)
{
    uint32_t n = 0;
    if (vkEnumerateInstanceLayerProperties(&n, NULL) != VK_SUCCESS || n == 0)
        return false;
    VkLayerProperties *p = calloc(n, sizeof *p);
    bool found = false;
    if (p && vkEnumerateInstanceLayerProperties(&n, p) == VK_SUCCESS)
        for (uint32_t i = 0; i < n && !found; i++)
            found = strcmp(p[i].layerName, name) == 0;
    free(p);
    return found;
}

/* Whether instance extension `ext` is offered by the implementation or by `layer` (may be NULL). */
static bool instance_ext_present(const char *layer, const char *ext)
{
    uint32_t n = 0;
    if (vkEnumerateInstanceExtensionProperties(layer, &n, NULL) != VK_SUCCESS || n == 0)
        return false;
    VkExtensionProperties *p = calloc(n, sizeof *p);
    bool found = false;
    if (p && vkEnumerateInstanceExtensionProperties(layer, &n, p) == VK_SUCCESS)
        for (uint32_t i = 0; i < n && !found; i++)
            found = strcmp(p[i].extensionName, ext) == 0;
    free(p);
    return found;
}

static int create_instance(vk_backend_t *b, bool validation, vkr_error_t *err)
{
    uint32_t loader = VK_API_VERSION_1_0;
    if (vkEnumerateInstanceVersion(&loader) != VK_SUCCESS || loader < VK_API_VERSION_1_1)
        return vkr_proto_error_set(err, VKR_E_BACKEND_UNAVAILABLE, "backend",
                                   "vulkan: the Vulkan loader supports only version %u.%u (1.1 needed)",
                                   VK_API_VERSION_MAJOR(loader), VK_API_VERSION_MINOR(loader));
    const VkApplicationInfo app = {
        .sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
        .pApplicationName = "vkresampled",
        .applicationVersion = 1,
        .pEngineName = "vkresample",
        .engineVersion = 1,
        .apiVersion = VK_API_VERSION_1_1,
    };
    const char *layers[1] = {VKR_VK_VALIDATION_LAYER};
    const char *exts[1] = {VK_EXT_DEBUG_UTILS_EXTENSION_NAME};
    /* Synchronization validation is not enabled here: layer 1.3.239 leaks with it (valgrind) and
     * found nothing; VK_LAYER_ENABLES=VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT
     * turns it on from the environment. */
    const VkDebugUtilsMessengerCreateInfoEXT messenger_info = {
        .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
        .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
        .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
        .pfnUserCallback = debug_cb,
        .pUserData = b,
    };
    VkInstanceCreateInfo info = {
        .sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
        .pApplicationInfo = &app,
    };
    if (validation) {
        if (!layer_present(VKR_VK_VALIDATION_LAYER))
            return vkr_proto_error_set(err, VKR_E_BACKEND_UNAVAILABLE, "backend",
                                       "vulkan: validation was requested but %s is not installed "
                                       "(Debian: vulkan-validationlayers)", VKR_VK_VALIDATION_LAYER);
        if (!instance_ext_present(NULL, VK_EXT_DEBUG_UTILS_EXTENSION_NAME) &&
            !instance_ext_present(VKR_VK_VALIDATION_LAYER, VK_EXT_DEBUG_UTILS_EXTENSION_NAME))
            return vkr_proto_error_set(err, VKR_E_BACKEND_UNAVAILABLE, "backend",
                                       "vulkan: validation was requested but %s is not available",
                                       VK_EXT_DEBUG_UTILS_EXTENSION_NAME);
        /* Messages during vkCreateInstance / vkDestroyInstance reach the callback through pNext. */
        info.pNext = &messenger_info;
        info.enabledLayerCount = 1;
        info.ppEnabledLayerNames = layers;
        info.enabledExtensionCount = 1;
        info.ppEnabledExtensionNames = exts;
    }
    VkResult r = vkCreateInstance(&info, NULL, &b->instance);
    if (r != VK_SUCCESS) {
        b->instance = VK_NULL_HANDLE;
        return vkr_proto_error_set(err, VKR_E_BACKEND_UNAVAILABLE, "backend", "vulkan: vkCreateInstance failed: %s (%d)",
                                   vk_result_name(r), (int)r);
    }
    if (!validation)
        return VKR_OK;
    PFN_vkCreateDebugUtilsMessengerEXT create_messenger =
        (PFN_vkCreateDebugUtilsMessengerEXT)vkGetInstanceProcAddr(b->instance, "vkCreateDebugUtilsMessengerEXT");
    b->destroy_messenger =
        (PFN_vkDestroyDebugUtilsMessengerEXT)vkGetInstanceProcAddr(b->instance, "vkDestroyDebugUtilsMessengerEXT");
    if (!create_messenger || !b->destroy_messenger)
        return vkr_proto_error_set(err, VKR_E_BACKEND_UNAVAILABLE, "backend",
                                   "vulkan: vkCreateDebugUtilsMessengerEXT is not available");
    r = create_messenger(b->instance, &messenger_info, NULL, &b->messenger);
    if (r != VK_SUCCESS) {
        b->messenger = VK_NULL_HANDLE;
        return vk_fail(b, err, "vkCreateDebugUtilsMessengerEXT", r);
    }
    vkr__log(VKR_LOG_INFO, "vulkan: validation enabled (%s)", VKR_VK_VALIDATION_LAYER);
    return VKR_OK;
}

/* Whether device extension `ext` is offered by dev. */
static bool device_ext_present(VkPhysicalDevice dev, const char *ext)
{
    uint32_t n = 0;
    if (vkEnumerateDeviceExtensionProperties(dev, NULL, &n, NULL) != VK_SUCCESS || n == 0)
        return false;
    VkExtensionProperties *p = calloc(n, sizeof *p);
    bool found = false;
    if (p && vkEnumerateDeviceExtensionProperties(dev, NULL, &n, p) == VK_SUCCESS)
        for (uint32_t i = 0; i < n && !found; i++)
            found = strcmp(p[i].extensionName, ext) == 0;
    free(p);
    return found;
}

static int device_type_rank(VkPhysicalDeviceType t)
{
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 4;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 3;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return 1;
    default: return 0;
    }
}

static const char *device_type_name(VkPhysicalDeviceType t)
{
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return "discrete";
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return "integrated";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return "virtual";
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return "cpu";
    default: return "other";
    }
}

/* The first queue family of dev with compute, or UINT32_MAX. */
static uint32_t compute_family(VkPhysicalDevice dev)
{
    uint32_t n = 0, found = UINT32_MAX;
    vkGetPhysicalDeviceQueueFamilyProperties(dev, &n, NULL);
    VkQueueFamilyProperties *q = calloc(n ? n : 1, sizeof *q);
    if (!q)
        return UINT32_MAX;
    vkGetPhysicalDeviceQueueFamilyProperties(dev, &n, q);
    for (uint32_t i = 0; i < n && found == UINT32_MAX; i++)
        if ((q[i].queueFlags & VK_QUEUE_COMPUTE_BIT) && q[i].queueCount > 0)
            found = i;
    free(q);
    return found;
}

static int choose_device(vk_backend_t *b, int device_index, vkr_error_t *err)
{
    uint32_t n = 0;
    VkPhysicalDevice *devs = NULL;
    VkResult r = vkEnumeratePhysicalDevices(b->instance, &n, NULL);
    if (r != VK_SUCCESS)
        return vk_fail(b, err, "vkEnumeratePhysicalDevices", r);
    if (n == 0)
        return vkr_proto_error_set(err, VKR_E_BACKEND_UNAVAILABLE, "backend", "vulkan: no Vulkan device found");
    int rc = VKR_OK;
    devs = calloc(n, sizeof *devs);
    if (!devs) {
        rc = vkr_proto_error_set(err, VKR_E_NOMEM, "backend", "vulkan: out of memory");
        goto out;
    }
    r = vkEnumeratePhysicalDevices(b->instance, &n, devs);
    if (r != VK_SUCCESS && r != VK_INCOMPLETE) {
        rc = vk_fail(b, err, "vkEnumeratePhysicalDevices", r);
        goto out;
    }
    if (device_index >= 0 && (uint32_t)device_index >= n) {
        rc = vkr_proto_error_set(err, VKR_E_BACKEND_UNAVAILABLE, "device", "vulkan: --device %d is out of range: %u device%s found",
                                 device_index, n, n == 1 ? "" : "s");
        goto out;
    }
    int best = -1, best_rank = -1;
    for (uint32_t i = 0; i < n; i++) {
        if (device_index >= 0 && (uint32_t)device_index != i)
            continue;
        VkPhysicalDeviceProperties p;
        vkGetPhysicalDeviceProperties(devs[i], &p);
        uint32_t fam = compute_family(devs[i]);
        if (p.apiVersion < VK_API_VERSION_1_1 || fam == UINT32_MAX) {
            vkr__log(VKR_LOG_INFO, "vulkan: device %u (%s) skipped: %s", i, p.deviceName,
                     fam == UINT32_MAX ? "no compute queue" : "Vulkan 1.0 only");
            continue;
        }
        if (device_type_rank(p.deviceType) > best_rank) {
            best = (int)i;
            best_rank = device_type_rank(p.deviceType);
            b->props = p;
            b->queue_family = fam;
        }
    }
    if (best < 0) {
        rc = device_index >= 0
                 ? vkr_proto_error_set(err, VKR_E_BACKEND_UNAVAILABLE, "device",
                                       "vulkan: device %d has no compute queue or supports only Vulkan 1.0", device_index)
                 : vkr_proto_error_set(err, VKR_E_BACKEND_UNAVAILABLE, "backend",
                                       "vulkan: none of the %u device%s has a compute queue and Vulkan 1.1", n, n == 1 ? "" : "s");
        goto out;
    }
    b->phys = devs[best];
    vkGetPhysicalDeviceMemoryProperties(b->phys, &b->mem_props);
    VkPhysicalDeviceExternalMemoryHostPropertiesEXT host = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_EXTERNAL_MEMORY_HOST_PROPERTIES_EXT};
    VkPhysicalDeviceIDProperties id = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_ID_PROPERTIES};
    VkPhysicalDeviceMaintenance3Properties m3 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES, .pNext = &id};
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &m3};
    b->host_import = device_ext_present(b->phys, VK_EXT_EXTERNAL_MEMORY_HOST_EXTENSION_NAME);
    if (b->host_import)
        id.pNext = &host;
    b->feedback = device_ext_present(b->phys, VK_EXT_PIPELINE_CREATION_FEEDBACK_EXTENSION_NAME);
    vkGetPhysicalDeviceProperties2(b->phys, &p2);
    b->max_alloc = m3.maxMemoryAllocationSize;
    memcpy(b->device_uuid, id.deviceUUID, VK_UUID_SIZE);
    if (b->host_import)
        b->import_align = host.minImportedHostPointerAlignment;
    snprintf(b->base.device_name, sizeof b->base.device_name, "%s", b->props.deviceName);
    const uint32_t v = b->props.apiVersion;
    vkr__log(VKR_LOG_INFO, "vulkan: using device %d of %u: %s (%s, Vulkan %u.%u.%u), compute queue family %u", best, n,
             b->props.deviceName, device_type_name(b->props.deviceType), VK_API_VERSION_MAJOR(v), VK_API_VERSION_MINOR(v),
             VK_API_VERSION_PATCH(v), b->queue_family);
out:
    free(devs);
    return rc;
}

/* A test knob from the environment: a positive integer, or 0 when unset or invalid. */
static uint64_t env_knob(const char *name)
{
    const char *s = getenv(name);
    if (!s || !*s)
        return 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 0);
    if (*end || v == 0) {
        vkr__log(VKR_LOG_WARN, "vulkan: ignoring %s=%s (not a positive integer)", name, s);
        return 0;
    }
    vkr__log(VKR_LOG_WARN, "vulkan: %s=%llu lowers the device's limit (a test knob)", name, v);
    return v;
}

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }

/* Whether storage buffers can be bound to imported host memory, and the switch is not off;
 * logs the answer.  Called before the device is created (it decides the extension list). */
static bool host_import_usable(vk_backend_t *b)
{
    if (!b->host_import) {
        vkr__log(VKR_LOG_INFO, "vulkan: %s not offered: memfd jobs take staging copies",
                 VK_EXT_EXTERNAL_MEMORY_HOST_EXTENSION_NAME);
        return false;
    }
    const char *off = getenv("VKR_VULKAN_NO_HOST_IMPORT");
    if (off && *off && strcmp(off, "0") != 0) {
        vkr__log(VKR_LOG_WARN, "vulkan: VKR_VULKAN_NO_HOST_IMPORT=%s: memfd jobs take staging copies (a test knob)", off);
        return false;
    }
    const VkPhysicalDeviceExternalBufferInfo info = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_EXTERNAL_BUFFER_INFO,
        .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT,
        .handleType = VK_EXTERNAL_MEMORY_HANDLE_TYPE_HOST_ALLOCATION_BIT_EXT,
    };
    VkExternalBufferProperties props = {.sType = VK_STRUCTURE_TYPE_EXTERNAL_BUFFER_PROPERTIES};
    vkGetPhysicalDeviceExternalBufferProperties(b->phys, &info, &props);
    const VkDeviceSize a = b->import_align;
    if (!(props.externalMemoryProperties.externalMemoryFeatures & VK_EXTERNAL_MEMORY_FEATURE_IMPORTABLE_BIT)) {
        vkr__log(VKR_LOG_INFO, "vulkan: storage buffers cannot be bound to imported host memory: memfd jobs take staging copies");
        return false;
    }
    if (a == 0 || (a & (a - 1)) != 0) {
        vkr__log(VKR_LOG_INFO, "vulkan: minImportedHostPointerAlignment %llu is not a power of two: memfd jobs take staging copies",
                 (unsigned long long)a);
        return false;
    }
    vkr__log(VKR_LOG_INFO, "vulkan: memfd tensors are imported (%s, alignment %llu bytes), not copied",
             VK_EXT_EXTERNAL_MEMORY_HOST_EXTENSION_NAME, (unsigned long long)a);
    return true;
}

static int create_device(vk_backend_t *b, vkr_error_t *err)
{
    const float prio = 1.0f;
    const VkDeviceQueueCreateInfo q = {
        .sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
        .queueFamilyIndex = b->queue_family,
        .queueCount = 1,
        .pQueuePriorities = &prio,
    };
    const char *exts[2];
    uint32_t n_exts = 0;
    b->host_import = host_import_usable(b);
    if (b->host_import)
        exts[n_exts++] = VK_EXT_EXTERNAL_MEMORY_HOST_EXTENSION_NAME;   /* VK_KHR_external_memory: core 1.1 */
    if (b->feedback)
        exts[n_exts++] = VK_EXT_PIPELINE_CREATION_FEEDBACK_EXTENSION_NAME;
    /* shaderFloat64 for the double sum of torch's channels-last linear kernel (VKR_FP64 in
     * interpolate_linear.comp); VKR_VULKAN_NO_FP64=1 (tests) leaves it off as on a device without */
    VkPhysicalDeviceFeatures have, want = {0};
    vkGetPhysicalDeviceFeatures(b->phys, &have);
    const char *no_fp64 = getenv("VKR_VULKAN_NO_FP64");
    b->fp64 = have.shaderFloat64 && !(no_fp64 && strcmp(no_fp64, "1") == 0);
    want.shaderFloat64 = b->fp64 ? VK_TRUE : VK_FALSE;
    if (!b->fp64)
        vkr__log(VKR_LOG_INFO, "vulkan: no shaderFloat64: the channels-last bilinear / trilinear sums (C == 1, all spatial "
                 "extents 1) of channels past the last multiple of 8 run in float (within the contract's tolerance, not bit-exact)");
    const VkDeviceCreateInfo info = {
        .sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
        .queueCreateInfoCount = 1,
        .pQueueCreateInfos = &q,
        .enabledExtensionCount = n_exts,
        .ppEnabledExtensionNames = n_exts ? exts : NULL,
        .pEnabledFeatures = &want,
    };
    VkResult r = vkCreateDevice(b->phys, &info, NULL, &b->device);
    if (r != VK_SUCCESS) {
        b->device = VK_NULL_HANDLE;
        return vk_fail(b, err, "vkCreateDevice", r);
    }
    vkGetDeviceQueue(b->device, b->queue_family, 0, &b->queue);
    if (b->host_import) {
        b->get_host_pointer_props =
            (PFN_vkGetMemoryHostPointerPropertiesEXT)vkGetDeviceProcAddr(b->device, "vkGetMemoryHostPointerPropertiesEXT");
        if (!b->get_host_pointer_props) {
            vkr__log(VKR_LOG_WARN, "vulkan: vkGetMemoryHostPointerPropertiesEXT is missing: memfd jobs take staging copies");
            b->host_import = false;
        }
    }

    const VkPhysicalDeviceLimits *lim = &b->props.limits;
    const uint64_t binding_knob = env_knob("VKR_VULKAN_MAX_BINDING_BYTES");
    const uint64_t groups_knob = env_knob("VKR_VULKAN_MAX_GROUP_COUNT");
    b->max_binding = min_u64(lim->maxStorageBufferRange, VKR_VK_MAX_BINDING_CAP);
    if (binding_knob)
        b->max_binding = min_u64(b->max_binding, binding_knob);
    for (int i = 0; i < 2; i++)
        b->max_groups[i] = (uint32_t)min_u64(lim->maxComputeWorkGroupCount[i], groups_knob ? groups_knob : UINT32_MAX);
    const uint64_t loop_knob = env_knob("VKR_VULKAN_MAX_LOOP_ITERATIONS");
    b->loop_limit = strncmp(b->props.deviceName, "llvmpipe", 8) == 0 ? VKR_VK_LLVMPIPE_MAX_LOOP : UINT32_MAX;
    b->max_loop = loop_knob ? (uint32_t)min_u64(b->loop_limit, loop_knob) : b->loop_limit;
    if (b->loop_limit != UINT32_MAX)
        vkr__log(VKR_LOG_INFO, "vulkan: llvmpipe ends shader loops after 65535 iterations: area and antialias sums of more "
                 "than %u terms take several dispatches", b->max_loop);
    return VKR_OK;
}

/* ------------------------------------------------------------------ pipelines */

/* One compute pipeline of `module` with specialisation constants 0 .. n-1 = data[0 .. n-1]. */
static int create_pipe(vk_backend_t *b, VkShaderModule module, VkPipelineLayout layout, const uint32_t *data, uint32_t n,
                       VkPipeline *pipe, vkr_error_t *err)
{
    VkSpecializationMapEntry entries[5];
    for (uint32_t i = 0; i < n && i < 5; i++)
        entries[i] = (VkSpecializationMapEntry){i, i * (uint32_t)sizeof(uint32_t), sizeof(uint32_t)};
    const VkSpecializationInfo spec = {n, entries, n * sizeof(uint32_t), data};
    VkPipelineCreationFeedbackEXT fb = {0}, stage_fb = {0};
    const VkPipelineCreationFeedbackCreateInfoEXT fb_info = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_CREATION_FEEDBACK_CREATE_INFO_EXT,
        .pPipelineCreationFeedback = &fb,
        .pipelineStageCreationFeedbackCount = 1,
        .pPipelineStageCreationFeedbacks = &stage_fb,
    };
    const VkComputePipelineCreateInfo pi = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .pNext = b->feedback ? &fb_info : NULL,
        .stage =
            {
                .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                .module = module,
                .pName = "main",
                .pSpecializationInfo = &spec,
            },
        .layout = layout,
    };
    const double t0 = now_ms();
    VkResult r = vkCreateComputePipelines(b->device, b->pcache, 1, &pi, NULL, pipe);
    b->pipes_ms += now_ms() - t0;
    if (r != VK_SUCCESS) {
        *pipe = VK_NULL_HANDLE;
        return vk_fail(b, err, "vkCreateComputePipelines", r);
    }
    b->n_pipes++;
    if ((fb.flags & VK_PIPELINE_CREATION_FEEDBACK_VALID_BIT_EXT) &&
        (fb.flags & VK_PIPELINE_CREATION_FEEDBACK_APPLICATION_PIPELINE_CACHE_HIT_BIT_EXT))
        b->pcache_hits++;
    return VKR_OK;
}

static int create_pipelines(vk_backend_t *b, vkr_error_t *err)
{
    VkShaderModule modules[SHADER_COUNT] = {VK_NULL_HANDLE};
    int rc = VKR_OK;
    VkResult r;
    const VkDescriptorSetLayoutBinding bindings[VKR_VK_BINDINGS] = {
        {0, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1, VK_SHADER_STAGE_COMPUTE_BIT, NULL},   /* input */
        {1, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1, VK_SHADER_STAGE_COMPUTE_BIT, NULL},   /* output */
        {2, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1, VK_SHADER_STAGE_COMPUTE_BIT, NULL},   /* table A (mean: input) */
        {3, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1, VK_SHADER_STAGE_COMPUTE_BIT, NULL},   /* table B (mean: input) */
    };
    const VkDescriptorSetLayoutCreateInfo set_info = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
        .bindingCount = VKR_VK_BINDINGS,
        .pBindings = bindings,
    };
    r = vkCreateDescriptorSetLayout(b->device, &set_info, NULL, &b->set_layout);
    if (r != VK_SUCCESS) {
        b->set_layout = VK_NULL_HANDLE;
        rc = vk_fail(b, err, "vkCreateDescriptorSetLayout", r);
        goto out;
    }
    const VkPushConstantRange push = {VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof(vkr_vk_push_t)};
    const VkPipelineLayoutCreateInfo layout_info = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
        .setLayoutCount = 1,
        .pSetLayouts = &b->set_layout,
        .pushConstantRangeCount = 1,
        .pPushConstantRanges = &push,
    };
    r = vkCreatePipelineLayout(b->device, &layout_info, NULL, &b->pipe_layout);
    if (r != VK_SUCCESS) {
        b->pipe_layout = VK_NULL_HANDLE;
        rc = vk_fail(b, err, "vkCreatePipelineLayout", r);
        goto out;
    }
    for (int s = 0; s < SHADER_COUNT; s++) {
        uint32_t *words = NULL;
        size_t n_words = 0;
        const double t0 = now_ms();
        rc = vkr__shader_compile(shader_names[s], s == SHADER_LINEAR && b->fp64 ? "#define VKR_FP64 1\n" : NULL, &words, &n_words,
                                 err);
        b->compile_ms += now_ms() - t0;
        if (rc)
            goto out;
        const VkShaderModuleCreateInfo mi = {
            .sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
            .codeSize = n_words * sizeof(uint32_t),
            .pCode = words,
        };
        r = vkCreateShaderModule(b->device, &mi, NULL, &modules[s]);
        free(words);
        if (r != VK_SUCCESS) {
            modules[s] = VK_NULL_HANDLE;
            rc = vk_fail(b, err, "vkCreateShaderModule", r);
            goto out;
        }
    }
    for (int p = 0; p < PIPE_COUNT; p++) {
        /* EXACT, VERTICAL and MEAN are VkBool32s, RANK an int; a shader ignores the ids it lacks */
        const uint32_t data[4] = {VKR_VK_LOCAL_SIZE, pipe_defs[p].spec1, pipe_defs[p].spec2, VKR_VK_PLANES_PER_INV};
        rc = create_pipe(b, modules[pipe_defs[p].shader], b->pipe_layout, data, 4, &b->pipes[p], err);
        if (rc)
            goto out;
    }
    const VkPushConstantRange grid_push = {VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof(vkr_vk_grid_push_t)};
    const VkPipelineLayoutCreateInfo grid_layout_info = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
        .setLayoutCount = 1,
        .pSetLayouts = &b->set_layout,
        .pushConstantRangeCount = 1,
        .pPushConstantRanges = &grid_push,
    };
    r = vkCreatePipelineLayout(b->device, &grid_layout_info, NULL, &b->grid_layout);
    if (r != VK_SUCCESS) {
        b->grid_layout = VK_NULL_HANDLE;
        rc = vk_fail(b, err, "vkCreatePipelineLayout", r);
        goto out;
    }
    /* grid_sample.comp: RANK, MODE, PADDING (the wire's ids, which are the spec's), AFFINE */
    for (int rank = 2; rank <= 3; rank++)
        for (int mode = 1; mode <= 3; mode++)
            for (int pad = 1; pad <= 3; pad++)
                for (int affine = 0; affine < 2; affine++) {
                    if (rank == 3 && mode == VKR_GRID_BICUBIC)
                        continue;   /* torch refuses it */
                    const uint32_t data[5] = {VKR_VK_LOCAL_SIZE, (uint32_t)rank, (uint32_t)mode, (uint32_t)pad, (uint32_t)affine};
                    rc = create_pipe(b, modules[SHADER_GRID_SAMPLE], b->grid_layout, data, 5,
                                     &b->grid_pipes[rank - 2][mode - 1][pad - 1][affine], err);
                    if (rc)
                        goto out;
                }
    for (int rank = 2; rank <= 3; rank++) {
        const uint32_t data[2] = {VKR_VK_LOCAL_SIZE, (uint32_t)rank};
        rc = create_pipe(b, modules[SHADER_AFFINE_GRID], b->grid_layout, data, 2, &b->affine_grid_pipes[rank - 2], err);
        if (rc)
            goto out;
    }
    const VkDescriptorPoolSize pool_size = {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, VKR_VK_BINDINGS * VKR_VK_SETS_PER_SUBMIT};
    const VkDescriptorPoolCreateInfo pool_info = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
        .maxSets = VKR_VK_SETS_PER_SUBMIT,
        .poolSizeCount = 1,
        .pPoolSizes = &pool_size,
    };
    r = vkCreateDescriptorPool(b->device, &pool_info, NULL, &b->desc_pool);
    if (r != VK_SUCCESS) {
        b->desc_pool = VK_NULL_HANDLE;
        rc = vk_fail(b, err, "vkCreateDescriptorPool", r);
        goto out;
    }
    {   /* every set the pool holds, allocated once: submissions rewrite them, never reallocate */
        VkDescriptorSetLayout layouts[VKR_VK_SETS_PER_SUBMIT];
        for (uint32_t i = 0; i < VKR_VK_SETS_PER_SUBMIT; i++)
            layouts[i] = b->set_layout;
        const VkDescriptorSetAllocateInfo ai = {
            .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
            .descriptorPool = b->desc_pool,
            .descriptorSetCount = VKR_VK_SETS_PER_SUBMIT,
            .pSetLayouts = layouts,
        };
        r = vkAllocateDescriptorSets(b->device, &ai, b->sets);
        if (r != VK_SUCCESS) {
            rc = vk_fail(b, err, "vkAllocateDescriptorSets", r);
            goto out;
        }
    }
    const VkCommandPoolCreateInfo cmd_pool_info = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
        .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
        .queueFamilyIndex = b->queue_family,
    };
    r = vkCreateCommandPool(b->device, &cmd_pool_info, NULL, &b->cmd_pool);
    if (r != VK_SUCCESS) {
        b->cmd_pool = VK_NULL_HANDLE;
        rc = vk_fail(b, err, "vkCreateCommandPool", r);
        goto out;
    }
    const VkCommandBufferAllocateInfo cmd_info = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
        .commandPool = b->cmd_pool,
        .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
        .commandBufferCount = 1,
    };
    r = vkAllocateCommandBuffers(b->device, &cmd_info, &b->cmd);
    if (r != VK_SUCCESS) {
        b->cmd = VK_NULL_HANDLE;
        rc = vk_fail(b, err, "vkAllocateCommandBuffers", r);
        goto out;
    }
    const VkFenceCreateInfo fence_info = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    r = vkCreateFence(b->device, &fence_info, NULL, &b->fence);
    if (r != VK_SUCCESS) {
        b->fence = VK_NULL_HANDLE;
        rc = vk_fail(b, err, "vkCreateFence", r);
        goto out;
    }
out:
    for (int s = SHADER_COUNT - 1; s >= 0; s--)
        vkDestroyShaderModule(b->device, modules[s], NULL);
    return rc;
}

/* ------------------------------------------------------------------ jobs */

static void buf_free(vk_backend_t *b, vk_buf_t *x)
{
    if (x->map)
        vkUnmapMemory(b->device, x->mem);
    vkDestroyBuffer(b->device, x->buf, NULL);
    vkFreeMemory(b->device, x->mem, NULL);
    memset(x, 0, sizeof *x);
}

/* A job is done with buffer x (b->lock held, its submission complete): an import's is left
 * alone, one of ours is kept for the next jobs while the pool has room (VKR_VK_POOL_*), else
 * freed.  Pooled buffers are host memory that no job needs now: kept small so that an idle
 * daemon holds little. */
static void buf_destroy(vk_backend_t *b, vk_buf_t *x)
{
    if (x->borrowed || !x->buf) {
        memset(x, 0, sizeof *x);
        return;
    }
    if (b->pool && x->capacity <= VKR_VK_POOL_MAX_BUFFER && b->n_pool < VKR_VK_POOL_BUFFERS &&
        b->pool_bytes + x->capacity <= VKR_VK_POOL_BYTES) {
        b->pool[b->n_pool++] = *x;
        b->pool_bytes += x->capacity;
        memset(x, 0, sizeof *x);
        return;
    }
    buf_free(b, x);
}

/* A pooled buffer for `size` bytes (the smallest that holds them, if it is no more than
 * VKR_VK_POOL_SLACK times too large), taken out of the pool.  false: none. */
static bool buf_from_pool(vk_backend_t *b, VkDeviceSize size, vk_buf_t *x)
{
    unsigned best = UINT32_MAX;
    for (unsigned i = 0; i < b->n_pool; i++)
        if (b->pool[i].capacity >= size && b->pool[i].capacity <= VKR_VK_POOL_SLACK * size &&
            (best == UINT32_MAX || b->pool[i].capacity < b->pool[best].capacity))
            best = i;
    if (best == UINT32_MAX)
        return false;
    *x = b->pool[best];
    x->size = size;
    b->pool_bytes -= x->capacity;
    b->pool[best] = b->pool[--b->n_pool];
    return true;
}

/* Free every pooled buffer. */
static void buf_pool_drain(vk_backend_t *b)
{
    while (b->n_pool > 0)
        buf_free(b, &b->pool[--b->n_pool]);
    b->pool_bytes = 0;
}

static int buf_create(vk_backend_t *b, VkDeviceSize size, vk_buf_t *x, vkr_error_t *err)
{
    memset(x, 0, sizeof *x);
    if (buf_from_pool(b, size, x)) {
        atomic_fetch_add(&b->pool_hits, 1ul);
        return VKR_OK;
    }
    atomic_fetch_add(&b->pool_misses, 1ul);
    int rc = VKR_OK;
    const VkBufferCreateInfo bi = {
        .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
        .size = size,
        .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT,
        .sharingMode = VK_SHARING_MODE_EXCLUSIVE,
    };
    VkResult r = vkCreateBuffer(b->device, &bi, NULL, &x->buf);
    if (r != VK_SUCCESS) {
        x->buf = VK_NULL_HANDLE;
        rc = vk_fail(b, err, "vkCreateBuffer", r);
        goto fail;
    }
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(b->device, x->buf, &req);
    const VkMemoryPropertyFlags need = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    uint32_t type = UINT32_MAX;
    for (int pass = 0; pass < 2 && type == UINT32_MAX; pass++) {   /* prefer host-cached memory */
        VkMemoryPropertyFlags want = need | (pass == 0 ? VK_MEMORY_PROPERTY_HOST_CACHED_BIT : 0);
        for (uint32_t i = 0; i < b->mem_props.memoryTypeCount && type == UINT32_MAX; i++)
            if ((req.memoryTypeBits & (1u << i)) && (b->mem_props.memoryTypes[i].propertyFlags & want) == want)
                type = i;
    }
    if (type == UINT32_MAX) {
        rc = vkr_proto_error_set(err, VKR_E_BACKEND, "backend", "vulkan: no host-visible coherent memory type for a storage buffer");
        goto fail;
    }
    const VkMemoryAllocateInfo ai = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
        .allocationSize = req.size,
        .memoryTypeIndex = type,
    };
    r = vkAllocateMemory(b->device, &ai, NULL, &x->mem);
    if (r != VK_SUCCESS) {
        x->mem = VK_NULL_HANDLE;
        rc = vk_fail(b, err, "vkAllocateMemory", r);
        goto fail;
    }
    r = vkBindBufferMemory(b->device, x->buf, x->mem, 0);
    if (r != VK_SUCCESS) {
        rc = vk_fail(b, err, "vkBindBufferMemory", r);
        goto fail;
    }
    r = vkMapMemory(b->device, x->mem, 0, VK_WHOLE_SIZE, 0, &x->map);
    if (r != VK_SUCCESS) {
        x->map = NULL;
        rc = vk_fail(b, err, "vkMapMemory", r);
        goto fail;
    }
    x->size = x->capacity = size;
    return VKR_OK;
fail:
    buf_free(b, x);
    return rc;
}

/* ------------------------------------------------------------------ job preparation (no lock held) */

typedef enum { FAMILY_NEAREST, FAMILY_LINEAR, FAMILY_CUBIC, FAMILY_AREA, FAMILY_MEAN, FAMILY_ANTIALIAS } family_t;

static uint64_t max_u64(uint64_t a, uint64_t b) { return a > b ? a : b; }

/* The offset alignment of a storage-buffer binding (at least 4: every offset here is a word). */
static uint64_t bind_align(const vk_backend_t *b) { return max_u64(b->props.limits.minStorageBufferOffsetAlignment, 4); }

/* Bytes a binding may cover of what a chunk needs: the limit less the worst residual of a
 * word-aligned offset aligned down to bind_align. */
static uint64_t bind_room(const vk_backend_t *b)
{
    const uint64_t slack = bind_align(b) - 4;
    return b->max_binding > slack ? b->max_binding - slack : 0;
}

/* Words per table entry of family f along one axis (antialias: `taps` weights); 0: no table. */
static uint64_t entry_words(family_t f, int taps)
{
    switch (f) {
    case FAMILY_LINEAR: return 4;      /* i0, i1, bits of l0, l1 */
    case FAMILY_CUBIC: return 8;       /* 4 clamped indices, bits of 4 coefficients */
    case FAMILY_AREA: return 2;        /* window start, length */
    case FAMILY_ANTIALIAS: return 2 + (uint64_t)taps;   /* xmin, xsize, bits of the weights */
    default: return 0;
    }
}

static uint32_t float_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* Pack real axis d's spec tables into dst, entry_words(f, taps) words per output index. */
static int axis_table(const vkr_interp_plan_t *plan, family_t f, int d, int taps, uint32_t *dst, vkr_error_t *err)
{
    const int64_t n = plan->in_size[d], o = plan->out_size[d];
    const size_t words = (size_t)entry_words(f, taps);
    int32_t *w = malloc((size_t)o * words * sizeof(int32_t));
    if (!w)
        return vkr_proto_error_set(err, VKR_E_NOMEM, "backend", "vulkan: out of memory for the tables of %lld outputs",
                                   (long long)o);
    const bool ac = plan->align_corners, has_scale = plan->has_scale[d];
    const double scale = plan->scale[d];
    switch (f) {
    case FAMILY_LINEAR: {
        const vkr_linear_taps_t t = {w, w + o, (float *)(w + 2 * o), (float *)(w + 3 * o)};
        vkr_spec_linear_taps(n, o, ac, has_scale, scale, t);
        for (int64_t i = 0; i < o; i++) {
            uint32_t *e = dst + 4 * i;
            e[0] = (uint32_t)t.i0[i];
            e[1] = (uint32_t)t.i1[i];
            e[2] = float_bits(t.l0[i]);
            e[3] = float_bits(t.l1[i]);
        }
        break;
    }
    case FAMILY_CUBIC: {
        vkr_cubic_taps_t t;
        for (int k = 0; k < 4; k++) {
            t.idx[k] = w + k * o;
            t.coeff[k] = (float *)(w + (4 + k) * o);
        }
        vkr_spec_cubic_taps(n, o, ac, has_scale, scale, t);
        for (int64_t i = 0; i < o; i++)
            for (int k = 0; k < 4; k++) {
                dst[8 * i + k] = (uint32_t)t.idx[k][i];
                dst[8 * i + 4 + k] = float_bits(t.coeff[k][i]);
            }
        break;
    }
    case FAMILY_AREA:
        vkr_spec_area_windows(n, o, w, w + o);
        for (int64_t i = 0; i < o; i++) {
            dst[2 * i] = (uint32_t)w[i];
            dst[2 * i + 1] = (uint32_t)w[o + i];
        }
        break;
    case FAMILY_ANTIALIAS: {
        const float *wt = (const float *)(w + 2 * o);
        vkr_spec_aa_taps(n, o, ac, has_scale, scale, plan->mode == VKR_MODE_BICUBIC, taps, w, w + o, (float *)(w + 2 * o));
        for (int64_t i = 0; i < o; i++) {
            uint32_t *e = dst + (2 + taps) * i;
            e[0] = (uint32_t)w[i];
            e[1] = (uint32_t)w[o + i];
            for (int k = 0; k < taps; k++)
                e[2 + k] = float_bits(wt[i * taps + k]);
        }
        break;
    }
    default: break;
    }
    free(w);
    return VKR_OK;
}

/* Source indices [*lo, *hi] along the split axis that output index i of pass p reads (*hi < *lo:
 * none), from the pass's split-axis table (or the spec's nearest rule, which has none). */
static void src_range(const vk_job_t *j, const vk_pass_t *p, int64_t i, int64_t *lo, int64_t *hi)
{
    const int a = p->axis;
    const uint32_t *e = p->tab_a_stride ? j->tab + p->tab_a + (uint64_t)i * p->tab_a_stride : NULL;
    switch (p->range) {
    case RANGE_NEAREST: *lo = *hi = spec_nearest_index((int)i, p->scale[a], (int)p->in[a]); break;
    case RANGE_NEAREST_CL: *lo = *hi = spec_nearest_index_cl((int)i, p->scale[a], (int)p->in[a], (int)p->out[a]); break;
    case RANGE_NEAREST_EXACT: *lo = *hi = spec_nearest_exact_index((int)i, p->scale[a], (int)p->in[a]); break;
    case RANGE_IDENTITY: *lo = *hi = i; break;
    case RANGE_LINEAR:
        *lo = e[0];
        *hi = e[1];
        break;
    case RANGE_CUBIC:
        *lo = *hi = e[0];
        for (int k = 1; k < 4; k++) {
            *lo = e[k] < *lo ? e[k] : *lo;
            *hi = e[k] > *hi ? e[k] : *hi;
        }
        break;
    case RANGE_AREA:
    case RANGE_AA:   /* start / xmin, length / xsize (an xsize of 0 reads nothing) */
        *lo = e[0];
        *hi = (int64_t)e[0] + (int64_t)e[1] - 1;
        break;
    default:   /* no other family exists; an empty range keeps every caller's arithmetic defined */
        *lo = 0;
        *hi = -1;
        break;
    }
}

/* The longest sequential sum an output of pass p adds, from its tables: area, the elements of a
 * window; antialias, the taps of a filter; 0 for the other families. */
static uint64_t pass_terms(const vk_job_t *j, const vk_pass_t *p)
{
    const bool area = p->pipe >= PIPE_AREA_1D && p->pipe <= PIPE_AREA_3D;
    if (!area && p->pipe != PIPE_AA_H && p->pipe != PIPE_AA_V)
        return 0;
    uint64_t terms = 1;
    for (int a = 0; a < 3; a++) {
        const uint32_t *e;
        uint64_t stride;
        if (a == p->axis && p->tab_a_stride) {
            e = j->tab + p->tab_a;
            stride = p->tab_a_stride;
        } else if (p->tab_b_axes & (1u << a)) {
            e = j->tab + p->tab_b + p->tab_rel[a];
            stride = area ? 2 : 2 + (uint64_t)p->aux;
        } else {
            continue;
        }
        uint64_t longest = 0;   /* word 1 of an entry: window length, or xsize */
        for (int64_t i = 0; i < p->out[a]; i++)
            longest = max_u64(longest, e[(uint64_t)i * stride + 1]);
        terms *= longest;
    }
    return terms;
}

/* Cut pass p into chunks: whole planes when one fits every binding, else one plane at a time in
 * ranges of its split axis (each range's source rows and table entries bound alone); and its
 * sums into steps of at most max_loop terms. */
static int pass_chunks(const vk_backend_t *b, vk_job_t *j, vk_pass_t *p, vkr_error_t *err)
{
    const uint64_t room = bind_room(b);
    const unsigned long long limit = (unsigned long long)b->max_binding;
    const uint64_t terms = pass_terms(j, p);
    if (terms > UINT32_MAX)
        return vkr_proto_error_set(err, VKR_E_TOO_LARGE, "input.shape",
                                   "vulkan backend: %s: a sum of %llu terms is over 2^32 - 1 (use --backend cpu)", j->what,
                                   (unsigned long long)terms);
    p->steps = terms > b->max_loop ? (terms + b->max_loop - 1) / b->max_loop : 1;
    if (p->mean) {
        /* spec_cascade_sum's loops run about rows + rows / 16 iterations (rows: n / 32) in the one
         * invocation of a plane, which cannot be split across dispatches. */
        const uint64_t rows = (p->in_plane >= 8 ? p->in_plane / 8 : p->in_plane) / 4;
        const uint64_t loops = rows + rows / 16 + 64;
        if (loops > b->loop_limit)
            return vkr_proto_error_set(err, VKR_E_TOO_LARGE, "input.shape",
                                       "vulkan backend: area's mean of a plane of %llu elements runs about %llu loop iterations "
                                       "in one shader invocation, over this device's limit of %u (llvmpipe ends longer loops) "
                                       "(use --backend cpu)",
                                       (unsigned long long)p->in_plane, (unsigned long long)loops, b->loop_limit);
    }
    if (4 * p->tab_b_words > room)
        return vkr_proto_error_set(err, VKR_E_TOO_LARGE, "size",
                                   "vulkan backend: the %s tables of the inner spatial axes need %llu bytes, over this "
                                   "device's binding limit (maxStorageBufferRange) of %llu bytes (use --backend cpu)",
                                   j->what, (unsigned long long)(4 * p->tab_b_words), limit);
    if (p->mean) {
        if (4 * p->in_plane <= room) {
            p->planes_per_chunk = room / (4 * p->in_plane);
        } else {
            const uint64_t seg = room / bind_align(b) * bind_align(b) / 4;   /* keeps every binding's residual */
            if (seg == 0 || p->in_plane > VKR_VK_MEAN_BINDINGS * seg)
                return vkr_proto_error_set(err, VKR_E_TOO_LARGE, "input.shape",
                                           "vulkan backend: area's mean of a plane of %llu elements needs more than %u bindings "
                                           "of this device's limit (maxStorageBufferRange) of %llu bytes (use --backend cpu)",
                                           (unsigned long long)p->in_plane, VKR_VK_MEAN_BINDINGS, limit);
            p->planes_per_chunk = 1;
            p->mean_seg = seg;
        }
        p->planes_per_chunk = min_u64(p->planes_per_chunk, j->planes);
        p->chunks = (j->planes + p->planes_per_chunk - 1) / p->planes_per_chunk;
        return VKR_OK;
    }
    const int64_t o = p->out[p->axis];
    if (4 * p->in_plane <= room && 4 * p->out_plane <= room && 4 * p->tab_a_stride * (uint64_t)o <= room) {
        p->planes_per_chunk = min_u64(min_u64(room / (4 * p->in_plane), room / (4 * p->out_plane)), j->planes);
        p->chunks = (j->planes + p->planes_per_chunk - 1) / p->planes_per_chunk;
        return VKR_OK;
    }
    if (p->out_plane > UINT32_MAX)   /* the shaders decompose a 32-bit index within the plane */
        return vkr_proto_error_set(err, VKR_E_TOO_LARGE, "size",
                                   "vulkan backend: a plane of %llu output elements is over 2^32 - 1 (use --backend cpu)",
                                   (unsigned long long)p->out_plane);
    uint64_t cap = 0;
    for (int64_t a0 = 0; a0 < o;) {
        int64_t lo = INT64_MAX, hi = INT64_MIN, a1 = a0;
        for (; a1 < o; a1++) {
            int64_t l, h, nlo = lo, nhi = hi;
            src_range(j, p, a1, &l, &h);
            if (l <= h) {
                nlo = l < lo ? l : lo;
                nhi = h > hi ? h : hi;
            }
            const uint64_t rows = (uint64_t)(a1 + 1 - a0);
            const uint64_t in_bytes = nlo <= nhi ? 4 * (uint64_t)(nhi - nlo + 1) * p->in_inner : 0;
            if (4 * rows * p->out_inner > room || in_bytes > room || 4 * rows * p->tab_a_stride > room)
                break;
            lo = nlo;
            hi = nhi;
        }
        if (a1 == a0) {
            int64_t l, h;
            src_range(j, p, a0, &l, &h);
            const uint64_t in_bytes = l <= h ? 4 * (uint64_t)(h - l + 1) * p->in_inner : 0;
            return vkr_proto_error_set(err, VKR_E_TOO_LARGE, "input.shape",
                                       "vulkan backend: %s: one index of the outermost spatial axis needs %llu bytes of output, "
                                       "%llu bytes of input and %llu bytes of tables, and one of them is over this device's "
                                       "binding limit (maxStorageBufferRange) of %llu bytes (use --backend cpu)",
                                       j->what, (unsigned long long)(4 * p->out_inner), (unsigned long long)in_bytes,
                                       (unsigned long long)(4 * p->tab_a_stride), limit);
        }
        if (p->n_segs == cap) {
            cap = cap ? 2 * cap : 16;
            vk_seg_t *s = realloc(p->segs, (size_t)cap * sizeof *s);
            if (!s)
                return vkr_proto_error_set(err, VKR_E_NOMEM, "backend", "vulkan: out of memory for the chunks of a job");
            p->segs = s;
        }
        p->segs[p->n_segs++] = (vk_seg_t){a0, a1, lo, hi};
        a0 = a1;
    }
    p->chunks = j->planes * p->n_segs;
    return VKR_OK;
}

static void job_free(vk_job_t *j)
{
    free(j->tab);
    for (int i = 0; i < 2; i++)
        free(j->pass[i].segs);
    memset(j, 0, sizeof *j);
}

/* Extents, element counts and the split axis of a pass from its padded extents. */
static void pass_shape(vk_pass_t *p, const int64_t in[3], const int64_t out[3], int axis)
{
    p->axis = axis;
    p->in_plane = p->out_plane = 1;
    for (int a = 0; a < 3; a++) {
        p->in[a] = in[a];
        p->out[a] = out[a];
        p->in_plane *= (uint64_t)in[a];
        p->out_plane *= (uint64_t)out[a];
    }
    p->in_inner = p->in_plane / (uint64_t)in[axis];
    p->out_inner = p->out_plane / (uint64_t)out[axis];
}

/* Family, tables, passes and chunks of a plan; refuses what this backend cannot bind.  The caller
 * frees *j with job_free whatever this returns. */
static int job_prepare(const vk_backend_t *b, const vkr_interp_plan_t *plan, vk_job_t *j, vkr_error_t *err)
{
    memset(j, 0, sizeof *j);
    const int rank = plan->spatial_rank;
    const char *mode_name = vkr_proto_mode_name(plan->mode);
    j->what = mode_name ? mode_name : "?";
    if (rank < 1 || rank > 3)
        return vkr_proto_error_set(err, VKR_E_BACKEND, "backend", "vulkan backend: plan with %d spatial axes", rank);
    family_t f;
    switch (plan->mode) {
    case VKR_MODE_NEAREST:
    case VKR_MODE_NEAREST_EXACT: f = FAMILY_NEAREST; break;
    case VKR_MODE_LINEAR:
    case VKR_MODE_BILINEAR:
    case VKR_MODE_TRILINEAR: f = FAMILY_LINEAR; break;
    case VKR_MODE_BICUBIC: f = FAMILY_CUBIC; break;
    case VKR_MODE_AREA: f = FAMILY_AREA; break;
    default:
        return vkr_proto_error_set(err, VKR_E_UNSUPPORTED, "mode", "vulkan backend: mode '%s' is not implemented", j->what);
    }
    if (plan->antialias) {
        if ((plan->mode != VKR_MODE_BILINEAR && plan->mode != VKR_MODE_BICUBIC) || rank != 2)
            return vkr_proto_error_set(err, VKR_E_UNSUPPORTED, "antialias",
                                       "vulkan backend: mode '%s' with antialias=True on %d spatial axes is not implemented",
                                       j->what, rank);
        f = FAMILY_ANTIALIAS;
    }
    if (f == FAMILY_CUBIC && rank != 2)
        return vkr_proto_error_set(err, VKR_E_UNSUPPORTED, "mode", "vulkan backend: bicubic on %d spatial axes is not implemented",
                                   rank);
    const int pad = 3 - rank;
    int64_t in3[3], out3[3];
    bool all_ones = true;
    for (int a = 0; a < 3; a++) {
        const int d = a - pad;
        in3[a] = d < 0 ? 1 : plan->in_size[d];
        out3[a] = d < 0 ? 1 : plan->out_size[d];
        all_ones = all_ones && out3[a] == 1;
    }
    if (f == FAMILY_AREA && all_ones)
        f = FAMILY_MEAN;   /* torch's mean(): cascade sum / n */
    /* nearest and the linear family follow torch 1.13's channels-last kernels there (rank >= 2) */
    const bool channels_last = vkr_spec_channels_last_kernel(rank, plan->channels, plan->in_size);
    j->planes = (uint64_t)plan->batch * (uint64_t)plan->channels;
    if (j->planes == 0 || plan->out_elements == 0)
        return VKR_OK;   /* nothing to run: no passes */
    j->elements[BUF_IN] = plan->in_elements;
    j->elements[BUF_OUT] = plan->out_elements;
    if (f == FAMILY_ANTIALIAS)
        j->elements[BUF_TMP] = j->planes * (uint64_t)in3[1] * (uint64_t)out3[2];

    /* Tables: the real axes' in order, so that the outermost (the split axis) comes first and
     * the others follow as one range. */
    int taps[3] = {0, 0, 0};
    uint64_t axis_word[3] = {0, 0, 0}, words = 0;
    for (int d = 0; d < rank; d++) {
        if (f == FAMILY_ANTIALIAS)
            taps[d] = vkr_spec_aa_max_taps(plan->in_size[d], plan->out_size[d], plan->align_corners, plan->has_scale[d],
                                           plan->scale[d], plan->mode == VKR_MODE_BICUBIC);
        axis_word[d] = words;
        words += entry_words(f, taps[d]) * (uint64_t)plan->out_size[d];
    }
    j->elements[BUF_TAB] = words;
    static const char *const buf_names[BUF_COUNT] = {"input tensor", "output tensor", "antialias intermediate", "tables"};
    for (int i = 0; i < BUF_COUNT; i++)
        if (4 * j->elements[i] > b->max_alloc)
            return vkr_proto_error_set(err, VKR_E_TOO_LARGE, i == BUF_IN ? "input.shape" : "size",
                                       "vulkan backend: the %s of %llu bytes is over this device's maxMemoryAllocationSize of "
                                       "%llu bytes (use --backend cpu)",
                                       buf_names[i], (unsigned long long)(4 * j->elements[i]), (unsigned long long)b->max_alloc);
    if (words) {
        j->tab = malloc((size_t)words * sizeof(uint32_t));
        if (!j->tab)
            return vkr_proto_error_set(err, VKR_E_NOMEM, "backend", "vulkan: out of memory for %llu table words",
                                       (unsigned long long)words);
        for (int d = 0; d < rank; d++) {
            int rc = axis_table(plan, f, d, taps[d], j->tab + axis_word[d], err);
            if (rc)
                return rc;
        }
    }

    vk_pass_t *p = &j->pass[0];
    j->n_pass = 1;
    p->src = BUF_IN;
    p->dst = BUF_OUT;
    pass_shape(p, in3, out3, pad);
    p->tab_a = axis_word[0];
    p->tab_a_stride = entry_words(f, taps[0]);
    if (rank > 1 && f != FAMILY_ANTIALIAS) {
        p->tab_b = axis_word[1];
        p->tab_b_words = words - axis_word[1];
        for (int d = 1; d < rank; d++) {
            p->tab_b_axes |= 1u << (pad + d);
            p->tab_rel[pad + d] = axis_word[d] - axis_word[1];
        }
    }
    switch (f) {
    case FAMILY_NEAREST: {
        const bool exact = plan->mode == VKR_MODE_NEAREST_EXACT;
        p->pipe = exact ? PIPE_NEAREST_EXACT : channels_last ? PIPE_NEAREST_CL : PIPE_NEAREST;
        p->range = exact ? RANGE_NEAREST_EXACT : channels_last ? RANGE_NEAREST_CL : RANGE_NEAREST;
        for (int a = 0; a < 3; a++) {
            const int d = a - pad;
            p->scale[a] = d < 0 ? 1.0f : vkr_spec_area_pixel_scale(in3[a], out3[a], false, plan->has_scale[d], plan->scale[d]);
        }
        break;
    }
    case FAMILY_LINEAR:
        p->pipe = channels_last ? PIPE_LINEAR_CL_2D + rank - 2 : PIPE_LINEAR_1D + rank - 1;
        p->cl_channels = channels_last ? (uint64_t)plan->channels : 0;
        p->range = RANGE_LINEAR;
        break;
    case FAMILY_CUBIC:
        p->pipe = PIPE_CUBIC;
        p->range = RANGE_CUBIC;
        break;
    case FAMILY_AREA:
        p->pipe = PIPE_AREA_1D + rank - 1;
        p->range = RANGE_AREA;
        break;
    case FAMILY_MEAN:
        p->pipe = PIPE_AREA_MEAN;
        p->mean = true;
        break;
    case FAMILY_ANTIALIAS: {
        /* PyTorch 1.13 runs both passes always: W into N*C*H*OW, then H into the output. */
        const int64_t mid[3] = {1, in3[1], out3[2]};
        vk_pass_t *q = &j->pass[1];
        j->n_pass = 2;
        p->pipe = PIPE_AA_H;
        p->range = RANGE_IDENTITY;
        p->dst = BUF_TMP;
        pass_shape(p, in3, mid, 1);
        p->aux = (uint32_t)taps[1];
        p->tab_a_stride = 0;
        p->tab_b = axis_word[1];
        p->tab_b_words = words - axis_word[1];
        p->tab_b_axes = 1u << 2;
        q->pipe = PIPE_AA_V;
        q->range = RANGE_AA;
        q->src = BUF_TMP;
        q->dst = BUF_OUT;
        pass_shape(q, mid, out3, 1);
        q->aux = (uint32_t)taps[0];
        q->tab_a = axis_word[0];
        q->tab_a_stride = entry_words(f, taps[0]);
        break;
    }
    }
    for (int i = 0; i < j->n_pass; i++) {
        int rc = pass_chunks(b, j, &j->pass[i], err);
        if (rc)
            return rc;
    }
    return VKR_OK;
}

/* ------------------------------------------------------------------ running a job (lock held) */

/* Division by an invariant d >= 1 as the shaders' fast_div does it (interpolate_params.glsl):
 * with l = ceil(log2 d), m = floor(2^32 (2^l - d) / d) + 1, t = (n * m) >> 32,
 * n / d = (t + ((n - t) >> min(l, 1))) >> max(l - 1, 0) for every 32-bit n (Granlund and
 * Montgomery, "Division by invariant integers using multiplication", fig. 4.1).  out[0] = m,
 * out[1] = min(l, 1) | max(l - 1, 0) << 8.  llvmpipe has no vector integer division: it divides
 * lane by lane. */
static void fast_div_magic(uint64_t d, uint32_t out[2])
{
    if (d == 0)
        d = 1;   /* never divided by: an empty chunk */
    int l = 0;
    while (l < 32 && (1ull << l) < d)
        l++;
    out[0] = (uint32_t)(((((uint64_t)1 << l) - d) << 32) / d + 1);
    out[1] = (uint32_t)(l < 1 ? l : 1) | (uint32_t)(l > 1 ? l - 1 : 0) << 8;
}

/* The pipelines whose shaders write VKR_VK_PLANES_PER_INV planes per invocation (pc.span, pc.planes). */
static bool pipe_multi_plane(int pipe)
{
    return pipe == PIPE_NEAREST || pipe == PIPE_NEAREST_EXACT || pipe == PIPE_LINEAR_1D || pipe == PIPE_LINEAR_2D ||
           pipe == PIPE_LINEAR_3D || pipe == PIPE_CUBIC || pipe == PIPE_NEAREST_CL || pipe == PIPE_LINEAR_CL_2D ||
           pipe == PIPE_LINEAR_CL_3D;
}

/* A binding of `bytes` from byte `first` of a buffer: the offset aligned down, the residual
 * returned in *residual (words). */
static VkDescriptorBufferInfo bind_bytes(const vk_backend_t *b, const vk_buf_t *x, uint64_t first, uint64_t bytes,
                                         uint32_t *residual)
{
    const uint64_t align = bind_align(b);
    first += x->origin;   /* an import: the tensor starts this far into its buffer (a multiple of 4) */
    const uint64_t off = first / align * align;
    *residual = (uint32_t)((first - off) / 4);
    return (VkDescriptorBufferInfo){x->buf, off, first - off + bytes};
}

/* Descriptors and push constants of chunk c of pass p.  Offsets into the bound ranges are folded
 * modulo 2^32 (see shaders/interpolate_params.glsl). */
static void chunk_setup(const vk_backend_t *b, const vk_job_t *j, const vk_pass_t *p, uint64_t c, const vk_buf_t *bufs,
                        VkDescriptorBufferInfo info[VKR_VK_BINDINGS], vkr_vk_push_t *pc)
{
    uint64_t p0, k;
    int64_t a0, a1, lo, hi;
    if (p->planes_per_chunk) {
        p0 = c * p->planes_per_chunk;
        k = min_u64(p->planes_per_chunk, j->planes - p0);
        a0 = 0;
        a1 = p->out[p->axis];
        lo = 0;
        hi = p->in[p->axis] - 1;
    } else {
        const vk_seg_t *s = &p->segs[c % p->n_segs];
        p0 = c / p->n_segs;
        k = 1;
        a0 = s->a0;
        a1 = s->a1;
        lo = s->lo;
        hi = s->hi;
    }
    *pc = (vkr_vk_push_t){
        .in_d = (int32_t)p->in[0], .in_h = (int32_t)p->in[1], .in_w = (int32_t)p->in[2],
        .out_d = (int32_t)p->out[0], .out_h = (int32_t)p->out[1], .out_w = (int32_t)p->out[2],
        .scale_d = p->scale[0], .scale_h = p->scale[1], .scale_w = p->scale[2],
        .aux = p->aux,
    };
    const vk_buf_t *src = &bufs[p->src], *dst = &bufs[p->dst], *tab = &bufs[BUF_TAB];
    uint32_t r;
    if (p->mean_seg) {   /* one plane over up to VKR_VK_MEAN_BINDINGS bindings: 0, 2, 3 */
        const uint64_t first = p0 * p->in_plane;
        info[0] = bind_bytes(b, src, 4 * first, 4 * min_u64(p->mean_seg, p->in_plane), &r);
        pc->in_base = r;
        for (uint64_t s = 1; s < VKR_VK_MEAN_BINDINGS; s++) {
            uint32_t same;   /* == r: segment s starts s * mean_seg words (a multiple of the alignment) on */
            info[1 + s] = s * p->mean_seg < p->in_plane
                              ? bind_bytes(b, src, 4 * (first + s * p->mean_seg), 4 * min_u64(p->mean_seg, p->in_plane - s * p->mean_seg),
                                           &same)
                              : info[0];
        }
        pc->aux = (uint32_t)p->mean_seg;
    } else if (lo <= hi) {
        info[0] = bind_bytes(b, src, 4 * (p0 * p->in_plane + (uint64_t)lo * p->in_inner),
                             4 * ((k - 1) * p->in_plane + (uint64_t)(hi - lo + 1) * p->in_inner), &r);
        pc->in_base = (uint32_t)(r - (uint64_t)lo * p->in_inner);
    } else {   /* the chunk reads no input (antialias rows with no taps) */
        info[0] = bind_bytes(b, src, 4 * p0 * p->in_plane, 4, &r);
        pc->in_base = r;
    }
    const uint64_t e_off = (uint64_t)a0 * p->out_inner;
    const uint64_t count = (k - 1) * p->out_plane + (uint64_t)(a1 - a0) * p->out_inner;
    info[1] = bind_bytes(b, dst, 4 * (p0 * p->out_plane + e_off), 4 * count, &r);
    pc->out_base = (uint32_t)(r - e_off);
    pc->e_off = (uint32_t)e_off;
    pc->count = (uint32_t)count;
    if (pipe_multi_plane(p->pipe)) {   /* count == k * span: whole planes (a0 = 0), or k = 1 */
        pc->span = (uint32_t)((uint64_t)(a1 - a0) * p->out_inner);
        pc->planes = (uint32_t)k;
        fast_div_magic((uint64_t)p->out[2], pc->div_w);
        fast_div_magic((uint64_t)p->out[1], pc->div_h);
        fast_div_magic(pc->span, pc->div_span);
    }
    if (p->cl_channels) {
        pc->cl_channels = (uint32_t)p->cl_channels;
        pc->cl_vec = (uint32_t)(p->cl_channels - p->cl_channels % 8);
        pc->cl_c0 = (uint32_t)(p0 % p->cl_channels);
    }
    if (p->mean_seg)
        return;
    /* Bindings a shader declares but this pass does not use still need a valid range: the input. */
    info[2] = info[3] = info[0];
    if (p->tab_a_stride) {
        const uint64_t w0 = (uint64_t)a0 * p->tab_a_stride;
        info[2] = bind_bytes(b, tab, 4 * (p->tab_a + w0), 4 * (uint64_t)(a1 - a0) * p->tab_a_stride, &r);
        pc->tab[p->axis] = (uint32_t)(r - w0);
    }
    if (p->tab_b_words) {
        info[3] = bind_bytes(b, tab, 4 * p->tab_b, 4 * p->tab_b_words, &r);
        for (int a = 0; a < 3; a++)
            if (p->tab_b_axes & (1u << a))
                pc->tab[a] = (uint32_t)(r + p->tab_rel[a]);
    }
}

/* Make the shaders' writes visible to the host (vkWaitForFences alone does not). */
static void barrier_to_host(VkCommandBuffer cmd)
{
    const VkMemoryBarrier mb = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
        .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
        .dstAccessMask = VK_ACCESS_HOST_READ_BIT,
    };
    vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
}

/* Make earlier dispatches' writes (earlier submissions included: submission order spans the
 * queue) visible to later dispatches' reads: between passes, and between steps of a sum. */
static void barrier_compute(VkCommandBuffer cmd)
{
    const VkMemoryBarrier mb = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
        .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
        .dstAccessMask = VK_ACCESS_SHADER_READ_BIT,
    };
    vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &mb, 0, NULL, 0,
                         NULL);
}

/* Start a submission: n of the descriptor sets allocated at start-up (n <=
 * VKR_VK_SETS_PER_SUBMIT), the command buffer reset and begun. */
static int submit_begin(vk_backend_t *b, uint32_t n, VkDescriptorSet *sets, vkr_error_t *err)
{
    /* the previous submission has completed (its fence waited for): its sets are free to rewrite */
    memcpy(sets, b->sets, n * sizeof sets[0]);
    VkResult r = vkResetCommandBuffer(b->cmd, 0);
    if (r != VK_SUCCESS)
        return vk_fail(b, err, "vkResetCommandBuffer", r);
    const VkCommandBufferBeginInfo bi = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
        .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT,
    };
    r = vkBeginCommandBuffer(b->cmd, &bi);
    if (r != VK_SUCCESS)
        return vk_fail(b, err, "vkBeginCommandBuffer", r);
    return VKR_OK;
}

/* End the submission begun by submit_begin (the shaders' writes made visible to the host), submit
 * it and wait for it. */
static int submit_wait(vk_backend_t *b, vkr_error_t *err)
{
    barrier_to_host(b->cmd);
    VkResult r = vkEndCommandBuffer(b->cmd);
    if (r != VK_SUCCESS)
        return vk_fail(b, err, "vkEndCommandBuffer", r);
    r = vkResetFences(b->device, 1, &b->fence);
    if (r != VK_SUCCESS)
        return vk_fail(b, err, "vkResetFences", r);
    const VkSubmitInfo si = {
        .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
        .commandBufferCount = 1,
        .pCommandBuffers = &b->cmd,
    };
    r = vkQueueSubmit(b->queue, 1, &si, b->fence);
    if (r != VK_SUCCESS)
        return vk_fail(b, err, "vkQueueSubmit", r);
    r = vkWaitForFences(b->device, 1, &b->fence, VK_TRUE, UINT64_MAX);
    if (r != VK_SUCCESS)
        return vk_fail(b, err, "vkWaitForFences", r);
    return VKR_OK;
}

/* Point descriptor set `set` at a chunk's bindings. */
static void write_set(vk_backend_t *b, VkDescriptorSet set, const VkDescriptorBufferInfo infos[VKR_VK_BINDINGS])
{
    const VkWriteDescriptorSet w = {
        .sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
        .dstSet = set,
        .dstBinding = 0,
        .descriptorCount = VKR_VK_BINDINGS,
        .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
        .pBufferInfo = infos,
    };
    vkUpdateDescriptorSets(b->device, 1, &w, 0, NULL);
}

/* Record `count` invocations as gx workgroups (of VKR_VK_LOCAL_SIZE) per row, up to max_groups[1]
 * rows per dispatch, more dispatches when even that is not enough: each gets its push constants
 * pc (pc_bytes, on layout) with its first element in *row / *first (fields of pc). */
static void record_rows(vk_backend_t *b, VkPipelineLayout layout, void *pc, size_t pc_bytes, uint32_t *row_field,
                        uint32_t *first_field, uint64_t count, uint64_t *dispatches)
{
    const uint64_t local = VKR_VK_LOCAL_SIZE;
    const uint64_t groups = (count + local - 1) / local;
    const uint64_t gx = groups < b->max_groups[0] ? groups : b->max_groups[0];
    const uint64_t row = gx * local;
    const uint64_t rows = (count + row - 1) / row;

    *row_field = (uint32_t)row;
    for (uint64_t r0 = 0; r0 < rows; r0 += b->max_groups[1]) {
        const uint64_t gy = rows - r0 < b->max_groups[1] ? rows - r0 : b->max_groups[1];
        /* No barrier between dispatches of a step: each writes its own elements only (chunks'
         * bound ranges may overlap by an alignment residual, the elements written never do). */
        *first_field = (uint32_t)(r0 * row);
        vkCmdPushConstants(b->cmd, layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, (uint32_t)pc_bytes, pc);
        vkCmdDispatch(b->cmd, (uint32_t)gx, (uint32_t)gy, 1);
        (*dispatches)++;
    }
}

/* Record step `step` of one interpolate chunk (its set and push constants from chunk_setup). */
static void record_chunk(vk_backend_t *b, VkDescriptorSet set, const vkr_vk_push_t *chunk_pc, uint64_t step, uint64_t *dispatches)
{
    vkr_vk_push_t pc = *chunk_pc;
    pc.term0 = (uint32_t)(step * b->max_loop);
    pc.term1 = (uint32_t)min_u64((step + 1) * b->max_loop, UINT32_MAX);
    vkCmdBindDescriptorSets(b->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, b->pipe_layout, 0, 1, &set, 0, NULL);
    /* nearest, linear, cubic: an invocation per element of a plane for every VKR_VK_PLANES_PER_INV planes */
    const uint64_t count = pc.planes ? (pc.planes + VKR_VK_PLANES_PER_INV - 1) / VKR_VK_PLANES_PER_INV * (uint64_t)pc.span : pc.count;
    record_rows(b, b->pipe_layout, &pc, sizeof pc, &pc.row, &pc.first, count, dispatches);
}

/* Record, submit and wait for chunks [c0, c0 + n) of pass pi (n <= VKR_VK_SETS_PER_SUBMIT). */
static int run_chunks(vk_backend_t *b, const vk_job_t *j, int pi, const vk_buf_t *bufs, uint64_t c0, uint32_t n,
                      uint64_t *dispatches, vkr_error_t *err)
{
    const vk_pass_t *p = &j->pass[pi];
    VkDescriptorSet sets[VKR_VK_SETS_PER_SUBMIT];
    int rc = submit_begin(b, n, sets, err);
    if (rc)
        return rc;
    if (pi > 0)
        barrier_compute(b->cmd);
    vkCmdBindPipeline(b->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, b->pipes[p->pipe]);
    vkr_vk_push_t pcs[VKR_VK_SETS_PER_SUBMIT];
    for (uint32_t i = 0; i < n; i++) {
        VkDescriptorBufferInfo infos[VKR_VK_BINDINGS];
        chunk_setup(b, j, p, c0 + i, bufs, infos, &pcs[i]);
        write_set(b, sets[i], infos);
    }
    for (uint64_t step = 0; step < p->steps; step++) {
        /* A step continues the partial sums the previous one left in the output. */
        if (step > 0)
            barrier_compute(b->cmd);
        for (uint32_t i = 0; i < n; i++)
            record_chunk(b, sets[i], &pcs[i], step, dispatches);
    }
    return submit_wait(b, err);
}

/* Descriptor sets one job of j needs when all its chunks go in one submission. */
static uint64_t job_sets(const vk_job_t *j)
{
    uint64_t n = 0;
    for (int pi = 0; pi < j->n_pass; pi++)
        n += j->pass[pi].chunks;
    return n;
}

/* Several jobs of one prepared plan, each with its own buffers (bufs[k]), in one submission:
 * pass by pass, with a barrier between passes and between the steps of a sum, every job's chunks
 * of it (jobs write disjoint buffers: no barrier between them).  n * job_sets(j) <=
 * VKR_VK_SETS_PER_SUBMIT. */
static int run_jobs_one_submit(vk_backend_t *b, const vk_job_t *j, unsigned n, vk_buf_t (*bufs)[BUF_COUNT], uint64_t *dispatches,
                               vkr_error_t *err)
{
    VkDescriptorSet sets[VKR_VK_SETS_PER_SUBMIT];
    vkr_vk_push_t pcs[VKR_VK_SETS_PER_SUBMIT];
    uint32_t first[2] = {0, 0}, s = 0;
    int rc = submit_begin(b, (uint32_t)(n * job_sets(j)), sets, err);
    if (rc)
        return rc;
    for (int pi = 0; pi < j->n_pass; pi++) {
        first[pi] = s;
        for (unsigned k = 0; k < n; k++)
            for (uint64_t c = 0; c < j->pass[pi].chunks; c++, s++) {
                VkDescriptorBufferInfo infos[VKR_VK_BINDINGS];
                chunk_setup(b, j, &j->pass[pi], c, bufs[k], infos, &pcs[s]);
                write_set(b, sets[s], infos);
            }
    }
    for (int pi = 0; pi < j->n_pass; pi++) {
        const vk_pass_t *p = &j->pass[pi];
        const uint32_t end = first[pi] + (uint32_t)(n * p->chunks);
        if (pi > 0)
            barrier_compute(b->cmd);
        vkCmdBindPipeline(b->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, b->pipes[p->pipe]);
        for (uint64_t step = 0; step < p->steps; step++) {
            if (step > 0)
                barrier_compute(b->cmd);
            for (uint32_t i = first[pi]; i < end; i++)
                record_chunk(b, sets[i], &pcs[i], step, dispatches);
        }
    }
    return submit_wait(b, err);
}

/* Whether a job's cancel flag (backend.h) is set: read before each submission and before a
 * staged output is copied out; the submission in flight, if any, has completed by then. */
static bool vk_cancelled(const atomic_bool *c) { return c != NULL && atomic_load_explicit(c, memory_order_relaxed); }

static int vk_cancelled_error(vkr_error_t *err)
{
    return vkr_proto_error_set(err, VKR_E_CANCELLED, "cancel", "vulkan: the job was cancelled while it ran");
}

/* A job buffer of `bytes` for tensor t: the import's buffer when t is imported, else a staging
 * buffer (filled from t.host when `upload`). */
static int src_buf(vk_backend_t *b, vk_src_t t, uint64_t bytes, bool upload, vk_buf_t *x, vkr_error_t *err)
{
    if (t.imp) {
        *x = (vk_buf_t){.buf = t.imp->buf, .size = t.imp->hi - t.imp->lo, .origin = (uintptr_t)t.host - t.imp->lo,
                        .borrowed = true};
        return VKR_OK;
    }
    int rc = buf_create(b, bytes, x, err);
    if (rc == VKR_OK && upload)
        memcpy(x->map, t.host, bytes);
    return rc;
}

static void job_bufs_destroy(vk_backend_t *b, vk_buf_t bufs[BUF_COUNT])
{
    for (int i = BUF_COUNT - 1; i >= 0; i--)
        buf_destroy(b, &bufs[i]);
}

/* A job's buffers (b->lock held): in and out staged (in uploaded) or borrowed from their
 * imports, the others created, the tables uploaded.  Nothing is left to destroy on failure. */
static int job_bufs_create(vk_backend_t *b, const vk_job_t *j, vk_src_t in, vk_src_t out, vk_buf_t bufs[BUF_COUNT], vkr_error_t *err)
{
    memset(bufs, 0, BUF_COUNT * sizeof bufs[0]);
    int rc = VKR_OK;
    for (int i = 0; i < BUF_COUNT && rc == VKR_OK; i++)
        if (j->elements[i])
            rc = i == BUF_IN ? src_buf(b, in, 4 * j->elements[i], true, &bufs[i], err)
                 : i == BUF_OUT ? src_buf(b, out, 4 * j->elements[i], false, &bufs[i], err)
                                : buf_create(b, 4 * j->elements[i], &bufs[i], err);
    if (rc) {
        job_bufs_destroy(b, bufs);
        return rc;
    }
    if (j->elements[BUF_TAB])
        memcpy(bufs[BUF_TAB].map, j->tab, 4 * j->elements[BUF_TAB]);
    return VKR_OK;
}

/* The whole job, with b->lock held: in and out staged or imported. */
static int run_job(vk_backend_t *b, const vk_job_t *j, vk_src_t in, vk_src_t out, const atomic_bool *cancel, vkr_error_t *err)
{
    if (vk_cancelled(cancel))
        return vk_cancelled_error(err);
    vk_buf_t bufs[BUF_COUNT];
    int rc = job_bufs_create(b, j, in, out, bufs, err);
    if (rc)
        return rc;
    uint64_t chunks = 0, submits = 0, dispatches = 0, steps = 0;
    int split = 0;
    for (int pi = 0; pi < j->n_pass; pi++) {
        const vk_pass_t *p = &j->pass[pi];
        for (uint64_t c0 = 0; c0 < p->chunks; c0 += VKR_VK_SETS_PER_SUBMIT) {
            uint32_t n = (uint32_t)min_u64(p->chunks - c0, VKR_VK_SETS_PER_SUBMIT);
            if (submits > 0)
                device_yield(b);   /* another uid's job may go between two submissions */
            if (vk_cancelled(cancel)) {
                rc = vk_cancelled_error(err);
                goto out;
            }
            rc = run_chunks(b, j, pi, bufs, c0, n, &dispatches, err);
            if (rc)
                goto out;
            submits++;
        }
        chunks += p->chunks;
        steps += p->steps;
        split += p->planes_per_chunk == 0 || p->mean_seg != 0;
    }
    if (!out.imp && vk_cancelled(cancel)) {   /* a cancelled job's output is not copied out */
        rc = vk_cancelled_error(err);
        goto out;
    }
    if (!out.imp)
        memcpy((void *)(uintptr_t)out.host, bufs[BUF_OUT].map, 4 * j->elements[BUF_OUT]);
    /* backend_agree parses this line: keep its format */
    vkr__log(VKR_LOG_DEBUG, "vulkan: %s job: passes %d, splitting planes %d, steps %llu, chunks %llu, submits %llu, dispatches %llu",
             j->what, j->n_pass, split, (unsigned long long)steps, (unsigned long long)chunks, (unsigned long long)submits,
             (unsigned long long)dispatches);
out:
    job_bufs_destroy(b, bufs);
    return rc;
}

static int vk_interpolate(vkr_backend_s *self, const vkr_interp_plan_t *plan, const float *in, float *out, const atomic_bool *cancel,
                          vkr_error_t *err)
{
    vk_backend_t *b = (vk_backend_t *)self;
    vk_job_t j;
    int rc = job_prepare(b, plan, &j, err);
    if (rc == VKR_OK && j.n_pass > 0) {
        vk_turn_t turn;
        device_enter(b, &turn);
        rc = run_job(b, &j, (vk_src_t){in, NULL}, (vk_src_t){out, NULL}, cancel, err);
        device_leave(b, &turn);
    }
    job_free(&j);
    return rc;
}

/* ------------------------------------------------------------------ grid ops */

/* Buffers of a grid job. */
enum { GBUF_IMAGE, GBUF_GRID, GBUF_OUT, GBUF_TAB, GBUF_COUNT };

/* Output points [p0, p1) of a plane. */
typedef struct {
    uint64_t p0, p1;
} vk_pts_t;

/* A grid_sample / affine_grid / affine_sample job: its buffers, the affine base tables, and how
 * it is cut into chunks: groups of nb whole batches when a batch's planes, grid, output and
 * tables fit the bindings, else within each batch groups of kc channels with all the output
 * points, else one channel at a time in ranges of output points (segs). */
typedef struct {
    char what[64];                   /* op and modes, for messages */
    VkPipeline pipe;
    int rank;                        /* spatial axes: 2 or 3 */
    bool image;                      /* an input is sampled (grid_sample, affine_sample) */
    bool affine;                     /* points from theta (affine_grid, affine_sample) */
    bool align_corners;
    uint64_t batch, channels;        /* N; C (0 for affine_grid) */
    uint64_t points;                 /* P: output points per plane */
    uint64_t in_plane;               /* input elements per plane */
    int64_t in[3];                   /* the input's extents padded to D, H, W */
    int64_t out_w;                   /* the output's W */
    uint64_t elements[GBUF_COUNT];   /* floats of each buffer; 0: not used */
    float *tab;                      /* affine: the W base table, then the row table (the job's
                                      * theta follows them in the buffer when nb > 1) */
    uint64_t tab_words;              /* words of tab */
    uint64_t row_word;               /* word of the row table in the table buffer */
    uint64_t row_words;              /* words per row-table entry: rank - 1 (y[, z]) */
    uint64_t nb;                     /* batches per chunk (> 1: theta read from the table buffer) */
    uint64_t kc;                     /* channels per chunk (0 for affine_grid) */
    uint64_t n_bgroups, n_cgroups;   /* batch groups; channel groups per batch group */
    uint64_t per_dispatch;           /* channels one dispatch may loop over */
    uint64_t steps;                  /* dispatches per chunk along its channels */
    vk_pts_t *segs;
    uint64_t n_segs, chunks;
} vk_grid_job_t;

static void grid_job_free(vk_grid_job_t *j)
{
    free(j->tab);
    free(j->segs);
    memset(j, 0, sizeof *j);
}

/* Loop iterations grid_sample.comp may run per channel (its channel loop and the spec's apply
 * loops, should the compiler not unroll them); a point's own loops (reflection's fmod, at most
 * about 130 iterations an axis) fit in the room VKR_VK_LLVMPIPE_MAX_LOOP leaves. */
static uint64_t grid_channel_cost(int rank, int mode)
{
    if (mode == VKR_GRID_NEAREST)
        return 1;
    if (mode == VKR_GRID_BICUBIC)
        return 1 + 4 + 4 * 3;
    return rank == 2 ? 1 + 3 : 1 + 8;
}

static int grid_push_seg(vk_grid_job_t *j, uint64_t *cap, uint64_t p0, uint64_t p1, vkr_error_t *err)
{
    if (j->n_segs == *cap) {
        *cap = *cap ? 2 * *cap : 16;
        vk_pts_t *s = realloc(j->segs, (size_t)*cap * sizeof *s);
        if (!s)
            return vkr_proto_error_set(err, VKR_E_NOMEM, "backend", "vulkan: out of memory for the chunks of a job");
        j->segs = s;
    }
    j->segs[j->n_segs++] = (vk_pts_t){p0, p1};
    return VKR_OK;
}

/* Pipeline, buffers, tables and chunks of a grid plan; refuses what this backend cannot bind.
 * The caller frees *j with grid_job_free whatever this returns (j->chunks == 0: nothing to run). */
static int grid_prepare(const vk_backend_t *b, const vkr_grid_plan_t *plan, vk_grid_job_t *j, vkr_error_t *err)
{
    memset(j, 0, sizeof *j);
    const int rank = plan->spatial_rank;
    const int op = plan->op;
    if (op != VKR_OP_GRID_SAMPLE && op != VKR_OP_AFFINE_GRID && op != VKR_OP_AFFINE_SAMPLE)
        return vkr_proto_error_set(err, VKR_E_BACKEND, "backend", "vulkan backend: grid plan of op %d", op);
    if (rank != 2 && rank != 3)
        return vkr_proto_error_set(err, VKR_E_BACKEND, "backend", "vulkan backend: grid plan with %d spatial axes", rank);
    j->rank = rank;
    j->image = op != VKR_OP_AFFINE_GRID;
    j->affine = op != VKR_OP_GRID_SAMPLE;
    j->align_corners = plan->align_corners;
    if (j->image) {
        const char *mode = vkr_proto_grid_mode_name(plan->mode), *pad = vkr_proto_padding_name(plan->padding_mode);
        snprintf(j->what, sizeof j->what, "%s %s/%s", op == VKR_OP_GRID_SAMPLE ? "grid_sample" : "affine_sample",
                 mode ? mode : "?", pad ? pad : "?");
        if (!mode || !pad)
            return vkr_proto_error_set(err, VKR_E_BACKEND, "backend", "vulkan backend: %s: mode %d, padding %d", j->what, plan->mode,
                                       plan->padding_mode);
        j->pipe = b->grid_pipes[rank - 2][plan->mode - 1][plan->padding_mode - 1][j->affine];
        if (!j->pipe)
            return vkr_proto_error_set(err, VKR_E_UNSUPPORTED, "mode", "vulkan backend: %s on %d spatial axes is not implemented",
                                       j->what, rank);
    } else {
        snprintf(j->what, sizeof j->what, "affine_grid %dD", rank);
        j->pipe = b->affine_grid_pipes[rank - 2];
    }
    if (plan->out_elements == 0)
        return VKR_OK;   /* nothing to run: no chunks */
    const uint64_t R = (uint64_t)rank, T = R * (R + 1);   /* theta: R rows of R + 1 */
    const uint64_t N = (uint64_t)plan->batch, C = j->image ? (uint64_t)plan->channels : 0;
    j->batch = N;
    j->channels = C;
    j->points = 1;
    j->in_plane = 1;
    for (int a = 0; a < 3; a++) {
        const int d = a - (3 - rank);
        j->in[a] = d < 0 || !j->image ? 1 : plan->in_size[d];
    }
    for (int d = 0; d < rank; d++) {
        j->points *= (uint64_t)plan->out_size[d];
        if (j->image)
            j->in_plane *= (uint64_t)plan->in_size[d];
    }
    j->out_w = plan->out_size[rank - 1];
    const uint64_t P = j->points, W = (uint64_t)j->out_w, rows = P / W;
    if (P > UINT32_MAX)   /* the shaders index a plane's points with 32 bits */
        return vkr_proto_error_set(err, VKR_E_TOO_LARGE, "size",
                                   "vulkan backend: %s: a plane of %llu output points is over 2^32 - 1 (use --backend cpu)", j->what,
                                   (unsigned long long)P);
    const uint64_t room = bind_room(b);
    const unsigned long long limit = (unsigned long long)b->max_binding;
    if (j->image && 4 * j->in_plane > room)   /* a point may read anywhere in its plane */
        return vkr_proto_error_set(err, VKR_E_TOO_LARGE, "input.shape",
                                   "vulkan backend: %s: one input plane of %llu bytes is over this device's binding limit "
                                   "(maxStorageBufferRange) of %llu bytes (use --backend cpu)",
                                   j->what, (unsigned long long)(4 * j->in_plane), limit);

    /* Chunks.  Per point: out_pp output words a channel, grid_pp grid words. */
    j->row_words = R - 1;
    j->row_word = W;
    const uint64_t out_pp = j->image ? 1 : R, grid_pp = op == VKR_OP_GRID_SAMPLE ? R : 0;
    uint64_t np_cap = room / (4 * out_pp);
    if (grid_pp)
        np_cap = min_u64(np_cap, room / (4 * grid_pp));
    const uint64_t max_rows = room / (4 * j->row_words);
    if (np_cap == 0 || (j->affine && max_rows == 0))
        return vkr_proto_error_set(err, VKR_E_TOO_LARGE, "size",
                                   "vulkan backend: %s: one output point is over this device's binding limit "
                                   "(maxStorageBufferRange) of %llu bytes (use --backend cpu)", j->what, limit);
    const bool w_fits = 4 * W <= room;
    uint64_t cap = 0;
    int rc;
    j->nb = 1;
    j->kc = j->image ? 1 : 0;
    if (P <= np_cap && (!j->affine || (w_fits && rows <= max_rows))) {
        /* All of a batch's points in one chunk: with every channel, and several batches, when
         * they fit (an affine chunk of several batches reads their theta after the row table). */
        rc = grid_push_seg(j, &cap, 0, P, err);
        if (rc)
            return rc;
        if (j->image)
            j->kc = min_u64(C, min_u64(room / (4 * j->in_plane), room / (4 * P)));
        if (!j->image || j->kc == C) {
            const uint64_t per_batch = max_u64(max_u64(C * j->in_plane, j->image ? C * P : P * R), P * grid_pp);
            j->nb = min_u64(min_u64(N, room / (4 * per_batch)), UINT32_MAX / P);
            if (j->affine && 4 * (rows * j->row_words + N * T) > room)
                j->nb = 1;
        }
    } else {
        /* One channel at a time (several would bind several whole output planes) in ranges of
         * points whose grid, output and tables fit: a range that crosses a row binds all of W's
         * table, so without room for it ranges keep within a row. */
        for (uint64_t p0 = 0; p0 < P;) {
            uint64_t p1 = min_u64(P, p0 + np_cap);
            if (j->affine) {
                const uint64_t r0 = p0 / W;
                if (!w_fits)
                    p1 = min_u64(p1, (r0 + 1) * W);
                if ((p1 - 1) / W - r0 + 1 > max_rows)
                    p1 = (r0 + max_rows) * W;
            }
            rc = grid_push_seg(j, &cap, p0, p1, err);
            if (rc)
                return rc;
            p0 = p1;
        }
    }
    j->n_bgroups = (N + j->nb - 1) / j->nb;
    j->n_cgroups = j->image ? (C + j->kc - 1) / j->kc : 1;
    if (j->image) {
        j->per_dispatch = min_u64(j->kc, max_u64(1, b->max_loop / grid_channel_cost(rank, plan->mode)));
        j->steps = (j->kc + j->per_dispatch - 1) / j->per_dispatch;
    } else {
        j->steps = 1;
    }
    j->chunks = j->n_bgroups * j->n_cgroups * j->n_segs;

    j->elements[GBUF_IMAGE] = j->image ? plan->in_elements : 0;
    j->elements[GBUF_GRID] = op == VKR_OP_GRID_SAMPLE ? plan->aux_elements : 0;
    j->elements[GBUF_OUT] = plan->out_elements;
    j->tab_words = j->affine ? W + rows * j->row_words : 0;
    j->elements[GBUF_TAB] = j->tab_words + (j->affine && j->nb > 1 ? N * T : 0);
    static const char *const buf_names[GBUF_COUNT] = {"input tensor", "grid", "output tensor", "affine base tables"};
    for (int i = 0; i < GBUF_COUNT; i++)
        if (4 * j->elements[i] > b->max_alloc)
            return vkr_proto_error_set(err, VKR_E_TOO_LARGE, i == GBUF_IMAGE ? "input.shape" : i == GBUF_GRID ? "grid.shape" : "size",
                                       "vulkan backend: %s: the %s of %llu bytes is over this device's maxMemoryAllocationSize of "
                                       "%llu bytes (use --backend cpu)",
                                       j->what, buf_names[i], (unsigned long long)(4 * j->elements[i]),
                                       (unsigned long long)b->max_alloc);

    /* The affine base tables: W's, then one entry per output row ((d, h) flattened): y[, z]. */
    if (j->affine) {
        const int64_t H = plan->out_size[rank - 2], D = rank == 3 ? plan->out_size[0] : 1;
        j->tab = malloc((size_t)(j->tab_words + (uint64_t)H + (uint64_t)D) * sizeof(float));
        if (!j->tab)
            return vkr_proto_error_set(err, VKR_E_NOMEM, "backend", "vulkan: out of memory for %s's base tables", j->what);
        float *bh = j->tab + j->tab_words, *bd = bh + H;   /* scratch past the uploaded words */
        vkr_spec_affine_base(j->out_w, j->align_corners, j->tab);
        vkr_spec_affine_base(H, j->align_corners, bh);
        vkr_spec_affine_base(D, j->align_corners, bd);
        float *rt = j->tab + j->row_word;
        for (uint64_t r = 0; r < rows; r++) {
            rt[r * j->row_words] = bh[r % (uint64_t)H];
            if (rank == 3)
                rt[r * j->row_words + 1] = bd[r / (uint64_t)H];
        }
    }
    return VKR_OK;
}

/* Descriptors and push constants of chunk c; *nc gets its channels.  theta: the job's (affine). */
static void grid_chunk_setup(const vk_backend_t *b, const vk_grid_job_t *j, uint64_t c, const vk_buf_t *bufs, const float *theta,
                             VkDescriptorBufferInfo info[VKR_VK_BINDINGS], vkr_vk_grid_push_t *pc, uint64_t *nc)
{
    const uint64_t per_bgroup = j->n_cgroups * j->n_segs;
    const uint64_t n0 = c / per_bgroup * j->nb, rem = c % per_bgroup;
    const uint64_t nbc = min_u64(j->nb, j->batch - n0);   /* batches of this chunk */
    const uint64_t c0 = rem / j->n_segs * j->kc;
    const vk_pts_t *s = &j->segs[rem % j->n_segs];
    const uint64_t P = j->points, C = j->channels, R = (uint64_t)j->rank, T = R * (R + 1), np = s->p1 - s->p0;
    *nc = j->image ? min_u64(j->kc, C - c0) : 0;
    *pc = (vkr_vk_grid_push_t){
        .theta_base = VKR_VK_THETA_PUSHED,
        .count = (uint32_t)(nbc * np), .p0 = (uint32_t)s->p0,
        .in_plane = (uint32_t)j->in_plane, .out_plane = (uint32_t)P,
        .in_batch = (uint32_t)(C * j->in_plane), .out_batch = (uint32_t)(C * P),
        .in_d = (int32_t)j->in[0], .in_h = (int32_t)j->in[1], .in_w = (int32_t)j->in[2],
        .out_w = (int32_t)j->out_w, .align_corners = j->align_corners,
    };
    uint32_t r;
    if (j->image) {   /* nbc > 1 only with every channel and point: (nbc - 1) C + nc planes */
        const uint64_t plane0 = n0 * C + c0, planes = (nbc - 1) * C + *nc;
        info[0] = bind_bytes(b, &bufs[GBUF_IMAGE], 4 * plane0 * j->in_plane, 4 * planes * j->in_plane, &r);
        pc->in_base = r;
        info[1] = bind_bytes(b, &bufs[GBUF_OUT], 4 * (plane0 * P + s->p0), 4 * ((planes - 1) * P + np), &r);
        pc->out_base = (uint32_t)(r - s->p0);
    } else {
        info[1] = bind_bytes(b, &bufs[GBUF_OUT], 4 * (n0 * P + s->p0) * R, 4 * nbc * np * R, &r);
        pc->out_base = (uint32_t)(r - s->p0 * R);
    }
    if (!j->affine) {
        info[2] = bind_bytes(b, &bufs[GBUF_GRID], 4 * (n0 * P + s->p0) * R, 4 * nbc * np * R, &r);
        pc->crd_base = (uint32_t)(r - s->p0 * R);
        info[3] = info[2];   /* not read: any valid range */
        return;
    }
    const uint64_t W = (uint64_t)j->out_w, r0 = s->p0 / W, r1 = (s->p1 - 1) / W;
    const uint64_t w0 = r0 == r1 ? s->p0 % W : 0, w1 = r0 == r1 ? (s->p1 - 1) % W : W - 1;
    info[2] = bind_bytes(b, &bufs[GBUF_TAB], 4 * w0, 4 * (w1 - w0 + 1), &r);
    pc->crd_base = (uint32_t)(r - w0);
    /* rows r0..r1; with several batches a chunk has every row, and the theta follow them */
    const uint64_t words = (r1 - r0 + 1) * j->row_words + (j->nb > 1 ? (n0 + nbc) * T : 0);
    info[3] = bind_bytes(b, &bufs[GBUF_TAB], 4 * (j->row_word + r0 * j->row_words), 4 * words, &r);
    pc->row_base = (uint32_t)(r - r0 * j->row_words);
    if (j->nb > 1)
        pc->theta_base = (uint32_t)(r + (r1 + 1) * j->row_words + n0 * T);
    else
        memcpy(pc->theta, theta + n0 * T, (size_t)T * sizeof(float));
    if (!j->image)
        info[0] = info[2];   /* not read: any valid range */
}

/* Record one grid chunk (its set, push constants and channels from grid_chunk_setup), each group
 * of channels again. */
static void grid_record_chunk(vk_backend_t *b, const vk_grid_job_t *j, VkDescriptorSet set, const vkr_vk_grid_push_t *chunk_pc,
                              uint64_t nc, uint64_t *dispatches)
{
    vkCmdBindDescriptorSets(b->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, b->grid_layout, 0, 1, &set, 0, NULL);
    for (uint64_t step = 0; step < j->steps; step++) {
        vkr_vk_grid_push_t pc = *chunk_pc;
        const uint64_t ch0 = step * j->per_dispatch;
        if (j->image) {
            if (ch0 >= nc)
                break;   /* the last channel group of a batch may be shorter */
            pc.channels = (uint32_t)min_u64(j->per_dispatch, nc - ch0);
            pc.in_base = (uint32_t)(pc.in_base + ch0 * j->in_plane);
            pc.out_base = (uint32_t)(pc.out_base + ch0 * j->points);
        }
        record_rows(b, b->grid_layout, &pc, sizeof pc, &pc.row, &pc.first, chunk_pc->count, dispatches);
    }
}

/* Record, submit and wait for chunks [c0, c0 + n) of a grid job (n <= VKR_VK_SETS_PER_SUBMIT). */
static int grid_run_chunks(vk_backend_t *b, const vk_grid_job_t *j, const vk_buf_t *bufs, const float *theta, uint64_t c0, uint32_t n,
                           uint64_t *dispatches, vkr_error_t *err)
{
    VkDescriptorSet sets[VKR_VK_SETS_PER_SUBMIT];
    int rc = submit_begin(b, n, sets, err);
    if (rc)
        return rc;
    vkCmdBindPipeline(b->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, j->pipe);
    vkr_vk_grid_push_t pcs[VKR_VK_SETS_PER_SUBMIT];
    uint64_t ncs[VKR_VK_SETS_PER_SUBMIT];
    for (uint32_t i = 0; i < n; i++) {
        VkDescriptorBufferInfo infos[VKR_VK_BINDINGS];
        grid_chunk_setup(b, j, c0 + i, bufs, theta, infos, &pcs[i], &ncs[i]);
        write_set(b, sets[i], infos);
    }
    for (uint32_t i = 0; i < n; i++)
        grid_record_chunk(b, j, sets[i], &pcs[i], ncs[i], dispatches);
    return submit_wait(b, err);
}

/* Several grid jobs of one prepared plan, each with its own buffers (bufs[k]) and theta
 * (thetas[k], affine ops), in one submission.  n * j->chunks <= VKR_VK_SETS_PER_SUBMIT. */
static int grid_run_jobs_one_submit(vk_backend_t *b, const vk_grid_job_t *j, unsigned n, vk_buf_t (*bufs)[GBUF_COUNT],
                                    const float *const *thetas, uint64_t *dispatches, vkr_error_t *err)
{
    VkDescriptorSet sets[VKR_VK_SETS_PER_SUBMIT];
    vkr_vk_grid_push_t pcs[VKR_VK_SETS_PER_SUBMIT];
    uint64_t ncs[VKR_VK_SETS_PER_SUBMIT];
    const uint32_t total = (uint32_t)(n * j->chunks);
    int rc = submit_begin(b, total, sets, err);
    if (rc)
        return rc;
    vkCmdBindPipeline(b->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, j->pipe);
    for (uint32_t i = 0; i < total; i++) {
        VkDescriptorBufferInfo infos[VKR_VK_BINDINGS];
        const unsigned k = i / (uint32_t)j->chunks;
        grid_chunk_setup(b, j, i % j->chunks, bufs[k], thetas[k], infos, &pcs[i], &ncs[i]);
        write_set(b, sets[i], infos);
    }
    for (uint32_t i = 0; i < total; i++)
        grid_record_chunk(b, j, sets[i], &pcs[i], ncs[i], dispatches);
    return submit_wait(b, err);
}

static void grid_bufs_destroy(vk_backend_t *b, vk_buf_t bufs[GBUF_COUNT])
{
    for (int i = GBUF_COUNT - 1; i >= 0; i--)
        buf_destroy(b, &bufs[i]);
}

/* A grid job's buffers (b->lock held): image, grid and out staged (inputs uploaded) or borrowed
 * from their imports; the tables buffer created and filled with the base tables and (nb > 1)
 * every batch's theta from crd.host.  Nothing is left to destroy on failure. */
static int grid_bufs_create(vk_backend_t *b, const vk_grid_job_t *j, vk_src_t image, vk_src_t crd, vk_src_t out, vk_buf_t bufs[GBUF_COUNT],
                            vkr_error_t *err)
{
    memset(bufs, 0, GBUF_COUNT * sizeof bufs[0]);
    int rc = VKR_OK;
    for (int i = 0; i < GBUF_COUNT && rc == VKR_OK; i++)
        if (j->elements[i])
            rc = i == GBUF_IMAGE ? src_buf(b, image, 4 * j->elements[i], true, &bufs[i], err)
                 : i == GBUF_GRID ? src_buf(b, crd, 4 * j->elements[i], true, &bufs[i], err)
                 : i == GBUF_OUT  ? src_buf(b, out, 4 * j->elements[i], false, &bufs[i], err)
                                  : buf_create(b, 4 * j->elements[i], &bufs[i], err);
    if (rc) {
        grid_bufs_destroy(b, bufs);
        return rc;
    }
    if (j->elements[GBUF_TAB]) {   /* the base tables, then (nb > 1) every batch's theta */
        memcpy(bufs[GBUF_TAB].map, j->tab, 4 * j->tab_words);
        memcpy((float *)bufs[GBUF_TAB].map + j->tab_words, crd.host, 4 * (j->elements[GBUF_TAB] - j->tab_words));
    }
    return VKR_OK;
}

/* The whole grid job, with b->lock held: image, coords (the grid; theta is always read from
 * coords.host) and out staged or imported. */
static int grid_run_job(vk_backend_t *b, const vk_grid_job_t *j, vk_src_t image, vk_src_t crd, vk_src_t out, const atomic_bool *cancel,
                        vkr_error_t *err)
{
    if (vk_cancelled(cancel))
        return vk_cancelled_error(err);
    vk_buf_t bufs[GBUF_COUNT];
    const float *coords = crd.host;
    int rc = grid_bufs_create(b, j, image, crd, out, bufs, err);
    if (rc)
        return rc;
    uint64_t submits = 0, dispatches = 0;
    for (uint64_t c0 = 0; c0 < j->chunks; c0 += VKR_VK_SETS_PER_SUBMIT) {
        const uint32_t n = (uint32_t)min_u64(j->chunks - c0, VKR_VK_SETS_PER_SUBMIT);
        if (submits > 0)
            device_yield(b);   /* another uid's job may go between two submissions */
        if (vk_cancelled(cancel)) {
            rc = vk_cancelled_error(err);
            goto out;
        }
        rc = grid_run_chunks(b, j, bufs, coords, c0, n, &dispatches, err);
        if (rc)
            goto out;
        submits++;
    }
    if (!out.imp && vk_cancelled(cancel)) {   /* a cancelled job's output is not copied out */
        rc = vk_cancelled_error(err);
        goto out;
    }
    if (!out.imp)
        memcpy((void *)(uintptr_t)out.host, bufs[GBUF_OUT].map, 4 * j->elements[GBUF_OUT]);
    /* backend_agree parses this line: keep its format ("splitting planes": the output points of
     * a plane in several chunks; "steps": dispatches per chunk along its channels) */
    vkr__log(VKR_LOG_DEBUG, "vulkan: %s job: passes 1, splitting planes %d, steps %llu, chunks %llu, submits %llu, dispatches %llu",
             j->what, j->n_segs > 1, (unsigned long long)j->steps, (unsigned long long)j->chunks, (unsigned long long)submits,
             (unsigned long long)dispatches);
out:
    grid_bufs_destroy(b, bufs);
    return rc;
}

static int vk_grid(vkr_backend_s *self, const vkr_grid_plan_t *plan, const float *image, const float *coords, float *out,
                   const atomic_bool *cancel, vkr_error_t *err)
{
    vk_backend_t *b = (vk_backend_t *)self;
    vk_grid_job_t j;
    int rc = grid_prepare(b, plan, &j, err);
    if (rc == VKR_OK && j.chunks > 0) {
        vk_turn_t turn;
        device_enter(b, &turn);
        rc = grid_run_job(b, &j, (vk_src_t){image, NULL}, (vk_src_t){coords, NULL}, (vk_src_t){out, NULL}, cancel, err);
        device_leave(b, &turn);
    }
    grid_job_free(&j);
    return rc;
}

/* ------------------------------------------------------------------ batches: several jobs of one plan */

_Static_assert((int)BUF_COUNT == (int)GBUF_COUNT, "a batch keeps every job's buffers in one array of either kind");
#define VK_JOB_BUFS BUF_COUNT

/* Every job of a batch (see backend.h): the plan prepared once (tables computed once), every job
 * its own buffers, as many jobs per submission as the descriptor sets allow (for the small jobs
 * the server batches: all of them, one vkQueueSubmit and one fence wait).  A job whose buffers
 * cannot be made fails alone; a failed submission fails the jobs in it. */
static int vk_run_batch(vkr_backend_s *self, const vkr_plan_t *plan, unsigned n, const float *const *inputs, const float *const *aux,
                        float *const *outputs, const atomic_bool *const *cancels, int *statuses, vkr_error_t *errs)
{
    vk_backend_t *b = (vk_backend_t *)self;
    const bool interp = plan->op == VKR_OP_INTERPOLATE;
    vk_job_t ij;
    vk_grid_job_t gj;
    if (n == 0)
        return VKR_OK;
    int rc = interp ? job_prepare(b, &plan->interp, &ij, &errs[0]) : grid_prepare(b, &plan->grid, &gj, &errs[0]);
    const uint64_t sets = rc != VKR_OK ? 0 : interp ? job_sets(&ij) : gj.chunks;
    if (rc == VKR_OK && sets > VKR_VK_SETS_PER_SUBMIT) {
        rc = VKR_E_UNSUPPORTED;   /* not a small job: each runs alone */
        goto out;
    }
    for (unsigned k = 0; k < n; k++) {
        statuses[k] = rc;
        if (k > 0)
            errs[k] = errs[0];
    }
    if (rc != VKR_OK || sets == 0) {   /* refused by the plan alike, or nothing to run */
        rc = VKR_OK;
        goto out;
    }
    vk_buf_t (*bufs)[VK_JOB_BUFS] = calloc(n, sizeof *bufs);
    unsigned *live = calloc(n, sizeof *live);
    const float **thetas = calloc(n, sizeof *thetas);
    if (!bufs || !live || !thetas) {
        free(bufs);
        free(live);
        free(thetas);
        rc = VKR_E_UNSUPPORTED;
        goto out;
    }
    const unsigned per_submit = (unsigned)(VKR_VK_SETS_PER_SUBMIT / sets);
    uint64_t dispatches = 0, submits = 0;
    unsigned n_live = 0, ran = 0;
    vk_turn_t turn;
    device_enter(b, &turn);
    for (unsigned k = 0; k < n; k++) {
        const vk_src_t out = {outputs[k], NULL};
        if (cancels && vk_cancelled(cancels[k])) {   /* cancelled before it started: not run */
            statuses[k] = vk_cancelled_error(&errs[k]);
            continue;
        }
        if (interp) {
            statuses[k] = job_bufs_create(b, &ij, (vk_src_t){inputs[k], NULL}, out, bufs[k], &errs[k]);
        } else {
            const bool affine_grid = plan->op == VKR_OP_AFFINE_GRID;
            thetas[k] = affine_grid ? inputs[k] : aux[k];
            statuses[k] = grid_bufs_create(b, &gj, (vk_src_t){affine_grid ? NULL : inputs[k], NULL}, (vk_src_t){thetas[k], NULL}, out,
                                           bufs[k], &errs[k]);
        }
        if (statuses[k] == VKR_OK)
            live[n_live++] = k;
    }
    /* groups of per_submit live jobs, their buffers side by side */
    for (unsigned g0 = 0; g0 < n_live; g0 += per_submit) {
        const unsigned g = n_live - g0 < per_submit ? n_live - g0 : per_submit;
        if (g0 > 0)
            device_yield(b);   /* another uid's job may go between two submissions */
        vk_buf_t group_bufs[VKR_VK_SETS_PER_SUBMIT][VK_JOB_BUFS];
        const float *group_thetas[VKR_VK_SETS_PER_SUBMIT];
        vkr_error_t err;
        for (unsigned i = 0; i < g; i++) {
            memcpy(group_bufs[i], bufs[live[g0 + i]], sizeof group_bufs[i]);
            group_thetas[i] = thetas[live[g0 + i]];
        }
        int src = interp ? run_jobs_one_submit(b, &ij, g, group_bufs, &dispatches, &err)
                         : grid_run_jobs_one_submit(b, &gj, g, group_bufs, group_thetas, &dispatches, &err);
        submits++;
        for (unsigned i = 0; i < g; i++) {
            const unsigned k = live[g0 + i];
            statuses[k] = src;
            if (src != VKR_OK) {
                errs[k] = err;
                continue;
            }
            if (cancels && vk_cancelled(cancels[k])) {   /* ran, but its output is not copied out */
                statuses[k] = vk_cancelled_error(&errs[k]);
                continue;
            }
            const int o = interp ? BUF_OUT : GBUF_OUT;
            memcpy(outputs[k], bufs[k][o].map, 4 * plan->out_elements);
            ran++;
        }
    }
    for (unsigned k = 0; k < n; k++)
        if (interp)
            job_bufs_destroy(b, bufs[k]);
        else
            grid_bufs_destroy(b, bufs[k]);
    device_leave(b, &turn);
    if (n > 1) {
        atomic_fetch_add(&b->batches, 1ul);
        atomic_fetch_add(&b->batched_jobs, (unsigned long)n);
    }
    vkr__log(VKR_LOG_DEBUG, "vulkan: batch of %u %s jobs: %u ran, submits %llu, dispatches %llu", n, interp ? ij.what : gj.what, ran,
             (unsigned long long)submits, (unsigned long long)dispatches);
    free(bufs);
    free(live);
    free(thetas);
out:
    if (interp)
        job_free(&ij);
    else
        grid_job_free(&gj);
    return rc;
}

/* ------------------------------------------------------------------ memfd jobs: host memory imports */

static size_t page_bytes(void)
{
    const long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? (size_t)p : 4096u;
}

static void import_free(vk_backend_t *b, vk_import_t *im)
{
    if (!im)
        return;
    vkDestroyBuffer(b->device, im->buf, NULL);
    vkFreeMemory(b->device, im->mem, NULL);
    free(im);
}

/* Import the mapping r (the whole of it that the alignment allows) so that it covers the tensor
 * [t0, t1).  NULL when it cannot be, with why (for the debug line) filled: the job copies that
 * tensor through a staging buffer instead. */
static vk_import_t *import_create(vk_backend_t *b, const vkr_host_region_t *r, uintptr_t t0, uintptr_t t1, char *why, size_t why_len)
{
    const uintptr_t a = (uintptr_t)b->import_align, page = page_bytes();
    const uintptr_t base = (uintptr_t)r->base;
    /* mmap maps whole pages: the mapping's last page is readable to its end */
    const uintptr_t end = base + (r->map_bytes + page - 1) / page * page;
    const uintptr_t lo = (base + a - 1) / a * a, hi = end / a * a;
    if (lo > t0 || hi < t1 || hi <= lo) {
        snprintf(why, why_len, "minImportedHostPointerAlignment %llu does not fit the mapping", (unsigned long long)a);
        return NULL;
    }
    if (hi - lo > b->max_alloc) {
        snprintf(why, why_len, "the mapping's %llu bytes are over maxMemoryAllocationSize", (unsigned long long)(hi - lo));
        return NULL;
    }
    VkMemoryHostPointerPropertiesEXT hp = {.sType = VK_STRUCTURE_TYPE_MEMORY_HOST_POINTER_PROPERTIES_EXT};
    VkResult res = vk_note(b, b->get_host_pointer_props(b->device, VK_EXTERNAL_MEMORY_HANDLE_TYPE_HOST_ALLOCATION_BIT_EXT, (const void *)lo, &hp));
    if (res != VK_SUCCESS) {
        snprintf(why, why_len, "vkGetMemoryHostPointerPropertiesEXT failed: %s (%d)", vk_result_name(res), (int)res);
        return NULL;
    }
    vk_import_t *im = calloc(1, sizeof *im);
    if (!im) {
        snprintf(why, why_len, "out of memory");
        return NULL;
    }
    *im = (vk_import_t){.base = r->base, .map_bytes = r->map_bytes, .dev = r->dev, .ino = r->ino, .lo = lo, .hi = hi};
    const VkExternalMemoryBufferCreateInfo ext = {
        .sType = VK_STRUCTURE_TYPE_EXTERNAL_MEMORY_BUFFER_CREATE_INFO,
        .handleTypes = VK_EXTERNAL_MEMORY_HANDLE_TYPE_HOST_ALLOCATION_BIT_EXT,
    };
    const VkBufferCreateInfo bi = {
        .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
        .pNext = &ext,
        .size = hi - lo,
        .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT,
        .sharingMode = VK_SHARING_MODE_EXCLUSIVE,
    };
    res = vk_note(b, vkCreateBuffer(b->device, &bi, NULL, &im->buf));
    if (res != VK_SUCCESS) {
        im->buf = VK_NULL_HANDLE;
        snprintf(why, why_len, "vkCreateBuffer failed: %s (%d)", vk_result_name(res), (int)res);
        goto fail;
    }
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(b->device, im->buf, &req);
    if (req.size > hi - lo) {
        snprintf(why, why_len, "the buffer needs %llu bytes of memory, the import has %llu", (unsigned long long)req.size,
                 (unsigned long long)(hi - lo));
        goto fail;
    }
    /* The host reads the output straight from the mapping after the fence: coherent memory only. */
    const VkMemoryPropertyFlags need = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    uint32_t type = UINT32_MAX;
    for (uint32_t i = 0; i < b->mem_props.memoryTypeCount && type == UINT32_MAX; i++)
        if ((hp.memoryTypeBits & req.memoryTypeBits & (1u << i)) && (b->mem_props.memoryTypes[i].propertyFlags & need) == need)
            type = i;
    if (type == UINT32_MAX) {
        snprintf(why, why_len, "no host-coherent memory type both the import (0x%x) and a storage buffer (0x%x) allow",
                 hp.memoryTypeBits, req.memoryTypeBits);
        goto fail;
    }
    const VkImportMemoryHostPointerInfoEXT import = {
        .sType = VK_STRUCTURE_TYPE_IMPORT_MEMORY_HOST_POINTER_INFO_EXT,
        .handleType = VK_EXTERNAL_MEMORY_HANDLE_TYPE_HOST_ALLOCATION_BIT_EXT,
        .pHostPointer = (void *)lo,
    };
    const VkMemoryAllocateInfo ai = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
        .pNext = &import,
        .allocationSize = hi - lo,
        .memoryTypeIndex = type,
    };
    res = vk_note(b, vkAllocateMemory(b->device, &ai, NULL, &im->mem));
    if (res != VK_SUCCESS) {
        im->mem = VK_NULL_HANDLE;
        snprintf(why, why_len, "vkAllocateMemory (host pointer import) failed: %s (%d)", vk_result_name(res), (int)res);
        goto fail;
    }
    res = vk_note(b, vkBindBufferMemory(b->device, im->buf, im->mem, 0));
    if (res != VK_SUCCESS) {
        snprintf(why, why_len, "vkBindBufferMemory failed: %s (%d)", vk_result_name(res), (int)res);
        goto fail;
    }
    atomic_fetch_add(&b->imports_made, 1ul);
    return im;
fail:
    import_free(b, im);
    return NULL;
}

/* Drop cached imports that no job uses, least recently used first, until one more fits the
 * limits (imports_lock held).  Returns them as a list for the caller to free unlocked. */
static vk_import_t *import_evict(vk_backend_t *b, uint64_t incoming)
{
    vk_import_t *dropped = NULL;
    while (b->n_imports > 0 && (b->n_imports + 1 > VKR_VK_IMPORT_CACHE_ENTRIES || b->import_bytes + incoming > VKR_VK_IMPORT_CACHE_BYTES)) {
        vk_import_t **victim = NULL;
        for (vk_import_t **p = &b->imports; *p; p = &(*p)->next)
            if ((*p)->busy == 0 && (!victim || (*p)->last_use < (*victim)->last_use))
                victim = p;
        if (!victim)
            break;   /* every one in use: the cache runs over its limit until they are free */
        vk_import_t *v = *victim;
        *victim = v->next;
        b->n_imports--;
        b->import_bytes -= v->hi - v->lo;
        v->next = dropped;
        dropped = v;
    }
    return dropped;
}

static void import_free_list(vk_backend_t *b, vk_import_t *list)
{
    while (list) {
        vk_import_t *next = list->next;
        import_free(b, list);
        list = next;
    }
}

/* An import covering the tensor [t0, t1) of mapping r for one job (b->lock held): a cached one
 * when r is persistent and was imported before (*reused), else a new one (cached when r is
 * persistent).  NULL: stage the tensor (why filled). */
static vk_import_t *import_acquire(vk_backend_t *b, const vkr_host_region_t *r, uintptr_t t0, uintptr_t t1, bool *reused, char *why,
                                   size_t why_len)
{
    *reused = false;
    if (r->persistent) {
        pthread_mutex_lock(&b->imports_lock);
        for (vk_import_t *im = b->imports; im; im = im->next)
            if (im->base == r->base && im->map_bytes == r->map_bytes && im->dev == r->dev && im->ino == r->ino && im->lo <= t0 &&
                t1 <= im->hi) {
                im->busy++;
                im->last_use = ++b->import_clock;
                *reused = true;
                pthread_mutex_unlock(&b->imports_lock);
                atomic_fetch_add(&b->imports_reused, 1ul);
                return im;
            }
        pthread_mutex_unlock(&b->imports_lock);
    }
    vk_import_t *im = import_create(b, r, t0, t1, why, why_len);
    if (!im)
        return NULL;
    im->busy = 1;
    if (r->persistent) {
        pthread_mutex_lock(&b->imports_lock);
        vk_import_t *dropped = import_evict(b, im->hi - im->lo);
        im->cached = true;
        im->last_use = ++b->import_clock;
        im->next = b->imports;
        b->imports = im;
        b->n_imports++;
        b->import_bytes += im->hi - im->lo;
        pthread_mutex_unlock(&b->imports_lock);
        import_free_list(b, dropped);
    }
    return im;
}

/* The job is done with im: a job-only import is freed, a cached one stays. */
static void import_put(vk_backend_t *b, vk_import_t *im)
{
    if (!im)
        return;
    pthread_mutex_lock(&b->imports_lock);
    im->busy--;
    const bool drop = !im->cached;
    pthread_cond_broadcast(&b->imports_idle);
    pthread_mutex_unlock(&b->imports_lock);
    if (drop)
        import_free(b, im);
}

static void vk_release_mapped(vkr_backend_s *self, const void *base, size_t map_bytes)
{
    vk_backend_t *b = (vk_backend_t *)self;
    vk_import_t *dropped = NULL;
    pthread_mutex_lock(&b->imports_lock);
    for (vk_import_t **p = &b->imports; *p;) {
        vk_import_t *im = *p;
        if (im->base != base || im->map_bytes != map_bytes) {
            p = &im->next;
            continue;
        }
        if (im->busy) {   /* not the contract, but never free memory a job is using */
            pthread_cond_wait(&b->imports_idle, &b->imports_lock);
            p = &b->imports;   /* the list may have changed meanwhile */
            continue;
        }
        *p = im->next;
        b->n_imports--;
        b->import_bytes -= im->hi - im->lo;
        im->next = dropped;
        dropped = im;
    }
    pthread_mutex_unlock(&b->imports_lock);
    if (dropped)
        vkr__log(VKR_LOG_DEBUG, "vulkan: released the import of the mapping at %p (%zu bytes)", base, map_bytes);
    import_free_list(b, dropped);
}

/* The tensor behind region k: its first byte and its bytes.  NULL when the server gave no
 * pointer to it (an inline tensor from a server that does not fill vkr_host_region_t.data). */
static const void *region_ptr(const vkr_host_region_t *r)
{
    return r->base ? (const uint8_t *)r->base + r->offset : r->data;
}

/* Zero-copy memfd jobs (see backend.h): the job's tensors in memfd mappings are imported (or, one
 * by one where that cannot be, staged); VKR_E_UNSUPPORTED when the device cannot import or when a
 * tensor's memory is not known here, so that the server runs the job through interpolate / grid. */
static int vk_run_mapped(vkr_backend_s *self, const vkr_plan_t *plan, const vkr_host_region_t regions[VKR_HOST_REGIONS],
                         const atomic_bool *cancel, vkr_error_t *err)
{
    vk_backend_t *b = (vk_backend_t *)self;
    const int op = plan->op;
    const char *op_name = vkr_proto_op_name(op);
    op_name = op_name ? op_name : "?";
    const char *const tensor_names[VKR_HOST_REGIONS] = {op == VKR_OP_AFFINE_GRID ? "theta" : "input",
                                                        op == VKR_OP_GRID_SAMPLE ? "grid" : "theta", "output"};
    /* region k's role and size: [0] input (theta for affine_grid), [1] grid / theta, [2] output */
    uint64_t elements[VKR_HOST_REGIONS] = {0, 0, plan->out_elements};
    bool big[VKR_HOST_REGIONS] = {true, false, true};   /* bound as a storage buffer of its own */
    if (op == VKR_OP_INTERPOLATE) {
        elements[0] = plan->interp.in_elements;
    } else {
        elements[0] = plan->grid.in_elements;
        elements[1] = op == VKR_OP_AFFINE_GRID ? 0 : plan->grid.aux_elements;
        big[0] = op != VKR_OP_AFFINE_GRID;   /* theta: pushed or copied with the tables */
        big[1] = op == VKR_OP_GRID_SAMPLE;
    }
    if (!b->host_import) {
        atomic_fetch_add(&b->jobs_staged, 1ul);
        vkr__log(VKR_LOG_DEBUG, "vulkan: %s memfd job: staging copies (no host memory import on this device)", op_name);
        return VKR_E_UNSUPPORTED;
    }
    const void *ptr[VKR_HOST_REGIONS];
    for (int k = 0; k < VKR_HOST_REGIONS; k++) {
        ptr[k] = region_ptr(&regions[k]);
        if (elements[k] > 0 && !ptr[k]) {
            atomic_fetch_add(&b->jobs_staged, 1ul);
            vkr__log(VKR_LOG_DEBUG, "vulkan: %s memfd job: staging copies (the %s is inline and the server passes no pointer to it)",
                     op_name, tensor_names[k]);
            return VKR_E_UNSUPPORTED;
        }
    }
    if (plan->out_elements == 0)
        return VKR_E_UNSUPPORTED;   /* nothing to run, nothing to import */

    vk_job_t ij;
    vk_grid_job_t gj;
    int rc = op == VKR_OP_INTERPOLATE ? job_prepare(b, &plan->interp, &ij, err) : grid_prepare(b, &plan->grid, &gj, err);
    const bool work = rc == VKR_OK && (op == VKR_OP_INTERPOLATE ? ij.n_pass > 0 : gj.chunks > 0);
    vk_import_t *imp[VKR_HOST_REGIONS] = {NULL, NULL, NULL};
    bool shared[VKR_HOST_REGIONS] = {false, false, false};   /* imp[k] is an earlier tensor's */
    char what[VKR_HOST_REGIONS][160];
    unsigned n_big = 0, n_imported = 0;
    if (work) {
        vk_turn_t turn;
        device_enter(b, &turn);
        for (int k = 0; k < VKR_HOST_REGIONS; k++) {
            if (!big[k] || elements[k] == 0)
                continue;
            n_big++;
            const vkr_host_region_t *r = &regions[k];
            const uintptr_t t0 = (uintptr_t)ptr[k], t1 = t0 + 4 * elements[k];
            char why[128];
            bool reused = false;
            if (!r->base) {
                snprintf(what[k], sizeof what[k], "%s inline (staged)", tensor_names[k]);
                continue;
            }
            if (k == 2 && ((regions[0].base && regions[0].dev == r->dev && regions[0].ino == r->ino) ||
                           (regions[1].base && regions[1].dev == r->dev && regions[1].ino == r->ino))) {
                /* written in place it could overwrite input it has not read yet */
                snprintf(what[k], sizeof what[k], "output staged (its memfd holds an input too)");
                continue;
            }
            int from = -1;
            for (int e = 0; e < k && from < 0; e++)
                if (imp[e] && !shared[e] && regions[e].base == r->base && regions[e].map_bytes == r->map_bytes && imp[e]->lo <= t0 &&
                    t1 <= imp[e]->hi)
                    from = e;
            if (from >= 0) {   /* one mapping holds both tensors: one import serves */
                imp[k] = imp[from];
                shared[k] = true;
                n_imported++;
                snprintf(what[k], sizeof what[k], "%s imported (shared with the %s)", tensor_names[k], tensor_names[from]);
                continue;
            }
            imp[k] = import_acquire(b, r, t0, t1, &reused, why, sizeof why);
            if (imp[k]) {
                n_imported++;
                snprintf(what[k], sizeof what[k], "%s imported (%s)", tensor_names[k], reused ? "reused" : "new");
            } else {
                snprintf(what[k], sizeof what[k], "%s staged (%s)", tensor_names[k], why);
            }
        }
        const vk_src_t src[VKR_HOST_REGIONS] = {{ptr[0], imp[0]}, {ptr[1], imp[1]}, {ptr[2], imp[2]}};
        rc = op == VKR_OP_INTERPOLATE ? run_job(b, &ij, src[0], src[2], cancel, err)
             : op == VKR_OP_AFFINE_GRID ? grid_run_job(b, &gj, (vk_src_t){NULL, NULL}, src[0], src[2], cancel, err)
                                        : grid_run_job(b, &gj, src[0], src[1], src[2], cancel, err);
        for (int k = 0; k < VKR_HOST_REGIONS; k++)
            if (!shared[k])
                import_put(b, imp[k]);
        device_leave(b, &turn);
        atomic_fetch_add(n_imported == n_big ? &b->jobs_imported : n_imported ? &b->jobs_part_imported : &b->jobs_staged, 1ul);
        char line[3 * 160 + 8] = "";
        for (int k = 0; k < VKR_HOST_REGIONS; k++)
            if (big[k] && elements[k] > 0)
                snprintf(line + strlen(line), sizeof line - strlen(line), "%s%s", line[0] ? ", " : "", what[k]);
        vkr__log(VKR_LOG_DEBUG, "vulkan: %s memfd job: %s%s", op_name, line,
                 n_imported == n_big ? " (zero-copy)" : n_imported ? " (partly zero-copy)" : "");
    }
    if (op == VKR_OP_INTERPOLATE)
        job_free(&ij);
    else
        grid_job_free(&gj);
    return rc;
}

static bool vk_device_lost(vkr_backend_s *self)
{
    vk_backend_t *b = (vk_backend_t *)self;
    return atomic_load(&b->lost);
}

static unsigned vk_validation_messages(vkr_backend_s *self)
{
    vk_backend_t *b = (vk_backend_t *)self;
    return atomic_load(&b->validation_count);
}

static void vk_destroy(vkr_backend_s *self)
{
    vk_backend_t *b = (vk_backend_t *)self;
    if (!b)
        return;
    const unsigned long imported = atomic_load(&b->jobs_imported), part = atomic_load(&b->jobs_part_imported),
                        staged = atomic_load(&b->jobs_staged);
    if (imported + part + staged > 0)
        vkr__log(VKR_LOG_INFO, "vulkan: memfd jobs: %lu zero-copy, %lu partly imported, %lu staged; %lu imports made, %lu reused",
                 imported, part, staged, atomic_load(&b->imports_made), atomic_load(&b->imports_reused));
    vkr__log(VKR_LOG_DEBUG, "vulkan: job buffers: %lu taken from the pool, %lu allocated", atomic_load(&b->pool_hits),
             atomic_load(&b->pool_misses));
    if (atomic_load(&b->batches) > 0)
        vkr__log(VKR_LOG_INFO, "vulkan: batches of several jobs: %lu, holding %lu jobs", atomic_load(&b->batches),
                 atomic_load(&b->batched_jobs));
    if (b->device) {
        vkDeviceWaitIdle(b->device);
        vk_import_t *cached = b->imports;   /* what the server did not release */
        b->imports = NULL;
        import_free_list(b, cached);
        buf_pool_drain(b);
        vkDestroyPipelineCache(b->device, b->pcache, NULL);
        vkDestroyFence(b->device, b->fence, NULL);
        vkDestroyCommandPool(b->device, b->cmd_pool, NULL);
        vkDestroyDescriptorPool(b->device, b->desc_pool, NULL);
        for (int r = 1; r >= 0; r--)
            vkDestroyPipeline(b->device, b->affine_grid_pipes[r], NULL);
        for (int r = 1; r >= 0; r--)
            for (int m = 2; m >= 0; m--)
                for (int q = 2; q >= 0; q--)
                    for (int a = 1; a >= 0; a--)
                        vkDestroyPipeline(b->device, b->grid_pipes[r][m][q][a], NULL);
        vkDestroyPipelineLayout(b->device, b->grid_layout, NULL);
        for (int p = PIPE_COUNT - 1; p >= 0; p--)
            vkDestroyPipeline(b->device, b->pipes[p], NULL);
        vkDestroyPipelineLayout(b->device, b->pipe_layout, NULL);
        vkDestroyDescriptorSetLayout(b->device, b->set_layout, NULL);
        vkDestroyDevice(b->device, NULL);
    }
    if (b->messenger)
        b->destroy_messenger(b->instance, b->messenger, NULL);
    if (b->instance)
        vkDestroyInstance(b->instance, NULL);
    if (b->lock_ready)
        pthread_mutex_destroy(&b->lock);
    gate_destroy(&b->gate);
    if (b->imports_ready) {
        pthread_cond_destroy(&b->imports_idle);
        pthread_mutex_destroy(&b->imports_lock);
    }
    free(b->pool);
    free(b->pcache_dir);
    free(b->pcache_path);
    free(b);
}

/* ------------------------------------------------------------------ the pipeline cache on disk */

static void pcache_key(const vk_backend_t *b, vkr__pcache_key_t *key)
{
    memset(key, 0, sizeof *key);
    key->vendor_id = b->props.vendorID;
    key->device_id = b->props.deviceID;
    key->driver_version = b->props.driverVersion;
    memcpy(key->pipeline_cache_uuid, b->props.pipelineCacheUUID, VK_UUID_SIZE);
    memcpy(key->device_uuid, b->device_uuid, VK_UUID_SIZE);
    key->sources_hash = vkr_embedded_sources_hash;
}

/* The VkPipelineCache the pipelines are built through, from the file under dir when it passes
 * every check (vk_pipeline_cache.h); a missing file is a cold start, anything wrong with it one
 * log line and a cold start.  Never fails: without a cache the pipelines are built all the same. */
static void pcache_open(vk_backend_t *b, const char *dir)
{
    if (!dir) {
        vkr__log(VKR_LOG_INFO, "vulkan: no pipeline cache (no --cache-dir, and neither XDG_CACHE_HOME nor HOME is set)");
        return;
    }
    vkr__pcache_key_t key;
    pcache_key(b, &key);
    b->pcache_dir = strdup(dir);
    b->pcache_path = vkr__pcache_path(dir, &key);
    if (!b->pcache_dir || !b->pcache_path) {
        vkr__log(VKR_LOG_WARN, "vulkan: no pipeline cache: out of memory");
        free(b->pcache_dir);
        free(b->pcache_path);
        b->pcache_dir = b->pcache_path = NULL;
        return;
    }
    void *blob = NULL;
    size_t len = 0;
    char why[256] = "";
    const vkr__pcache_status_t st = vkr__pcache_load(b->pcache_path, &key, &blob, &len, why, sizeof why);
    if (st == VKR__PCACHE_IGNORED)
        vkr__log(VKR_LOG_WARN, "vulkan: pipeline cache %s ignored (%s): starting cold, it is rewritten after start-up", b->pcache_path,
                 why);
    VkPipelineCacheCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO, .initialDataSize = len, .pInitialData = blob};
    VkResult r = vkCreatePipelineCache(b->device, &ci, NULL, &b->pcache);
    if (r != VK_SUCCESS && blob) {
        vkr__log(VKR_LOG_WARN, "vulkan: pipeline cache %s ignored (vkCreatePipelineCache refused its data: %s (%d)): starting cold",
                 b->pcache_path, vk_result_name(r), (int)r);
        ci.initialDataSize = 0;
        ci.pInitialData = NULL;
        r = vkCreatePipelineCache(b->device, &ci, NULL, &b->pcache);
        free(blob);
        blob = NULL;
    }
    if (r != VK_SUCCESS) {
        b->pcache = VK_NULL_HANDLE;
        vkr__log(VKR_LOG_WARN, "vulkan: vkCreatePipelineCache failed: %s (%d): pipelines are built without a cache",
                 vk_result_name(r), (int)r);
    } else if (blob) {
        b->pcache_warm = true;
        b->pcache_loaded_bytes = len;
        b->pcache_loaded_hash = vkr__pcache_fnv1a64(blob, len);
        vkr__log(VKR_LOG_INFO, "vulkan: pipeline cache %s: %zu bytes of pipeline data loaded", b->pcache_path, len);
    } else if (st == VKR__PCACHE_MISSING) {
        vkr__log(VKR_LOG_INFO, "vulkan: no pipeline cache at %s yet: starting cold", b->pcache_path);
    }
    free(blob);
}

/* Write the pipeline cache back once every pipeline is built and warmed (unchanged data is left
 * as it is); a failure is logged, never fatal.  The VkPipelineCache is not needed afterwards. */
static void pcache_close(vk_backend_t *b)
{
    if (!b->pcache)
        return;
    void *data = NULL;
    size_t n = 0;
    VkResult r = b->pcache_path ? vkGetPipelineCacheData(b->device, b->pcache, &n, NULL) : VK_SUCCESS;
    if (r == VK_SUCCESS && b->pcache_path) {
        data = malloc(n ? n : 1);
        r = data ? vkGetPipelineCacheData(b->device, b->pcache, &n, data) : VK_ERROR_OUT_OF_HOST_MEMORY;
    }
    vkDestroyPipelineCache(b->device, b->pcache, NULL);
    b->pcache = VK_NULL_HANDLE;
    if (!b->pcache_path) {
        free(data);
        return;
    }
    char why[512] = "";
    vkr__pcache_key_t key;
    pcache_key(b, &key);
    const double t0 = now_ms();
    if (r != VK_SUCCESS)
        vkr__log(VKR_LOG_WARN, "vulkan: pipeline cache not written: vkGetPipelineCacheData failed: %s (%d)", vk_result_name(r), (int)r);
    else if (b->pcache_warm && n == b->pcache_loaded_bytes && vkr__pcache_fnv1a64(data, n) == b->pcache_loaded_hash)
        vkr__log(VKR_LOG_INFO, "vulkan: pipeline cache unchanged (%zu bytes of pipeline data): %s not rewritten", n, b->pcache_path);
    else if (vkr__pcache_save(b->pcache_dir, b->pcache_path, &key, data, n, why, sizeof why) != 0)
        vkr__log(VKR_LOG_WARN, "vulkan: pipeline cache not written: %s", why);
    else
        vkr__log(VKR_LOG_INFO, "vulkan: pipeline cache written to %s (%zu bytes of pipeline data, %.1f ms)", b->pcache_path, n,
                 now_ms() - t0);
    free(data);
}


/* ------------------------------------------------------------------ warm-up */

/* One tiny job per pipeline (antialias: one job, both passes): lavapipe (and other JIT drivers)
 * compile on the first dispatch, and it proves the whole path end to end.  Input 1, 2, 3, ...;
 * every axis `in` -> `out`; the first, middle (index n/2) and last outputs are exact in binary. */
static int warm_up(vk_backend_t *b, vkr_error_t *err)
{
    static const float src[16] = {1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8};
    static const struct {
        int pipe, mode, rank, in, out;
        bool align_corners, antialias;
        float first, mid, last;
        int64_t channels;   /* 0: 1.  2-D / 3-D nearest and linear with C == 1 take the channels-last pipelines */
    } cases[] = {
        {PIPE_NEAREST, VKR_MODE_NEAREST, 1, 2, 4, false, false, 1, 2, 2},
        {PIPE_NEAREST_EXACT, VKR_MODE_NEAREST_EXACT, 1, 2, 4, false, false, 1, 2, 2},
        {PIPE_NEAREST_CL, VKR_MODE_NEAREST, 2, 2, 4, false, false, 1, 3, 4},
        {PIPE_LINEAR_1D, VKR_MODE_LINEAR, 1, 2, 3, true, false, 1, 1.5f, 2},          /* centre: the mean */
        {PIPE_LINEAR_2D, VKR_MODE_BILINEAR, 2, 2, 3, true, false, 1, 2.5f, 4, 2},
        {PIPE_LINEAR_3D, VKR_MODE_TRILINEAR, 3, 2, 3, true, false, 1, 4.5f, 8, 2},
        {PIPE_LINEAR_CL_2D, VKR_MODE_BILINEAR, 2, 2, 3, true, false, 1, 2.5f, 4},
        {PIPE_LINEAR_CL_3D, VKR_MODE_TRILINEAR, 3, 2, 3, true, false, 1, 4.5f, 8},
        {PIPE_CUBIC, VKR_MODE_BICUBIC, 2, 2, 3, true, false, 1, 2.5f, 4},
        {PIPE_AREA_1D, VKR_MODE_AREA, 1, 2, 3, false, false, 1, 1.5f, 2},             /* centre window: all */
        {PIPE_AREA_2D, VKR_MODE_AREA, 2, 2, 3, false, false, 1, 2.5f, 4},
        {PIPE_AREA_3D, VKR_MODE_AREA, 3, 2, 3, false, false, 1, 4.5f, 8},
        {PIPE_AREA_MEAN, VKR_MODE_AREA, 3, 2, 1, false, false, 4.5f, 4.5f, 4.5f},
        {PIPE_AA_H, VKR_MODE_BILINEAR, 2, 2, 2, false, true, 1, 3, 4},                /* same size: weights 1, 0 */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int rank = cases[c].rank;
        const int64_t channels = cases[c].channels ? cases[c].channels : 1;
        vkr_interp_plan_t plan = {.mode = cases[c].mode, .spatial_rank = rank, .batch = 1, .channels = channels,
                                  .align_corners = cases[c].align_corners, .antialias = cases[c].antialias,
                                  .in_elements = (uint64_t)channels, .out_elements = (uint64_t)channels};
        for (int d = 0; d < rank; d++) {
            plan.in_size[d] = cases[c].in;
            plan.out_size[d] = cases[c].out;
            plan.in_elements *= (uint64_t)cases[c].in;
            plan.out_elements *= (uint64_t)cases[c].out;
        }
        float out[64];
        int rc = vk_interpolate(&b->base, &plan, src, out, NULL, err);
        if (rc)
            return rc;
        const uint64_t n = plan.out_elements / (uint64_t)channels;   /* plane 0's */
        if (out[0] != cases[c].first || out[n / 2] != cases[c].mid || out[n - 1] != cases[c].last)
            return vkr_proto_error_set(err, VKR_E_BACKEND, "backend",
                                       "vulkan: warm-up %s job gave wrong values (%g, %g, %g; expected %g, %g, %g)",
                                       pipe_defs[cases[c].pipe].what, out[0], out[n / 2], out[n - 1], cases[c].first,
                                       cases[c].mid, cases[c].last);
    }
    return VKR_OK;
}

/* One tiny job per grid pipeline: two channels of 1, 2, 3, ... (2-D: 2 x 2 planes; 3-D: 2 x 2 x 2)
 * sampled at their own pixel centres with align_corners (grid values exactly -1 and 1; affine:
 * the identity theta), which every mode and padding returns exactly; affine_grid of the identity
 * gives those grid values back. */
static int warm_up_grid(vk_backend_t *b, vkr_error_t *err)
{
    float img[16], grid[24], theta[12], out[24];
    for (int i = 0; i < 16; i++)
        img[i] = (float)(i + 1);
    for (int rank = 2; rank <= 3; rank++) {
        const int P = rank == 2 ? 4 : 8;
        for (int p = 0; p < P; p++)
            for (int k = 0; k < rank; k++)   /* component k (x, y, z) is bit k of the point */
                grid[p * rank + k] = (p >> k) & 1 ? 1.0f : -1.0f;
        memset(theta, 0, sizeof theta);
        for (int k = 0; k < rank; k++)
            theta[k * (rank + 1) + k] = 1.0f;
        vkr_grid_plan_t plan = {.spatial_rank = rank, .batch = 1, .channels = 2, .align_corners = true};
        for (int d = 0; d < rank; d++)
            plan.in_size[d] = plan.out_size[d] = 2;
        for (int mode = 1; mode <= 3; mode++)
            for (int pad = 1; pad <= 3; pad++)
                for (int affine = 0; affine < 2; affine++) {
                    if (!b->grid_pipes[rank - 2][mode - 1][pad - 1][affine])
                        continue;
                    plan.op = affine ? VKR_OP_AFFINE_SAMPLE : VKR_OP_GRID_SAMPLE;
                    plan.mode = mode;
                    plan.padding_mode = pad;
                    plan.in_elements = plan.out_elements = 2 * (uint64_t)P;
                    plan.aux_elements = affine ? (uint64_t)(rank * (rank + 1)) : (uint64_t)(P * rank);
                    memset(out, 0, sizeof out);
                    int rc = vk_grid(&b->base, &plan, img, affine ? theta : grid, out, NULL, err);
                    if (rc)
                        return rc;
                    for (int i = 0; i < 2 * P; i++)
                        if (out[i] != img[i])
                            return vkr_proto_error_set(err, VKR_E_BACKEND, "backend",
                                                       "vulkan: warm-up %s %dD %s/%s job gave %g at %d (expected %g)",
                                                       affine ? "affine_sample" : "grid_sample", rank,
                                                       vkr_proto_grid_mode_name(mode), vkr_proto_padding_name(pad), out[i], i, img[i]);
                }
        plan.op = VKR_OP_AFFINE_GRID;
        plan.mode = plan.padding_mode = 0;
        plan.channels = 1;
        plan.in_elements = (uint64_t)(rank * (rank + 1));
        plan.aux_elements = 0;
        plan.out_elements = (uint64_t)(P * rank);
        memset(plan.in_size, 0, sizeof plan.in_size);
        int rc = vk_grid(&b->base, &plan, NULL, theta, out, NULL, err);
        if (rc)
            return rc;
        for (int i = 0; i < P * rank; i++)
            if (out[i] != grid[i])
                return vkr_proto_error_set(err, VKR_E_BACKEND, "backend",
                                           "vulkan: warm-up affine_grid %dD job gave %g at %d (expected %g)", rank, out[i], i, grid[i]);
    }
    return VKR_OK;
}

/* ------------------------------------------------------------------ creation */

int vkr__backend_vulkan_create(const vkr_vulkan_options_t *opts, vkr_backend_s **out, vkr_error_t *err)
{
    const double t_start = now_ms();
    vk_backend_t *b = calloc(1, sizeof *b);
    if (!b)
        return vkr_proto_error_set(err, VKR_E_NOMEM, "backend", "vulkan: out of memory");
    atomic_init(&b->validation_count, 0u);
    atomic_init(&b->jobs_imported, 0ul);
    atomic_init(&b->jobs_part_imported, 0ul);
    atomic_init(&b->jobs_staged, 0ul);
    atomic_init(&b->imports_made, 0ul);
    atomic_init(&b->imports_reused, 0ul);
    atomic_init(&b->lost, false);
    atomic_init(&b->pool_hits, 0ul);
    atomic_init(&b->pool_misses, 0ul);
    atomic_init(&b->batches, 0ul);
    atomic_init(&b->batched_jobs, 0ul);
    b->base.name = "vulkan";
    b->base.interpolate = vk_interpolate;
    b->base.run_batch = vk_run_batch;
    b->base.device_lost = vk_device_lost;
    b->base.grid = vk_grid;
    b->base.validation_messages = vk_validation_messages;
    b->base.destroy = vk_destroy;
    int rc;
    if (pthread_mutex_init(&b->lock, NULL) != 0) {
        rc = vkr_proto_error_set(err, VKR_E_NOMEM, "backend", "vulkan: pthread_mutex_init failed");
        goto fail;
    }
    b->lock_ready = true;
    if (gate_init(&b->gate) != 0) {
        rc = vkr_proto_error_set(err, VKR_E_NOMEM, "backend", "vulkan: the device gate's pthread_mutex_init / pthread_cond_init failed");
        goto fail;
    }
    const char *no_pool = getenv("VKR_VULKAN_NO_BUFFER_POOL");
    if (no_pool && no_pool[0] && strcmp(no_pool, "0") != 0) {
        vkr__log(VKR_LOG_WARN, "vulkan: VKR_VULKAN_NO_BUFFER_POOL=%s: every job allocates its buffers (a test knob)", no_pool);
    } else {
        b->pool = calloc(VKR_VK_POOL_BUFFERS, sizeof *b->pool);
        if (!b->pool) {
            rc = vkr_proto_error_set(err, VKR_E_NOMEM, "backend", "vulkan: out of memory");
            goto fail;
        }
    }
    if (pthread_mutex_init(&b->imports_lock, NULL) != 0) {
        rc = vkr_proto_error_set(err, VKR_E_NOMEM, "backend", "vulkan: pthread_mutex_init failed");
        goto fail;
    }
    if (pthread_cond_init(&b->imports_idle, NULL) != 0) {
        pthread_mutex_destroy(&b->imports_lock);
        rc = vkr_proto_error_set(err, VKR_E_NOMEM, "backend", "vulkan: pthread_cond_init failed");
        goto fail;
    }
    b->imports_ready = true;
    rc = create_instance(b, opts->validation, err);
    if (rc)
        goto fail;
    rc = choose_device(b, opts->device_index, err);
    if (rc)
        goto fail;
    rc = create_device(b, err);
    if (rc)
        goto fail;
    if (b->host_import) {
        b->base.run_mapped = vk_run_mapped;
        b->base.release_mapped = vk_release_mapped;
    }
    const double t_device = now_ms();
    pcache_open(b, opts->cache_dir);
    rc = create_pipelines(b, err);
    if (rc)
        goto fail;
    const double t_pipes = now_ms();
    rc = warm_up(b, err);
    if (rc)
        goto fail;
    rc = warm_up_grid(b, err);
    if (rc)
        goto fail;
    const double t_ready = now_ms();
    vkr__log(VKR_LOG_INFO, "vulkan: start-up: instance and device %.0f ms, glslang %.0f ms (%d shaders), %u pipelines created in "
             "%.0f ms, warm-up dispatches %.0f ms", t_device - t_start, b->compile_ms, SHADER_COUNT, b->n_pipes, b->pipes_ms,
             t_ready - t_pipes);
    char how[160];
    if (!b->pcache)
        snprintf(how, sizeof how, "no pipeline cache");
    else if (!b->pcache_warm)
        snprintf(how, sizeof how, "cold cache");
    else if (!b->feedback)
        snprintf(how, sizeof how, "warm cache, %zu bytes from disk", b->pcache_loaded_bytes);
    else if (b->pcache_hits == b->n_pipes)
        snprintf(how, sizeof how, "warm cache, %u pipelines from disk", b->pcache_hits);
    else
        snprintf(how, sizeof how, "warm cache, %u of %u pipelines from disk, %zu bytes", b->pcache_hits, b->n_pipes,
                 b->pcache_loaded_bytes);
    vkr__log(VKR_LOG_INFO, "vulkan: ready in %.2f s (%s)", (t_ready - t_start) / 1e3, how);
    pcache_close(b);
    *out = &b->base;
    return VKR_OK;
fail:
    vk_destroy(&b->base);
    return rc;
}
