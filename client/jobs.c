/* libvkresample: jobs.  Turns each op's arguments into a SUBMIT (the caller's values checked
 * against what the wire can carry), plans it with the daemon's own planner to know the output it
 * must get back, picks each tensor's transport (inline bytes, the caller's memfd, a memfd copy,
 * an output memfd), and accepts or rejects the RESULT: shape, size and storage must be exactly
 * what the job asked for.  The blocking calls are submit + wait. */
#include "client_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- arguments */

/* Check a caller's tensor (name: "input", "grid", "theta") and describe it in *desc (inline
 * storage, data view set).  Returns VKR_OK or VKR_E_INVALID_ARG / VKR_E_TOO_LARGE with
 * last_error naming the field. */
static int describe_tensor(vkr_client_t *c, const char *name, const vkr_tensor_t *t, vkr_tensor_desc_t *desc)
{
    uint64_t elements;
    int i;

    if (t->rank < 1 || t->rank > VKR_TENSOR_MAX_RANK)
        return vkr__client_error(c, VKR_E_INVALID_ARG, "%s.rank: %d is outside 1..%d", name, t->rank, VKR_TENSOR_MAX_RANK);
    for (i = 0; i < t->rank; i++) {
        if (t->shape[i] < 0)
            return vkr__client_error(c, VKR_E_INVALID_ARG, "%s.shape[%d]: %" PRId64 " is negative", name, i, t->shape[i]);
    }
    if (!vkr_shape_elements(t->shape, (unsigned)t->rank, UINT64_MAX / sizeof(float), &elements)
        || elements > (uint64_t)SIZE_MAX / sizeof(float))
        return vkr__client_error(c, VKR_E_TOO_LARGE, "%s.shape: the element count overflows", name);
    if (elements > 0 && t->data == NULL)
        return vkr__client_error(c, VKR_E_INVALID_ARG, "%s.data: NULL for %" PRIu64 " elements", name, elements);
    memset(desc, 0, sizeof *desc);
    desc->dtype = VKR_DTYPE_F32;
    desc->layout = VKR_LAYOUT_CONTIGUOUS;
    desc->rank = (uint8_t)t->rank;
    desc->storage = VKR_STORAGE_INLINE;
    for (i = 0; i < t->rank; i++)
        desc->shape[i] = t->shape[i];
    desc->data_bytes = elements * sizeof(float);
    desc->data = t->data;
    return VKR_OK;
}

/* An enum or count that must fit its wire field.  Returns VKR_OK or VKR_E_INVALID_ARG. */
static int check_range(vkr_client_t *c, const char *field, long value, long lo, long hi)
{
    if (value < lo || value > hi)
        return vkr__client_error(c, VKR_E_INVALID_ARG, "%s: %ld is outside %ld..%ld", field, value, lo, hi);
    return VKR_OK;
}

/* Fill job from F.interpolate's arguments.  Returns VKR_OK or VKR_E_INVALID_ARG /
 * VKR_E_TOO_LARGE with last_error naming the field. */
