/* The Vulkan backend: owns the instance (with VK_LAYER_KHRONOS_validation and a debug messenger
 * when asked), the device choice, the compute pipelines built once at start-up from the embedded
 * shaders (shaders/interpolate_*.comp, compiled by shader_compiler.c), and the running of planned
 * interpolate jobs: host-visible buffers per job, N*C planes split into chunks so that no binding
 * exceeds maxStorageBufferRange, dispatches split so that no grid exceeds maxComputeWorkGroupCount.
 * Jobs are serialised by one mutex (the queue, the command buffer, the descriptor pool and the
 * fence are shared).  No source coordinate is computed here: nearest scales come from
 * vkr_spec_area_pixel_scale and linear taps from vkr_spec_linear_taps (shaders/spec/).
 *
 * Test knobs (environment, read at creation, can only lower the device's limits):
 *   VKR_VULKAN_MAX_BINDING_BYTES  bytes one storage-buffer binding may span
 *   VKR_VULKAN_MAX_GROUP_COUNT    workgroups per dispatch along x and along y */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <vulkan/vulkan.h>

#include "backend.h"
#include "log.h"
#include "shader_compiler.h"
#include "spec/axis_tables.h"

#define VKR_VK_LOCAL_SIZE 64u                  /* invocations per workgroup (spec constant 0) */
#define VKR_VK_SETS_PER_SUBMIT 64u             /* descriptor sets (= chunks) per submission */
#define VKR_VK_MAX_BINDING_CAP (1ull << 31)    /* bytes per binding, whatever the device allows:
                                                  keeps every shader index within uint32 */
#define VKR_VK_VALIDATION_LAYER "VK_LAYER_KHRONOS_validation"

/* Push constants of both shaders; mirrors `Params` in shaders/interpolate_*.comp. */
typedef struct {
    uint32_t in_base, out_base;   /* element offset of the chunk's first element in the bound ranges */
    uint32_t count;               /* output elements of the chunk */
    uint32_t first, row;          /* first element of this dispatch; elements per grid row */
    int32_t in_d, in_h, in_w, out_d, out_h, out_w;   /* absent outer axes: 1 */
    float scale_d, scale_h, scale_w;                  /* nearest: vkr_spec_area_pixel_scale */
    uint32_t tab_d, tab_h, tab_w;                     /* linear: first entry of each axis in tab[] */
} vkr_vk_push_t;
_Static_assert(sizeof(vkr_vk_push_t) == 68, "push constants must match the shaders' Params block");

enum { PIPE_NEAREST, PIPE_NEAREST_EXACT, PIPE_LINEAR_1D, PIPE_LINEAR_2D, PIPE_LINEAR_3D, PIPE_COUNT };
enum { SHADER_NEAREST, SHADER_LINEAR, SHADER_COUNT };
static const char *const shader_names[SHADER_COUNT] = {"interpolate_nearest.comp", "interpolate_linear.comp"};
/* Pipeline = shader + value of specialisation constant 1 (EXACT, or RANK). */
static const struct {
    int shader;
    uint32_t spec1;
    const char *what;
} pipe_defs[PIPE_COUNT] = {
    {SHADER_NEAREST, 0, "nearest"},  {SHADER_NEAREST, 1, "nearest-exact"}, {SHADER_LINEAR, 1, "linear"},
    {SHADER_LINEAR, 2, "bilinear"}, {SHADER_LINEAR, 3, "trilinear"},
};

typedef struct {
    vkr_backend_s base;
    atomic_uint validation_count;
    VkInstance instance;
    VkDebugUtilsMessengerEXT messenger;
    PFN_vkDestroyDebugUtilsMessengerEXT destroy_messenger;
    VkPhysicalDevice phys;
    VkPhysicalDeviceProperties props;
    VkPhysicalDeviceMemoryProperties mem_props;
    VkDeviceSize max_alloc;         /* maxMemoryAllocationSize */
    uint64_t max_binding;           /* bytes one binding may span (limits, cap, test knob) */
    uint32_t max_groups[2];         /* workgroups per dispatch along x, y */
    uint32_t queue_family;
    VkDevice device;
    VkQueue queue;
    VkDescriptorSetLayout set_layout;
    VkPipelineLayout pipe_layout;
    VkPipeline pipes[PIPE_COUNT];
    VkDescriptorPool desc_pool;
    VkCommandPool cmd_pool;
    VkCommandBuffer cmd;
    VkFence fence;
    pthread_mutex_t lock;           /* one job at a time on everything below `device` */
    bool lock_ready;
} vk_backend_t;

