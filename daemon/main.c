/* vkresampled: command line, backend set-up and the exit status.  The serving itself is
 * server.c's (and its helpers conn.c, queue.c, memfd.c, stats.c, listen.c); the backends are
 * backend_cpu.c and backend_vulkan.c. */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "backend.h"
#include "log.h"
#include "server.h"

#define EXIT_USAGE 2
#define VKR_MMAP_THRESHOLD_BYTES (256 * 1024) /* allocations from this size on are their own mappings */
#define EXIT_VALIDATION 3
#define MAX_TIMEOUT_S 86400.0   /* --idle-timeout / --frame-timeout / --shutdown-timeout: at most a day */

static void usage(FILE *to)
{
    fprintf(to,
            "usage: vkresampled [OPTIONS]\n"
            "Serve PyTorch-exact F.interpolate, F.grid_sample and F.affine_grid jobs over a Unix\n"
            "socket, on Vulkan or the CPU.\n"
            "\n"
            "  --socket PATH         socket to listen on; default $VKRESAMPLE_SOCKET, else\n"
            "                        $XDG_RUNTIME_DIR/vkresample.sock, else /tmp/vkresample-$UID.sock.\n"
            "                        Created with mode 0600 (umask set around bind); PATH.lock is\n"
            "                        locked first (a second daemon on PATH fails at once); a stale\n"
            "                        socket file is replaced, one with a live daemon behind it, a\n"
            "                        symlink or a non-socket is refused.  Under systemd socket\n"
            "                        activation (LISTEN_FDS=1, LISTEN_PID = this process) the\n"
            "                        socket passed as fd 3 is served instead.\n"
            "  --socket-mode MODE    octal permission bits the socket gets once bound, 0600..0777\n"
            "                        (default 0600).  To share the daemon, widen it (or use\n"
            "                        --socket-group) and let the peers in with --allow-uid / --allow-group\n"
            "  --socket-group GROUP  group (name or number) the socket file gets once bound\n"
            "  --allow-uid UID[,UID] users (names or numbers) that may connect, besides the daemon's\n"
            "                        own uid (the default and only entry; root is not allowed unless\n"
            "                        it is the daemon's uid).  Checked with SO_PEERCRED at accept; a\n"
            "                        refused peer gets VKR_E_PERMISSION and is closed.  Repeatable.\n"
            "  --allow-group GID[,GID]  groups (names or numbers) whose members may connect (the\n"
            "                        peer's primary or supplementary groups).  Repeatable.\n"
            "  --max-connections N   open connections; accepting pauses at N and resumes when one\n"
            "                        closes (default %u).  It also pauses while the process is out\n"
            "                        of descriptors, and retries every %u ms.\n"
            "  --max-connections-per-uid N  open connections of one uid; one more is refused with\n"
            "                        VKR_E_BUSY (default %u)\n"
            "  --max-bytes-per-uid N bytes the jobs of one uid may hold in flight (request bodies and\n"
            "                        outputs), K/M/G suffixes allowed.  Default: a quarter of\n"
            "                        --max-queue-bytes, but at least what one job of --max-job-bytes\n"
            "                        tensors holds (3 x --max-job-bytes + %u; with the defaults 3G +\n"
            "                        %u) and at most --max-queue-bytes.  VKR_E_BUSY past it,\n"
            "                        VKR_E_TOO_LARGE for one job that alone needs more.  A request\n"
            "                        body is reserved as it arrives (64 KiB, then doubling, steps of\n"
            "                        at most 64 MiB), so a header alone holds nothing; a body whose\n"
            "                        next step does not fit is refused with VKR_E_BUSY mid-body.\n"
            "  --idle-timeout SECONDS  a connection in the middle of a frame that sends nothing for\n"
            "                        this long is closed with VKR_E_TIMEOUT; one whose replies wait\n"
            "                        this long without it reading a byte of them is closed\n"
            "                        (default %g; 0: off).  Idle connections between frames are\n"
            "                        never closed.  A connection with more than %llu MiB of inline\n"
            "                        replies still to write is not read until they drain.\n"
            "  --frame-timeout SECONDS  a frame not complete this long after its first byte closes\n"
            "                        its connection with VKR_E_TIMEOUT (default %g; 0: off)\n"
            "  --shutdown-timeout SECONDS  after SIGTERM / SIGINT, finish admitted jobs and write their\n"
            "                        replies for at most this long, then close every connection\n"
            "                        (unsent replies dropped, running jobs told to stop) and exit 0\n"
            "                        (default %g; 0: close at once)\n",
            VKR_DEFAULT_MAX_CONNECTIONS, VKR__ACCEPT_RETRY_MS, VKR_DEFAULT_MAX_CONNECTIONS_PER_UID, (unsigned)VKR_SUBMIT_MAX_FIXED_BYTES,
            (unsigned)VKR_SUBMIT_MAX_FIXED_BYTES, VKR_DEFAULT_IDLE_TIMEOUT_MS / 1000.0,
            (unsigned long long)(VKR__CLIENT_REPLY_BACKLOG_BYTES >> 20), VKR_DEFAULT_FRAME_TIMEOUT_MS / 1000.0,
            VKR_DEFAULT_SHUTDOWN_TIMEOUT_MS / 1000.0);
    fprintf(to,
            "  --backend B           auto (default): Vulkan when a device works, else the CPU;\n"
            "                        vulkan: fail to start without a Vulkan device (CPU jobs are\n"
            "                        still served when a job asks for them); cpu: never touch Vulkan.\n"
            "                        Jobs whose backend is 'auto' run on the default one.  If the\n"
            "                        Vulkan device is lost (VK_ERROR_DEVICE_LOST) the job that saw it\n"
            "                        and every job admitted for Vulkan run on the CPU, later 'auto'\n"
            "                        jobs too; later jobs asking for 'vulkan' get\n"
            "                        VKR_E_BACKEND_UNAVAILABLE; stats reports the loss.\n"
            "  --device N            use Vulkan physical device N (default: discrete > integrated >\n"
            "                        virtual > CPU-type)\n"
            "  --max-job-bytes N     largest input or output tensor in bytes, K/M/G suffixes allowed\n"
            "                        (default 1G)\n"
            "  --workers N           jobs that run at once, on that many threads (default %u, 1..%u)\n"
            "  --max-client-jobs N   jobs one connection may have in flight: queued, running or with\n"
            "                        a reply not yet written (default %u); one more gets VKR_E_BUSY\n"
            "  --max-queued-jobs N   jobs in flight in the whole daemon (default %u); VKR_E_BUSY past it\n"
            "  --max-batch N         small Vulkan jobs (inputs + output <= %u KiB) of one plan run in\n"
            "                        one submission, up to N at once (default %u, 1..%u; 1: no batches)\n"
            "  --max-queue-bytes N   bytes those jobs may hold: request bodies and outputs, K/M/G\n"
            "                        suffixes allowed (default 4G); VKR_E_BUSY past it, and\n"
            "                        VKR_E_TOO_LARGE for one job that alone needs more\n"
            "  --cache-dir DIR       directory handed to the Vulkan backend for its pipeline cache\n"
            "                        (default $XDG_CACHE_HOME/vkresample, else ~/.cache/vkresample)\n"
            "  --vk-validation       enable VK_LAYER_KHRONOS_validation; any message it reports is\n"
            "                        logged and makes the daemon exit with status 3\n"
            "  --ready-fd N          write \"ready\\n\" to file descriptor N once listening, then close it\n"
            "  -v, --verbose         log every connection and job\n"
            "  -q, --quiet           log errors only\n"
            "  -h, --help            show this help\n"
            "  --version             print the version\n"
            "\n"
            "SIGTERM or SIGINT: stop accepting and reading, finish every job already admitted (for\n"
            "at most --shutdown-timeout), remove the socket and its lock file (unless systemd handed\n"
            "the socket over), exit 0.  SIGHUP is ignored (logged).  PATH.lock is taken before any\n"
            "backend starts: a second daemon on a busy socket exits 1 at once.\n"
            "Exit status: 0 clean stop, 1 start-up failure, 2 usage error, 3 validation messages seen.\n",
            VKR_DEFAULT_WORKERS, VKR_MAX_WORKERS, VKR_DEFAULT_MAX_CLIENT_JOBS, VKR_DEFAULT_MAX_QUEUED_JOBS,
            VKR_BATCH_MAX_JOB_BYTES >> 10, VKR_DEFAULT_MAX_BATCH, VKR_MAX_BATCH_LIMIT);
}

