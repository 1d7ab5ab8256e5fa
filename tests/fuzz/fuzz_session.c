/* libFuzzer target: whole sessions over real Unix sockets with deliberately partial reads and
 * writes, descriptors included.  Owns the session harness: the in-process daemon it starts, the
 * input format below, the reply checks and the descriptor-leak checks.
 *
 * Daemon half (mode bit 0 clear): the real server code (vkr__server_run, CPU backend, small limits)
 * runs on a background thread, listening on a private path under a mkdtemp dir; each input is one
 * connection to it (the real accept path: SO_PEERCRED, allow list, limits, conn set-up).  The input's
 * records are written as separate sendmsg() chunks, each waited on until the daemon has read it
 * (SIOCOUTQ 0), some with SCM_RIGHTS descriptors; replies are read with small reads of fuzz-chosen
 * sizes and every reply frame must decode with proto's decoders and carry exactly its descriptors
 * (else abort()).  At the end the connection is closed, and the harness waits (STATS on a second,
 * long-lived "monitor" connection) until the daemon has released it and all of its jobs; then the
 * process's descriptor count must be what it was before the input (else abort()).
 *
 * Client half (mode bit 0 set): the input plays a malicious daemon to libvkresample.  The library
 * connects (vkr_connect) to a listening socket of the harness, submits up to four small jobs with the
 * async API, and the records are the "daemon's" reply bytes, fed in chunks (descriptors attached)
 * between vkr_poll / vkr_wait_any / vkr_next_timeout_ms calls.  The library must fail cleanly, never
 * crash or leak (ASan / LSan), and close every descriptor it received but did not hand out.
 *
 * Input: byte 0 is the mode, then records until the input ends.
 *   mode  bit 0: 0 daemon half, 1 client half.
 *         daemon half: bit 1 end with shutdown(SHUT_WR) and read replies to EOF (jobs may still be in
 *         flight: the daemon drops them); bit 2 close without waiting for the jobs to finish.
 *         client half: bits 1..4 submit job A (interpolate, inline), B (interpolate, memfd input and
 *         output memfd), C (vkr_tensor_alloc input), D (a job the local planner refuses), in that order,
 *         request ids 1, 2, ...; bit 5 bulk: write every record first and shut down the write side,
 *         then (bit 6) vkr_ping, (bit 7) vkr_stats, then vkr_wait every job; not bulk: bit 6 ends with
 *         vkr_cancel of every job left, else the socket is closed and every job is waited for.
 *   record: ctl (u8), len (u8: len + 1 bytes of chunk), one 2-byte descriptor spec per descriptor,
 *           then the chunk (fewer bytes when the input ends).
 *     ctl bits 0..1: descriptors with this chunk, + 1 more when bit 2 is set (4 is over the limit).
 *     daemon half: ctl bits 3..7: replies are read (bits + 1) bytes at a time.
 *     client half: ctl bits 3..4: after the chunk 0 vkr_poll(c, NULL), 1 vkr_poll(c, job), 2
 *     vkr_wait_any(c, 0), 3 vkr_next_timeout_ms; bits 5..6: which job.
 *   descriptor spec: kind (u8: bits 0..2 the kind, bits 3..7 the fill byte's index), size (u8, x 16
 *     bytes).  Kinds: 0 memfd sealed against shrinking and growing, 1 unsealed memfd, 2 memfd also
 *     sealed against writing, 3 sealed memfd of size + 2 bytes, 4 pipe read end, 5 pipe write end,
 *     6 /dev/null, 7 a socket. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "backend.h"
#include "log.h"
#include "server.h"
#include "vkr_proto.h"
#include "vkresample.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_JOB_BYTES (1u << 20)        /* --max-job-bytes: a fuzzed shape cannot eat the machine */
#define STALL_LIMIT_NS (20ull * 1000000000ull)   /* a daemon that neither reads nor closes this long: a bug */
#define SMALL_READ_SPAN 4096u           /* replies' first bytes are read in small pieces, the rest in big ones */
#define BIG_READ 65536u
#define MAX_CHUNK_FDS 4u

