/* The vkresample command-line tool: parses the command line, reads and writes .npy files and
 * runs jobs through the public client library (vkresample.h) only; it never lays out a frame.
 * Exit status: 0 done, 1 the job was refused or failed (message on stderr, no output file),
 * 2 usage error (a malformed command line). */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "npy.h"
#include "vkresample.h"

enum { EXIT_DONE = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

static const char *const mode_list =
    "nearest, nearest-exact, linear, bilinear, bicubic, trilinear, area";

static void usage_main(FILE *f)
{
    fprintf(f,
            "Usage: vkresample [--socket PATH] COMMAND [ARGS...]\n"
            "\n"
            "Run PyTorch-exact resampling jobs on the vkresampled daemon.\n"
            "\n"
            "Commands:\n"
            "  interpolate IN.npy OUT.npy --mode M (--size LIST | --scale-factor LIST) [OPTIONS]\n"
            "                 torch.nn.functional.interpolate on a float32 .npy array\n"
            "  grid-sample IN.npy GRID.npy OUT.npy [--mode M] [--padding-mode P] [OPTIONS]\n"
            "                 torch.nn.functional.grid_sample\n"
            "  affine-grid THETA.npy OUT.npy --size N,C,H,W[,...] [OPTIONS]\n"
            "                 torch.nn.functional.affine_grid\n"
            "  affine-sample IN.npy THETA.npy OUT.npy --size H,W[,...] [OPTIONS]\n"
            "                 grid_sample(IN, affine_grid(THETA, ...)) in one job\n"
            "  ping           show the daemon's device and backends\n"
            "  stats [--json] show the daemon's counters: jobs per op and backend, queue,\n"
            "                 latency, bytes, device, uptime\n"
            "\n"
            "Options:\n"
            "  --socket PATH  the daemon's socket (default: $VKRESAMPLE_SOCKET, else\n"
            "                 $XDG_RUNTIME_DIR/vkresample.sock, else /tmp/vkresample-$UID.sock)\n"
            "  -h, --help     show this help; 'vkresample COMMAND --help' shows a command's\n"
            "\n"
            "Exit status: 0 done, 1 the job was refused or failed, 2 usage error.\n");
}

static void usage_interpolate(FILE *f)
{
    fprintf(f,
            "Usage: vkresample [--socket PATH] interpolate IN.npy OUT.npy --mode M\n"
            "                  (--size a[,b[,c]] | --scale-factor s[,t[,u]])\n"
            "                  [--align-corners | --no-align-corners] [--recompute-scale-factor]\n"
            "                  [--antialias] [--backend auto|vulkan|cpu]\n"
            "\n"
            "torch.nn.functional.interpolate(IN, ...) on the daemon; the result goes to OUT.npy.\n"
            "IN.npy holds a little-endian float32 ('<f4') array in C order, (N, C, W), (N, C, H, W)\n"
            "or (N, C, D, H, W).  Options mirror PyTorch's keyword arguments:\n"
            "  --mode M                  %s\n"
            "  --size a[,b[,c]]          output size; one value applies to every spatial axis\n"
            "  --scale-factor s[,t[,u]]  multiplier per spatial axis; one value applies to all\n"
            "  --align-corners           align_corners=True (default None)\n"
            "  --no-align-corners        align_corners=False\n"
            "  --recompute-scale-factor  recompute_scale_factor=True (default None)\n"
            "  --antialias               antialias=True\n"
            "  --backend B               auto (default), vulkan or cpu\n"
            "  -h, --help                show this help\n"
            "Arguments PyTorch refuses (both --size and --scale-factor, a wrong count, ...) are\n"
            "refused by the daemon with PyTorch's message: exit status 1, no OUT.npy written.\n",
            mode_list);
}

static const char *const grid_mode_list = "bilinear, nearest, bicubic";
static const char *const padding_list = "zeros, border, reflection";

static void usage_grid_sample(FILE *f)
{
    fprintf(f,
            "Usage: vkresample [--socket PATH] grid-sample IN.npy GRID.npy OUT.npy\n"
            "                  [--mode M] [--padding-mode P] [--align-corners | --no-align-corners]\n"
            "                  [--backend auto|vulkan|cpu]\n"
            "\n"
            "torch.nn.functional.grid_sample(IN, GRID, ...) on the daemon; the result goes to OUT.npy.\n"
            "IN is (N, C, H, W) with GRID (N, Ho, Wo, 2), or (N, C, D, H, W) with GRID\n"
            "(N, Do, Ho, Wo, 3); both little-endian float32 ('<f4') in C order.  OUT is\n"
            "(N, C, Ho, Wo) or (N, C, Do, Ho, Wo).  Options mirror PyTorch's keyword arguments:\n"
            "  --mode M              %s (default bilinear)\n"
            "  --padding-mode P      %s (default zeros)\n"
            "  --align-corners       align_corners=True (default None, which means False)\n"
            "  --no-align-corners    align_corners=False\n"
            "  --backend B           auto (default), vulkan or cpu\n"
            "  -h, --help            show this help\n"
            "Arguments PyTorch refuses are refused by the daemon with PyTorch's message: exit\n"
            "status 1, no OUT.npy written.\n",
            grid_mode_list, padding_list);
}

static void usage_affine_grid(FILE *f)
{
    fprintf(f,
            "Usage: vkresample [--socket PATH] affine-grid THETA.npy OUT.npy --size N,C,H,W[,...]\n"
            "                  [--align-corners | --no-align-corners] [--backend auto|vulkan|cpu]\n"
            "\n"
            "torch.nn.functional.affine_grid(THETA, size, ...) on the daemon; the grid goes to\n"
            "OUT.npy.  THETA is little-endian float32 ('<f4'), (N, 2, 3) for a 2-D size or\n"
            "(N, 3, 4) for a 3-D one.\n"
            "  --size N,C,H,W        the 2-D output size, as PyTorch takes it; OUT is (N, H, W, 2)\n"
            "  --size N,C,D,H,W      the 3-D output size; OUT is (N, D, H, W, 3)\n"
            "  --align-corners       align_corners=True (default None, which means False)\n"
            "  --no-align-corners    align_corners=False\n"
            "  --backend B           auto (default), vulkan or cpu\n"
            "  -h, --help            show this help\n"
            "A size PyTorch refuses (not 4 or 5 values, a non-positive extent, a THETA of the\n"
            "wrong shape) is refused with PyTorch's message: exit status 1, no OUT.npy written.\n");
}

static void usage_affine_sample(FILE *f)
{
    fprintf(f,
            "Usage: vkresample [--socket PATH] affine-sample IN.npy THETA.npy OUT.npy --size H,W[,...]\n"
            "                  [--mode M] [--padding-mode P] [--align-corners | --no-align-corners]\n"
            "                  [--backend auto|vulkan|cpu]\n"
            "\n"
            "grid_sample(IN, affine_grid(THETA, (N, C) + size, align_corners), mode, padding_mode,\n"
            "align_corners) as one job on the daemon (the grid never crosses the socket); the\n"
            "result goes to OUT.npy.  IN is (N, C, H, W) with THETA (N, 2, 3), or (N, C, D, H, W)\n"
            "with THETA (N, 3, 4); both little-endian float32 ('<f4').\n"
            "  --size H,W            output spatial size of a 4-D IN; OUT is (N, C, H, W)\n"
            "  --size D,H,W          output spatial size of a 5-D IN; OUT is (N, C, D, H, W)\n"
            "  --mode M              %s (default bilinear)\n"
            "  --padding-mode P      %s (default zeros)\n"
            "  --align-corners       align_corners=True (default None, which means False)\n"
            "  --no-align-corners    align_corners=False\n"
            "  --backend B           auto (default), vulkan or cpu\n"
            "  -h, --help            show this help\n"
            "Arguments PyTorch refuses are refused by the daemon with PyTorch's message: exit\n"
            "status 1, no OUT.npy written.\n",
            grid_mode_list, padding_list);
}

static void usage_stats(FILE *f)
{
    fprintf(f,
            "Usage: vkresample [--socket PATH] stats [--json]\n"
            "\n"
            "Ask the daemon for its counters: jobs done / failed / in flight per op and backend,\n"
            "jobs queued and running, p50 / p99 latency (request read to reply queued, over the\n"
            "last 4096 jobs), bytes in and out (socket and memfd), refusals (busy, cancelled,\n"
            "other), connections refused at accept or timed out, accept pauses, whether the\n"
            "Vulkan device was lost and how many jobs moved to the CPU, open connections,\n"
            "workers, device name and uptime.\n"
            "  --json       print one JSON object instead of text\n"
            "  -h, --help   show this help\n");
}

static void usage_ping(FILE *f)
{
    fprintf(f,
            "Usage: vkresample [--socket PATH] ping\n"
            "\n"
            "Ask the daemon for its device name, the backends it serves and its default backend.\n"
            "  -h, --help   show this help\n");
}

__attribute__((format(printf, 2, 3)))
static int usage_error(const char *command, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "vkresample: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'vkresample %s%s--help'.\n", command ? command : "", command ? " " : "");
    return EXIT_USAGE;
}