/* One host-visible, host-coherent buffer, mapped for its whole life. */
typedef struct {
    VkBuffer buf;
    VkDeviceMemory mem;
    void *map;
    VkDeviceSize size;
} vk_buf_t;

/* A job's shape after padding to three axes (D, H, W), and how it is cut into chunks. */
typedef struct {
    int pipe;
    int64_t in[3], out[3];
    uint64_t planes, in_plane, out_plane;   /* N*C; elements of one plane */
    uint64_t planes_per_chunk, chunks;
    uint64_t tab_entries;                   /* linear: sum of the output extents */
    float scale[3];                         /* nearest */
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

/* A failed Vulkan call: VKR_E_BACKEND naming the call and the result. */
static int vk_fail(vkr_error_t *err, const char *call, VkResult r)
{
    return vkr_proto_error_set(err, VKR_E_BACKEND, "backend", "vulkan: %s failed: %s (%d)", call, vk_result_name(r), (int)r);
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
        return vk_fail(err, "vkCreateDebugUtilsMessengerEXT", r);
    }
    vkr__log(VKR_LOG_INFO, "vulkan: validation enabled (%s)", VKR_VK_VALIDATION_LAYER);
    return VKR_OK;
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
        return vk_fail(err, "vkEnumeratePhysicalDevices", r);
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
        rc = vk_fail(err, "vkEnumeratePhysicalDevices", r);
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
    VkPhysicalDeviceMaintenance3Properties m3 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES};
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &m3};
    vkGetPhysicalDeviceProperties2(b->phys, &p2);
    b->max_alloc = m3.maxMemoryAllocationSize;
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

static int create_device(vk_backend_t *b, vkr_error_t *err)
{
    const float prio = 1.0f;
    const VkDeviceQueueCreateInfo q = {
        .sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
        .queueFamilyIndex = b->queue_family,
        .queueCount = 1,
        .pQueuePriorities = &prio,
    };
    const VkDeviceCreateInfo info = {
        .sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
        .queueCreateInfoCount = 1,
        .pQueueCreateInfos = &q,
    };
    VkResult r = vkCreateDevice(b->phys, &info, NULL, &b->device);
    if (r != VK_SUCCESS) {
        b->device = VK_NULL_HANDLE;
        return vk_fail(err, "vkCreateDevice", r);
    }
    vkGetDeviceQueue(b->device, b->queue_family, 0, &b->queue);

    const VkPhysicalDeviceLimits *lim = &b->props.limits;
    const uint64_t binding_knob = env_knob("VKR_VULKAN_MAX_BINDING_BYTES");
    const uint64_t groups_knob = env_knob("VKR_VULKAN_MAX_GROUP_COUNT");
    b->max_binding = min_u64(lim->maxStorageBufferRange, VKR_VK_MAX_BINDING_CAP);
    if (binding_knob)
        b->max_binding = min_u64(b->max_binding, binding_knob);
    for (int i = 0; i < 2; i++)
        b->max_groups[i] = (uint32_t)min_u64(lim->maxComputeWorkGroupCount[i], groups_knob ? groups_knob : UINT32_MAX);
    return VKR_OK;
}

/* ------------------------------------------------------------------ pipelines */

