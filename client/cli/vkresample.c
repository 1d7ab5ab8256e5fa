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
            "  ping           show the daemon's device and backends\n"
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

/* "a[,b[,c]]" of integers.  Returns the count (1..3), or 0 when malformed. */
static int parse_int_list(const char *s, int64_t out[VKR_INTERP_MAX_SPATIAL])
{
    int n = 0;

    for (;;) {
        char *end;
        long long v;

        if (n == VKR_INTERP_MAX_SPATIAL || *s == '\0' || *s == ',' || *s == ' ')
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
            args.n_size = parse_int_list(value, args.size);
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
    return usage_error(NULL, "unknown command '%s' (interpolate, ping)", argv[i]);
}