/* If argv[*i] is the option `name` ("--name" or "--name=VALUE"): returns 1 with *value set
 * (from "=VALUE", or argv[*i + 1] with *i advanced), or -1 when the value is missing.
 * Returns 0 when argv[*i] is another argument. */
static int take_option(int argc, char **argv, int *i, const char *name, const char **value)
{
    const char *arg = argv[*i];
    size_t n = strlen(name);

    if (strncmp(arg, name, n) != 0)
        return 0;
    if (arg[n] == '=') {
        *value = arg + n + 1;
        return 1;
    }
    if (arg[n] != '\0')
        return 0;
    if (*i + 1 >= argc)
        return -1;
    *value = argv[++*i];
    return 1;
}

/* If argv[i] is the flag `name`: 1; "--name=..." is -1 (a flag takes no value); else 0. */
static int take_flag(const char *arg, const char *name)
{
    size_t n = strlen(name);

    if (strncmp(arg, name, n) != 0)
        return 0;
    if (arg[n] == '\0')
        return 1;
    return arg[n] == '=' ? -1 : 0;
}

/* "a[,b[,...]]" of at most max integers.  Returns the count (1..max), or 0 when malformed. */
static int parse_int_list(const char *s, int64_t *out, int max)
{
    int n = 0;

    for (;;) {
        char *end;
        long long v;

        if (n == max || *s == '\0' || *s == ',' || *s == ' ')
            return 0;
        errno = 0;
        v = strtoll(s, &end, 10);
        if (end == s || errno == ERANGE)
            return 0;
        out[n++] = (int64_t)v;
        if (*end == '\0')
            return n;
        if (*end != ',')
            return 0;
        s = end + 1;
    }
}