static int build_interpolate(vkr_client_t *c, const vkr_interpolate_args_t *args, const vkr_tensor_t *in, vkr_job_t *job)
{
    int i, rc;

    memset(job, 0, sizeof *job);
    if ((rc = describe_tensor(c, "input", in, &job->input)) != VKR_OK
        || (rc = check_range(c, "n_size", args->n_size, 0, VKR_INTERP_MAX_SPATIAL)) != VKR_OK
        || (rc = check_range(c, "n_scale", args->n_scale, 0, VKR_INTERP_MAX_SPATIAL)) != VKR_OK
        || (rc = check_range(c, "mode", (long)args->mode, 0, UINT16_MAX)) != VKR_OK
        || (rc = check_range(c, "align_corners", (long)args->align_corners, 0, UINT8_MAX)) != VKR_OK
        || (rc = check_range(c, "recompute_scale_factor", (long)args->recompute_scale_factor, 0, UINT8_MAX)) != VKR_OK
        || (rc = check_range(c, "antialias", args->antialias, 0, UINT8_MAX)) != VKR_OK
        || (rc = check_range(c, "backend", (long)args->backend, 0, UINT16_MAX)) != VKR_OK)
        return rc;
    job->op = VKR_OP_INTERPOLATE;
    job->backend = (uint16_t)args->backend;
    job->n_tensors = 1;
    job->interp.mode = (uint16_t)args->mode;
    job->interp.align_corners = (uint8_t)args->align_corners;
    job->interp.recompute_scale_factor = (uint8_t)args->recompute_scale_factor;
    job->interp.antialias = (uint8_t)args->antialias;
    job->interp.n_size = (uint8_t)args->n_size;
    job->interp.n_scale = (uint8_t)args->n_scale;
    for (i = 0; i < args->n_size; i++)
        job->interp.size[i] = args->size[i];
    for (i = 0; i < args->n_scale; i++)
        job->interp.scale_factor[i] = args->scale_factor[i];
    return VKR_OK;
}

/* The grid ops' common arguments: mode and padding (0 means PyTorch's default, bilinear and
 * zeros; affine_grid sends 0 for both), align_corners, backend, and the size list. */
static int build_grid_common(vkr_client_t *c, int op, int mode, int padding, int align_corners, int backend, int n_size,
                             const int64_t *size, int max_size, vkr_job_t *job)
{
    int i, rc;

    if ((rc = check_range(c, "mode", mode, 0, UINT16_MAX)) != VKR_OK
        || (rc = check_range(c, "padding_mode", padding, 0, UINT16_MAX)) != VKR_OK
        || (rc = check_range(c, "align_corners", align_corners, 0, UINT8_MAX)) != VKR_OK
        || (rc = check_range(c, "backend", backend, 0, UINT16_MAX)) != VKR_OK
        || (rc = check_range(c, "n_size", n_size, 0, max_size)) != VKR_OK)
        return rc;
    job->op = (uint16_t)op;
    job->backend = (uint16_t)backend;
    job->n_tensors = (uint16_t)vkr_op_tensors(op);
    if (op != VKR_OP_AFFINE_GRID) {
        job->grid.mode = (uint16_t)(mode != 0 ? mode : VKR_GRID_BILINEAR);
        job->grid.padding_mode = (uint16_t)(padding != 0 ? padding : VKR_PADDING_ZEROS);
    }
    job->grid.align_corners = (uint8_t)align_corners;
    job->grid.n_size = (uint8_t)n_size;
    for (i = 0; i < n_size; i++)
        job->grid.size[i] = size[i];
    return VKR_OK;
}

/* ---------------------------------------------------------------- submitting */

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Whether a tensor of bytes goes in a memfd under this transport. */
static bool use_memfd(vkr_transport_t transport, uint64_t bytes)
{
    return transport == VKR_TRANSPORT_MEMFD || (transport == VKR_TRANSPORT_AUTO && bytes >= VKR_MEMFD_THRESHOLD_BYTES);
}

/* Plan job locally (the output the daemon must return), choose each tensor's transport, and send
 * it.  tensors[k] are the caller's tensors behind job's descriptors.  On VKR_OK *out is the
 * request (its outcome, a connection failure included, comes from vkr_wait). */
