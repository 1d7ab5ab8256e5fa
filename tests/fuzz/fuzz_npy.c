/* libFuzzer target: the .npy reader of the CLI (client/npy.c) on arbitrary bytes. */
#include <stdint.h>

#include "npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vkr__npy_array_t a;
    char msg[256];
    if (vkr__npy_parse(data, size, 1u << 24, &a, msg, sizeof msg) == VKR__NPY_OK)
        vkr__npy_free(&a);
    return 0;
}
