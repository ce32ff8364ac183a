/* String tables for tunnel states and reasons, and the backoff schedule. */
#include "tunnel-state.h"

static const char *const state_table[_TUNNEL_STATE_MAX] = {
        [TUNNEL_DOWN] = "down",
        [TUNNEL_CONNECTING] = "connecting",
        [TUNNEL_AUTHENTICATING] = "authenticating",
        [TUNNEL_UP] = "up",
        [TUNNEL_BACKOFF] = "backoff",
        [TUNNEL_FAILED] = "failed",
};

static const char *const reason_table[_TUNNEL_REASON_MAX] = {
        [TUNNEL_REASON_NONE] = "none",
        [TUNNEL_REASON_RESOLVE_FAILED] = "resolve-failed",
        [TUNNEL_REASON_CONNECT_REFUSED] = "connect-refused",
        [TUNNEL_REASON_CONNECT_TIMEOUT] = "connect-timeout",
        [TUNNEL_REASON_TLS_FAILED] = "tls-failed",
        [TUNNEL_REASON_PROXY_FAILED] = "proxy-failed",
        [TUNNEL_REASON_AUTH_DENIED] = "auth-denied",
        [TUNNEL_REASON_KEEPALIVE_TIMEOUT] = "keepalive-timeout",
        [TUNNEL_REASON_DISCONNECTED] = "disconnected",
        [TUNNEL_REASON_HOSTKEY_UNKNOWN] = "hostkey-unknown",
        [TUNNEL_REASON_HOSTKEY_MISMATCH] = "hostkey-mismatch",
        [TUNNEL_REASON_IDENTITY_UNREADABLE] = "identity-unreadable",
        [TUNNEL_REASON_CONFIG_INVALID] = "config-invalid",
};

static int lookup(const char *const *table, int n, const char *s) {
        if (!s)
                return -EINVAL;
        for (int i = 0; i < n; i++)
                if (table[i] && streq(table[i], s))
                        return i;
        return -EINVAL;
}

const char *tunnel_state_to_string(TunnelState s) {
        return s >= 0 && s < _TUNNEL_STATE_MAX ? state_table[s] : NULL;
}

TunnelState tunnel_state_from_string(const char *s) {
        return (TunnelState) lookup(state_table, _TUNNEL_STATE_MAX, s);
}

const char *tunnel_reason_to_string(TunnelReason r) {
        return r >= 0 && r < _TUNNEL_REASON_MAX ? reason_table[r] : NULL;
}

TunnelReason tunnel_reason_from_string(const char *s) {
        return (TunnelReason) lookup(reason_table, _TUNNEL_REASON_MAX, s);
}

bool tunnel_reason_is_final(TunnelReason r) {
        return r >= TUNNEL_REASON_HOSTKEY_UNKNOWN && r < _TUNNEL_REASON_MAX;
}

uint64_t tunnel_backoff_usec(unsigned attempt, uint32_t random) {
        uint64_t base;

        if (attempt == 0)
                attempt = 1;
        base = attempt > 5 ? TUNNEL_BACKOFF_CAP_USEC : (USEC_PER_SEC << (attempt - 1));
        /* ±10 % so that many tunnels cut by one outage do not retry in lockstep. */
        return base * 9 / 10 + base / 5 * (uint64_t) random / ((uint64_t) UINT32_MAX + 1);
}