static int create_pipelines(vk_backend_t *b, vkr_error_t *err)
{
    VkShaderModule modules[SHADER_COUNT] = {VK_NULL_HANDLE, VK_NULL_HANDLE};
    int rc = VKR_OK;
    VkResult r;
    const VkDescriptorSetLayoutBinding bindings[3] = {
        {0, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1, VK_SHADER_STAGE_COMPUTE_BIT, NULL},   /* input */
        {1, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1, VK_SHADER_STAGE_COMPUTE_BIT, NULL},   /* output */
        {2, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1, VK_SHADER_STAGE_COMPUTE_BIT, NULL},   /* linear tables */
    };
    const VkDescriptorSetLayoutCreateInfo set_info = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
        .bindingCount = 3,
        .pBindings = bindings,
    };
    r = vkCreateDescriptorSetLayout(b->device, &set_info, NULL, &b->set_layout);
    if (r != VK_SUCCESS) {
        b->set_layout = VK_NULL_HANDLE;
        rc = vk_fail(err, "vkCreateDescriptorSetLayout", r);
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
        rc = vk_fail(err, "vkCreatePipelineLayout", r);
        goto out;
    }
    for (int s = 0; s < SHADER_COUNT; s++) {
        uint32_t *words = NULL;
        size_t n_words = 0;
        rc = vkr__shader_compile(shader_names[s], &words, &n_words, err);
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
            rc = vk_fail(err, "vkCreateShaderModule", r);
            goto out;
        }
    }
    const VkSpecializationMapEntry entries[2] = {{0, 0, sizeof(uint32_t)}, {1, sizeof(uint32_t), sizeof(uint32_t)}};
    for (int p = 0; p < PIPE_COUNT; p++) {
        const uint32_t data[2] = {VKR_VK_LOCAL_SIZE, pipe_defs[p].spec1};   /* EXACT is a VkBool32, RANK an int */
        const VkSpecializationInfo spec = {2, entries, sizeof data, data};
        const VkComputePipelineCreateInfo pi = {
            .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
            .stage =
                {
                    .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                    .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                    .module = modules[pipe_defs[p].shader],
                    .pName = "main",
                    .pSpecializationInfo = &spec,
                },
            .layout = b->pipe_layout,
        };
        r = vkCreateComputePipelines(b->device, VK_NULL_HANDLE, 1, &pi, NULL, &b->pipes[p]);
        if (r != VK_SUCCESS) {
            b->pipes[p] = VK_NULL_HANDLE;
            rc = vk_fail(err, "vkCreateComputePipelines", r);
            goto out;
        }
    }
    const VkDescriptorPoolSize pool_size = {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 3 * VKR_VK_SETS_PER_SUBMIT};
    const VkDescriptorPoolCreateInfo pool_info = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
        .maxSets = VKR_VK_SETS_PER_SUBMIT,
        .poolSizeCount = 1,
        .pPoolSizes = &pool_size,
    };
    r = vkCreateDescriptorPool(b->device, &pool_info, NULL, &b->desc_pool);
    if (r != VK_SUCCESS) {
        b->desc_pool = VK_NULL_HANDLE;
        rc = vk_fail(err, "vkCreateDescriptorPool", r);
        goto out;
    }
    const VkCommandPoolCreateInfo cmd_pool_info = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
        .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
        .queueFamilyIndex = b->queue_family,
    };
    r = vkCreateCommandPool(b->device, &cmd_pool_info, NULL, &b->cmd_pool);
    if (r != VK_SUCCESS) {
        b->cmd_pool = VK_NULL_HANDLE;
        rc = vk_fail(err, "vkCreateCommandPool", r);
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
        rc = vk_fail(err, "vkAllocateCommandBuffers", r);
        goto out;
    }
    const VkFenceCreateInfo fence_info = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    r = vkCreateFence(b->device, &fence_info, NULL, &b->fence);
    if (r != VK_SUCCESS) {
        b->fence = VK_NULL_HANDLE;
        rc = vk_fail(err, "vkCreateFence", r);
        goto out;
    }
out:
    for (int s = SHADER_COUNT - 1; s >= 0; s--)
        vkDestroyShaderModule(b->device, modules[s], NULL);
    return rc;
}

/* ------------------------------------------------------------------ jobs */

