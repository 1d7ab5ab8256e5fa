/* vkr-bench-backend: times one job on a backend in-process (no socket), for tests/bench/bench.py.
 *
 *   vkr-bench-backend --backend cpu|vulkan [--iters N] [--warmup N] KEY=VALUE...
 *     op=interpolate|grid_sample  mode=NAME  shape=N,C,H,W[,..]  size=a[,b[,c]] | scale=s
 *     ac=0|1  aa=0|1  padding=zeros|border|reflection  grid=N,Ho,Wo[,..] (grid_sample; values in
 *     [-1.1, 1.1])
 *   --dump PREFIX  also write the input, the grid and the last output as raw float32 to
 *     PREFIX.in, PREFIX.aux and PREFIX.out (tests/bench/check_exact.py compares them with torch)
 *
 * Prints one JSON line: {"median_s": ..., "min_s": ..., "iters": N, "in_bytes": ..., "out_bytes": ...}.
 * Exit 1 if the job is refused (message on stderr), 2 on a usage error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"

static int parse_list(const char *s, int64_t *out, int max)
{
    int n = 0;
    char *end;
    while (*s && n < max) {
        out[n++] = strtoll(s, &end, 10);
        if (end == s)
            return -1;
        s = *end == ',' ? end + 1 : end;
    }
    return *s ? -1 : n;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double now_s(void) { return clock_s(CLOCK_MONOTONIC); }

static float *random_floats(uint64_t n, float lo, float hi, unsigned seed)
{
    float *p = malloc((n ? n : 1) * sizeof(float));
    uint64_t x = 0x9e3779b97f4a7c15ull ^ seed;
    for (uint64_t i = 0; p && i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        p[i] = lo + (hi - lo) * (float)(x >> 40) / (float)(1 << 24);
    }
    return p;
}

static int dump_floats(const char *prefix, const char *ext, const float *p, uint64_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s%s", prefix, ext);
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = n ? fwrite(p, sizeof(float), (size_t)n, f) : 0;
    return (fclose(f) != 0 || w != (size_t)n) ? -1 : 0;
}

int main(int argc, char **argv)
{
    const char *backend_name = "cpu", *dump = NULL;
    int iters = 10, warmup = 2;
    vkr_job_t job = {.op = VKR_OP_INTERPOLATE, .backend = VKR_BACKEND_CPU, .n_tensors = 1};
    job.input.dtype = job.aux.dtype = VKR_DTYPE_F32;
    job.input.layout = job.aux.layout = VKR_LAYOUT_CONTIGUOUS;
    job.interp.mode = VKR_MODE_BILINEAR;
    job.grid.mode = VKR_GRID_BILINEAR;
    job.grid.padding_mode = VKR_PADDING_ZEROS;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int64_t v[8];
        int n;
        if (!strcmp(a, "--backend") && i + 1 < argc)
            backend_name = argv[++i];
        else if (!strcmp(a, "--iters") && i + 1 < argc)
            iters = atoi(argv[++i]);
        else if (!strcmp(a, "--dump") && i + 1 < argc)
            dump = argv[++i];
        else if (!strcmp(a, "--warmup") && i + 1 < argc)
            warmup = atoi(argv[++i]);
        else if (!strncmp(a, "op=", 3)) {
            job.op = !strcmp(a + 3, "grid_sample") ? VKR_OP_GRID_SAMPLE : VKR_OP_INTERPOLATE;
            job.n_tensors = (uint16_t)vkr_op_tensors(job.op);
        } else if (!strncmp(a, "mode=", 5)) {
            job.interp.mode = (uint16_t)vkr_proto_mode_from_name(a + 5);
            job.grid.mode = (uint16_t)vkr_proto_grid_mode_from_name(a + 5);
        } else if (!strncmp(a, "padding=", 8))
            job.grid.padding_mode = (uint16_t)vkr_proto_padding_from_name(a + 8);
        else if (!strncmp(a, "shape=", 6) && (n = parse_list(a + 6, v, 8)) > 0) {
            job.input.rank = (uint8_t)n;
            memcpy(job.input.shape, v, sizeof(int64_t) * (size_t)n);
        } else if (!strncmp(a, "grid=", 5) && (n = parse_list(a + 5, v, 7)) > 0) {
            job.aux.rank = (uint8_t)(n + 1);
            memcpy(job.aux.shape, v, sizeof(int64_t) * (size_t)n);
            job.aux.shape[n] = n - 1;
        } else if (!strncmp(a, "size=", 5) && (n = parse_list(a + 5, v, 3)) > 0) {
            job.interp.n_size = (uint8_t)n;
            memcpy(job.interp.size, v, sizeof(int64_t) * (size_t)n);
        } else if (!strncmp(a, "scale=", 6)) {
            job.interp.n_scale = 1;
            job.interp.scale_factor[0] = atof(a + 6);
        } else if (!strncmp(a, "ac=", 3)) {
            job.interp.align_corners = job.grid.align_corners = atoi(a + 3) ? VKR_OPT_TRUE : VKR_OPT_FALSE;
        } else if (!strncmp(a, "aa=", 3))
            job.interp.antialias = (uint8_t)atoi(a + 3);
        else {
            fprintf(stderr, "vkr-bench-backend: bad argument '%s' (see the comment at the top of bench_backend.c)\n", a);
            return 2;
        }
    }
    if (job.interp.mode != VKR_MODE_LINEAR && job.interp.mode != VKR_MODE_BILINEAR && job.interp.mode != VKR_MODE_TRILINEAR &&
        job.interp.mode != VKR_MODE_BICUBIC)
        job.interp.align_corners = VKR_OPT_UNSET;

    vkr_plan_t plan;
    vkr_error_t err;
    if (vkr_plan_job(&job, UINT64_MAX / 4, &plan, &err)) {
        fprintf(stderr, "vkr-bench-backend: job refused: %s: %s\n", err.field, err.message);
        return 1;
    }
    vkr_backend_s *b = NULL;
    int rc;
    if (!strcmp(backend_name, "vulkan")) {
#ifdef VKR_HAVE_VULKAN
        vkr_vulkan_options_t opts = {.device_index = -1};
        rc = vkr__backend_vulkan_create(&opts, &b, &err);
#else
        rc = vkr_proto_error_set(&err, VKR_E_BACKEND_UNAVAILABLE, "backend", "built without Vulkan");
#endif
    } else
        rc = vkr__backend_cpu_create(&b, &err);
    if (rc) {
        fprintf(stderr, "vkr-bench-backend: %s backend: %s\n", backend_name, err.message);
        return 1;
    }
    uint64_t in_n, aux_n = 0;
    vkr_shape_elements(job.input.shape, job.input.rank, UINT64_MAX, &in_n);
    if (job.n_tensors > 1)
        vkr_shape_elements(job.aux.shape, job.aux.rank, UINT64_MAX, &aux_n);
    float *in = random_floats(in_n, -1.0f, 1.0f, 1), *aux = random_floats(aux_n, -1.1f, 1.1f, 2);
    float *out = malloc((plan.out_elements ? plan.out_elements : 1) * sizeof(float));
    double *t = calloc((size_t)(iters > 0 ? iters : 1), sizeof(double));
    double *ct = calloc((size_t)(iters > 0 ? iters : 1), sizeof(double));
    if (!in || !aux || !out || !t || !ct) {
        fprintf(stderr, "vkr-bench-backend: out of memory\n");
        return 1;
    }
    for (int k = -warmup; k < iters; k++) {
        double t0 = now_s(), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
        rc = job.op == VKR_OP_INTERPOLATE ? b->interpolate(b, &plan.interp, in, out, NULL, &err)
             : b->grid ? b->grid(b, &plan.grid, in, aux, out, NULL, &err)
                       : vkr_proto_error_set(&err, VKR_E_UNSUPPORTED, "backend", "no grid support");
        if (rc) {
            fprintf(stderr, "vkr-bench-backend: %s: %s\n", err.field, err.message);
            return 1;
        }
        if (k >= 0) {
            t[k] = now_s() - t0;
            ct[k] = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
        }
    }
    if (dump && (dump_floats(dump, ".in", in, in_n) || dump_floats(dump, ".aux", aux, aux_n) ||
                 dump_floats(dump, ".out", out, plan.out_elements))) {
        fprintf(stderr, "vkr-bench-backend: cannot write %s.*\n", dump);
        return 1;
    }
    qsort(t, (size_t)iters, sizeof(double), cmp_double);
    qsort(ct, (size_t)iters, sizeof(double), cmp_double);
    /* cpu_median_s: CPU time of the whole process (all threads) per run; with OMP_NUM_THREADS=1 it
     * is the run's own work, unaffected by other load on the machine */
    printf("{\"median_s\": %.9f, \"min_s\": %.9f, \"cpu_median_s\": %.9f, \"iters\": %d, \"in_bytes\": %llu, \"out_bytes\": %llu}\n",
           t[iters / 2], t[0], ct[iters / 2], iters,
           (unsigned long long)((in_n + aux_n) * sizeof(float)), (unsigned long long)(plan.out_elements * sizeof(float)));
    b->destroy(b);
    free(in);
    free(aux);
    free(out);
    free(t);
    free(ct);
    return 0;
}