static struct {
    bool started;
    char dir[64];
    char daemon_path[108];
    char client_path[108];
    int monitor_fd;                     /* long-lived connection to the daemon for STATS */
    uint32_t monitor_id;
    int listen_fd;                      /* the fake daemon's listening socket (client half) */
    vkr_server_config_t cfg;
    pthread_t thread;
    struct sigaction server_sigterm;    /* libuv's handler: how cleanup() stops the daemon */
    int threads_before;                 /* threads of the process before the daemon's */
} g;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "fuzz_session: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The process's descriptors: how many, and which (a bitmap of the low ones, for the report). */
#define FD_MAP_BITS 4096u
typedef struct {
    int n;
    uint64_t map[FD_MAP_BITS / 64];
} fd_set_t;

static void read_fds(fd_set_t *set)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;

    if (d == NULL)
        die("opendir /proc/self/fd: %s", strerror(errno));
    memset(set, 0, sizeof *set);
    while ((e = readdir(d)) != NULL) {
        int fd = atoi(e->d_name);

        if (e->d_name[0] == '.' || fd == dirfd(d))
            continue;
        set->n++;
        if (fd >= 0 && (unsigned)fd < FD_MAP_BITS)
            set->map[fd / 64] |= 1ull << (fd % 64);
    }
    closedir(d);
}

/* Say which descriptors are in after but not in before, and what they are. */
static void report_new_fds(const fd_set_t *before, const fd_set_t *after)
{
    for (unsigned fd = 0; fd < FD_MAP_BITS; fd++) {
        char path[64], target[256];
        ssize_t n;

        if (!(after->map[fd / 64] >> (fd % 64) & 1) || (before->map[fd / 64] >> (fd % 64) & 1))
            continue;
        snprintf(path, sizeof path, "/proc/self/fd/%u", fd);
        n = readlink(path, target, sizeof target - 1);
        target[n > 0 ? n : 0] = '\0';
        fprintf(stderr, "fuzz_session: new descriptor %u -> %s", fd, target);
        if (strncmp(target, "socket:", 7) == 0) {
            struct sockaddr_un a = {0}, b = {0};
            socklen_t la = sizeof a, lb = sizeof b;
            char c;
            getsockname((int)fd, (struct sockaddr *)&a, &la);
            getpeername((int)fd, (struct sockaddr *)&b, &lb);
            fprintf(stderr, " (name '%s', peer '%s', peek %zd)", a.sun_path, b.sun_path, recv((int)fd, &c, 1, MSG_PEEK | MSG_DONTWAIT));
        }
        fputc('\n', stderr);
    }
}

/* ---------------------------------------------------------------- the input */
typedef struct {
    const uint8_t *p;
    size_t n;
} input_t;

static uint8_t take_u8(input_t *in)
{
    if (in->n == 0)
        return 0;
    in->n--;
    return *in->p++;
}

static const uint8_t *take(input_t *in, size_t want, size_t *got)
{
    const uint8_t *p = in->p;

    *got = want < in->n ? want : in->n;
    in->p += *got;
    in->n -= *got;
    return p;
}

/* Bytes a memfd is filled with: zeros, ordinary floats, huge, infinite, NaN, negative. */
static const uint8_t fill_bytes[32] = {0x00, 0x3f, 0x40, 0x41, 0x7f, 0x80, 0xbf, 0xc0, 0xff, 0x01, 0x10, 0x20, 0x42, 0x43, 0x44, 0x45,
                                       0x46, 0x47, 0x48, 0x49, 0x4b, 0x4f, 0x7e, 0x7c, 0xfe, 0xfc, 0xc1, 0xc2, 0xcf, 0xef, 0x55, 0xaa};

static int make_memfd(size_t bytes, uint8_t fill, unsigned flags, unsigned seals)
{
    uint8_t buf[4096 + 16];
    int fd = memfd_create("fuzz-session", MFD_CLOEXEC | flags);

    if (fd < 0)
        die("memfd_create: %s", strerror(errno));
    memset(buf, fill, bytes);
    if (bytes > 0 && write(fd, buf, bytes) != (ssize_t)bytes)
        die("memfd write: %s", strerror(errno));
    if (seals != 0 && fcntl(fd, F_ADD_SEALS, seals) != 0)
        die("F_ADD_SEALS: %s", strerror(errno));
    return fd;
}

