/* vulkan_host_import: the Vulkan backend's run_mapped / release_mapped hooks in-process, on memfd
 * mappings made here, with VK_LAYER_KHRONOS_validation on (skipped when the device does not offer
 * VK_EXT_external_memory_host).  Checks the whole contract of backend.h: a job whose tensors are
 * mapped (at offsets that are not page-aligned) is run from imports and gives the bytes the
 * ordinary interpolate / grid path gives; a persistent mapping is imported once and reused by
 * later jobs until release_mapped, a non-persistent one is imported per job; an inline tensor
 * with its pointer given (vkr_host_region_t.data) is staged while the others are imported, one
 * without is VKR_E_UNSUPPORTED; the cache of persistent imports is bounded (the least recently
 * used one goes); release_mapped of something never imported is harmless; and not one validation
 * message, destroy included.  Reads the backend's per-job debug line (through
 * tests/support/log_capture.c).  TAP on stdout. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"
#include "log.h"
#include "log_capture.h"
#include "tap.h"

/* ------------------------------------------------------------------ logging (log_capture.c) */
static char last_memfd_line[2048];      /* the backend's last "memfd job" debug line */
static char summary_line[2048];        /* its "memfd jobs: ..." line at destroy */

static void keep_line(char *dst, size_t size, const char *line)
{
    size_t len = strnlen(line, size - 1);

    memcpy(dst, line, len);
    dst[len] = '\0';
}

void log_capture_line(int level, const char *line)
{
    if (strstr(line, " memfd job: "))
        keep_line(last_memfd_line, sizeof last_memfd_line, line);
    if (strstr(line, "vulkan: memfd jobs: "))
        keep_line(summary_line, sizeof summary_line, line);
    if (level != VKR_LOG_DEBUG)
        log_capture_print(level, line);
}

/* ------------------------------------------------------------------ memfd mappings */
typedef struct {
    int fd;
    void *base;
    size_t bytes;
    uint64_t dev, ino;
} mapping_t;

static bool map_new(mapping_t *m, size_t bytes)
{
    memset(m, 0, sizeof *m);
    m->fd = memfd_create("vkr-host-import-test", MFD_CLOEXEC);
    struct stat st;
    if (m->fd < 0 || ftruncate(m->fd, (off_t)bytes) != 0 || fstat(m->fd, &st) != 0)
        return false;
    m->base = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, m->fd, 0);
    if (m->base == MAP_FAILED) {
        m->base = NULL;
        return false;
    }
    m->bytes = bytes;
    m->dev = st.st_dev;
    m->ino = st.st_ino;
    return true;
}

static void map_free(mapping_t *m)
{
    if (m->base)
        munmap(m->base, m->bytes);
    if (m->fd >= 0)
        close(m->fd);
    memset(m, 0, sizeof *m);
}

static vkr_host_region_t region(const mapping_t *m, size_t offset, bool persistent)
{
    return (vkr_host_region_t){.base = m->base, .map_bytes = m->bytes, .offset = offset, .dev = m->dev, .ino = m->ino,
                               .persistent = persistent};
}

/* ------------------------------------------------------------------ jobs */
#define IN_OFFSET 4000u   /* bytes: a tensor start that is not page-aligned */

static vkr_plan_t bilinear_plan(void)
{
    vkr_plan_t p = {.op = VKR_OP_INTERPOLATE};
    p.interp = (vkr_interp_plan_t){.mode = VKR_MODE_BILINEAR, .spatial_rank = 2, .batch = 2, .channels = 3, .align_corners = false,
                                   .in_size = {37, 45}, .out_size = {61, 29}};
    p.interp.in_elements = 2 * 3 * 37 * 45;
    p.interp.out_elements = 2 * 3 * 61 * 29;
    p.out_elements = p.interp.out_elements;
    return p;
}

static bool line_has(const char *a, const char *b)
{
    return strstr(last_memfd_line, a) != NULL && (!b || strstr(last_memfd_line, b) != NULL);
}

