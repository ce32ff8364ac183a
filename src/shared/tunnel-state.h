/* Client tunnel states, failure reasons and the reconnect backoff schedule. Pure code. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "macro.h"

typedef enum TunnelState {
        TUNNEL_DOWN,
        TUNNEL_CONNECTING,
        TUNNEL_AUTHENTICATING,
        TUNNEL_UP,
        TUNNEL_BACKOFF,
        TUNNEL_FAILED,
        _TUNNEL_STATE_MAX,
        _TUNNEL_STATE_INVALID = -EINVAL,
} TunnelState;

typedef enum TunnelReason {
        TUNNEL_REASON_NONE,
        /* retried with backoff */
        TUNNEL_REASON_RESOLVE_FAILED,
        TUNNEL_REASON_CONNECT_REFUSED,
        TUNNEL_REASON_CONNECT_TIMEOUT,
        TUNNEL_REASON_TLS_FAILED,
        TUNNEL_REASON_PROXY_FAILED,
        TUNNEL_REASON_AUTH_DENIED,
        TUNNEL_REASON_KEEPALIVE_TIMEOUT,
        TUNNEL_REASON_DISCONNECTED,
        /* final until the profile changes or the user runs up again */
        TUNNEL_REASON_HOSTKEY_UNKNOWN,
        TUNNEL_REASON_HOSTKEY_MISMATCH,
        TUNNEL_REASON_IDENTITY_UNREADABLE,
        TUNNEL_REASON_CONFIG_INVALID,
        _TUNNEL_REASON_MAX,
        _TUNNEL_REASON_INVALID = -EINVAL,
} TunnelReason;

const char *tunnel_state_to_string(TunnelState s) _pure_;
TunnelState tunnel_state_from_string(const char *s) _pure_;
const char *tunnel_reason_to_string(TunnelReason r) _pure_;
TunnelReason tunnel_reason_from_string(const char *s) _pure_;

/* True for reasons that stop in "failed" instead of retrying. */
bool tunnel_reason_is_final(TunnelReason r) _pure_;

/* The delay before retry number `attempt` (1-based: the first retry after the first
 * failure): 1, 2, 4, 8, 16, then 30 s for ever, each scaled by a jitter factor in
 * [0.9, 1.1) taken from `random` (any 32-bit value). */
#define TUNNEL_BACKOFF_CAP_USEC (30 * USEC_PER_SEC)
uint64_t tunnel_backoff_usec(unsigned attempt, uint32_t random) _pure_;