/* A descriptor as a spec says (see the top of the file); the caller closes it. */
static int make_fd(uint8_t kind_byte, uint8_t size_byte)
{
    const size_t bytes = (size_t)size_byte * 16u;
    const uint8_t fill = fill_bytes[kind_byte >> 3];
    int p[2], fd;

    switch (kind_byte & 7) {
    case 0:
        return make_memfd(bytes, fill, MFD_ALLOW_SEALING, F_SEAL_SHRINK | F_SEAL_GROW);
    case 1:
        return make_memfd(bytes, fill, MFD_ALLOW_SEALING, 0);
    case 2:
        return make_memfd(bytes, fill, MFD_ALLOW_SEALING, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE);
    case 3:
        return make_memfd(bytes + 2, fill, MFD_ALLOW_SEALING, F_SEAL_SHRINK);
    case 4:
    case 5:
        if (pipe2(p, O_CLOEXEC) != 0)
            die("pipe2: %s", strerror(errno));
        close(p[(kind_byte & 7) == 4 ? 1 : 0]);
        return p[(kind_byte & 7) == 4 ? 0 : 1];
    case 6:
        fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (fd < 0)
            die("/dev/null: %s", strerror(errno));
        return fd;
    default:
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) != 0)
            die("socketpair: %s", strerror(errno));
        close(p[1]);
        return p[0];
    }
}

/* One record: its ctl byte, its descriptors (made now) and its chunk. */
typedef struct {
    uint8_t ctl;
    int fds[MAX_CHUNK_FDS];
    unsigned n_fds;
    const uint8_t *bytes;
    size_t len;
} record_t;

static bool next_record(input_t *in, record_t *r)
{
    unsigned want_len;

    if (in->n == 0)
        return false;
    r->ctl = take_u8(in);
    want_len = (unsigned)take_u8(in) + 1u;
    r->n_fds = (r->ctl & 3u) + ((r->ctl >> 2) & 1u);
    for (unsigned i = 0; i < r->n_fds; i++) {
        uint8_t kind = take_u8(in);
        r->fds[i] = make_fd(kind, take_u8(in));
    }
    r->bytes = take(in, want_len, &r->len);
    return true;
}

static void record_close_fds(record_t *r)
{
    for (unsigned i = 0; i < r->n_fds; i++)
        close(r->fds[i]);
    r->n_fds = 0;
}

/* sendmsg bytes[0..len) (the descriptors with the first byte) on a non-blocking socket.  Returns
 * how many bytes went (fewer when the socket is full: the rest is dropped), or -1 when the peer is
 * gone. */
static ssize_t send_chunk(int fd, const uint8_t *bytes, size_t len, const int *fds, unsigned n_fds)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * MAX_CHUNK_FDS)];
    } ctrl;
    struct iovec iov = {.iov_base = (void *)(uintptr_t)bytes, .iov_len = len};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    ssize_t n;

    if (len == 0)
        return 0;
    if (n_fds > 0) {
        struct cmsghdr *cm;

        memset(&ctrl, 0, sizeof ctrl);
        msg.msg_control = ctrl.buf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
        cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * n_fds);
    }
    do
        n = sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 0;
    if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
        return -1;
    if (n < 0)
        die("sendmsg: %s", strerror(errno));
    return n;
}

/* ---------------------------------------------------------------- reply checking (daemon half) */
typedef struct {
    int fd;
    bool eof;                           /* the daemon closed (or we read to the end after SHUT_WR) */
    bool half_closed;                   /* we shut down our write side: a truncated reply is fine */
    uint8_t hdr_bytes[VKR_FRAME_HEADER_BYTES];
    size_t hdr_got;
    vkr_frame_header_t h;
    uint8_t *body;
    uint64_t body_got;
    int fds[VKR_MAX_FDS_PER_FRAME];
    unsigned n_fds;
} rx_t;

static void rx_close_fds(rx_t *rx)
{
    for (unsigned i = 0; i < rx->n_fds; i++)
        close(rx->fds[i]);
    rx->n_fds = 0;
}

/* A RESULT's daemon memfd: a sealed memfd holding the output. */
static void check_result_fd(int fd, const vkr_result_t *res)
{
    struct stat st;
    int seals = fcntl(fd, F_GET_SEALS);

    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || seals < 0 || !(seals & F_SEAL_SHRINK) ||
        (uint64_t)st.st_size < res->output.data_bytes)
        die("a RESULT's memfd is not a sealed memfd of %llu bytes (size %lld, seals 0x%x)", (unsigned long long)res->output.data_bytes,
            (long long)st.st_size, (unsigned)seals);
}