static void buf_destroy(vk_backend_t *b, vk_buf_t *x)
{
    if (x->map)
        vkUnmapMemory(b->device, x->mem);
    vkDestroyBuffer(b->device, x->buf, NULL);
    vkFreeMemory(b->device, x->mem, NULL);
    memset(x, 0, sizeof *x);
}

static int buf_create(vk_backend_t *b, VkDeviceSize size, vk_buf_t *x, vkr_error_t *err)
{
    memset(x, 0, sizeof *x);
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
        rc = vk_fail(err, "vkCreateBuffer", r);
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
        rc = vk_fail(err, "vkAllocateMemory", r);
        goto fail;
    }
    r = vkBindBufferMemory(b->device, x->buf, x->mem, 0);
    if (r != VK_SUCCESS) {
        rc = vk_fail(err, "vkBindBufferMemory", r);
        goto fail;
    }
    r = vkMapMemory(b->device, x->mem, 0, VK_WHOLE_SIZE, 0, &x->map);
    if (r != VK_SUCCESS) {
        x->map = NULL;
        rc = vk_fail(err, "vkMapMemory", r);
        goto fail;
    }
    x->size = size;
    return VKR_OK;
fail:
    buf_destroy(b, x);
    return rc;
}

/* Shape, pipeline and chunking of a plan; refuses what this backend cannot bind. */
static int job_prepare(const vk_backend_t *b, const vkr_interp_plan_t *plan, vk_job_t *j, vkr_error_t *err)
{
    memset(j, 0, sizeof *j);
    const int rank = plan->spatial_rank;
    const char *mode_name = vkr_proto_mode_name(plan->mode);
    switch (plan->mode) {
    case VKR_MODE_NEAREST: j->pipe = PIPE_NEAREST; break;
    case VKR_MODE_NEAREST_EXACT: j->pipe = PIPE_NEAREST_EXACT; break;
    case VKR_MODE_LINEAR:
    case VKR_MODE_BILINEAR:
    case VKR_MODE_TRILINEAR: j->pipe = PIPE_LINEAR_1D + rank - 1; break;
    default:
        return vkr_proto_error_set(err, VKR_E_UNSUPPORTED, "mode", "vulkan backend: mode '%s' is not implemented",
                                   mode_name ? mode_name : "?");
    }
    if (plan->antialias)
        return vkr_proto_error_set(err, VKR_E_UNSUPPORTED, "antialias", "vulkan backend: mode '%s' with antialias=True is not "
                                   "implemented", mode_name ? mode_name : "?");
    if (rank < 1 || rank > 3)
        return vkr_proto_error_set(err, VKR_E_BACKEND, "backend", "vulkan backend: plan with %d spatial axes", rank);
    const int pad = 3 - rank;
    j->in_plane = j->out_plane = 1;
    for (int a = 0; a < 3; a++) {
        int d = a - pad;
        j->in[a] = d < 0 ? 1 : plan->in_size[d];
        j->out[a] = d < 0 ? 1 : plan->out_size[d];
        j->in_plane *= (uint64_t)j->in[a];
        j->out_plane *= (uint64_t)j->out[a];
        j->scale[a] = d < 0 ? 1.0f : vkr_spec_area_pixel_scale(j->in[a], j->out[a], false, plan->has_scale[d], plan->scale[d]);
        if (d >= 0)
            j->tab_entries += (uint64_t)j->out[a];
    }
    j->planes = (uint64_t)plan->batch * (uint64_t)plan->channels;
    if (j->pipe < PIPE_LINEAR_1D)
        j->tab_entries = 0;
    if (j->planes == 0 || plan->out_elements == 0)
        return VKR_OK;   /* nothing to run: no chunks */

    const uint64_t align = b->props.limits.minStorageBufferOffsetAlignment;
    const uint64_t slack = align > 4 ? align - 4 : 0;   /* residual of a 4-byte offset aligned down */
    const uint64_t plane_bytes = 4 * (j->in_plane > j->out_plane ? j->in_plane : j->out_plane);
    if (plane_bytes + slack > b->max_binding)
        return vkr_proto_error_set(err, VKR_E_TOO_LARGE, "input.shape",
                                   "vulkan backend: one N*C plane (%llu input / %llu output elements) needs a binding of %llu bytes, "
                                   "over this device's binding limit (maxStorageBufferRange) of %llu bytes; splitting a plane is "
                                   "not implemented yet (use --backend cpu)",
                                   (unsigned long long)j->in_plane, (unsigned long long)j->out_plane,
                                   (unsigned long long)(plane_bytes + slack), (unsigned long long)b->max_binding);
    if (16 * j->tab_entries > b->max_binding)
        return vkr_proto_error_set(err, VKR_E_TOO_LARGE, "size",
                                   "vulkan backend: the linear tables of %llu output positions need %llu bytes, over this "
                                   "device's binding limit (maxStorageBufferRange) of %llu bytes (use --backend cpu)",
                                   (unsigned long long)j->tab_entries, (unsigned long long)(16 * j->tab_entries),
                                   (unsigned long long)b->max_binding);
    const uint64_t sizes[2] = {4 * plan->in_elements, 4 * plan->out_elements};
    for (int i = 0; i < 2; i++)
        if (sizes[i] > b->max_alloc)
            return vkr_proto_error_set(err, VKR_E_TOO_LARGE, i ? "size" : "input.shape",
                                       "vulkan backend: the %s tensor of %llu bytes is over this device's maxMemoryAllocationSize "
                                       "of %llu bytes (use --backend cpu)",
                                       i ? "output" : "input", (unsigned long long)sizes[i], (unsigned long long)b->max_alloc);
    j->planes_per_chunk = (b->max_binding - slack) / plane_bytes;
    if (j->planes_per_chunk > j->planes)
        j->planes_per_chunk = j->planes;
    j->chunks = (j->planes + j->planes_per_chunk - 1) / j->planes_per_chunk;
    return VKR_OK;
}