static int submit_job(vkr_client_t *c, vkr_job_t *job, const vkr_tensor_t *const tensors[VKR_MAX_TENSORS],
                      const vkr_job_options_t *opts, vkr_request_t **out)
{
    static const char *const names[VKR_MAX_TENSORS] = {"input", "aux"};
    vkr_tensor_desc_t *descs[VKR_MAX_TENSORS] = {&job->input, &job->aux};
    uint8_t fixed[VKR_SUBMIT_MAX_FIXED_BYTES];
    struct iovec parts[VKR__SEND_MAX_PARTS];
    int fds[VKR_MAX_FDS_PER_FRAME], temp_fds[VKR_MAX_TENSORS];
    vkr_transport_t transport = opts != NULL ? opts->transport : VKR_TRANSPORT_AUTO;
    vkr_request_t *req = NULL;
    vkr_plan_t plan;
    size_t fixed_len;
    unsigned k, n_parts, n_fds = 0, n_temp = 0;
    int rc;

    if ((rc = check_range(c, "opts.transport", (long)transport, VKR_TRANSPORT_AUTO, VKR_TRANSPORT_MEMFD)) != VKR_OK)
        return rc;
    req = vkr__request_new(c, VKR__REQ_JOB, VKR_MSG_RESULT);
    if (req == NULL)
        return VKR_E_NOMEM;

    /* The output the daemon must return: the same planner, run here.  When it refuses the job
     * by PyTorch's rules the daemon refuses it too (with the message the user sees). */
    req->plan_ok = vkr_plan_job(job, UINT64_MAX, &plan, &req->plan_err) == VKR_OK;
    if (req->plan_ok) {
        if (plan.out_elements > (UINT64_MAX - VKR_RESULT_FIXED_BYTES) / sizeof(float)
            || plan.out_elements > (uint64_t)SIZE_MAX / sizeof(float)) {
            rc = vkr__client_error(c, VKR_E_TOO_LARGE, "size: the output element count %" PRIu64 " overflows", plan.out_elements);
            goto fail;
        }
        req->out_rank = plan.out_rank;
        memcpy(req->out_shape, plan.out_shape, sizeof req->out_shape);
        req->out_bytes = plan.out_elements * sizeof(float);
    }

    for (k = 0; k < job->n_tensors && k < VKR_MAX_TENSORS; k++) {
        const vkr_tensor_t *t = tensors[k];
        vkr_tensor_desc_t *d = descs[k];

        if (t->storage != NULL) {
            /* the caller's memfd tensor: send the memfd, not the bytes */
            const uint8_t *base = t->storage->map, *p = (const uint8_t *)t->data;

            if (d->data_bytes > 0 && (base == NULL || p < base || (size_t)(p - base) > t->storage->map_bytes
                                      || t->storage->map_bytes - (size_t)(p - base) < d->data_bytes || (size_t)(p - base) % 4 != 0)) {
                rc = vkr__client_error(c, VKR_E_INVALID_ARG, "%s.data: not 4-byte aligned within its memfd mapping", names[k]);
                goto fail;
            }
            d->storage = VKR_STORAGE_MEMFD;
            d->fd_index = (uint16_t)n_fds;
            d->data_offset = d->data_bytes > 0 ? (uint64_t)(p - base) : 0;
            fds[n_fds++] = t->storage->fd;
        } else if (use_memfd(transport, d->data_bytes)) {
            int fd = vkr__memfd_copy(t->data, d->data_bytes);

            if (fd < 0) {
                rc = vkr__client_error(c, VKR_E_NOMEM, "%s: cannot copy %" PRIu64 " bytes into a memfd: %s", names[k], d->data_bytes,
                                       strerror(errno));
                goto fail;
            }
            temp_fds[n_temp++] = fd;
            d->storage = VKR_STORAGE_MEMFD;
            d->fd_index = (uint16_t)n_fds;
            d->data_offset = 0;
            fds[n_fds++] = fd;
        }
    }
    if (req->plan_ok && use_memfd(transport, req->out_bytes)) {
        rc = vkr__storage_create(req->out_bytes, &req->out_storage);
        if (rc != VKR_OK) {
            rc = vkr__client_error(c, VKR_E_NOMEM, "output: cannot create a memfd of %" PRIu64 " bytes", req->out_bytes);
            goto fail;
        }
        job->result_storage = VKR_RESULT_INTO_FD;
        fds[n_fds++] = req->out_storage->fd;
    }
    req->result_storage = job->result_storage;

    (void)vkr_submit_encode_fixed(job, fixed, &fixed_len);
    parts[0].iov_base = fixed;
    parts[0].iov_len = fixed_len;
    n_parts = 1;
    for (k = 0; k < job->n_tensors && k < VKR_MAX_TENSORS; k++) {
        if (descs[k]->storage != VKR_STORAGE_INLINE)
            continue;
        parts[n_parts].iov_base = (void *)(uintptr_t)descs[k]->data;
        parts[n_parts].iov_len = (size_t)descs[k]->data_bytes;
        n_parts++;
    }
    if (opts != NULL && opts->timeout_ms > 0) {
        req->timeout_ms = opts->timeout_ms;
        req->deadline_ns = now_ns() + (uint64_t)opts->timeout_ms * 1000000u;
    }
    /* a failure here completes req (with the daemon's error if it answered first) */
    (void)vkr__send_request(c, req, VKR_MSG_SUBMIT, parts, n_parts, fds, n_fds);
    for (k = 0; k < n_temp; k++)
        close(temp_fds[k]);
    *out = req;
    return VKR_OK;

fail:
    for (k = 0; k < n_temp; k++)
        close(temp_fds[k]);
    vkr__request_discard(req);
    return rc;
}