/* "s[,t[,u]]" of floating-point numbers.  Returns the count (1..3), or 0 when malformed. */
static int parse_double_list(const char *s, double out[VKR_INTERP_MAX_SPATIAL])
{
    int n = 0;

    for (;;) {
        char *end;
        double v;

        if (n == VKR_INTERP_MAX_SPATIAL || *s == '\0' || *s == ',' || *s == ' ')
            return 0;
        errno = 0;
        v = strtod(s, &end);
        if (end == s)
            return 0;
        out[n++] = v;
        if (*end == '\0')
            return n;
        if (*end != ',')
            return 0;
        s = end + 1;
    }
}

/* Connect to the daemon, reporting a failure on stderr.  Returns EXIT_DONE or EXIT_FAILED. */
static int connect_daemon(const char *socket_path, vkr_client_t **c)
{
    char def[VKR_SOCKET_PATH_MAX + 256];
    int rc;

    if (socket_path == NULL) {
        if (vkr_default_socket_path(def, sizeof def) != VKR_OK) {
            fprintf(stderr, "vkresample: the default socket path is too long\n");
            return EXIT_FAILED;
        }
        socket_path = def;
    }
    rc = vkr_connect(socket_path, c);
    if (rc != VKR_OK) {
        fprintf(stderr, "vkresample: cannot connect to the daemon at %s: %s\n", socket_path,
                rc == VKR_E_IO || rc == VKR_E_INVALID_ARG ? strerror(errno) : vkr_strerror(rc));
        return EXIT_FAILED;
    }
    return EXIT_DONE;
}

static void report_failure(const char *what, vkr_client_t *c, int rc)
{
    const char *detail = vkr_last_error(c);

    fprintf(stderr, "vkresample: %s: %s: %s\n", what, vkr_code_name(rc),
            detail[0] != '\0' ? detail : vkr_strerror(rc));
}

/* Write the array to a temporary file beside path, then rename it over path: path never holds
 * a partial file.  Returns EXIT_DONE or EXIT_FAILED with a message on stderr. */
static int write_output(const char *path, const vkr_tensor_t *t)
{
    char msg[VKR__NPY_ERROR_MAX];
    char *tmp = NULL;
    FILE *f = NULL;
    mode_t mask;
    int fd = -1, rc = EXIT_FAILED;
    size_t len = strlen(path);

    tmp = malloc(len + sizeof ".tmp.XXXXXX");
    if (tmp == NULL) {
        fprintf(stderr, "vkresample: %s: out of memory\n", path);
        goto out;
    }
    memcpy(tmp, path, len);
    memcpy(tmp + len, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");
    fd = mkstemp(tmp);
    if (fd < 0) {
        fprintf(stderr, "vkresample: cannot create a temporary file beside %s: %s\n", path,
                strerror(errno));
        free(tmp);
        tmp = NULL;
        goto out;
    }
    mask = umask(0);
    umask(mask);
    if (fchmod(fd, 0666 & ~mask) != 0) {
        fprintf(stderr, "vkresample: %s: %s\n", tmp, strerror(errno));
        goto out;
    }
    f = fdopen(fd, "wb");
    if (f == NULL) {
        fprintf(stderr, "vkresample: %s: %s\n", tmp, strerror(errno));
        goto out;
    }
    fd = -1;
    if (vkr__npy_write(f, t->data, t->rank, t->shape, msg, sizeof msg) != VKR__NPY_OK) {
        fprintf(stderr, "vkresample: %s: %s\n", path, msg);
        goto out;
    }
    if (fflush(f) != 0 || ferror(f)) {
        fprintf(stderr, "vkresample: %s: %s\n", path, strerror(errno));
        goto out;
    }
    if (fclose(f) != 0) {
        f = NULL;
        fprintf(stderr, "vkresample: %s: %s\n", path, strerror(errno));
        goto out;
    }
    f = NULL;
    if (rename(tmp, path) != 0) {
        fprintf(stderr, "vkresample: cannot rename %s to %s: %s\n", tmp, path, strerror(errno));
        goto out;
    }
    free(tmp);
    tmp = NULL;
    rc = EXIT_DONE;

out:
    if (f != NULL)
        fclose(f);
    if (fd >= 0)
        close(fd);
    if (tmp != NULL) {
        unlink(tmp);
        free(tmp);
    }
    return rc;
}

/* Fail early, before the daemon works, when OUT's directory cannot take the file. */
static int check_output_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir;
    int ok;

    if (slash == NULL)
        return access(".", W_OK | X_OK) == 0 ? 0 : -1;
    if (slash == path)
        return access("/", W_OK | X_OK) == 0 ? 0 : -1;
    dir = strndup(path, (size_t)(slash - path));
    if (dir == NULL)
        return 0;   /* let the write report it */
    ok = access(dir, W_OK | X_OK) == 0;
    free(dir);
    return ok ? 0 : -1;
}