static void frame_done(rx_t *rx)
{
    const vkr_frame_header_t *h = &rx->h;
    vkr_error_t err = {0};
    int rc = VKR_OK;

    switch (h->type) {
    case VKR_MSG_RESULT: {
        vkr_result_t res;
        rc = vkr_result_decode(rx->body, h->body_len, rx->n_fds, &res, &err);
        if (rc == VKR_OK && res.output.storage == VKR_STORAGE_MEMFD)
            check_result_fd(rx->fds[0], &res);
        break;
    }
    case VKR_MSG_ERROR: {
        vkr_error_t e;
        rc = vkr_error_decode(rx->body, h->body_len, &e, &err);
        break;
    }
    case VKR_MSG_PONG: {
        vkr_pong_t p;
        rc = vkr_pong_decode(rx->body, h->body_len, &p, &err);
        break;
    }
    case VKR_MSG_STATS_REPLY: {
        static vkr_stats_t st;
        rc = vkr_stats_decode(rx->body, h->body_len, &st, &err);
        break;
    }
    default:
        die("the daemon sent a frame of type %u", (unsigned)h->type);
    }
    if (rc != VKR_OK)
        die("a reply of type %u (request %u) does not decode: %s: %s", (unsigned)h->type, (unsigned)h->request_id, err.field, err.message);
    rx_close_fds(rx);
    free(rx->body);
    rx->body = NULL;
    rx->hdr_got = 0;
    rx->body_got = 0;
}

static void header_done(rx_t *rx)
{
    vkr_error_t err = {0};

    if (vkr_header_decode(rx->hdr_bytes, 0, MAX_JOB_BYTES + VKR_RESULT_FIXED_BYTES, &rx->h, &err) != VKR_OK)
        die("a reply header does not decode: %s: %s", err.field, err.message);
    if (rx->h.n_fds != rx->n_fds)
        die("a reply header says n_fds %u, %u descriptor(s) came with it", rx->h.n_fds, rx->n_fds);
    if (rx->h.body_len > 0) {
        rx->body = malloc((size_t)rx->h.body_len);
        if (rx->body == NULL)
            die("out of memory");
    }
    rx->body_got = 0;
    if (rx->h.body_len == 0)
        frame_done(rx);
}

/* One recvmsg of at most piece bytes of the current reply frame.  Returns false when nothing is
 * there now. */
static bool rx_read_once(rx_t *rx, size_t piece)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * 8)];
    } ctrl;
    struct iovec iov;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl.buf, .msg_controllen = sizeof ctrl.buf};
    bool in_header = rx->hdr_got < VKR_FRAME_HEADER_BYTES;
    size_t want;
    ssize_t n;

    if (rx->eof)
        return false;
    if (in_header) {
        want = VKR_FRAME_HEADER_BYTES - rx->hdr_got;
        iov.iov_base = rx->hdr_bytes + rx->hdr_got;
    } else {
        uint64_t left = rx->h.body_len - rx->body_got;
        want = left > SIZE_MAX ? SIZE_MAX : (size_t)left;
        iov.iov_base = rx->body + rx->body_got;
        if (rx->body_got >= SMALL_READ_SPAN)
            piece = BIG_READ;
    }
    iov.iov_len = want < piece ? want : piece;
    do
        n = recvmsg(rx->fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return false;
    if (n < 0 && errno != ECONNRESET)
        die("recvmsg: %s", strerror(errno));
    for (struct cmsghdr *cm = n >= 0 ? CMSG_FIRSTHDR(&msg) : NULL; cm != NULL; cm = CMSG_NXTHDR(&msg, cm)) {
        size_t k = cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS ? (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int) : 0;
        for (size_t i = 0; i < k; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
            if (!in_header || rx->hdr_got > 0 || rx->n_fds >= VKR_MAX_FDS_PER_FRAME)
                die("a descriptor came with a byte other than a reply's first (or more than %u)", VKR_MAX_FDS_PER_FRAME);
            rx->fds[rx->n_fds++] = fd;
        }
    }
    if (n >= 0 && (msg.msg_flags & MSG_CTRUNC))
        die("the daemon sent more descriptors than any reply carries");
    if (n <= 0) {
        rx->eof = true;
        if ((rx->hdr_got > 0 || rx->n_fds > 0) && !rx->half_closed)
            die("the daemon closed the connection within a reply (%zu header bytes, %llu body bytes)", rx->hdr_got,
                (unsigned long long)rx->body_got);
        return false;
    }
    if (in_header) {
        rx->hdr_got += (size_t)n;
        if (rx->hdr_got == VKR_FRAME_HEADER_BYTES)
            header_done(rx);
    } else {
        rx->body_got += (uint64_t)n;
        if (rx->body_got == rx->h.body_len)
            frame_done(rx);
    }
    return true;
}