/* The checks every job entry point starts with.  Returns VKR_OK, or the code to return. */
static int begin_submit(vkr_client_t *c, const void *args, const vkr_tensor_t *t0, const vkr_tensor_t *t1, const char *t1_name,
                        vkr_request_t **req)
{
    if (req != NULL)
        *req = NULL;
    if (c == NULL)
        return VKR_E_INVALID_ARG;
    if (args == NULL || t0 == NULL || t1 == NULL || req == NULL)
        return vkr__client_error(c, VKR_E_INVALID_ARG, "%s: NULL",
                                 args == NULL ? "args" : t0 == NULL ? "input" : t1 == NULL ? t1_name : "req");
    return vkr__client_usable(c);
}

VKR_EXPORT int vkr_submit_interpolate(vkr_client_t *c, const vkr_interpolate_args_t *args, const vkr_tensor_t *input,
                                      const vkr_job_options_t *opts, vkr_request_t **req)
{
    const vkr_tensor_t *tensors[VKR_MAX_TENSORS] = {input, NULL};
    vkr_job_t job;
    int rc;

    rc = begin_submit(c, args, input, input, "input", req);
    if (rc == VKR_OK)
        rc = build_interpolate(c, args, input, &job);
    if (rc == VKR_OK)
        rc = submit_job(c, &job, tensors, opts, req);
    return rc;
}

VKR_EXPORT int vkr_submit_grid_sample(vkr_client_t *c, const vkr_grid_sample_args_t *args, const vkr_tensor_t *input,
                                      const vkr_tensor_t *grid, const vkr_job_options_t *opts, vkr_request_t **req)
{
    const vkr_tensor_t *tensors[VKR_MAX_TENSORS] = {input, grid};
    vkr_job_t job;
    int rc;

    memset(&job, 0, sizeof job);
    rc = begin_submit(c, args, input, grid, "grid", req);
    if (rc == VKR_OK)
        rc = describe_tensor(c, "input", input, &job.input);
    if (rc == VKR_OK)
        rc = describe_tensor(c, "grid", grid, &job.aux);
    if (rc == VKR_OK)
        rc = build_grid_common(c, VKR_OP_GRID_SAMPLE, (int)args->mode, (int)args->padding_mode, (int)args->align_corners,
                               (int)args->backend, 0, NULL, 0, &job);
    if (rc == VKR_OK)
        rc = submit_job(c, &job, tensors, opts, req);
    return rc;
}

VKR_EXPORT int vkr_submit_affine_grid(vkr_client_t *c, const vkr_affine_grid_args_t *args, const vkr_tensor_t *theta,
                                      const vkr_job_options_t *opts, vkr_request_t **req)
{
    const vkr_tensor_t *tensors[VKR_MAX_TENSORS] = {theta, NULL};
    vkr_job_t job;
    int rc;

    memset(&job, 0, sizeof job);
    rc = begin_submit(c, args, theta, theta, "theta", req);
    if (rc == VKR_OK)
        rc = describe_tensor(c, "theta", theta, &job.input);
    if (rc == VKR_OK)
        rc = build_grid_common(c, VKR_OP_AFFINE_GRID, 0, 0, (int)args->align_corners, (int)args->backend, args->n_size, args->size,
                               VKR_AFFINE_GRID_MAX_SIZE, &job);
    if (rc == VKR_OK)
        rc = submit_job(c, &job, tensors, opts, req);
    return rc;
}