int main(void)
{
    vkr_error_t err = {0};
    vkr_vulkan_options_t opts = {.device_index = -1, .validation = true};
    vkr_backend_s *vk = NULL;
    if (vkr__backend_vulkan_create(&opts, &vk, &err) != VKR_OK) {
        printf("1..0 # SKIP no Vulkan device: %s\n", err.message);
        return 0;
    }
    if (!vk->run_mapped || !vk->release_mapped) {
        vk->destroy(vk);
        printf("1..0 # SKIP the device offers no VK_EXT_external_memory_host import\n");
        return 0;
    }

    /* the reference: the ordinary path from heap memory */
    const vkr_plan_t plan = bilinear_plan();
    const size_t in_bytes = 4 * plan.interp.in_elements, out_bytes = 4 * plan.out_elements;
    float *in = malloc(in_bytes), *want = malloc(out_bytes), *heap_out = malloc(out_bytes);
    for (uint64_t i = 0; i < plan.interp.in_elements; i++)
        in[i] = (float)((i * 2654435761u) % 1000) / 37.0f - 13.0f;
    int rc = vk->interpolate(vk, &plan.interp, in, want, NULL, &err);
    tap_check(rc == VKR_OK, "reference job from heap memory (%s)", rc ? err.message : "ok");

    mapping_t mi, mo;
    tap_check(map_new(&mi, IN_OFFSET + in_bytes) && map_new(&mo, out_bytes), "two memfds mapped");
    memcpy((char *)mi.base + IN_OFFSET, in, in_bytes);
    vkr_host_region_t regions[VKR_HOST_REGIONS] = {region(&mi, IN_OFFSET, true), {0}, region(&mo, 0, true)};

    /* persistent: imported once, reused after */
    memset(mo.base, 0xff, out_bytes);
    rc = vk->run_mapped(vk, &plan, regions, NULL, &err);
    tap_check(rc == VKR_OK && memcmp(mo.base, want, out_bytes) == 0, "persistent mappings: the job's output equals the heap path's (%s)",
              rc ? err.message : "ok");
    tap_check(line_has("input imported (new)", "output imported (new) (zero-copy)"), "first job: both imported (%s)", last_memfd_line);
    memset(mo.base, 0xff, out_bytes);
    rc = vk->run_mapped(vk, &plan, regions, NULL, &err);
    tap_check(rc == VKR_OK && memcmp(mo.base, want, out_bytes) == 0 && line_has("input imported (reused)", "output imported (reused)"),
              "second job: both imports reused, output right (%s)", last_memfd_line);

    /* release the input's: imported anew, the output's still reused */
    vk->release_mapped(vk, mi.base, mi.bytes);
    vk->release_mapped(vk, mi.base, mi.bytes);   /* twice: nothing left, harmless */
    vk->release_mapped(vk, in, in_bytes);        /* never imported: harmless */
    memset(mo.base, 0xff, out_bytes);
    rc = vk->run_mapped(vk, &plan, regions, NULL, &err);
    tap_check(rc == VKR_OK && memcmp(mo.base, want, out_bytes) == 0 && line_has("input imported (new)", "output imported (reused)"),
              "after release_mapped of the input: it is imported again, the output's import reused (%s)", last_memfd_line);

    /* not persistent: a new import every job */
    vkr_host_region_t once[VKR_HOST_REGIONS] = {region(&mi, IN_OFFSET, false), {0}, region(&mo, 0, false)};
    for (int k = 0; k < 2; k++) {
        memset(mo.base, 0xff, out_bytes);
        rc = vk->run_mapped(vk, &plan, once, NULL, &err);
        tap_check(rc == VKR_OK && memcmp(mo.base, want, out_bytes) == 0 && line_has("input imported (new)", "output imported (new)"),
                  "non-persistent mappings, job %d: imported for the job only (%s)", k + 1, last_memfd_line);
    }

    /* an inline output: staged when its pointer is given, else the ordinary path */
    vkr_host_region_t mixed[VKR_HOST_REGIONS] = {region(&mi, IN_OFFSET, true), {0}, {.data = heap_out}};
    memset(heap_out, 0xff, out_bytes);
    rc = vk->run_mapped(vk, &plan, mixed, NULL, &err);
    tap_check(rc == VKR_OK && memcmp(heap_out, want, out_bytes) == 0 && line_has("input imported (reused)", "output inline (staged)"),
              "memfd input, inline output with its pointer: input imported, output staged (%s)", last_memfd_line);
    mixed[2].data = NULL;
    rc = vk->run_mapped(vk, &plan, mixed, NULL, &err);
    tap_check(rc == VKR_E_UNSUPPORTED && line_has("staging copies", "the output is inline"),
              "inline output without its pointer: VKR_E_UNSUPPORTED (%s)", last_memfd_line);

    /* grid_sample: input and grid in one mapping (one import serves both), output in another */
    {
        vkr_plan_t gp = {.op = VKR_OP_GRID_SAMPLE};
        gp.grid = (vkr_grid_plan_t){.op = VKR_OP_GRID_SAMPLE, .mode = VKR_GRID_BICUBIC, .padding_mode = VKR_PADDING_REFLECTION,
                                    .spatial_rank = 2, .batch = 2, .channels = 3, .in_size = {37, 45}, .out_size = {17, 23}};
        gp.grid.in_elements = plan.interp.in_elements;
        gp.grid.aux_elements = 2 * 17 * 23 * 2;
        gp.grid.out_elements = gp.out_elements = 2 * 3 * 17 * 23;
        const size_t grid_bytes = 4 * gp.grid.aux_elements, gout_bytes = 4 * gp.out_elements;
        float *grid = malloc(grid_bytes), *gwant = malloc(gout_bytes);
        for (uint64_t i = 0; i < gp.grid.aux_elements; i++)
            grid[i] = (float)((i * 40503u) % 2200) / 1000.0f - 1.1f;
        rc = vk->grid(vk, &gp.grid, in, grid, gwant, NULL, &err);
        mapping_t gi, go;
        const bool mapped = map_new(&gi, IN_OFFSET + in_bytes + grid_bytes) && map_new(&go, gout_bytes);
        if (mapped) {
            memcpy((char *)gi.base + IN_OFFSET, in, in_bytes);
            memcpy((char *)gi.base + IN_OFFSET + in_bytes, grid, grid_bytes);
            memset(go.base, 0xff, gout_bytes);
        }
        vkr_host_region_t gr[VKR_HOST_REGIONS] = {region(&gi, IN_OFFSET, false), region(&gi, IN_OFFSET + in_bytes, false),
                                                  region(&go, 0, false)};
        int grc = mapped ? vk->run_mapped(vk, &gp, gr, NULL, &err) : VKR_E_NOMEM;
        tap_check(rc == VKR_OK && grc == VKR_OK && memcmp(go.base, gwant, gout_bytes) == 0 &&
                      line_has("grid imported (shared with the input)", "(zero-copy)"),
                  "grid_sample with input and grid in one mapping: equals the heap path, zero-copy (%s)", last_memfd_line);
        map_free(&gi);
        map_free(&go);
        free(grid);
        free(gwant);
    }

    /* the cache is bounded: 40 persistent mappings, then the oldest is imported again */
    enum { MANY = 40 };
    mapping_t many[MANY];
    bool all_right = true;
    for (int k = 0; k < MANY; k++) {
        all_right = all_right && map_new(&many[k], in_bytes);
        if (!all_right)
            break;
        memcpy(many[k].base, in, in_bytes);
        vkr_host_region_t r[VKR_HOST_REGIONS] = {region(&many[k], 0, true), {0}, region(&mo, 0, true)};
        memset(mo.base, 0xff, out_bytes);
        all_right = vk->run_mapped(vk, &plan, r, NULL, &err) == VKR_OK && memcmp(mo.base, want, out_bytes) == 0 &&
                    line_has("input imported (new)", NULL);
    }
    tap_check(all_right, "40 persistent input mappings, each imported once, every output right (%s)", last_memfd_line);
    {
        vkr_host_region_t r[VKR_HOST_REGIONS] = {region(&many[MANY - 1], 0, true), {0}, region(&mo, 0, true)};
        rc = vk->run_mapped(vk, &plan, r, NULL, &err);
        tap_check(rc == VKR_OK && line_has("input imported (reused)", "output imported (reused)"),
                  "the most recent one is still cached (%s)", last_memfd_line);
        r[0] = region(&many[0], 0, true);
        rc = vk->run_mapped(vk, &plan, r, NULL, &err);
        tap_check(rc == VKR_OK && memcmp(mo.base, want, out_bytes) == 0 && line_has("input imported (new)", "output imported (reused)"),
                  "the least recently used one was evicted: imported again (%s)", last_memfd_line);
    }
    /* the server's side of the contract: release before unmapping */
    for (int k = 0; k < MANY; k++) {
        vk->release_mapped(vk, many[k].base, many[k].bytes);
        map_free(&many[k]);
    }
    vk->release_mapped(vk, mi.base, mi.bytes);
    vk->release_mapped(vk, mo.base, mo.bytes);
    map_free(&mi);
    map_free(&mo);

    unsigned counted = vk->validation_messages(vk);
    vk->destroy(vk);
    tap_check(strstr(summary_line, "memfd jobs: ") != NULL, "destroy logs the summary (%s)", summary_line);
    tap_check(counted == 0 && log_capture_validation_messages() == 0, "no validation message, destroy included (%u, %u)", counted,
              log_capture_validation_messages());
    free(in);
    free(want);
    free(heap_out);
    return tap_done();
}
