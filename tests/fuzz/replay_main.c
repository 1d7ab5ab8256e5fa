/* Replays a fuzz target's committed corpus as an ordinary test (any compiler, no libFuzzer):
 * every file under the directories given is fed to LLVMFuzzerTestOneInput once, so every build
 * re-runs every past crash.  TAP output, one line per directory. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    size_t cap = 1 << 16, len = 0;
    uint8_t *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            uint8_t *grown = realloc(buf, cap *= 2);
            if (!grown)
                free(buf);
            buf = grown;
        }
    }
    fclose(f);
    if (!buf)
        return -1;
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    int failed = 0;
    for (int i = 1; i < argc; i++) {
        DIR *d = opendir(argv[i]);
        int files = 0, errors = 0;
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (e->d_name[0] == '.')
                continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
            errors += replay_file(path) != 0;
            files++;
        }
        if (d)
            closedir(d);
        int ok = d && files > 0 && errors == 0;
        failed |= !ok;
        printf("%s %d - replayed %d corpus files of %s (%d unreadable)\n", ok ? "ok" : "not ok", i, files, argv[i], errors);
    }
    printf("1..%d\n", argc - 1);
    return failed;
}