/* Pack the per-axis taps (vkr_spec_linear_taps) as uvec4 (i0, i1, bits(l0), bits(l1)). */
static int tables_fill(const vkr_interp_plan_t *plan, uint32_t *dst, vkr_vk_push_t *pc, vkr_error_t *err)
{
    const int pad = 3 - plan->spatial_rank;
    int64_t max_o = 0;
    for (int d = 0; d < plan->spatial_rank; d++)
        max_o = plan->out_size[d] > max_o ? plan->out_size[d] : max_o;
    void *block = malloc((size_t)max_o * 4 * sizeof(int32_t));
    if (!block)
        return vkr_proto_error_set(err, VKR_E_NOMEM, "backend", "vulkan: out of memory for linear tables");
    uint32_t *tab_base[3] = {&pc->tab_d, &pc->tab_h, &pc->tab_w};
    uint32_t next = 0;
    for (int d = 0; d < plan->spatial_rank; d++) {
        const int64_t o = plan->out_size[d];
        vkr_linear_taps_t t = {
            .i0 = block,
            .i1 = (int32_t *)block + o,
            .l0 = (float *)((int32_t *)block + 2 * o),
            .l1 = (float *)((int32_t *)block + 3 * o),
        };
        vkr_spec_linear_taps(plan->in_size[d], o, plan->align_corners, plan->has_scale[d], plan->scale[d], t);
        uint32_t *e = dst + 4 * (size_t)next;
        for (int64_t i = 0; i < o; i++, e += 4) {
            e[0] = (uint32_t)t.i0[i];
            e[1] = (uint32_t)t.i1[i];
            memcpy(&e[2], &t.l0[i], sizeof(float));
            memcpy(&e[3], &t.l1[i], sizeof(float));
        }
        *tab_base[d + pad] = next;
        next += (uint32_t)o;
    }
    free(block);
    return VKR_OK;
}

/* A binding of elements [first, first + count) of a float buffer: offset aligned down, the
 * residual returned in *base (elements). */