/* Read every reply byte there is now, piece bytes at a time. */
static void rx_pump(rx_t *rx, size_t piece)
{
    while (rx_read_once(rx, piece))
        ;
}

static void rx_reset(rx_t *rx)
{
    rx_close_fds(rx);
    free(rx->body);
    rx->body = NULL;
}

/* ---------------------------------------------------------------- the monitor connection */
static void read_full(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;

    while (len > 0) {
        ssize_t n = recv(fd, p, len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die("monitor connection: %s", n == 0 ? "closed by the daemon" : strerror(errno));
        p += n;
        len -= (size_t)n;
    }
}

static void monitor_stats(vkr_stats_t *st)
{
    uint8_t hdr[VKR_FRAME_HEADER_BYTES], body[VKR_STATS_BODY_MAX];
    vkr_frame_header_t h = {.magic = VKR_PROTO_MAGIC, .version = VKR_PROTO_VERSION, .type = VKR_MSG_STATS};
    vkr_error_t err = {0};

    if (++g.monitor_id == 0)
        g.monitor_id = 1;
    h.request_id = g.monitor_id;
    vkr_header_encode(&h, hdr);
    if (send(g.monitor_fd, hdr, sizeof hdr, MSG_NOSIGNAL) != (ssize_t)sizeof hdr)
        die("monitor connection: send: %s", strerror(errno));
    read_full(g.monitor_fd, hdr, sizeof hdr);
    if (vkr_header_decode(hdr, 0, 0, &h, &err) != VKR_OK || h.type != VKR_MSG_STATS_REPLY || h.request_id != g.monitor_id ||
        h.body_len > sizeof body)
        die("monitor connection: bad STATS_REPLY header (%s)", err.message);
    read_full(g.monitor_fd, body, (size_t)h.body_len);
    if (vkr_stats_decode(body, h.body_len, st, &err) != VKR_OK)
        die("monitor connection: STATS_REPLY does not decode: %s", err.message);
}

/* Wait until the daemon's counters satisfy what (reading the session's replies meanwhile when rx
 * is not NULL).  A daemon that never gets there is a bug. */
static void wait_daemon(bool (*what)(const vkr_stats_t *), rx_t *rx)
{
    const uint64_t t0 = now_ns();
    static vkr_stats_t st;

    for (unsigned spin = 0;; spin++) {
        monitor_stats(&st);
        if (what(&st))
            return;
        if (rx != NULL)
            rx_pump(rx, BIG_READ);
        if (now_ns() - t0 > STALL_LIMIT_NS)
            die("the daemon did not get there in %llu s: %u clients, %u queued, %u running", STALL_LIMIT_NS / 1000000000ull,
                st.clients, st.queued, st.running);
        if (spin < 64)
            sched_yield();
        else
            poll(NULL, 0, 1);
    }
}

static bool monitor_accepted(const vkr_stats_t *st) { return st->clients == 1; }
static bool session_accepted(const vkr_stats_t *st) { return st->clients == 2; }
static bool session_gone(const vkr_stats_t *st) { return st->clients == 1; }
static bool jobs_done(const vkr_stats_t *st) { return st->queued == 0 && st->running == 0; }

/* ---------------------------------------------------------------- set-up, once */
static int count_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int n = 0;

    while (d != NULL && (e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    if (d != NULL)
        closedir(d);
    return n;
}

/* At exit: stop the daemon as SIGTERM does (it finishes, closes and frees everything) and join
 * it, so that valgrind and LSan see a process with nothing left running; then remove the files. */
static void cleanup(void)
{
    char path[sizeof g.daemon_path + 8];
    struct timespec until;

    close(g.monitor_fd);
    close(g.listen_fd);
    if (g.server_sigterm.sa_handler != SIG_DFL && g.server_sigterm.sa_handler != SIG_IGN) {
        sigaction(SIGTERM, &g.server_sigterm, NULL);
        kill(getpid(), SIGTERM);
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 10;
        if (pthread_timedjoin_np(g.thread, NULL, &until) == 0) {
            g.cfg.cpu->destroy(g.cfg.cpu);
            /* libuv's workers (and the OpenMP threads each of them started) end now rather than
             * racing the process's exit */
            uv_library_shutdown();
            for (int i = 0; i < 2000 && count_threads() > g.threads_before; i++)
                poll(NULL, 0, 1);
        } else {
            fprintf(stderr, "fuzz_session: the daemon did not stop within 10 s of SIGTERM\n");
        }
    }
    unlink(g.client_path);
    unlink(g.daemon_path);
    snprintf(path, sizeof path, "%s.lock", g.daemon_path);
    unlink(path);
    rmdir(g.dir);
}

static void *server_thread(void *arg)
{
    (void)arg;
    if (vkr__server_run(&g.cfg) != 0)
        die("vkr__server_run failed");
    return NULL;
}

static int connect_to(const char *path)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0)
        die("connect %s: %s", path, strerror(errno));
    return fd;
}

