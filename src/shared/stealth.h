/* The stealth probe of the TLS listener: tells an SSH client from anything else by its
 * first bytes, and builds the web server 404 that everything else gets. Pure: no I/O. */
#pragma once

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* A client's identification string starts with exactly this (RFC 4253 4.2: the client
 * sends it first, with no lines before it). "SSH-1.99-" is what a server that also speaks
 * protocol 1 announces; no SSH-2 client sends it, so it is not SSH here. */
#define STEALTH_SSH_PREFIX "SSH-2.0-"
/* Bytes the probe needs at most before it knows. */
#define STEALTH_PROBE_MAX 8u

typedef enum StealthClass {
        STEALTH_NEED_MORE, /* a proper prefix of "SSH-2.0-" so far (also: nothing yet) */
        STEALTH_SSH,       /* starts with "SSH-2.0-" */
        STEALTH_OTHER,     /* some byte differs: not SSH, decided without waiting for more */
        _STEALTH_CLASS_MAX,
        _STEALTH_CLASS_INVALID = -EINVAL,
} StealthClass;

/* Classifies the first n bytes a client sent (only the first STEALTH_PROBE_MAX matter). */
StealthClass stealth_classify(const uint8_t *buf, size_t n);

const char *stealth_class_to_string(StealthClass c);

/* The largest response stealth_decoy_response() writes, NUL included. */
#define STEALTH_DECOY_SIZE 320u

/* Writes, NUL-terminated, byte for byte what nginx 1.22 with "server_tokens off" answers
 * to a request for a missing path with "Connection: close": status line, Server, Date
 * (from now, in GMT), Content-Type, Content-Length, Connection, blank line, the stock
 * 404 page. Returns the length without the NUL, or -ENOBUFS when size is too small
 * (STEALTH_DECOY_SIZE always is enough), -EINVAL when now cannot be represented. */
int stealth_decoy_response(char *out, size_t size, time_t now);
