/* A relay moves one stream between a local socket and an SSH channel, both ways, with
 * backpressure, half-close and no byte lost or doubled. Shared by client and server role. */
#pragma once

#include <libssh/libssh.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "ssh-pump.h"

/* Bytes buffered per direction per relay: caps what one peer can make us hold. */
#define RELAY_BUFFER_SIZE (128u * 1024u)

typedef struct Relay Relay;

/* The relay finished (both sides closed, or an error): the owner frees it. r is 0 for an
 * orderly end, -errno otherwise. Never called from inside relay_process()'s caller's
 * stack frame twice; after it, relay_process() does nothing. */
typedef void (*RelayDoneCallback)(Relay *r, int error, void *userdata);

/* Takes ownership of channel (open) and fd (connected). initial bytes go to the channel
 * first. Counters are added to *bytes_in and *bytes_out (from and to the channel)
 * as data moves, so the owner can keep totals. */
int relay_new(sd_event *e, SshPump *pump, ssh_channel channel, int fd, const void *initial, size_t n_initial,
              uint64_t *bytes_in, uint64_t *bytes_out, RelayDoneCallback done, void *userdata, Relay **ret);
Relay *relay_free(Relay *r);

/* Moves whatever can move now. The owner calls it for every relay after each pump pass
 * (window adjusts and channel data are only learned then); fd events call it too. */
void relay_process(Relay *r);

/* True when relay_process() after a pump pass might have work: channel data flagged,
 * or bytes waiting for window. Lets the owner skip idle relays cheaply. */
bool relay_wants_pump(const Relay *r);

/* The relays of one SSH session (or one tunnel across its sessions), with totals. Relays
 * that finish are freed from a defer source, outside their own callbacks. */
typedef struct RelaySet RelaySet;

int relay_set_new(sd_event *e, RelaySet **ret);
RelaySet *relay_set_free(RelaySet *s);
DEFINE_POINTER_CLEANUP_FUNC(RelaySet, relay_set_free);

/* Takes channel and fd on success; on failure both stay the caller's. */
int relay_set_start(RelaySet *s, SshPump *pump, ssh_channel channel, int fd, const void *initial, size_t n_initial);
/* After each pump pass: lets every relay with pending work move its bytes. */
void relay_set_process(RelaySet *s);
/* Frees every relay now (before the session that owns their channels goes away). */
void relay_set_clear(RelaySet *s);

size_t relay_set_size(const RelaySet *s);
uint64_t relay_set_total(const RelaySet *s);
uint64_t relay_set_bytes_in(const RelaySet *s);
uint64_t relay_set_bytes_out(const RelaySet *s);