static int cmd_interpolate(const char *socket_path, int argc, char **argv)
{
    vkr_interpolate_args_t args;
    vkr__npy_array_t in_arr;
    vkr_tensor_t in, out;
    vkr_client_t *c = NULL;
    char msg[VKR__NPY_ERROR_MAX];
    const char *pos[2] = {NULL, NULL};
    const char *value;
    int n_pos = 0, i, r, rc;
    bool have_mode = false, options_done = false;

    memset(&args, 0, sizeof args);
    memset(&in_arr, 0, sizeof in_arr);
    memset(&out, 0, sizeof out);
    args.backend = VKR_BACKEND_AUTO;

    for (i = 0; i < argc; i++) {
        const char *arg = argv[i];

        if (options_done || arg[0] != '-' || arg[1] == '\0') {
            if (n_pos == 2)
                return usage_error("interpolate", "interpolate: unexpected argument '%s' "
                                   "(takes IN.npy OUT.npy)", arg);
            pos[n_pos++] = arg;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            options_done = true;
            continue;
        }
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            usage_interpolate(stdout);
            return EXIT_DONE;
        }
        if ((r = take_option(argc, argv, &i, "--mode", &value)) != 0) {
            int mode;

            if (r < 0)
                return usage_error("interpolate", "option --mode needs a value (%s)", mode_list);
            mode = vkr_mode_from_name(value);
            if (mode < 0)
                return usage_error("interpolate", "--mode '%s' is not one of %s", value, mode_list);
            args.mode = (vkr_mode_t)mode;
            have_mode = true;
        } else if ((r = take_option(argc, argv, &i, "--size", &value)) != 0) {
            if (r < 0)
                return usage_error("interpolate", "option --size needs a value a[,b[,c]]");
            args.n_size = parse_int_list(value, args.size, VKR_INTERP_MAX_SPATIAL);
            if (args.n_size == 0)
                return usage_error("interpolate", "--size '%s' is not 1 to 3 comma-separated "
                                   "integers", value);
        } else if ((r = take_option(argc, argv, &i, "--scale-factor", &value)) != 0) {
            if (r < 0)
                return usage_error("interpolate", "option --scale-factor needs a value s[,t[,u]]");
            args.n_scale = parse_double_list(value, args.scale_factor);
            if (args.n_scale == 0)
                return usage_error("interpolate", "--scale-factor '%s' is not 1 to 3 "
                                   "comma-separated numbers", value);
        } else if ((r = take_option(argc, argv, &i, "--backend", &value)) != 0) {
            int backend;

            if (r < 0)
                return usage_error("interpolate", "option --backend needs a value (auto, vulkan, cpu)");
            backend = vkr_backend_from_name(value);
            if (backend < 0)
                return usage_error("interpolate", "--backend '%s' is not one of auto, vulkan, cpu",
                                   value);
            args.backend = (vkr_backend_id_t)backend;
        } else if ((r = take_flag(arg, "--align-corners")) != 0) {
            if (r < 0)
                return usage_error("interpolate", "option --align-corners takes no value");
            args.align_corners = VKR_OPT_TRUE;
        } else if ((r = take_flag(arg, "--no-align-corners")) != 0) {
            if (r < 0)
                return usage_error("interpolate", "option --no-align-corners takes no value");
            args.align_corners = VKR_OPT_FALSE;
        } else if ((r = take_flag(arg, "--recompute-scale-factor")) != 0) {
            if (r < 0)
                return usage_error("interpolate", "option --recompute-scale-factor takes no value");
            args.recompute_scale_factor = VKR_OPT_TRUE;
        } else if ((r = take_flag(arg, "--antialias")) != 0) {
            if (r < 0)
                return usage_error("interpolate", "option --antialias takes no value");
            args.antialias = 1;
        } else {
            return usage_error("interpolate", "interpolate: unknown option '%s'", arg);
        }
    }
    if (n_pos < 2)
        return usage_error("interpolate", "interpolate: missing %s", n_pos == 0 ? "IN.npy and OUT.npy"
                           : "OUT.npy");
    if (!have_mode)
        return usage_error("interpolate", "interpolate: --mode is required (%s)", mode_list);
    /* Neither or both of --size and --scale-factor: PyTorch's ValueError, from the daemon. */

    rc = vkr__npy_read_file(pos[0], UINT64_MAX, &in_arr, msg, sizeof msg);
    if (rc != VKR__NPY_OK) {
        fprintf(stderr, "vkresample: %s\n", msg);
        rc = EXIT_FAILED;
        goto out;
    }
    if (check_output_dir(pos[1]) != 0) {
        fprintf(stderr, "vkresample: %s: cannot write in its directory: %s\n", pos[1],
                strerror(errno));
        rc = EXIT_FAILED;
        goto out;
    }
    rc = connect_daemon(socket_path, &c);
    if (rc != EXIT_DONE)
        goto out;

    memset(&in, 0, sizeof in);
    in.rank = in_arr.rank;
    memcpy(in.shape, in_arr.shape, sizeof in.shape);
    in.data = in_arr.data;
    r = vkr_interpolate(c, &args, &in, &out);
    if (r != VKR_OK) {
        report_failure("interpolate", c, r);
        rc = EXIT_FAILED;
        goto out;
    }
    rc = write_output(pos[1], &out);