static void setup_once(void)
{
    struct sigaction old_int, old_term;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    vkr_error_t err;
    char ready[8];
    int ready_pipe[2];
    const char *verbose = getenv("VKR_FUZZ_VERBOSE");

    g.started = true;
    vkr__log_level = verbose != NULL && verbose[0] != '\0' ? VKR_LOG_DEBUG : VKR_LOG_ERROR;
    snprintf(g.dir, sizeof g.dir, "/tmp/vkr-fuzz-session-XXXXXX");
    if (mkdtemp(g.dir) == NULL)
        die("mkdtemp: %s", strerror(errno));
    snprintf(g.daemon_path, sizeof g.daemon_path, "%s/daemon.sock", g.dir);
    snprintf(g.client_path, sizeof g.client_path, "%s/fake.sock", g.dir);

    /* the daemon: CPU backend, small limits, two workers, every peer check as configured for real */
    setenv("UV_THREADPOOL_SIZE", "2", 1);
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_PID");
    g.cfg.listen.path = g.daemon_path;
    g.cfg.listen.mode = VKR_DEFAULT_SOCKET_MODE;
    g.cfg.allow.uids[g.cfg.allow.n_uids++] = geteuid();
    g.cfg.max_connections = 16;
    g.cfg.max_connections_per_uid = 8;
    g.cfg.max_job_bytes = MAX_JOB_BYTES;
    g.cfg.workers = 2;
    g.cfg.max_client_jobs = 6;
    g.cfg.max_queued_jobs = 12;
    g.cfg.max_queue_bytes = 6u * MAX_JOB_BYTES;
    g.cfg.max_bytes_per_uid = 5u * MAX_JOB_BYTES;
    g.cfg.idle_timeout_ms = VKR_DEFAULT_IDLE_TIMEOUT_MS;     /* armed, never reached by an input */
    g.cfg.frame_timeout_ms = VKR_DEFAULT_FRAME_TIMEOUT_MS;
    g.cfg.default_backend = VKR_BACKEND_CPU;
    if (vkr__backend_cpu_create(&g.cfg.cpu, &err) != VKR_OK)
        die("cpu backend: %s", err.message);
    if (pipe2(ready_pipe, O_CLOEXEC) != 0)
        die("pipe2: %s", strerror(errno));
    g.cfg.ready_fd = ready_pipe[1];
    /* the server takes SIGINT / SIGTERM for its shutdown; the fuzzer keeps them */
    sigaction(SIGINT, NULL, &old_int);
    sigaction(SIGTERM, NULL, &old_term);
    g.threads_before = count_threads();
    if (pthread_create(&g.thread, NULL, server_thread, NULL) != 0)
        die("pthread_create failed");
    if (read(ready_pipe[0], ready, sizeof ready) <= 0)
        die("the daemon did not start");
    close(ready_pipe[0]);
    sigaction(SIGTERM, NULL, &g.server_sigterm);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    g.monitor_fd = connect_to(g.daemon_path);
    wait_daemon(monitor_accepted, NULL);    /* its accepted socket is part of the baseline */

    /* the fake daemon the client library talks to */
    g.listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", g.client_path);
    if (g.listen_fd < 0 || bind(g.listen_fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(g.listen_fd, 4) != 0)
        die("fake daemon socket: %s", strerror(errno));
    atexit(cleanup);
}

/* ---------------------------------------------------------------- daemon half */
/* Wait until the daemon has read everything written to fd (or closed), reading replies meanwhile. */
static void wait_consumed(rx_t *rx, size_t piece)
{
    const uint64_t t0 = now_ns();

    for (unsigned spin = 0;; spin++) {
        int queued = 0;

        rx_pump(rx, piece);
        if (rx->eof)
            return;
        if (ioctl(rx->fd, SIOCOUTQ, &queued) != 0)
            die("SIOCOUTQ: %s", strerror(errno));
        if (queued == 0)
            return;
        if (now_ns() - t0 > STALL_LIMIT_NS)
            die("the daemon neither read %d bytes nor closed the connection in %llu s", queued, STALL_LIMIT_NS / 1000000000ull);
        if (spin < 256) {
            sched_yield();
        } else {
            struct pollfd pfd = {.fd = rx->fd, .events = POLLIN};
            poll(&pfd, 1, 1);
        }
    }
}

static void daemon_session(uint8_t mode, input_t *in)
{
    rx_t rx = {0};
    record_t r;

    rx.fd = connect_to(g.daemon_path);
    wait_daemon(session_accepted, NULL);
    while (!rx.eof && next_record(in, &r)) {
        ssize_t sent = send_chunk(rx.fd, r.bytes, r.len, r.fds, r.n_fds);

        record_close_fds(&r);
        if (sent < 0)
            break;
        wait_consumed(&rx, (size_t)(r.ctl >> 3) + 1u);
    }
    if (!rx.eof && (mode & 2)) {
        /* the daemon sees the end of the stream: it closes at once, dropping what it still owes */
        shutdown(rx.fd, SHUT_WR);
        rx.half_closed = true;
        while (!rx.eof) {
            struct pollfd pfd = {.fd = rx.fd, .events = POLLIN};
            rx_pump(&rx, BIG_READ);
            if (!rx.eof && poll(&pfd, 1, (int)(STALL_LIMIT_NS / 1000000u)) == 0)
                die("the daemon did not close a half-closed connection");
        }
    } else if (!rx.eof && !(mode & 4)) {
        wait_daemon(jobs_done, &rx);
        rx_pump(&rx, BIG_READ);
    }
    rx_reset(&rx);
    close(rx.fd);
    wait_daemon(session_gone, NULL);
}

/* ---------------------------------------------------------------- client half */
#define CLIENT_JOBS 4

/* Read and drop what the library sent (requests, their descriptors). */
static void drain_requests(int fd)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * 8)];
    } ctrl;
    uint8_t buf[4096];

    if (fd < 0)
        return;
    for (;;) {
        struct iovec iov = {.iov_base = buf, .iov_len = sizeof buf};
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl.buf, .msg_controllen = sizeof ctrl.buf};
        ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

        for (struct cmsghdr *cm = n >= 0 ? CMSG_FIRSTHDR(&msg) : NULL; cm != NULL; cm = CMSG_NXTHDR(&msg, cm)) {
            size_t k = cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS ? (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int) : 0;
            for (size_t i = 0; i < k; i++) {
                int rfd;
                memcpy(&rfd, CMSG_DATA(cm) + i * sizeof(int), sizeof rfd);
                close(rfd);
            }
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
    }
}

