/* libvkresample internals shared by client.c (the connection: reader, requests, waits), jobs.c
 * (job arguments, transport choice, results) and tensor.c (memfd-backed tensors).  Not installed;
 * nothing here is exported. */
#ifndef VKR_CLIENT_INTERNAL_H
#define VKR_CLIENT_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vkr_proto.h"
#include "vkresample.h"

#define VKR_CLIENT_ERROR_MAX (VKR_ERROR_FIELD_MAX + VKR_ERROR_MESSAGE_MAX + 64u)
#define VKR__SEND_MAX_PARTS (1u + VKR_MAX_TENSORS)   /* a SUBMIT body: descriptors, then inline tensors */

/* A memfd-backed tensor's memory: the memfd and, once mapped, its mapping. */
struct vkr_tensor_storage {
    int fd;                       /* the memfd (sealed against shrinking and growing) */
    void *map;                    /* shared read-write mapping of the whole memfd, or NULL */
    size_t map_bytes;             /* its length: the memfd's size */
};

typedef enum { VKR__REQ_JOB, VKR__REQ_PING, VKR__REQ_STATS } vkr__req_kind_t;

struct vkr_request {
    vkr_client_t *client;
    vkr_request_t *next, *prev;   /* the client's requests */
    uint32_t id;
    vkr__req_kind_t kind;
    uint16_t expect_type;         /* RESULT, PONG or STATS_REPLY (or an ERROR) */
    bool user_owned;              /* not yet released by vkr_wait / vkr_cancel */
    bool wire_pending;            /* its reply has not arrived (the daemon answers every request) */
    bool done;                    /* status is final */
    uint64_t done_seq;            /* completion order, for vkr_wait_any */
    uint64_t deadline_ns;         /* CLOCK_MONOTONIC; 0: no time limit */
    uint32_t timeout_ms;
    /* a job: what its RESULT must be */
    bool plan_ok;                 /* the local planner accepted it (else the reply must be an ERROR) */
    vkr_error_t plan_err;
    unsigned out_rank;
    int64_t out_shape[VKR_MAX_RANK];
    uint64_t out_bytes;
    uint16_t result_storage;      /* vkr_result_storage_t asked for */
    vkr_tensor_storage_t *out_storage;   /* VKR_RESULT_INTO_FD: the memfd the daemon writes into */
    /* the outcome */
    int status;
    char error[VKR_CLIENT_ERROR_MAX];
    vkr_tensor_t result;          /* a job's output, owned until handed over */
    uint8_t *reply_body;          /* PING / STATS: the reply's body */
    uint64_t reply_len;
};

/* Set c's last error (printf-style) and return code. */
int vkr__client_error(vkr_client_t *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* "field: message", or "message" when there is no field. */
void vkr__format_error(char *buf, size_t len, const vkr_error_t *e);

/* VKR_OK and last_error cleared if c's connection is alive, else VKR_E_IO with a message. */
int vkr__client_usable(vkr_client_t *c);

/* A new request with a fresh request_id, registered on c (its reply will be matched to it).
 * Returns NULL when out of memory (last_error set). */
vkr_request_t *vkr__request_new(vkr_client_t *c, vkr__req_kind_t kind, uint16_t expect_type);

/* Complete req with status and message (once: later calls are ignored). */
void vkr__request_finish(vkr_request_t *req, int status, const char *error);

/* Drop a request that was never sent. */
void vkr__request_discard(vkr_request_t *req);

/* Write req's frame: the header, then parts[0..n_parts) as the body, passing fds[0..n_fds) with
 * the first byte; while the socket is full, replies are read so neither side stalls.  When the
 * connection fails, every request in flight (req included, unless the daemon's reply to it was
 * read first) completes with VKR_E_IO and the connection is dropped.  Returns VKR_OK or VKR_E_IO.
 * The fds stay the caller's. */
int vkr__send_request(vkr_client_t *c, vkr_request_t *req, uint16_t type, const struct iovec *parts, unsigned n_parts,
                      const int *fds, unsigned n_fds);

/* jobs.c: complete a job from its RESULT frame (body and fds[0..n_fds) owned by the callee).
 * Returns VKR_OK (req completed: its result, or VKR_E_NOMEM when the output cannot be mapped),
 * or VKR_E_SERVER with the client's last_error set when the reply is malformed or does not match
 * the job (req left open: the caller drops the connection, which completes it). */
int vkr__job_complete(vkr_request_t *req, uint8_t *body, uint64_t body_len, int *fds, unsigned n_fds);

/* tensor.c: a new memfd of bytes holding a copy of data[0..bytes), sealed against shrinking and
 * growing.  Returns the fd, or -1 with errno set. */
int vkr__memfd_copy(const void *data, uint64_t bytes);

/* tensor.c: storage for a job's output: a memfd of bytes, sealed against shrinking and growing,
 * not yet mapped.  Returns VKR_OK or VKR_E_NOMEM. */
int vkr__storage_create(uint64_t bytes, vkr_tensor_storage_t **out);

/* tensor.c: map a storage read-write (idempotent).  Returns VKR_OK or VKR_E_NOMEM. */
int vkr__storage_map(vkr_tensor_storage_t *st);

/* tensor.c: close and unmap a storage and free it.  NULL is ignored. */
void vkr__storage_free(vkr_tensor_storage_t *st);

#endif
