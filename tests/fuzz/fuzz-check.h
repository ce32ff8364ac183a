/* What every libFuzzer target here shares: its entry point, and check(), which aborts
 * with the broken invariant named so that libFuzzer keeps the input. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define check(x)                                                                       \
        do {                                                                           \
                if (!(x)) {                                                            \
                        fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__,     \
                                __LINE__, #x);                                         \
                        abort();                                                       \
                }                                                                      \
        } while (0)