/* Parse "123", "64K", "512M", "1G" into bytes; false if malformed or zero. */
static bool parse_bytes(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || s[0] == '-')
        return false;
    unsigned shift = 0;
    if (*end == 'K' || *end == 'k')
        shift = 10, end++;
    else if (*end == 'M' || *end == 'm')
        shift = 20, end++;
    else if (*end == 'G' || *end == 'g')
        shift = 30, end++;
    if (*end || v == 0 || v > (UINT64_MAX >> 2) >> shift)
        return false;
    *out = (uint64_t)v << shift;
    return true;
}

/* Parse seconds (decimals allowed) in 0..MAX_TIMEOUT_S into milliseconds; false if malformed. */
static bool parse_seconds(const char *s, uint64_t *ms)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v < 0.0 || v > MAX_TIMEOUT_S)
        return false;
    *ms = (uint64_t)llround(v * 1000.0);
    if (*ms == 0 && v > 0.0)
        *ms = 1;
    return true;
}

/* Parse octal permission bits 0600..0777 that keep the owner's read and write. */
static bool parse_mode(const char *s, unsigned *out)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(s, &end, 8);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v > 0777 || (v & 0600) != 0600)
        return false;
    *out = (unsigned)v;
    return true;
}

/* Serve as many connections as the hard descriptor limit allows (epoll has no FD_SETSIZE). */
static void raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rlim_t was = rl.rlim_cur;

        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
            vkr__log(VKR_LOG_DEBUG, "descriptor limit raised from %llu to %llu", (unsigned long long)was, (unsigned long long)rl.rlim_max);
    }
}

