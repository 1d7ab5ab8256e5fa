/* The planner: PyTorch 1.13's F.interpolate argument rules (torch/nn/functional.py, then the
 * C++ upsample checks), applied in PyTorch's order to a decoded job, giving the output shape and
 * what the kernel receives.  Messages say what PyTorch's say (pytorch-semantics.md §1, §11). */
#include "vkr_proto.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

static const char *const axis_letter[3][3] = {{"W", "", ""}, {"H", "W", ""}, {"D", "H", "W"}};

/* "[5, 6]"-style list of n int64 values. */
static void format_list(char *buf, size_t len, const int64_t *v, int n)
{
    size_t off = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < n && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%lld", i ? ", " : "", (long long)v[i]);
    if (off < len)
        snprintf(buf + off, len - off, "]");
}

/* Python's repr() of a float: the shortest %g form that reads back exactly, with ".0" when it
 * would look like an integer (so messages quote scales the way PyTorch's do). */
static void format_py_float(char *buf, size_t len, double v)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    if (isfinite(v) && !strpbrk(buf, ".en"))
        strncat(buf, ".0", len - strlen(buf) - 1);
}

static void format_scales(char *buf, size_t len, const double *v, int n)
{
    size_t off = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < n && off < len; i++) {
        char f[32];
        format_py_float(f, sizeof f, v[i]);
        off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? ", " : "", f);
    }
    if (off < len)
        snprintf(buf + off, len - off, "]");
}

