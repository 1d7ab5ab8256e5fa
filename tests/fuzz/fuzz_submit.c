/* libFuzzer target: frame header decode, SUBMIT body decode and job planning on arbitrary bytes
 * (the daemon's path from the socket to a planned job).  Input: 32 header bytes, one byte of
 * descriptor count, then the body.  Must never crash, read out of bounds or leak. */
#include <stdint.h>
#include <string.h>

#include "vkr_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < VKR_FRAME_HEADER_BYTES + 1)
        return 0;
    vkr_frame_header_t h;
    vkr_error_t err;
    const uint64_t max_job = 1u << 20;
    (void)vkr_header_decode(data, 2 * max_job + VKR_SUBMIT_MAX_FIXED_BYTES, max_job, &h, &err);
    const unsigned n_fds = data[VKR_FRAME_HEADER_BYTES] % 4;
    const uint8_t *body = data + VKR_FRAME_HEADER_BYTES + 1;
    const size_t body_len = size - VKR_FRAME_HEADER_BYTES - 1;
    vkr_job_t job;
    if (vkr_submit_decode(body, body_len, max_job, n_fds, &job, &err) == VKR_OK) {
        vkr_plan_t plan;
        (void)vkr_plan_job(&job, max_job, &plan, &err);
    }
    vkr_result_t res;
    (void)vkr_result_decode(body, body_len, n_fds, &res, &err);
    vkr_error_t e;
    (void)vkr_error_decode(body, body_len, &e, &err);
    vkr_pong_t p;
    (void)vkr_pong_decode(body, body_len, &p, &err);
    return 0;
}