typedef struct {
    vkr_client_t *c;
    vkr_request_t *req[CLIENT_JOBS];
    int srv;                            /* the fake daemon's end */
    vkr_tensor_t alloc_input;           /* job C's memfd-backed input */
} client_session_t;

static void release_job(client_session_t *s, unsigned k)
{
    vkr_tensor_t out;

    if (s->req[k] == NULL)
        return;
    (void)vkr_wait(s->c, s->req[k], &out);
    vkr_tensor_free(&out);
    s->req[k] = NULL;
}

/* Collect every job that has completed (vkr_wait returns at once for those). */
static void collect_done(client_session_t *s)
{
    for (unsigned k = 0; k < CLIENT_JOBS; k++)
        if (s->req[k] != NULL && vkr_poll(s->c, s->req[k]) == 1)
            release_job(s, k);
}

static void submit_jobs(client_session_t *s, uint8_t mode)
{
    static const float pixels[4] = {0.0f, 1.0f, 2.0f, 3.0f};
    const vkr_tensor_t input = {.rank = 4, .shape = {1, 1, 2, 2}, .data = (float *)(uintptr_t)pixels};
    vkr_interpolate_args_t args = {.mode = VKR_MODE_NEAREST, .n_size = 1, .size = {4}};
    vkr_job_options_t memfd = {.transport = VKR_TRANSPORT_MEMFD};
    const int64_t shape[4] = {1, 1, 2, 2};

    if (mode & 2)
        (void)vkr_submit_interpolate(s->c, &args, &input, NULL, &s->req[0]);
    if (mode & 4)
        (void)vkr_submit_interpolate(s->c, &args, &input, &memfd, &s->req[1]);
    if ((mode & 8) && vkr_tensor_alloc(4, shape, &s->alloc_input) == VKR_OK) {
        vkr_interpolate_args_t bilinear = {.mode = VKR_MODE_BILINEAR, .n_scale = 1, .scale_factor = {2.0}};
        memcpy(s->alloc_input.data, pixels, sizeof pixels);
        (void)vkr_submit_interpolate(s->c, &bilinear, &s->alloc_input, NULL, &s->req[2]);
    }
    if (mode & 16) {
        vkr_interpolate_args_t both = args;     /* size and scale_factor both given: PyTorch refuses */
        both.n_scale = 1;
        both.scale_factor[0] = 2.0;
        (void)vkr_submit_interpolate(s->c, &both, &input, NULL, &s->req[3]);
    }
}