out:
    vkr_tensor_free(&out);
    vkr_close(c);
    vkr__npy_free(&in_arr);
    return rc;
}

/* ---------------------------------------------------------------- grid-sample, affine-grid, affine-sample */

/* What one of the grid commands takes besides its positional files. */
typedef struct {
    const char *name;              /* "grid-sample", ... */
    const char *files;             /* "IN.npy GRID.npy OUT.npy", for messages */
    int n_files;                   /* positional arguments, the output last */
    bool takes_mode;               /* --mode and --padding-mode */
    int max_size;                  /* 0: no --size; else it is required with 1..max_size values */
    const char *size_form;         /* "N,C,H,W[,D]", for messages */
    void (*usage)(FILE *f);
} grid_command_t;

/* A grid command's parsed command line. */
typedef struct {
    const char *files[3];
    int mode, padding;             /* 0: PyTorch's default */
    vkr_opt_bool_t align_corners;
    vkr_backend_id_t backend;
    int n_size;
    int64_t size[VKR_AFFINE_GRID_MAX_SIZE];
} grid_options_t;

#define PARSE_GO_ON (-1)

/* Parse a grid command's arguments into *o.  Returns PARSE_GO_ON, or the exit status to return
 * at once (EXIT_DONE after --help, EXIT_USAGE with a message on stderr). */