static VkDescriptorBufferInfo bind_range(const vk_backend_t *b, const vk_buf_t *x, uint64_t first, uint64_t count,
                                         uint32_t *base)
{
    const uint64_t align = b->props.limits.minStorageBufferOffsetAlignment;
    const uint64_t byte = 4 * first;
    const uint64_t off = align > 1 ? byte / align * align : byte;
    *base = (uint32_t)((byte - off) / 4);
    return (VkDescriptorBufferInfo){x->buf, off, byte - off + 4 * count};
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

/* Record, submit and wait for chunks [c0, c0 + n) of a job (n <= VKR_VK_SETS_PER_SUBMIT). */
static int run_batch(vk_backend_t *b, const vk_job_t *j, const vkr_vk_push_t *pc0, const vk_buf_t *bin, const vk_buf_t *bout,
                     const vk_buf_t *btab, uint64_t c0, uint32_t n, vkr_error_t *err)
{
    VkDescriptorSet sets[VKR_VK_SETS_PER_SUBMIT];
    VkDescriptorSetLayout layouts[VKR_VK_SETS_PER_SUBMIT];
    for (uint32_t i = 0; i < n; i++)
        layouts[i] = b->set_layout;
    VkResult r = vkResetDescriptorPool(b->device, b->desc_pool, 0);
    if (r != VK_SUCCESS)
        return vk_fail(err, "vkResetDescriptorPool", r);
    const VkDescriptorSetAllocateInfo ai = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
        .descriptorPool = b->desc_pool,
        .descriptorSetCount = n,
        .pSetLayouts = layouts,
    };
    r = vkAllocateDescriptorSets(b->device, &ai, sets);
    if (r != VK_SUCCESS)
        return vk_fail(err, "vkAllocateDescriptorSets", r);
    r = vkResetCommandBuffer(b->cmd, 0);
    if (r != VK_SUCCESS)
        return vk_fail(err, "vkResetCommandBuffer", r);
    const VkCommandBufferBeginInfo bi = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
        .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT,
    };
    r = vkBeginCommandBuffer(b->cmd, &bi);
    if (r != VK_SUCCESS)
        return vk_fail(err, "vkBeginCommandBuffer", r);
    vkCmdBindPipeline(b->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, b->pipes[j->pipe]);
    const uint64_t local = VKR_VK_LOCAL_SIZE;
    for (uint32_t i = 0; i < n; i++) {
        const uint64_t p0 = (c0 + i) * j->planes_per_chunk;
        const uint64_t k = j->planes - p0 < j->planes_per_chunk ? j->planes - p0 : j->planes_per_chunk;
        vkr_vk_push_t pc = *pc0;
        VkDescriptorBufferInfo infos[3] = {
            bind_range(b, bin, p0 * j->in_plane, k * j->in_plane, &pc.in_base),
            bind_range(b, bout, p0 * j->out_plane, k * j->out_plane, &pc.out_base),
            {btab ? btab->buf : VK_NULL_HANDLE, 0, VK_WHOLE_SIZE},
        };
        const VkWriteDescriptorSet w = {
            .sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
            .dstSet = sets[i],
            .dstBinding = 0,
            .descriptorCount = btab ? 3 : 2,   /* nearest does not use binding 2 */
            .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
            .pBufferInfo = infos,
        };
        vkUpdateDescriptorSets(b->device, 1, &w, 0, NULL);
        vkCmdBindDescriptorSets(b->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, b->pipe_layout, 0, 1, &sets[i], 0, NULL);
        /* Grid: gx workgroups per row, up to max_groups[1] rows per dispatch, more dispatches
         * (pc.first) when even that is not enough. */
        const uint64_t count = k * j->out_plane;
        const uint64_t groups = (count + local - 1) / local;
        const uint64_t gx = groups < b->max_groups[0] ? groups : b->max_groups[0];
        const uint64_t row = gx * local;
        const uint64_t rows = (count + row - 1) / row;
        pc.count = (uint32_t)count;
        pc.row = (uint32_t)row;
        for (uint64_t r0 = 0; r0 < rows; r0 += b->max_groups[1]) {
            const uint64_t gy = rows - r0 < b->max_groups[1] ? rows - r0 : b->max_groups[1];
            /* No barrier between dispatches: each writes its own elements only (chunks' bound
             * ranges may overlap by an alignment residual, the elements written never do). */
            pc.first = (uint32_t)(r0 * row);
            vkCmdPushConstants(b->cmd, b->pipe_layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof pc, &pc);
            vkCmdDispatch(b->cmd, (uint32_t)gx, (uint32_t)gy, 1);
        }
    }
    barrier_to_host(b->cmd);
    r = vkEndCommandBuffer(b->cmd);
    if (r != VK_SUCCESS)
        return vk_fail(err, "vkEndCommandBuffer", r);
    r = vkResetFences(b->device, 1, &b->fence);
    if (r != VK_SUCCESS)
        return vk_fail(err, "vkResetFences", r);
    const VkSubmitInfo si = {
        .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
        .commandBufferCount = 1,
        .pCommandBuffers = &b->cmd,
    };
    r = vkQueueSubmit(b->queue, 1, &si, b->fence);
    if (r != VK_SUCCESS)
        return vk_fail(err, "vkQueueSubmit", r);
    r = vkWaitForFences(b->device, 1, &b->fence, VK_TRUE, UINT64_MAX);
    if (r != VK_SUCCESS)
        return vk_fail(err, "vkWaitForFences", r);
    return VKR_OK;
}