VKR_EXPORT int vkr_submit_affine_sample(vkr_client_t *c, const vkr_affine_sample_args_t *args, const vkr_tensor_t *input,
                                        const vkr_tensor_t *theta, const vkr_job_options_t *opts, vkr_request_t **req)
{
    const vkr_tensor_t *tensors[VKR_MAX_TENSORS] = {input, theta};
    vkr_job_t job;
    int rc;

    memset(&job, 0, sizeof job);
    rc = begin_submit(c, args, input, theta, "theta", req);
    if (rc == VKR_OK)
        rc = describe_tensor(c, "input", input, &job.input);
    if (rc == VKR_OK)
        rc = describe_tensor(c, "theta", theta, &job.aux);
    if (rc == VKR_OK)
        rc = build_grid_common(c, VKR_OP_AFFINE_SAMPLE, (int)args->mode, (int)args->padding_mode, (int)args->align_corners,
                               (int)args->backend, args->n_size, args->size, VKR_INTERP_MAX_SPATIAL, &job);
    if (rc == VKR_OK)
        rc = submit_job(c, &job, tensors, opts, req);
    return rc;
}

/* ---------------------------------------------------------------- blocking calls */


VKR_EXPORT int vkr_interpolate(vkr_client_t *c, const vkr_interpolate_args_t *args, const vkr_tensor_t *input, vkr_tensor_t *output)
{
    vkr_request_t *req = NULL;
    int rc;

    if (output != NULL)
        memset(output, 0, sizeof *output);
    if (c != NULL && output == NULL)
        return vkr__client_error(c, VKR_E_INVALID_ARG, "output: NULL");
    rc = vkr_submit_interpolate(c, args, input, NULL, &req);
    return rc == VKR_OK ? vkr_wait(c, req, output) : rc;
}

VKR_EXPORT int vkr_grid_sample(vkr_client_t *c, const vkr_grid_sample_args_t *args, const vkr_tensor_t *input, const vkr_tensor_t *grid,
                               vkr_tensor_t *output)
{
    vkr_request_t *req = NULL;
    int rc;

    if (output != NULL)
        memset(output, 0, sizeof *output);
    if (c != NULL && output == NULL)
        return vkr__client_error(c, VKR_E_INVALID_ARG, "output: NULL");
    rc = vkr_submit_grid_sample(c, args, input, grid, NULL, &req);
    return rc == VKR_OK ? vkr_wait(c, req, output) : rc;
}

VKR_EXPORT int vkr_affine_grid(vkr_client_t *c, const vkr_affine_grid_args_t *args, const vkr_tensor_t *theta, vkr_tensor_t *output)
{
    vkr_request_t *req = NULL;
    int rc;

    if (output != NULL)
        memset(output, 0, sizeof *output);
    if (c != NULL && output == NULL)
        return vkr__client_error(c, VKR_E_INVALID_ARG, "output: NULL");
    rc = vkr_submit_affine_grid(c, args, theta, NULL, &req);
    return rc == VKR_OK ? vkr_wait(c, req, output) : rc;
}

VKR_EXPORT int vkr_affine_sample(vkr_client_t *c, const vkr_affine_sample_args_t *args, const vkr_tensor_t *input,
                                 const vkr_tensor_t *theta, vkr_tensor_t *output)
{
    vkr_request_t *req = NULL;
    int rc;

    if (output != NULL)
        memset(output, 0, sizeof *output);
    if (c != NULL && output == NULL)
        return vkr__client_error(c, VKR_E_INVALID_ARG, "output: NULL");
    rc = vkr_submit_affine_sample(c, args, input, theta, NULL, &req);
    return rc == VKR_OK ? vkr_wait(c, req, output) : rc;
}