static int parse_grid_command(const grid_command_t *cmd, int argc, char **argv, grid_options_t *o)
{
    const char *value;
    bool options_done = false, have_size = false;
    int n_files = 0, i, r;

    memset(o, 0, sizeof *o);
    o->backend = VKR_BACKEND_AUTO;
    for (i = 0; i < argc; i++) {
        const char *arg = argv[i];

        if (options_done || arg[0] != '-' || arg[1] == '\0') {
            if (n_files == cmd->n_files)
                return usage_error(cmd->name, "%s: unexpected argument '%s' (takes %s)", cmd->name,
                                   arg, cmd->files);
            o->files[n_files++] = arg;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            options_done = true;
            continue;
        }
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            cmd->usage(stdout);
            return EXIT_DONE;
        }
        if (cmd->takes_mode && (r = take_option(argc, argv, &i, "--mode", &value)) != 0) {
            if (r < 0)
                return usage_error(cmd->name, "option --mode needs a value (%s)", grid_mode_list);
            o->mode = vkr_grid_mode_from_name(value);
            if (o->mode < 0)
                return usage_error(cmd->name, "--mode '%s' is not one of %s", value, grid_mode_list);
        } else if (cmd->takes_mode && (r = take_option(argc, argv, &i, "--padding-mode", &value)) != 0) {
            if (r < 0)
                return usage_error(cmd->name, "option --padding-mode needs a value (%s)", padding_list);
            o->padding = vkr_padding_from_name(value);
            if (o->padding < 0)
                return usage_error(cmd->name, "--padding-mode '%s' is not one of %s", value,
                                   padding_list);
        } else if (cmd->max_size > 0 && (r = take_option(argc, argv, &i, "--size", &value)) != 0) {
            if (r < 0)
                return usage_error(cmd->name, "option --size needs a value %s", cmd->size_form);
            o->n_size = parse_int_list(value, o->size, cmd->max_size);
            if (o->n_size == 0)
                return usage_error(cmd->name, "--size '%s' is not 1 to %d comma-separated integers "
                                   "(%s)", value, cmd->max_size, cmd->size_form);
            have_size = true;
        } else if ((r = take_option(argc, argv, &i, "--backend", &value)) != 0) {
            int backend;

            if (r < 0)
                return usage_error(cmd->name, "option --backend needs a value (auto, vulkan, cpu)");
            backend = vkr_backend_from_name(value);
            if (backend < 0)
                return usage_error(cmd->name, "--backend '%s' is not one of auto, vulkan, cpu", value);
            o->backend = (vkr_backend_id_t)backend;
        } else if ((r = take_flag(arg, "--align-corners")) != 0) {
            if (r < 0)
                return usage_error(cmd->name, "option --align-corners takes no value");
            o->align_corners = VKR_OPT_TRUE;
        } else if ((r = take_flag(arg, "--no-align-corners")) != 0) {
            if (r < 0)
                return usage_error(cmd->name, "option --no-align-corners takes no value");
            o->align_corners = VKR_OPT_FALSE;
        } else {
            return usage_error(cmd->name, "%s: unknown option '%s'", cmd->name, arg);
        }
    }
    if (n_files < cmd->n_files)
        return usage_error(cmd->name, "%s: expected %s, got %d file name(s)", cmd->name, cmd->files,
                           n_files);
    if (cmd->max_size > 0 && !have_size)
        return usage_error(cmd->name, "%s: --size %s is required", cmd->name, cmd->size_form);
    return PARSE_GO_ON;
}

static const grid_command_t grid_sample_command = {
    "grid-sample", "IN.npy GRID.npy OUT.npy", 3, true, 0, "", usage_grid_sample};
static const grid_command_t affine_grid_command = {
    "affine-grid", "THETA.npy OUT.npy", 2, false, VKR_AFFINE_GRID_MAX_SIZE, "N,C,H,W or N,C,D,H,W",
    usage_affine_grid};
static const grid_command_t affine_sample_command = {
    "affine-sample", "IN.npy THETA.npy OUT.npy", 3, true, VKR_INTERP_MAX_SPATIAL, "H,W or D,H,W",
    usage_affine_sample};

/* Run one grid command: read its inputs, run the job, write OUT.  Returns the exit status. */
static int cmd_grid(const grid_command_t *cmd, const char *socket_path, int argc, char **argv)
{
    vkr__npy_array_t arr[2];
    vkr_tensor_t in[2], out;
    grid_options_t o;
    vkr_client_t *c = NULL;
    char msg[VKR__NPY_ERROR_MAX];
    const char *out_path;
    int n_in, k, r, rc;

    memset(arr, 0, sizeof arr);
    memset(in, 0, sizeof in);
    memset(&out, 0, sizeof out);
    rc = parse_grid_command(cmd, argc, argv, &o);
    if (rc != PARSE_GO_ON)
        return rc;
    n_in = cmd->n_files - 1;
    out_path = o.files[n_in];

    for (k = 0; k < n_in; k++) {
        r = vkr__npy_read_file(o.files[k], UINT64_MAX, &arr[k], msg, sizeof msg);
        if (r != VKR__NPY_OK) {
            fprintf(stderr, "vkresample: %s\n", msg);
            rc = EXIT_FAILED;
            goto out;
        }
        in[k].rank = arr[k].rank;
        memcpy(in[k].shape, arr[k].shape, sizeof in[k].shape);
        in[k].data = arr[k].data;
    }
    if (check_output_dir(out_path) != 0) {
        fprintf(stderr, "vkresample: %s: cannot write in its directory: %s\n", out_path,
                strerror(errno));
        rc = EXIT_FAILED;
        goto out;
    }
    rc = connect_daemon(socket_path, &c);
    if (rc != EXIT_DONE)
        goto out;

    if (cmd == &grid_sample_command) {
        vkr_grid_sample_args_t a = {(vkr_grid_mode_t)o.mode, (vkr_padding_t)o.padding,
                                    o.align_corners, o.backend};

        r = vkr_grid_sample(c, &a, &in[0], &in[1], &out);
    } else if (cmd == &affine_grid_command) {
        vkr_affine_grid_args_t a;

        memset(&a, 0, sizeof a);
        a.n_size = o.n_size;
        memcpy(a.size, o.size, sizeof a.size);
        a.align_corners = o.align_corners;
        a.backend = o.backend;
        r = vkr_affine_grid(c, &a, &in[0], &out);
    } else {
        vkr_affine_sample_args_t a;

        memset(&a, 0, sizeof a);
        a.mode = (vkr_grid_mode_t)o.mode;
        a.padding_mode = (vkr_padding_t)o.padding;
        a.align_corners = o.align_corners;
        a.n_size = o.n_size;
        memcpy(a.size, o.size, sizeof a.size);
        a.backend = o.backend;
        r = vkr_affine_sample(c, &a, &in[0], &in[1], &out);
    }
    if (r != VKR_OK) {
        report_failure(cmd->name, c, r);
        rc = EXIT_FAILED;
        goto out;
    }
    rc = write_output(out_path, &out);

out:
    vkr_tensor_free(&out);
    vkr_close(c);
    for (k = 0; k < 2; k++)
        vkr__npy_free(&arr[k]);
    return rc;
}