/* The whole job, with b->lock held. */
static int run_job(vk_backend_t *b, const vkr_interp_plan_t *plan, const vk_job_t *j, const float *in, float *out,
                   vkr_error_t *err)
{
    vk_buf_t bin = {0}, bout = {0}, btab = {0};
    vkr_vk_push_t pc = {
        .in_d = (int32_t)j->in[0], .in_h = (int32_t)j->in[1], .in_w = (int32_t)j->in[2],
        .out_d = (int32_t)j->out[0], .out_h = (int32_t)j->out[1], .out_w = (int32_t)j->out[2],
        .scale_d = j->scale[0], .scale_h = j->scale[1], .scale_w = j->scale[2],
    };
    int rc = buf_create(b, 4 * plan->in_elements, &bin, err);
    if (rc)
        goto out;
    rc = buf_create(b, 4 * plan->out_elements, &bout, err);
    if (rc)
        goto out;
    if (j->tab_entries) {
        rc = buf_create(b, 16 * j->tab_entries, &btab, err);
        if (rc)
            goto out;
        rc = tables_fill(plan, btab.map, &pc, err);
        if (rc)
            goto out;
    }
    memcpy(bin.map, in, 4 * plan->in_elements);
    for (uint64_t c0 = 0; c0 < j->chunks; c0 += VKR_VK_SETS_PER_SUBMIT) {
        uint32_t n = (uint32_t)(j->chunks - c0 < VKR_VK_SETS_PER_SUBMIT ? j->chunks - c0 : VKR_VK_SETS_PER_SUBMIT);
        rc = run_batch(b, j, &pc, &bin, &bout, j->tab_entries ? &btab : NULL, c0, n, err);
        if (rc)
            goto out;
    }
    memcpy(out, bout.map, 4 * plan->out_elements);
out:
    buf_destroy(b, &btab);
    buf_destroy(b, &bout);
    buf_destroy(b, &bin);
    return rc;
}