/* Parse a count in 1..max; false if malformed or out of range. */
static bool parse_count(const char *s, unsigned max, unsigned *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 1 || (unsigned long)v > max)
        return false;
    *out = (unsigned)v;
    return true;
}

/* The pipeline cache directory when --cache-dir is not given: $XDG_CACHE_HOME/vkresample (an
 * absolute XDG_CACHE_HOME only, as the XDG spec says), else $HOME/.cache/vkresample; false when
 * neither variable helps (no cache). */
static bool default_cache_dir(char *buf, size_t len)
{
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    int n;
    if (xdg && xdg[0] == '/')
        n = snprintf(buf, len, "%s/vkresample", xdg);
    else if (home && home[0] != '\0')
        n = snprintf(buf, len, "%s/.cache/vkresample", home);
    else
        return false;
    return n > 0 && (size_t)n < len;
}

static void default_socket_path(char *buf, size_t len)
{
    const char *env = getenv("VKRESAMPLE_SOCKET");
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    if (env && *env)
        snprintf(buf, len, "%s", env);
    else if (xdg && *xdg)
        snprintf(buf, len, "%s/vkresample.sock", xdg);
    else
        snprintf(buf, len, "/tmp/vkresample-%u.sock", (unsigned)getuid());
}

int main(int argc, char **argv)
{
    /* Job buffers are megabytes and come in bursts: give them their own mappings so that a burst's
     * memory goes back to the system when its jobs end (glibc would otherwise raise its mmap
     * threshold after the first free and keep later buffers in its heaps). */
    mallopt(M_MMAP_THRESHOLD, VKR_MMAP_THRESHOLD_BYTES);
    /* a hang-up (closed terminal, a service manager's "reload") never ends the daemon: ignored
     * from the first instant, logged by the server once it runs */
    signal(SIGHUP, SIG_IGN);
    enum { OPT_SOCKET = 256, OPT_BACKEND, OPT_DEVICE, OPT_MAX_JOB, OPT_VALIDATION, OPT_READY_FD, OPT_VERSION, OPT_WORKERS,
           OPT_MAX_CLIENT_JOBS, OPT_MAX_QUEUED_JOBS, OPT_MAX_QUEUE_BYTES, OPT_CACHE_DIR, OPT_SOCKET_MODE, OPT_SOCKET_GROUP,
           OPT_ALLOW_UID, OPT_ALLOW_GROUP, OPT_MAX_CONNECTIONS, OPT_MAX_CONNECTIONS_PER_UID, OPT_MAX_BYTES_PER_UID,
           OPT_IDLE_TIMEOUT, OPT_FRAME_TIMEOUT, OPT_MAX_BATCH, OPT_SHUTDOWN_TIMEOUT };
    static const struct option options[] = {
        {"socket", required_argument, 0, OPT_SOCKET},
        {"backend", required_argument, 0, OPT_BACKEND},
        {"device", required_argument, 0, OPT_DEVICE},
        {"max-job-bytes", required_argument, 0, OPT_MAX_JOB},
        {"vk-validation", no_argument, 0, OPT_VALIDATION},
        {"ready-fd", required_argument, 0, OPT_READY_FD},
        {"workers", required_argument, 0, OPT_WORKERS},
        {"max-client-jobs", required_argument, 0, OPT_MAX_CLIENT_JOBS},
        {"max-queued-jobs", required_argument, 0, OPT_MAX_QUEUED_JOBS},
        {"max-queue-bytes", required_argument, 0, OPT_MAX_QUEUE_BYTES},
        {"max-batch", required_argument, 0, OPT_MAX_BATCH},
        {"cache-dir", required_argument, 0, OPT_CACHE_DIR},
        {"socket-mode", required_argument, 0, OPT_SOCKET_MODE},
        {"socket-group", required_argument, 0, OPT_SOCKET_GROUP},
        {"allow-uid", required_argument, 0, OPT_ALLOW_UID},
        {"allow-group", required_argument, 0, OPT_ALLOW_GROUP},
        {"max-connections", required_argument, 0, OPT_MAX_CONNECTIONS},
        {"max-connections-per-uid", required_argument, 0, OPT_MAX_CONNECTIONS_PER_UID},
        {"max-bytes-per-uid", required_argument, 0, OPT_MAX_BYTES_PER_UID},
        {"idle-timeout", required_argument, 0, OPT_IDLE_TIMEOUT},
        {"frame-timeout", required_argument, 0, OPT_FRAME_TIMEOUT},
        {"shutdown-timeout", required_argument, 0, OPT_SHUTDOWN_TIMEOUT},
        {"verbose", no_argument, 0, 'v'},
        {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, OPT_VERSION},
        {0, 0, 0, 0},
    };
    char socket_path[4096];
    default_socket_path(socket_path, sizeof socket_path);
    char cache_dir[4096];
    vkr_server_config_t cfg = {.listen = {.path = socket_path, .mode = VKR_DEFAULT_SOCKET_MODE},
                               .max_job_bytes = VKR_DEFAULT_MAX_JOB_BYTES, .ready_fd = -1,
                               .workers = VKR_DEFAULT_WORKERS, .max_client_jobs = VKR_DEFAULT_MAX_CLIENT_JOBS,
                               .max_queued_jobs = VKR_DEFAULT_MAX_QUEUED_JOBS, .max_queue_bytes = VKR_DEFAULT_MAX_QUEUE_BYTES,
                               .max_connections = VKR_DEFAULT_MAX_CONNECTIONS,
                               .max_connections_per_uid = VKR_DEFAULT_MAX_CONNECTIONS_PER_UID,
                               .idle_timeout_ms = VKR_DEFAULT_IDLE_TIMEOUT_MS, .frame_timeout_ms = VKR_DEFAULT_FRAME_TIMEOUT_MS,
                               .shutdown_timeout_ms = VKR_DEFAULT_SHUTDOWN_TIMEOUT_MS};
    bool bytes_per_uid_set = false;
    char why[256];
    vkr_vulkan_options_t vk_opts = {.device_index = -1};
    if (default_cache_dir(cache_dir, sizeof cache_dir))
        vk_opts.cache_dir = cache_dir;
    int backend = VKR_BACKEND_AUTO;
    char *end;
    int opt;
    while ((opt = getopt_long(argc, argv, "vqh", options, NULL)) != -1) {
        switch (opt) {
        case OPT_SOCKET:
            snprintf(socket_path, sizeof socket_path, "%s", optarg);
            break;
        case OPT_BACKEND:
            if ((backend = vkr_proto_backend_from_name(optarg)) < 0) {
                fprintf(stderr, "vkresampled: --backend '%s': expected auto, vulkan or cpu\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case OPT_DEVICE:
            vk_opts.device_index = (int)strtol(optarg, &end, 10);
            if (*end || end == optarg || vk_opts.device_index < 0) {
                fprintf(stderr, "vkresampled: --device '%s': expected a device index >= 0\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case OPT_MAX_JOB:
            if (!parse_bytes(optarg, &cfg.max_job_bytes)) {
                fprintf(stderr, "vkresampled: --max-job-bytes '%s': expected a positive byte count (K/M/G suffix allowed)\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case OPT_VALIDATION:
            vk_opts.validation = true;
            break;
        case OPT_READY_FD:
            cfg.ready_fd = (int)strtol(optarg, &end, 10);
            if (*end || end == optarg || cfg.ready_fd < 0) {
                fprintf(stderr, "vkresampled: --ready-fd '%s': expected a file descriptor number\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case OPT_WORKERS:
            if (!parse_count(optarg, VKR_MAX_WORKERS, &cfg.workers)) {
                fprintf(stderr, "vkresampled: --workers '%s': expected 1..%u\n", optarg, VKR_MAX_WORKERS);
                return EXIT_USAGE;
            }
            break;
        case OPT_MAX_CLIENT_JOBS:
            if (!parse_count(optarg, UINT32_MAX >> 1, &cfg.max_client_jobs)) {
                fprintf(stderr, "vkresampled: --max-client-jobs '%s': expected a positive count\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case OPT_MAX_QUEUED_JOBS:
            if (!parse_count(optarg, UINT32_MAX >> 1, &cfg.max_queued_jobs)) {
                fprintf(stderr, "vkresampled: --max-queued-jobs '%s': expected a positive count\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case OPT_MAX_BATCH:
            if (!parse_count(optarg, VKR_MAX_BATCH_LIMIT, &cfg.max_batch)) {
                fprintf(stderr, "vkresampled: --max-batch '%s': expected a count from 1 to %u\n", optarg, VKR_MAX_BATCH_LIMIT);
                return EXIT_USAGE;
            }
            break;
        case OPT_MAX_QUEUE_BYTES:
            if (!parse_bytes(optarg, &cfg.max_queue_bytes)) {
                fprintf(stderr, "vkresampled: --max-queue-bytes '%s': expected a positive byte count (K/M/G suffix allowed)\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case OPT_CACHE_DIR:
            if (optarg[0] == '\0') {
                fprintf(stderr, "vkresampled: --cache-dir needs a non-empty path\n");
                return EXIT_USAGE;
            }
            vk_opts.cache_dir = optarg;
            break;
        case OPT_SOCKET_MODE:
            if (!parse_mode(optarg, &cfg.listen.mode)) {
                fprintf(stderr, "vkresampled: --socket-mode '%s': expected octal permission bits 0600..0777 (owner read and write kept)\n",
                        optarg);
                return EXIT_USAGE;
            }
            break;
        case OPT_SOCKET_GROUP:
            if (vkr__group_lookup(optarg, &cfg.listen.group) != 0) {
                fprintf(stderr, "vkresampled: --socket-group '%s': no such group\n", optarg);
                return EXIT_USAGE;
            }
            cfg.listen.set_group = true;
            break;
        case OPT_ALLOW_UID:
            if (vkr__allow_add_uids(&cfg.allow, optarg, why, sizeof why) != 0) {
                fprintf(stderr, "vkresampled: %s\n", why);
                return EXIT_USAGE;
            }
            break;
        case OPT_ALLOW_GROUP:
            if (vkr__allow_add_gids(&cfg.allow, optarg, why, sizeof why) != 0) {
                fprintf(stderr, "vkresampled: %s\n", why);
                return EXIT_USAGE;
            }
            break;
        case OPT_MAX_CONNECTIONS:
            if (!parse_count(optarg, 1u << 20, &cfg.max_connections)) {
                fprintf(stderr, "vkresampled: --max-connections '%s': expected 1..%u\n", optarg, 1u << 20);
                return EXIT_USAGE;
            }
            break;
        case OPT_MAX_CONNECTIONS_PER_UID:
            if (!parse_count(optarg, 1u << 20, &cfg.max_connections_per_uid)) {
                fprintf(stderr, "vkresampled: --max-connections-per-uid '%s': expected 1..%u\n", optarg, 1u << 20);
                return EXIT_USAGE;
            }
            break;
        case OPT_MAX_BYTES_PER_UID:
            if (!parse_bytes(optarg, &cfg.max_bytes_per_uid)) {
                fprintf(stderr, "vkresampled: --max-bytes-per-uid '%s': expected a positive byte count (K/M/G suffix allowed)\n", optarg);
                return EXIT_USAGE;
            }
            bytes_per_uid_set = true;
            break;
        case OPT_IDLE_TIMEOUT:
            if (!parse_seconds(optarg, &cfg.idle_timeout_ms)) {
                fprintf(stderr, "vkresampled: --idle-timeout '%s': expected seconds, 0..%g (0: off)\n", optarg, MAX_TIMEOUT_S);
                return EXIT_USAGE;
            }
            break;
        case OPT_FRAME_TIMEOUT:
            if (!parse_seconds(optarg, &cfg.frame_timeout_ms)) {
                fprintf(stderr, "vkresampled: --frame-timeout '%s': expected seconds, 0..%g (0: off)\n", optarg, MAX_TIMEOUT_S);
                return EXIT_USAGE;
            }
            break;
        case OPT_SHUTDOWN_TIMEOUT:
            if (!parse_seconds(optarg, &cfg.shutdown_timeout_ms)) {
                fprintf(stderr, "vkresampled: --shutdown-timeout '%s': expected seconds, 0..%g\n", optarg, MAX_TIMEOUT_S);
                return EXIT_USAGE;
            }
            break;
        case 'v': vkr__log_level = VKR_LOG_DEBUG; break;
        case 'q': vkr__log_level = VKR_LOG_ERROR; break;
        case 'h': usage(stdout); return 0;
        case OPT_VERSION: printf("vkresampled %s (protocol %u)\n", VKR_VERSION, VKR_PROTO_VERSION); return 0;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "vkresampled: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return EXIT_USAGE;
    }

    /* the daemon's own uid may always connect (root only when it is that uid) */
    if (cfg.allow.n_uids >= VKR__MAX_ALLOW_IDS) {
        fprintf(stderr, "vkresampled: --allow-uid: more than %u uids with the daemon's own\n", VKR__MAX_ALLOW_IDS - 1);
        return EXIT_USAGE;
    }
    cfg.allow.uids[cfg.allow.n_uids++] = geteuid();
    if (!bytes_per_uid_set)
        cfg.max_bytes_per_uid = vkr__default_bytes_per_uid(cfg.max_queue_bytes, cfg.max_job_bytes);
    raise_nofile();

    /* libuv sizes its thread pool from the environment when it first queues work */
    char workers[16];
    snprintf(workers, sizeof workers, "%u", cfg.workers);
    setenv("UV_THREADPOOL_SIZE", workers, 1);

    /* The socket first: its lock, then the path (issue 11).  A second daemon on a busy socket
     * fails here, before any backend starts (no Vulkan instance, no pipeline cache written). */
    vkr__listener_t listener;
    if (vkr__listen_open(&cfg.listen, &listener) < 0)
        return 1;
    cfg.listener = &listener;

    vkr_error_t err;
    int status = 1;
    if (vkr__backend_cpu_create(&cfg.cpu, &err)) {
        vkr__log(VKR_LOG_ERROR, "cpu backend: %s", err.message);
        vkr__listen_close(&listener);
        return 1;
    }
    if (backend != VKR_BACKEND_CPU) {
#ifdef VKR_HAVE_VULKAN
        if (vkr__backend_vulkan_create(&vk_opts, &cfg.vulkan, &err)) {
            cfg.vulkan = NULL;
            vkr__log(backend == VKR_BACKEND_VULKAN ? VKR_LOG_ERROR : VKR_LOG_WARN, "vulkan backend: %s", err.message);
        }
#else
        vkr__log(backend == VKR_BACKEND_VULKAN ? VKR_LOG_ERROR : VKR_LOG_WARN, "vulkan backend: not built into this daemon");
#endif
        if (!cfg.vulkan && backend == VKR_BACKEND_VULKAN)
            goto out;
        if (!cfg.vulkan)
            vkr__log(VKR_LOG_WARN, "--backend auto: no usable Vulkan device, serving on the CPU");
    }
    cfg.default_backend = cfg.vulkan ? VKR_BACKEND_VULKAN : VKR_BACKEND_CPU;
    status = vkr__server_run(&cfg);
    if (cfg.vulkan && cfg.vulkan->validation_messages(cfg.vulkan) > 0) {
        vkr__log(VKR_LOG_ERROR, "vulkan validation reported %u message(s)", cfg.vulkan->validation_messages(cfg.vulkan));
        if (status == 0)
            status = EXIT_VALIDATION;
    }
out:
    vkr__listen_close(&listener);   /* nothing when the server took it (and closed it) */
    if (cfg.vulkan)
        cfg.vulkan->destroy(cfg.vulkan);
    cfg.cpu->destroy(cfg.cpu);
    return status;
}