/* Print s with control characters replaced (a device name comes from the daemon). */
static void print_clean(const char *s)
{
    for (; *s != '\0'; s++)
        putchar((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s);
}

static int cmd_ping(const char *socket_path, int argc, char **argv)
{
    vkr_server_info_t info;
    vkr_client_t *c = NULL;
    const char *name;
    bool first = true;
    int i, r, rc;

    for (i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage_ping(stdout);
            return EXIT_DONE;
        }
        if (argv[i][0] == '-' && argv[i][1] != '\0')
            return usage_error("ping", "ping: unknown option '%s'", argv[i]);
        return usage_error("ping", "ping: unexpected argument '%s'", argv[i]);
    }
    rc = connect_daemon(socket_path, &c);
    if (rc != EXIT_DONE)
        return rc;
    r = vkr_ping(c, &info);
    if (r != VKR_OK) {
        report_failure("ping", c, r);
        rc = EXIT_FAILED;
        goto out;
    }
    printf("device: ");
    print_clean(info.device_name);
    printf("\nbackends:");
    for (i = 0; i < 32; i++) {
        if (!(info.backend_mask & (1u << i)))
            continue;
        name = vkr_backend_name(i);
        if (name != NULL)
            printf("%s%s", first ? " " : ", ", name);
        else
            printf("%sbackend %d", first ? " " : ", ", i);
        first = false;
    }
    name = vkr_backend_name((int)info.default_backend);
    printf("\ndefault backend: %s\n", name != NULL ? name : "unknown");
    rc = fflush(stdout) == 0 ? EXIT_DONE : EXIT_FAILED;

out:
    vkr_close(c);
    return rc;
}