/* "(H: 5, W: 6)" for the RuntimeError on sizes. */
static void format_extents(char *buf, size_t len, const int64_t *v, int dim)
{
    size_t off = (size_t)snprintf(buf, len, "(");
    for (int i = 0; i < dim && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%s: %lld", i ? ", " : "", axis_letter[dim - 1][i], (long long)v[i]);
    if (off < len)
        snprintf(buf + off, len - off, ")");
}

static bool mode_is_interpolating(int mode)
{
    return mode == VKR_MODE_LINEAR || mode == VKR_MODE_BILINEAR || mode == VKR_MODE_BICUBIC || mode == VKR_MODE_TRILINEAR;
}

/* The rank each linear-family mode needs, 0 for the others. */
static int linear_family_rank(int mode)
{
    switch (mode) {
    case VKR_MODE_LINEAR: return 3;
    case VKR_MODE_BILINEAR: return 4;
    case VKR_MODE_TRILINEAR: return 5;
    default: return 0;
    }
}

/* adaptive_avg_pool{1,2,3}d's checks, in its order and words (1-D runs as 2-D on an (N, C, 1, W)
 * view; the 3-D message really reads "{D, H,W}"): output sizes >= 0, then the input's non-batch
 * extents (2-D: the last two; 3-D: C and the spatial ones) non-zero. */
static int check_area(const vkr_interp_plan_t *plan, const vkr_tensor_desc_t *in, vkr_error_t *err)
{
    const int dim = plan->spatial_rank;
    const int64_t *o = plan->out_size;
    char a[160];
    if ((dim == 1 && o[0] < 0) || (dim == 2 && (o[0] < 0 || o[1] < 0)) || (dim == 3 && (o[0] < 0 || o[1] < 0 || o[2] < 0))) {
        if (dim == 1)
            snprintf(a, sizeof a, "{1, %lld}", (long long)o[0]);
        else if (dim == 2)
            snprintf(a, sizeof a, "{%lld, %lld}", (long long)o[0], (long long)o[1]);
        else
            snprintf(a, sizeof a, "{%lld, %lld,%lld}", (long long)o[0], (long long)o[1], (long long)o[2]);
        return vkr_proto_error_set(err, VKR_E_SIZE, "size", "adaptive_avg_pool2d: elements of output_size must be greater than or equal to 0 but received %s", a);
    }
    int64_t view[5];
    int rank = 0;
    view[rank++] = in->shape[0];
    view[rank++] = in->shape[1];
    if (dim == 1)
        view[rank++] = 1;
    for (int d = 0; d < dim; d++)
        view[rank++] = plan->in_size[d];
    for (int i = dim == 3 ? 1 : rank - 2; i < rank; i++)
        if (view[i] <= 0) {
            format_list(a, sizeof a, view, rank);
            return vkr_proto_error_set(err, VKR_E_SIZE, "input.shape",
                                       "adaptive_avg_pool%dd(): Expected input to have non-zero size for non-batch dimensions, but "
                                       "input has sizes %s with dimension %d being empty", dim == 3 ? 3 : 2, a, i);
        }
    return VKR_OK;
}

int vkr_plan_interpolate(const vkr_job_t *job, uint64_t max_tensor_bytes, vkr_interp_plan_t *plan, vkr_error_t *err)
{
    const vkr_interp_params_t *ip = &job->interp;
    const vkr_tensor_desc_t *in = &job->input;
    const int mode = ip->mode;
    const int rank = in->rank;
    const int dim = rank - 2;
    const char *mode_name = vkr_proto_mode_name(mode);
    char a[160], b[160];

    memset(plan, 0, sizeof *plan);
    if (!mode_name)
        return vkr_proto_error_set(err, VKR_E_NOT_IMPLEMENTED, "mode", "Input Error: unknown mode %d", mode);

    /* 1. align_corners */
    if (!mode_is_interpolating(mode) && ip->align_corners != VKR_OPT_UNSET)
        return vkr_proto_error_set(err, VKR_E_VALUE, "align_corners",
                                   "align_corners option can only be set with the interpolating modes: linear | bilinear | bicubic | trilinear");
    plan->align_corners = ip->align_corners == VKR_OPT_TRUE;

    /* 2. size and scale_factor: exactly one, of the right arity */
    int64_t spatial_in[VKR_MAX_RANK] = {0};
    for (int i = 0; i < dim; i++)
        spatial_in[i] = in->shape[2 + i];
    bool have_size = ip->n_size > 0, have_scale = ip->n_scale > 0;
    if (have_size && have_scale)
        return vkr_proto_error_set(err, VKR_E_VALUE, "size", "only one of size or scale_factor should be defined");
    if (!have_size && !have_scale)
        return vkr_proto_error_set(err, VKR_E_VALUE, "size", "either size or scale_factor should be defined");
    if (have_size && ip->n_size > 1 && ip->n_size != dim) {
        format_list(a, sizeof a, spatial_in, dim > 0 ? dim : 0);
        format_list(b, sizeof b, ip->size, ip->n_size);
        return vkr_proto_error_set(err, VKR_E_VALUE, "size",
                                   "Input and output must have the same number of spatial dimensions, but got input with spatial "
                                   "dimensions of %s and output size of %s. Please provide input tensor in (N, C, d1, d2, ...,dK) "
                                   "format and output size in (o1, o2, ...,oK) format.", a, b);
    }
    if (have_scale && ip->n_scale > 1 && ip->n_scale != dim) {
        format_list(a, sizeof a, spatial_in, dim > 0 ? dim : 0);
        format_scales(b, sizeof b, ip->scale_factor, ip->n_scale);
        return vkr_proto_error_set(err, VKR_E_VALUE, "scale_factor",
                                   "Input and scale_factor must have the same number of spatial dimensions, but got input with "
                                   "spatial dimensions of %s and scale_factor of shape %s. Please provide input tensor in (N, C, d1, "
                                   "d2, ...,dK) format and scale_factor in (s1, s2, ...,sK) format.", a, b);
    }

    /* 3. recompute_scale_factor */
    bool recompute = ip->recompute_scale_factor == VKR_OPT_TRUE;
    if (recompute && have_size)
        return vkr_proto_error_set(err, VKR_E_VALUE, "recompute_scale_factor", "recompute_scale_factor is not meaningful with an explicit size.");
    if (mode == VKR_MODE_AREA && have_scale)
        recompute = true;

    /* 4. antialias */
    if (ip->antialias && !((mode == VKR_MODE_BILINEAR || mode == VKR_MODE_BICUBIC) && rank == 4))
        return vkr_proto_error_set(err, VKR_E_VALUE, "antialias", "Anti-alias option is only supported for bilinear and bicubic modes");

    /* 5. dispatch on (rank, mode) */
    int need = linear_family_rank(mode);
    bool dispatched = (rank >= 3 && rank <= 5 && (mode == VKR_MODE_NEAREST || mode == VKR_MODE_NEAREST_EXACT || mode == VKR_MODE_AREA)) ||
                      (need && rank == need) || (mode == VKR_MODE_BICUBIC && rank == 4);
    if (!dispatched) {
        if (need && rank >= 3 && rank <= 5)
            return vkr_proto_error_set(err, VKR_E_NOT_IMPLEMENTED, "mode", "Got %dD input, but %s mode needs %dD input", rank, mode_name, need);
        return vkr_proto_error_set(err, VKR_E_NOT_IMPLEMENTED, "mode",
                                   "Input Error: Only 3D, 4D and 5D input Tensors supported (got %dD) for the modes: nearest | linear | "
                                   "bilinear | bicubic | trilinear | area | nearest-exact (got %s)", rank, mode_name);
    }

    /* 6. output size: given, or floor(double(n) * s) (both the recompute path and the C++ path) */
    plan->mode = mode;
    plan->antialias = ip->antialias;
    plan->spatial_rank = dim;
    plan->batch = in->shape[0];
    plan->channels = in->shape[1];
    for (int d = 0; d < dim; d++) {
        plan->in_size[d] = spatial_in[d];
        if (have_size) {
            plan->out_size[d] = ip->size[ip->n_size == 1 ? 0 : d];
            continue;
        }
        double s = ip->scale_factor[ip->n_scale == 1 ? 0 : d];
        double o = floor((double)spatial_in[d] * s);
        if (!(o > -9.2e18 && o < 9.2e18))
            {
            format_py_float(a, sizeof a, s);
            return vkr_proto_error_set(err, VKR_E_SIZE, "scale_factor", "scale_factor %s gives an output size that cannot be represented", a);
        }
        plan->out_size[d] = (int64_t)o;
        plan->has_scale[d] = !recompute;
        plan->scale[d] = recompute ? 0.0 : s;
    }

    /* 7. the kernels' checks: positive sizes, non-empty channels (area: adaptive pooling's own) */
    if (mode == VKR_MODE_AREA) {
        int rc = check_area(plan, in, err);
        if (rc)
            return rc;
    }
    bool sizes_ok = true;
    for (int d = 0; d < dim && mode != VKR_MODE_AREA; d++)
        if (plan->in_size[d] <= 0 || plan->out_size[d] <= 0)
            sizes_ok = false;
    if (!sizes_ok) {
        format_extents(a, sizeof a, plan->in_size, dim);
        format_extents(b, sizeof b, plan->out_size, dim);
        return vkr_proto_error_set(err, VKR_E_SIZE, "size", "Input and output sizes should be greater than 0, but got input %s%s output %s", a,
                                   dim == 1 ? " and" : "", b);
    }
    if (plan->channels == 0 && mode != VKR_MODE_AREA) {
        format_list(a, sizeof a, in->shape, rank);
        return vkr_proto_error_set(err, VKR_E_SIZE, "input.shape", "Non-empty %dD data tensor expected but got a tensor with sizes %s", rank, a);
    }

    /* 8. limits of this daemon */
    int64_t out_shape[VKR_MAX_RANK];
    vkr_plan_output_shape(plan, out_shape);
    for (int d = 0; d < dim; d++)
        if (plan->out_size[d] > VKR_MAX_DIM_EXTENT)
            return vkr_proto_error_set(err, VKR_E_TOO_LARGE, "size", "output extent %lld of spatial axis %d is over the limit of %lld",
                                       (long long)plan->out_size[d], d, (long long)VKR_MAX_DIM_EXTENT);
    if (!vkr_shape_elements(out_shape, (unsigned)rank, max_tensor_bytes / sizeof(float), &plan->out_elements)) {
        format_list(a, sizeof a, out_shape, rank);
        return vkr_proto_error_set(err, VKR_E_TOO_LARGE, "size", "output of shape %s is over the job limit of %llu bytes", a,
                                   (unsigned long long)max_tensor_bytes);
    }
    if (!vkr_shape_elements(in->shape, (unsigned)rank, max_tensor_bytes / sizeof(float), &plan->in_elements))
        return vkr_proto_error_set(err, VKR_E_TOO_LARGE, "input.shape", "input is over the job limit of %llu bytes",
                                   (unsigned long long)max_tensor_bytes);

    return VKR_OK;
}

void vkr_plan_output_shape(const vkr_interp_plan_t *plan, int64_t shape[VKR_MAX_RANK])
{
    memset(shape, 0, sizeof(int64_t) * VKR_MAX_RANK);
    shape[0] = plan->batch;
    shape[1] = plan->channels;
    for (int d = 0; d < plan->spatial_rank; d++)
        shape[2 + d] = plan->out_size[d];
}

/* ---------------------------------------------------------------- grid_sample, affine_grid */

/* torch's shape checks of grid_sampler (GridSamplerUtils.h), in its order and words. */
static int check_grid_sample(const vkr_tensor_desc_t *in, const vkr_tensor_desc_t *grid, int mode, vkr_error_t *err)
{
    char a[200], b[200];
    format_list(a, sizeof a, in->shape, in->rank);
    format_list(b, sizeof b, grid->shape, grid->rank);
    const int dim = in->rank - 2;
    if (in->shape[0] != grid->shape[0])
        return vkr_proto_error_set(err, VKR_E_SIZE, "grid.shape",
                                   "grid_sampler(): expected grid and input to have same batch size, but got input with sizes %s and grid with sizes %s", a, b);
    if (grid->shape[grid->rank - 1] != dim)
        return vkr_proto_error_set(err, VKR_E_SIZE, "grid.shape",
                                   "grid_sampler(): expected grid to have size %d in last dimension, but got grid with sizes %s", dim, b);
    for (int i = 2; i < in->rank; i++)
        if (in->shape[i] <= 0)
            return vkr_proto_error_set(err, VKR_E_SIZE, "input.shape",
                                       "grid_sampler(): expected input to have non-empty spatial dimensions, but input has sizes %s with dimension %d being empty", a, i);
    const int want = in->rank == 4 ? 4 : 5;
    if (in->rank != want || grid->rank != want)
        return vkr_proto_error_set(err, VKR_E_SIZE, "grid.shape",
                                   "grid_sampler(): expected %dD input and grid with same number of dimensions, but got input with sizes %s and grid with sizes %s",
                                   want, a, b);
    if (want == 5 && mode == VKR_GRID_BICUBIC)
        return vkr_proto_error_set(err, VKR_E_SIZE, "mode", "grid_sampler(): bicubic interpolation only supports 4D input");
    return VKR_OK;
}

/* F.affine_grid's checks (functional.py) and affine_grid_generator's (C++), in their order. */
static int check_affine_grid(const vkr_tensor_desc_t *theta, const int64_t *size, int n_size, bool align_corners, vkr_error_t *err)
{
    char s[200], t[200];
    format_list(s, sizeof s, size, n_size);
    format_list(t, sizeof t, theta->shape, theta->rank);
    if (n_size != 4 && n_size != 5)
        return vkr_proto_error_set(err, VKR_E_NOT_IMPLEMENTED, "size",
                                   "affine_grid only supports 4D and 5D sizes, for 2D and 3D affine transforms, respectively. Got size %s.", s);
    const int sp = n_size - 2;        /* spatial rank: theta is N x sp x (sp + 1) */
    if (theta->rank != 3 || theta->shape[1] != sp || theta->shape[2] != sp + 1)
        return vkr_proto_error_set(err, VKR_E_VALUE, "theta.shape", "Expected a batch of %dD affine matrices of shape Nx%dx%d for size %s. Got torch.Size(%s).",
                                   sp, sp, sp + 1, s, t);
    int64_t min_spatial = size[2], min_all = size[0];
    for (int i = 0; i < n_size; i++) {
        if (i >= 2 && size[i] < min_spatial)
            min_spatial = size[i];
        if (size[i] < min_all)
            min_all = size[i];
    }
    if (!(align_corners && min_spatial == 1) && min_all <= 0)
        return vkr_proto_error_set(err, VKR_E_VALUE, "size", "Expected non-zero, positive output size. Got %s", s);
    if (size[0] < 0) {                /* reachable only past the check above: torch's base grid */
        int64_t base[5] = {size[0]};
        for (int i = 0; i < sp; i++)
            base[1 + i] = size[2 + i];
        base[1 + sp] = sp + 1;
        format_list(t, sizeof t, base, sp + 2);
        return vkr_proto_error_set(err, VKR_E_SIZE, "size", "Trying to create tensor with negative dimension %lld: %s", (long long)size[0], t);
    }
    if (theta->shape[0] != size[0])
        return vkr_proto_error_set(err, VKR_E_SIZE, "theta.shape",
                                   "Expected size for first two dimensions of batch2 tensor to be: [%lld, %d] but got: [%lld, %d].",
                                   (long long)size[0], sp + 1, (long long)theta->shape[0], sp + 1);
    return VKR_OK;
}

static int plan_grid(const vkr_job_t *job, uint64_t max_tensor_bytes, vkr_plan_t *plan, vkr_error_t *err)
{
    const vkr_grid_params_t *gp = &job->grid;
    vkr_grid_plan_t *g = &plan->grid;
    const vkr_tensor_desc_t *in = &job->input;
    int rc;
    g->op = job->op;
    g->mode = gp->mode;
    g->padding_mode = gp->padding_mode;
    g->align_corners = gp->align_corners == VKR_OPT_TRUE;

    if (job->op == VKR_OP_GRID_SAMPLE) {
        if ((rc = check_grid_sample(in, &job->aux, gp->mode, err)))
            return rc;
        g->spatial_rank = in->rank - 2;
        for (int d = 0; d < g->spatial_rank; d++) {
            g->in_size[d] = in->shape[2 + d];
            g->out_size[d] = job->aux.shape[1 + d];
        }
    } else if (job->op == VKR_OP_AFFINE_GRID) {
        if ((rc = check_affine_grid(in, gp->size, gp->n_size, g->align_corners, err)))
            return rc;
        g->spatial_rank = gp->n_size - 2;
        for (int d = 0; d < g->spatial_rank; d++)
            g->out_size[d] = gp->size[2 + d];
    } else {
        char a[200];
        format_list(a, sizeof a, in->shape, in->rank);
        if (in->rank != 4 && in->rank != 5)
            return vkr_proto_error_set(err, VKR_E_NOT_IMPLEMENTED, "input.shape",
                                       "affine_sample takes a 4D (N, C, H, W) or 5D (N, C, D, H, W) input, got sizes %s", a);
        g->spatial_rank = in->rank - 2;
        if (gp->n_size != g->spatial_rank)
            return vkr_proto_error_set(err, VKR_E_VALUE, "size", "affine_sample: size must give the %d output spatial extents of a %dD input, got %u value(s)",
                                       g->spatial_rank, in->rank, gp->n_size);
        int64_t size[5] = {in->shape[0], in->shape[1]};
        for (int d = 0; d < g->spatial_rank; d++)
            size[2 + d] = gp->size[d];
        if ((rc = check_affine_grid(&job->aux, size, in->rank, g->align_corners, err)))
            return rc;
        for (int d = 0; d < g->spatial_rank; d++) {
            if (in->shape[2 + d] <= 0)
                return vkr_proto_error_set(err, VKR_E_SIZE, "input.shape",
                                           "grid_sampler(): expected input to have non-empty spatial dimensions, but input has sizes %s with dimension %d being empty",
                                           a, 2 + d);
            g->in_size[d] = in->shape[2 + d];
            g->out_size[d] = gp->size[d];
        }
        if (in->rank == 5 && gp->mode == VKR_GRID_BICUBIC)
            return vkr_proto_error_set(err, VKR_E_SIZE, "mode", "grid_sampler(): bicubic interpolation only supports 4D input");
    }

    const bool image = job->op != VKR_OP_AFFINE_GRID;
    g->batch = image ? in->shape[0] : gp->size[0];
    g->channels = image ? in->shape[1] : gp->size[1];
    int64_t *o = plan->out_shape;
    unsigned r = 0;
    o[r++] = g->batch;
    if (image)
        o[r++] = g->channels;
    for (int d = 0; d < g->spatial_rank; d++)
        o[r++] = g->out_size[d];
    if (!image)
        o[r++] = g->spatial_rank;
    plan->out_rank = r;
    for (int d = 0; d < g->spatial_rank; d++)
        if (g->out_size[d] > VKR_MAX_DIM_EXTENT)
            return vkr_proto_error_set(err, VKR_E_TOO_LARGE, "size", "output extent %lld is over the limit of %lld", (long long)g->out_size[d],
                                       (long long)VKR_MAX_DIM_EXTENT);
    if (!vkr_shape_elements(o, r, max_tensor_bytes / sizeof(float), &plan->out_elements)) {
        char a[200];
        format_list(a, sizeof a, o, (int)r);
        return vkr_proto_error_set(err, VKR_E_TOO_LARGE, "size", "output of shape %s is over the job limit of %llu bytes", a,
                                   (unsigned long long)max_tensor_bytes);
    }
    g->out_elements = plan->out_elements;
    int64_t plane = 1;
    for (int d = 0; d < g->spatial_rank && image; d++)
        plane *= g->in_size[d];
    if (plane > VKR_MAX_DIM_EXTENT)
        return vkr_proto_error_set(err, VKR_E_TOO_LARGE, "input.shape", "one input plane of %lld elements is over the limit of %lld",
                                   (long long)plane, (long long)VKR_MAX_DIM_EXTENT);
    (void)vkr_shape_elements(in->shape, in->rank, UINT64_MAX, &g->in_elements);
    if (job->n_tensors > 1)
        (void)vkr_shape_elements(job->aux.shape, job->aux.rank, UINT64_MAX, &g->aux_elements);
    return VKR_OK;
}

int vkr_plan_job(const vkr_job_t *job, uint64_t max_tensor_bytes, vkr_plan_t *plan, vkr_error_t *err)
{
    memset(plan, 0, sizeof *plan);
    plan->op = job->op;
    if (job->op != VKR_OP_INTERPOLATE)
        return plan_grid(job, max_tensor_bytes, plan, err);
    int rc = vkr_plan_interpolate(job, max_tensor_bytes, &plan->interp, err);
    if (rc)
        return rc;
    plan->out_rank = (unsigned)plan->interp.spatial_rank + 2;
    vkr_plan_output_shape(&plan->interp, plan->out_shape);
    plan->out_elements = plan->interp.out_elements;
    return VKR_OK;
}
