/* Drives one non-blocking libssh session from the event loop: wakes on its fd, lets the
 * owner do its libssh work, then flushes output and asks for EPOLLOUT only while output
 * is really pending. Shared by the client tunnels and (later) the server role. */
#pragma once

#include <libssh/libssh.h>
#include <systemd/sd-event.h>

#include "macro.h"

typedef struct SshPump SshPump;

/* Runs the libssh work for one wakeup (connect or auth step, or message pump and relays).
 * It may free the pump's owner only by returning after ssh_pump_free(): the pump does not
 * touch itself after the handler returns a negative value. */
typedef int (*SshPumpHandler)(SshPump *p, void *userdata);

int ssh_pump_new(sd_event *e, ssh_session session, int fd, SshPumpHandler handler, void *userdata, SshPump **ret);
SshPump *ssh_pump_free(SshPump *p);
DEFINE_POINTER_CLEANUP_FUNC(SshPump, ssh_pump_free);

/* Requests a handler pass from the loop soon (coalesced): for work that arrives without
 * an fd event, e.g. a local socket made room or a channel open was queued. */
void ssh_pump_schedule(SshPump *p);

/* Writes libssh's pending output without blocking and arms EPOLLOUT while some remains.
 * Returns 1 when everything is out, 0 when output is still pending, -EPIPE on a dead
 * session. */
int ssh_pump_flush(SshPump *p);

/* For code outside the handler (a relay's socket event, a timer): flushes, and schedules
 * a handler pass, because libssh reads and dispatches incoming packets while it flushes.
 * Channel data it read then sits in libssh with no fd event left to announce it. */
void ssh_pump_kick(SshPump *p);

/* The session's raw counter (ssh_set_counters): with it, a flush after the handler that
 * also read packets (libssh dispatches input while it flushes) gets another handler pass,
 * or the channel data it dispatched would wait for an fd event that never comes. */
void ssh_pump_set_counter(SshPump *p, const struct ssh_counter_struct *counter);

/* True while libssh held unsent output at the last flush. Writers hold their data back
 * then: what libssh takes while the socket is full only piles up in its buffer (moved
 * again on each append) and queues ahead of every other channel's packets. */
bool ssh_pump_congested(const SshPump *p);