/* Print s as a JSON string (a device name comes from the daemon). */
static void print_json_string(const char *s)
{
    putchar('"');
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;

        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

static int cmd_stats(const char *socket_path, int argc, char **argv)
{
    vkr_server_stats_t st;
    vkr_client_t *c = NULL;
    bool json = false;
    int i, r, rc;

    for (i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage_stats(stdout);
            return EXIT_DONE;
        }
        if ((r = take_flag(argv[i], "--json")) != 0) {
            if (r < 0)
                return usage_error("stats", "option --json takes no value");
            json = true;
            continue;
        }
        if (argv[i][0] == '-' && argv[i][1] != '\0')
            return usage_error("stats", "stats: unknown option '%s'", argv[i]);
        return usage_error("stats", "stats: unexpected argument '%s'", argv[i]);
    }
    rc = connect_daemon(socket_path, &c);
    if (rc != EXIT_DONE)
        return rc;
    r = vkr_stats(c, &st);
    if (r != VKR_OK) {
        report_failure("stats", c, r);
        rc = EXIT_FAILED;
        goto out;
    }
    if (json) {
        printf("{\"device\": ");
        print_json_string(st.device_name);
        printf(", \"uptime_ms\": %" PRIu64 ", \"clients\": %" PRIu32 ", \"workers\": %" PRIu32
               ", \"queued\": %" PRIu32 ", \"running\": %" PRIu32 ", \"latency_p50_us\": %" PRIu64
               ", \"latency_p99_us\": %" PRIu64 ", \"bytes_in\": %" PRIu64 ", \"bytes_out\": %" PRIu64
               ", \"memfd_bytes_in\": %" PRIu64 ", \"memfd_bytes_out\": %" PRIu64
               ", \"jobs_busy\": %" PRIu64 ", \"jobs_cancelled\": %" PRIu64 ", \"frames_refused\": %" PRIu64
               ", \"vulkan_lost\": %s, \"jobs_moved_to_cpu\": %" PRIu64 ", \"connections_refused\": %" PRIu64
               ", \"connections_timed_out\": %" PRIu64 ", \"accept_pauses\": %" PRIu64 ", \"jobs\": [",
               st.uptime_ms, st.clients, st.workers, st.queued, st.running, st.latency_p50_us,
               st.latency_p99_us, st.bytes_in, st.bytes_out, st.memfd_bytes_in, st.memfd_bytes_out,
               st.jobs_busy, st.jobs_cancelled, st.frames_refused, st.vulkan_lost ? "true" : "false", st.jobs_moved_to_cpu,
               st.connections_refused, st.connections_timed_out, st.accept_pauses);
        for (i = 0; i < st.n_rows; i++) {
            const char *op = vkr_op_name(st.rows[i].op), *backend = vkr_backend_name(st.rows[i].backend);

            printf("%s{\"op\": ", i ? ", " : "");
            print_json_string(op != NULL ? op : "?");
            printf(", \"backend\": ");
            print_json_string(backend != NULL ? backend : "?");
            printf(", \"done\": %" PRIu64 ", \"failed\": %" PRIu64 ", \"in_flight\": %" PRIu64 "}",
                   st.rows[i].done, st.rows[i].failed, st.rows[i].in_flight);
        }
        printf("]}\n");
    } else {
        printf("device: ");
        print_clean(st.device_name);
        printf("\nuptime: %" PRIu64 ".%03" PRIu64 " s\n", st.uptime_ms / 1000, st.uptime_ms % 1000);
        printf("connections: %" PRIu32 ", workers: %" PRIu32 "\n", st.clients, st.workers);
        printf("jobs now: %" PRIu32 " queued, %" PRIu32 " running\n", st.queued, st.running);
        printf("latency: p50 %" PRIu64 " us, p99 %" PRIu64 " us\n", st.latency_p50_us, st.latency_p99_us);
        printf("bytes: %" PRIu64 " in, %" PRIu64 " out on sockets; %" PRIu64 " in, %" PRIu64 " out in memfds\n",
               st.bytes_in, st.bytes_out, st.memfd_bytes_in, st.memfd_bytes_out);
        printf("refused: %" PRIu64 " busy, %" PRIu64 " cancelled, %" PRIu64 " other requests\n",
               st.jobs_busy, st.jobs_cancelled, st.frames_refused);
        printf("connections closed: %" PRIu64 " refused at accept, %" PRIu64 " timed out mid-frame; accepting paused %" PRIu64
               " time(s)\n", st.connections_refused, st.connections_timed_out, st.accept_pauses);
        printf("vulkan device lost: %s, jobs moved to cpu: %" PRIu64 "\n", st.vulkan_lost ? "yes" : "no", st.jobs_moved_to_cpu);
        printf("%-14s %-8s %12s %12s %12s\n", "op", "backend", "done", "failed", "in flight");
        for (i = 0; i < st.n_rows; i++) {
            const char *op = vkr_op_name(st.rows[i].op), *backend = vkr_backend_name(st.rows[i].backend);

            printf("%-14s %-8s %12" PRIu64 " %12" PRIu64 " %12" PRIu64 "\n", op != NULL ? op : "?",
                   backend != NULL ? backend : "?", st.rows[i].done, st.rows[i].failed, st.rows[i].in_flight);
        }
    }
    rc = fflush(stdout) == 0 ? EXIT_DONE : EXIT_FAILED;

out:
    vkr_close(c);
    return rc;
}

int main(int argc, char **argv)
{
    const char *socket_path = NULL;
    const char *value;
    int i, r;

    for (i = 1; i < argc; i++) {
        const char *arg = argv[i];

        if (arg[0] != '-' || arg[1] == '\0')
            break;
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            usage_main(stdout);
            return EXIT_DONE;
        }
        if (strcmp(arg, "--") == 0) {
            i++;
            break;
        }
        r = take_option(argc, argv, &i, "--socket", &value);
        if (r < 0)
            return usage_error(NULL, "option --socket needs a value");
        if (r == 0)
            return usage_error(NULL, "unknown option '%s'", arg);
        if (value[0] == '\0')
            return usage_error(NULL, "--socket needs a non-empty path");
        socket_path = value;
    }
    if (i >= argc) {
        usage_main(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[i], "interpolate") == 0)
        return cmd_interpolate(socket_path, argc - i - 1, argv + i + 1);
    if (strcmp(argv[i], "ping") == 0)
        return cmd_ping(socket_path, argc - i - 1, argv + i + 1);
    if (strcmp(argv[i], "stats") == 0)
        return cmd_stats(socket_path, argc - i - 1, argv + i + 1);
    if (strcmp(argv[i], "grid-sample") == 0)
        return cmd_grid(&grid_sample_command, socket_path, argc - i - 1, argv + i + 1);
    if (strcmp(argv[i], "affine-grid") == 0)
        return cmd_grid(&affine_grid_command, socket_path, argc - i - 1, argv + i + 1);
    if (strcmp(argv[i], "affine-sample") == 0)
        return cmd_grid(&affine_sample_command, socket_path, argc - i - 1, argv + i + 1);
    return usage_error(NULL, "unknown command '%s' (interpolate, grid-sample, affine-grid, "
                       "affine-sample, ping, stats)", argv[i]);
}
