/* libFuzzer target for the stealth probe: stealth_classify() on every prefix of the input
 * agrees with a plain prefix comparison and never changes its mind once decided; the decoy
 * for a time taken from the input is either refused or well formed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-check.h"
#include "macro.h"
#include "stealth.h"

static StealthClass reference(const uint8_t *buf, size_t n) {
        const char *p = STEALTH_SSH_PREFIX;
        size_t m = MIN(n, strlen(p));

        if (memcmp(buf, p, m) != 0)
                return STEALTH_OTHER;
        return m == strlen(p) ? STEALTH_SSH : STEALTH_NEED_MORE;
}

static void check_decoy(const uint8_t *data, size_t size) {
        char out[STEALTH_DECOY_SIZE];
        int64_t t = 0;
        int r;

        memcpy(&t, data, MIN(size, sizeof t));
        r = stealth_decoy_response(out, sizeof out, (time_t) t);
        if (r < 0) {
                check(r == -EINVAL);
                return;
        }
        check((size_t) r < sizeof out && strlen(out) == (size_t) r);
        check(strncmp(out, "HTTP/1.1 404 Not Found\r\nServer: nginx\r\nDate: ", 45) == 0);
        check(strstr(out, " GMT\r\nContent-Type: text/html\r\nContent-Length: 146\r\nConnection: close\r\n\r\n<html>"));
        check(strlen(strstr(out, "\r\n\r\n") + 4) == 146);
        check(stealth_decoy_response(out, (size_t) r, (time_t) t) == -ENOBUFS);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        StealthClass decided = STEALTH_NEED_MORE;

        for (size_t n = 0; n <= size; n++) {
                /* An exactly sized copy, so that ASan sees any read past n. */
                uint8_t *copy = malloc(n ? n : 1);
                StealthClass c;

                check(copy);
                memcpy(copy, data, n);
                c = stealth_classify(copy, n);
                free(copy);

                check(c == reference(data, n));
                check(stealth_class_to_string(c));
                if (decided != STEALTH_NEED_MORE)
                        check(c == decided);
                if (n >= STEALTH_PROBE_MAX)
                        check(c != STEALTH_NEED_MORE);
                decided = c;
        }

        check_decoy(data, size);
        return 0;
}
