/* Fingerprint formatting without pulling a crypto library into src/shared. */
#include <errno.h>
#include <string.h>

#include "fingerprint.h"

int base64_encode_unpadded(const uint8_t *data, size_t n, char *out, size_t size) {
        static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        size_t need = n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0), o = 0;

        if (size < need + 1)
                return -ENOBUFS;
        for (size_t i = 0; i < n; i += 3) {
                uint32_t v = (uint32_t) data[i] << 16;
                size_t left = n - i;

                if (left > 1)
                        v |= (uint32_t) data[i + 1] << 8;
                if (left > 2)
                        v |= data[i + 2];
                out[o++] = alphabet[(v >> 18) & 63];
                out[o++] = alphabet[(v >> 12) & 63];
                if (left > 1)
                        out[o++] = alphabet[(v >> 6) & 63];
                if (left > 2)
                        out[o++] = alphabet[v & 63];
        }
        out[o] = '\0';
        return (int) o;
}

void fingerprint_format_sha256(const uint8_t digest[32], char ret[FINGERPRINT_SIZE]) {
        memcpy(ret, "SHA256:", 7);
        (void) base64_encode_unpadded(digest, 32, ret + 7, FINGERPRINT_SIZE - 7);
}