/* ---------------------------------------------------------------- results */

int vkr__job_complete(vkr_request_t *req, uint8_t *body, uint64_t body_len, int *fds, unsigned n_fds)
{
    /* this library asks for the output inline or in its own memfd, never in the daemon's */
    static const uint8_t want_storage[] = {[VKR_RESULT_INLINE] = VKR_STORAGE_INLINE, [VKR_RESULT_INTO_FD] = VKR_STORAGE_OUTPUT_FD};
    vkr_client_t *c = req->client;
    char detail[VKR_CLIENT_ERROR_MAX];
    vkr_error_t perr;
    vkr_result_t res;
    float *data;
    unsigned i;
    int rc;

    memset(&res, 0, sizeof res);
    memset(&perr, 0, sizeof perr);
    if (vkr_result_decode(body, body_len, n_fds, &res, &perr) != VKR_OK) {
        vkr__format_error(detail, sizeof detail, &perr);
        rc = vkr__client_error(c, VKR_E_SERVER, "malformed RESULT from the daemon: %s", detail);
        goto out;
    }
    if (!req->plan_ok) {
        vkr__format_error(detail, sizeof detail, &req->plan_err);
        rc = vkr__client_error(c, VKR_E_SERVER, "the daemon returned a result for a job that PyTorch refuses (%s)", detail);
        goto out;
    }
    if (res.output.rank != req->out_rank || res.output.data_bytes != req->out_bytes || res.output.dtype != VKR_DTYPE_F32
        || res.output.layout != VKR_LAYOUT_CONTIGUOUS) {
        rc = vkr__client_error(c, VKR_E_SERVER, "the daemon's result (rank %u, %" PRIu64 " bytes) does not match the expected output "
                               "(rank %u, %" PRIu64 " bytes)", (unsigned)res.output.rank, res.output.data_bytes, req->out_rank,
                               req->out_bytes);
        goto out;
    }
    for (i = 0; i < req->out_rank; i++) {
        if (res.output.shape[i] != req->out_shape[i]) {
            rc = vkr__client_error(c, VKR_E_SERVER, "the daemon's result has shape[%u] = %" PRId64 ", expected %" PRId64, i,
                                   res.output.shape[i], req->out_shape[i]);
            goto out;
        }
    }
    if (req->result_storage > VKR_RESULT_INTO_FD || res.output.storage != want_storage[req->result_storage]) {
        rc = vkr__client_error(c, VKR_E_SERVER, "the daemon's result is in storage %u; the job asked for result_storage %u",
                               (unsigned)res.output.storage, (unsigned)req->result_storage);
        goto out;
    }

    req->result.rank = (int)req->out_rank;
    memcpy(req->result.shape, req->out_shape, sizeof req->result.shape);
    if (res.output.storage == VKR_STORAGE_OUTPUT_FD) {
        if (vkr__storage_map(req->out_storage) != VKR_OK) {
            snprintf(detail, sizeof detail, "output: cannot map the %" PRIu64 "-byte output memfd: %s", req->out_bytes, strerror(errno));
            vkr__request_finish(req, VKR_E_NOMEM, detail);
            rc = VKR_OK;
            goto out;
        }
        req->result.data = req->out_storage->map;
        req->result.storage = req->out_storage;
        req->out_storage = NULL;
    } else {
        /* hand over a buffer that holds exactly the data (no second allocation) */
        memmove(body, res.output.data, (size_t)req->out_bytes);
        data = realloc(body, req->out_bytes > 0 ? (size_t)req->out_bytes : 1);
        req->result.data = data != NULL ? data : (float *)(void *)body;   /* shrinking failed: keep the larger block */
        body = NULL;
    }
    vkr__request_finish(req, VKR_OK, "");
    rc = VKR_OK;

out:
    for (i = 0; i < n_fds; i++)
        close(fds[i]);
    free(body);
    return rc;
}
