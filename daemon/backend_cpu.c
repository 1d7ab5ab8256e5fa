/* The CPU backend: interpolate on the host, bit-exact with PyTorch 1.13's portable kernels.  It
 * computes no coordinate of its own: nearest indices come from the kernel spec's index rules and
 * the linear family from the spec's per-axis tables (shaders/spec/), combined with spec_lerp in
 * PyTorch's separable order (W innermost, then H, then D). */
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "spec/axis_tables.h"
#include "spec/interp_rules.h"

typedef struct {
    vkr_backend_s base;
} cpu_backend_t;

/* Per-axis tables of one job, padded to three axes (D, H, W); unused outer axes have extent 1. */
typedef struct {
    int64_t in[3], out[3];
    int32_t *idx[3];              /* nearest */
    vkr_linear_taps_t taps[3];    /* linear family */
    void *block;
} axis_tables_t;

static void tables_free(axis_tables_t *t) { free(t->block); }

/* Build the tables of plan's axes; pad with identity axes in front.  Returns VKR_OK or NOMEM. */
static int tables_build(const vkr_interp_plan_t *plan, bool linear, axis_tables_t *t, vkr_error_t *err)
{
    memset(t, 0, sizeof *t);
    int pad = 3 - plan->spatial_rank;
    size_t total = 0;
    for (int a = 0; a < 3; a++) {
        t->in[a] = a < pad ? 1 : plan->in_size[a - pad];
        t->out[a] = a < pad ? 1 : plan->out_size[a - pad];
        total += (size_t)t->out[a] * (linear ? 4 : 1);
    }
    t->block = malloc(total * sizeof(int32_t));
    if (!t->block)
        return vkr_proto_error_set(err, VKR_E_NOMEM, "backend", "cpu: out of memory for %zu table entries", total);
    int32_t *p = t->block;
    for (int a = 0; a < 3; a++) {
        int64_t o = t->out[a];
        int d = a - pad;
        if (!linear) {
            t->idx[a] = p;
            p += o;
            if (d < 0)
                t->idx[a][0] = 0;
            else
                vkr_spec_nearest_indices(t->in[a], o, plan->mode == VKR_MODE_NEAREST_EXACT, plan->has_scale[d], plan->scale[d], t->idx[a]);
            continue;
        }
        t->taps[a].i0 = p;
        t->taps[a].i1 = p + o;
        t->taps[a].l0 = (float *)(p + 2 * o);
        t->taps[a].l1 = (float *)(p + 3 * o);
        p += 4 * o;
        if (d >= 0)
            vkr_spec_linear_taps(t->in[a], o, plan->align_corners, plan->has_scale[d], plan->scale[d], t->taps[a]);
    }
    return VKR_OK;
}

static void run_nearest(const axis_tables_t *t, int64_t planes, const float *in, float *out)
{
    const int64_t in_plane = t->in[0] * t->in[1] * t->in[2];
    for (int64_t p = 0; p < planes; p++) {
        const float *src = in + p * in_plane;
        for (int64_t od = 0; od < t->out[0]; od++) {
            const float *sd = src + (int64_t)t->idx[0][od] * t->in[1] * t->in[2];
            for (int64_t oh = 0; oh < t->out[1]; oh++) {
                const float *row = sd + (int64_t)t->idx[1][oh] * t->in[2];
                const int32_t *iw = t->idx[2];
                for (int64_t ow = 0; ow < t->out[2]; ow++)
                    *out++ = row[iw[ow]];
            }
        }
    }
}

/* W step of the separable recursion for one input row. */
static inline float lerp_w(const float *row, const vkr_linear_taps_t *w, int64_t ow)
{
    return spec_lerp(row[w->i0[ow]], row[w->i1[ow]], w->l0[ow], w->l1[ow]);
}

/* H step over one (D-slice) plane: lerp_h(lerp_w(row h0), lerp_w(row h1)). */
static inline float lerp_hw(const float *slice, int64_t in_w, const vkr_linear_taps_t *h, const vkr_linear_taps_t *w,
                            int64_t oh, int64_t ow)
{
    float t0 = lerp_w(slice + h->i0[oh] * in_w, w, ow);
    float t1 = lerp_w(slice + h->i1[oh] * in_w, w, ow);
    return spec_lerp(t0, t1, h->l0[oh], h->l1[oh]);
}

static void run_linear(const axis_tables_t *t, int spatial_rank, int64_t planes, const float *in, float *out)
{
    const int64_t in_w = t->in[2], in_hw = t->in[1] * t->in[2], in_plane = t->in[0] * in_hw;
    const vkr_linear_taps_t *d = &t->taps[0], *h = &t->taps[1], *w = &t->taps[2];
    for (int64_t p = 0; p < planes; p++) {
        const float *src = in + p * in_plane;
        for (int64_t od = 0; od < t->out[0]; od++) {
            for (int64_t oh = 0; oh < t->out[1]; oh++) {
                for (int64_t ow = 0; ow < t->out[2]; ow++) {
                    float v;
                    if (spatial_rank == 1)
                        v = lerp_w(src, w, ow);
                    else if (spatial_rank == 2)
                        v = lerp_hw(src, in_w, h, w, oh, ow);
                    else
                        v = spec_lerp(lerp_hw(src + d->i0[od] * in_hw, in_w, h, w, oh, ow),
                                      lerp_hw(src + d->i1[od] * in_hw, in_w, h, w, oh, ow), d->l0[od], d->l1[od]);
                    *out++ = v;
                }
            }
        }
    }
}

static int cpu_interpolate(vkr_backend_s *self, const vkr_interp_plan_t *plan, const float *in, float *out, vkr_error_t *err)
{
    (void)self;
    bool linear;
    switch (plan->mode) {
    case VKR_MODE_NEAREST:
    case VKR_MODE_NEAREST_EXACT: linear = false; break;
    case VKR_MODE_LINEAR:
    case VKR_MODE_BILINEAR:
    case VKR_MODE_TRILINEAR: linear = true; break;
    default:
        return vkr_proto_error_set(err, VKR_E_UNSUPPORTED, "mode", "cpu backend: mode '%s' is not implemented",
                                   vkr_proto_mode_name(plan->mode) ? vkr_proto_mode_name(plan->mode) : "?");
    }
    if (plan->out_elements == 0)
        return VKR_OK;
    axis_tables_t t;
    int rc = tables_build(plan, linear, &t, err);
    if (rc)
        return rc;
    int64_t planes = plan->batch * plan->channels;
    if (linear)
        run_linear(&t, plan->spatial_rank, planes, in, out);
    else
        run_nearest(&t, planes, in, out);
    tables_free(&t);
    return VKR_OK;
}

static unsigned cpu_validation_messages(vkr_backend_s *self)
{
    (void)self;
    return 0;
}

static void cpu_destroy(vkr_backend_s *self) { free(self); }

int vkr__backend_cpu_create(vkr_backend_s **out, vkr_error_t *err)
{
    cpu_backend_t *b = calloc(1, sizeof *b);
    if (!b)
        return vkr_proto_error_set(err, VKR_E_NOMEM, "backend", "cpu: out of memory");
    b->base.name = "cpu";
    strcpy(b->base.device_name, "cpu");
    b->base.interpolate = cpu_interpolate;
    b->base.validation_messages = cpu_validation_messages;
    b->base.destroy = cpu_destroy;
    *out = &b->base;
    return VKR_OK;
}
