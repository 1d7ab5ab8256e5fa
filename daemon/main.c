/* vkresampled: command line, backend set-up and the exit status.  The serving itself is
 * server.c's (and its helpers conn.c, queue.c, memfd.c, stats.c, listen.c); the backends are
 * backend_cpu.c and backend_vulkan.c. */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "log.h"
#include "server.h"

#define EXIT_USAGE 2
#define VKR_MMAP_THRESHOLD_BYTES (256 * 1024) /* allocations from this size on are their own mappings */
#define EXIT_VALIDATION 3

static void usage(FILE *to)
{
    fprintf(to,
            "usage: vkresampled [OPTIONS]\n"
            "Serve PyTorch-exact F.interpolate, F.grid_sample and F.affine_grid jobs over a Unix\n"
            "socket, on Vulkan or the CPU.\n"
            "\n"
            "  --socket PATH         socket to listen on; default $VKRESAMPLE_SOCKET, else\n"
            "                        $XDG_RUNTIME_DIR/vkresample.sock, else /tmp/vkresample-$UID.sock.\n"
            "                        Created with mode 0600; a stale socket file is replaced,\n"
            "                        one with a live daemon behind it is refused.  Under systemd\n"
            "                        socket activation (LISTEN_FDS=1, LISTEN_PID = this process)\n"
            "                        the socket passed as fd 3 is served instead.\n"
            "  --backend B           auto (default): Vulkan when a device works, else the CPU;\n"
            "                        vulkan: fail to start without a Vulkan device (CPU jobs are\n"
            "                        still served when a job asks for them); cpu: never touch Vulkan.\n"
            "                        Jobs whose backend is 'auto' run on the default one.\n"
            "  --device N            use Vulkan physical device N (default: discrete > integrated >\n"
            "                        virtual > CPU-type)\n"
            "  --max-job-bytes N     largest input or output tensor in bytes, K/M/G suffixes allowed\n"
            "                        (default 1G)\n"
            "  --workers N           jobs that run at once, on that many threads (default %u, 1..%u)\n"
            "  --max-client-jobs N   jobs one connection may have in flight: queued, running or with\n"
            "                        a reply not yet written (default %u); one more gets VKR_E_BUSY\n"
            "  --max-queued-jobs N   jobs in flight in the whole daemon (default %u); VKR_E_BUSY past it\n"
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
            "SIGTERM or SIGINT: stop accepting and reading, finish every job already admitted,\n"
            "remove the socket (unless systemd handed it over), exit 0.\n"
            "Exit status: 0 clean stop, 1 start-up failure, 2 usage error, 3 validation messages seen.\n",
            VKR_DEFAULT_WORKERS, VKR_MAX_WORKERS, VKR_DEFAULT_MAX_CLIENT_JOBS, VKR_DEFAULT_MAX_QUEUED_JOBS);
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
    enum { OPT_SOCKET = 256, OPT_BACKEND, OPT_DEVICE, OPT_MAX_JOB, OPT_VALIDATION, OPT_READY_FD, OPT_VERSION, OPT_WORKERS,
           OPT_MAX_CLIENT_JOBS, OPT_MAX_QUEUED_JOBS, OPT_MAX_QUEUE_BYTES, OPT_CACHE_DIR };
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
        {"cache-dir", required_argument, 0, OPT_CACHE_DIR},
        {"verbose", no_argument, 0, 'v'},
        {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, OPT_VERSION},
        {0, 0, 0, 0},
    };
    char socket_path[4096];
    default_socket_path(socket_path, sizeof socket_path);
    char cache_dir[4096];
    vkr_server_config_t cfg = {.socket_path = socket_path, .max_job_bytes = VKR_DEFAULT_MAX_JOB_BYTES, .ready_fd = -1,
                               .workers = VKR_DEFAULT_WORKERS, .max_client_jobs = VKR_DEFAULT_MAX_CLIENT_JOBS,
                               .max_queued_jobs = VKR_DEFAULT_MAX_QUEUED_JOBS, .max_queue_bytes = VKR_DEFAULT_MAX_QUEUE_BYTES};
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

    /* libuv sizes its thread pool from the environment when it first queues work */
    char workers[16];
    snprintf(workers, sizeof workers, "%u", cfg.workers);
    setenv("UV_THREADPOOL_SIZE", workers, 1);

    vkr_error_t err;
    int status = 1;
    if (vkr__backend_cpu_create(&cfg.cpu, &err)) {
        vkr__log(VKR_LOG_ERROR, "cpu backend: %s", err.message);
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
    if (cfg.vulkan)
        cfg.vulkan->destroy(cfg.vulkan);
    cfg.cpu->destroy(cfg.cpu);
    return status;
}
