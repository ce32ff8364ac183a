/* OpenSSH-style key fingerprints: "SHA256:" and the unpadded base64 of the digest. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* "SHA256:" + 43 characters + NUL */
#define FINGERPRINT_SIZE 51u

/* Formats an already computed 32-byte SHA-256 digest. */
void fingerprint_format_sha256(const uint8_t digest[32], char ret[FINGERPRINT_SIZE]);

/* Unpadded standard base64 (as OpenSSH prints fingerprints) into out, NUL-terminated.
 * Returns the length, or -ENOBUFS when out is too small. */
int base64_encode_unpadded(const uint8_t *data, size_t n, char *out, size_t size);