static void client_session(uint8_t mode, input_t *in)
{
    client_session_t s = {0};
    vkr_request_t *done;
    record_t r;

    if (vkr_connect(g.client_path, &s.c) != VKR_OK)
        die("vkr_connect to the fake daemon failed: %s", strerror(errno));
    s.srv = accept4(g.listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (s.srv < 0)
        die("accept4: %s", strerror(errno));
    submit_jobs(&s, mode);
    drain_requests(s.srv);

    if (mode & 32) {
        /* bulk: the whole reply stream first, then blocking calls (the end of the stream bounds them) */
        while (next_record(in, &r)) {
            (void)send_chunk(s.srv, r.bytes, r.len, r.fds, r.n_fds);
            record_close_fds(&r);
        }
        shutdown(s.srv, SHUT_WR);
        if (mode & 64) {
            vkr_server_info_t info;
            (void)vkr_ping(s.c, &info);
            drain_requests(s.srv);
        }
        if (mode & 128) {
            static vkr_server_stats_t st;
            (void)vkr_stats(s.c, &st);
            drain_requests(s.srv);
        }
        for (unsigned k = 0; k < CLIENT_JOBS; k++)
            release_job(&s, k);
    } else {
        while (next_record(in, &r)) {
            const unsigned k = (r.ctl >> 5) & 3u;

            if (s.srv >= 0 && send_chunk(s.srv, r.bytes, r.len, r.fds, r.n_fds) < 0) {
                close(s.srv);
                s.srv = -1;
            }
            record_close_fds(&r);
            switch ((r.ctl >> 3) & 3u) {
            case 0:
                (void)vkr_poll(s.c, NULL);
                break;
            case 1:
                if (s.req[k] != NULL && vkr_poll(s.c, s.req[k]) == 1)
                    release_job(&s, k);
                break;
            case 2:
                if (vkr_wait_any(s.c, 0, &done) == VKR_OK)
                    for (unsigned j = 0; j < CLIENT_JOBS; j++)
                        if (s.req[j] == done)
                            release_job(&s, j);
                break;
            default:
                (void)vkr_next_timeout_ms(s.c);
                (void)vkr_fd(s.c);
                break;
            }
            collect_done(&s);
            drain_requests(s.srv);
        }
        if (mode & 64) {
            for (unsigned k = 0; k < CLIENT_JOBS; k++) {
                if (s.req[k] != NULL)
                    (void)vkr_cancel(s.c, s.req[k]);
                s.req[k] = NULL;
                drain_requests(s.srv);
            }
        } else {
            if (s.srv >= 0)
                close(s.srv);
            s.srv = -1;
            for (unsigned k = 0; k < CLIENT_JOBS; k++)
                release_job(&s, k);
        }
    }
    vkr_close(s.c);
    vkr_tensor_free(&s.alloc_input);
    if (s.srv >= 0)
        close(s.srv);
}

/* ---------------------------------------------------------------- the entry point */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    input_t in = {data, size};
    static fd_set_t before, after;
    uint8_t mode;

    if (size == 0)
        return 0;
    if (!g.started)
        setup_once();
    read_fds(&before);
    mode = take_u8(&in);
    if (mode & 1)
        client_session(mode, &in);
    else
        daemon_session(mode, &in);
    read_fds(&after);
    if (after.n != before.n) {
        report_new_fds(&before, &after);
        die("%d descriptor(s) before the %s session, %d after: a descriptor leaked", before.n, mode & 1 ? "client" : "daemon", after.n);
    }
    return 0;
}
