/* The seam between local listeners (SOCKS5, Local=) and whatever carries their streams:
 * a client tunnel opens a direct-tcpip channel and relays the accepted socket through it. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* What a listener asks for: carry fd to host:port. */
typedef struct ChannelOpenRequest {
        const char *host;     /* destination as the client named it; never resolved here */
        uint16_t port;
        int fd;               /* the accepted local socket */
        const void *initial;  /* bytes already read from fd that belong to the stream */
        size_t n_initial;
        const char *orig_host; /* originator address for the SSH request ("127.0.0.1") */
        uint16_t orig_port;
} ChannelOpenRequest;

/* Called once with the outcome. r == 0: the channel is open and, when the callback
 * returns, the opener owns fd and relays it (a SOCKS server writes its success reply to fd
 * inside the callback). r < 0: nothing was opened and fd is still the caller's;
 * ssh_reason is the SSH open-failure reason code (RFC 4254 5.1) or 0 when the failure was
 * not the server's answer (tunnel down past the deadline: r = -ETIMEDOUT / -ENOTCONN). */
typedef void (*ChannelOpenedCallback)(int r, int ssh_reason, void *userdata);

typedef struct ChannelOpener {
        void *ctx;
        /* Starts an open; *ret_handle identifies it for cancel until the callback ran. */
        int (*open)(void *ctx, const ChannelOpenRequest *req, ChannelOpenedCallback cb, void *userdata,
                    void **ret_handle);
        /* Abandons an open before its callback: fd stays the caller's, cb is never called. */
        void (*cancel)(void *ctx, void *handle);
} ChannelOpener;