static int vk_interpolate(vkr_backend_s *self, const vkr_interp_plan_t *plan, const float *in, float *out, vkr_error_t *err)
{
    vk_backend_t *b = (vk_backend_t *)self;
    vk_job_t j;
    int rc = job_prepare(b, plan, &j, err);
    if (rc || plan->out_elements == 0)
        return rc;
    pthread_mutex_lock(&b->lock);
    rc = run_job(b, plan, &j, in, out, err);
    pthread_mutex_unlock(&b->lock);
    return rc;
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
    if (b->device) {
        vkDeviceWaitIdle(b->device);
        vkDestroyFence(b->device, b->fence, NULL);
        vkDestroyCommandPool(b->device, b->cmd_pool, NULL);
        vkDestroyDescriptorPool(b->device, b->desc_pool, NULL);
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
    free(b);
}

/* ------------------------------------------------------------------ warm-up */

/* One tiny job per pipeline: lavapipe (and other JIT drivers) compile on the first dispatch,
 * and it proves the whole path end to end.  Every expected value is exact in binary. */
static int warm_up(vk_backend_t *b, vkr_error_t *err)
{
    static const float src[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    for (int p = 0; p < PIPE_COUNT; p++) {
        const int rank = p < PIPE_LINEAR_1D ? 1 : p - PIPE_LINEAR_1D + 1;
        static const int modes[PIPE_COUNT] = {VKR_MODE_NEAREST, VKR_MODE_NEAREST_EXACT, VKR_MODE_LINEAR, VKR_MODE_BILINEAR,
                                              VKR_MODE_TRILINEAR};
        vkr_interp_plan_t plan = {.mode = modes[p], .spatial_rank = rank, .batch = 1, .channels = 1,
                                  .align_corners = p >= PIPE_LINEAR_1D, .in_elements = 1, .out_elements = 1};
        for (int d = 0; d < rank; d++) {
            plan.in_size[d] = 2;
            plan.out_size[d] = p < PIPE_LINEAR_1D ? 4 : 3;
            plan.in_elements *= 2;
            plan.out_elements *= (uint64_t)plan.out_size[d];
        }
        float out[27];
        int rc = vk_interpolate(&b->base, &plan, src, out, err);
        if (rc)
            return rc;
        /* nearest [1,2] -> [1,1,2,2]; linear family, align_corners: the centre is the mean. */
        const uint64_t n = plan.out_elements;
        float want_mid = p < PIPE_LINEAR_1D ? 1.0f : (1.0f + (float)(1 << rank)) / 2;
        float got_mid = p < PIPE_LINEAR_1D ? out[1] : out[n / 2];
        if (out[0] != 1.0f || out[n - 1] != (float)(1 << rank) || got_mid != want_mid)
            return vkr_proto_error_set(err, VKR_E_BACKEND, "backend",
                                       "vulkan: warm-up %s job gave wrong values (%g, %g, %g; expected 1, %g, %g)",
                                       pipe_defs[p].what, out[0], got_mid, out[n - 1], want_mid, (double)(1 << rank));
    }
    return VKR_OK;
}

/* ------------------------------------------------------------------ creation */

int vkr__backend_vulkan_create(const vkr_vulkan_options_t *opts, vkr_backend_s **out, vkr_error_t *err)
{
    vk_backend_t *b = calloc(1, sizeof *b);
    if (!b)
        return vkr_proto_error_set(err, VKR_E_NOMEM, "backend", "vulkan: out of memory");
    atomic_init(&b->validation_count, 0u);
    b->base.name = "vulkan";
    b->base.interpolate = vk_interpolate;
    b->base.validation_messages = vk_validation_messages;
    b->base.destroy = vk_destroy;
    int rc;
    if (pthread_mutex_init(&b->lock, NULL) != 0) {
        rc = vkr_proto_error_set(err, VKR_E_NOMEM, "backend", "vulkan: pthread_mutex_init failed");
        goto fail;
    }
    b->lock_ready = true;
    rc = create_instance(b, opts->validation, err);
    if (rc)
        goto fail;
    rc = choose_device(b, opts->device_index, err);
    if (rc)
        goto fail;
    rc = create_device(b, err);
    if (rc)
        goto fail;
    rc = create_pipelines(b, err);
    if (rc)
        goto fail;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rc = warm_up(b, err);
    if (rc)
        goto fail;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    vkr__log(VKR_LOG_INFO, "vulkan: %d pipelines ready, warm-up dispatches took %.1f ms", PIPE_COUNT,
             (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
    *out = &b->base;
    return VKR_OK;
fail:
    vk_destroy(&b->base);
    return rc;
}
