/* A client tunnel: one profile's SSH session to its server, kept up with reconnects and
 * backoff, carrying the profile's SOCKS and Local= streams and its Remote= forwards. */
#pragma once

#include <json-c/json.h>
#include <systemd/sd-event.h>

#include "channel-opener.h"
#include "macro.h"
#include "profile.h"
#include "tunnel-state.h"

/* Named limits and timeouts; see alknet.profile(5). */
#define TUNNEL_DIAL_TIMEOUT_USEC (20 * USEC_PER_SEC)       /* resolve + TCP (+ proxy) */
#define TUNNEL_HANDSHAKE_TIMEOUT_USEC (30 * USEC_PER_SEC)  /* SSH key exchange + auth */
#define TUNNEL_OPEN_WAIT_USEC (20 * USEC_PER_SEC)          /* a stream waits this long for the tunnel */
#define TUNNEL_PENDING_OPENS_MAX 1024u
#define TUNNEL_CHANNELS_MAX 4096u
#define TUNNEL_DRAIN_USEC (2 * USEC_PER_SEC)

typedef struct ClientTunnel ClientTunnel;

typedef struct ClientTunnelHooks {
        /* Every change of state (and of the reason). */
        void (*state_changed)(ClientTunnel *t, void *userdata);
        /* HostKeyPolicy=accept-new met an unpinned key: pin it in the profile. */
        int (*pin_host_key)(ClientTunnel *t, const char *fingerprint, void *userdata);
} ClientTunnelHooks;

int client_tunnel_new(sd_event *e, const Profile *p, const char *state_dir, const ClientTunnelHooks *hooks,
                      void *userdata, ClientTunnel **ret);
ClientTunnel *client_tunnel_free(ClientTunnel *t);
DEFINE_POINTER_CLEANUP_FUNC(ClientTunnel, client_tunnel_free);

const char *client_tunnel_name(const ClientTunnel *t);
TunnelState client_tunnel_state(const ClientTunnel *t);
/* The key the server presented while hostkey-unknown/-mismatch, else NULL. */
const char *client_tunnel_presented_host_key(const ClientTunnel *t);
size_t client_tunnel_n_channels(const ClientTunnel *t);

/* Binds the listeners (if not yet) and connects; in backoff or failed: tries again now.
 * A listener that cannot be bound fails the call (-errno, *ret_error says which). */
int client_tunnel_up(ClientTunnel *t, char **ret_error);
/* Closes streams, listeners and the session: state down. */
void client_tunnel_down(ClientTunnel *t);
/* The profile changed: rebinds listeners if they changed, restarts the session if its
 * SSH side changed (server, user, key, host keys no longer matching, transport, proxy,
 * keepalive, Remote=). */
int client_tunnel_set_profile(ClientTunnel *t, const Profile *p, char **ret_error);
/* The network changed: a tunnel waiting in backoff tries again at once. */
void client_tunnel_network_changed(ClientTunnel *t);
/* Shutdown, step one: stop accepting new streams and ask nothing new of the server. */
void client_tunnel_stop_accepting(ClientTunnel *t);

int client_tunnel_status_json(const ClientTunnel *t, struct json_object **ret);
