/* The server role's public-key decision: is this key, or this OpenSSH user certificate
 * (CA signature checked with OpenSSL), allowed for this user from this address, and what
 * may it forward. libssh has already checked the client's signature with the key. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "authorized-keys.h"
#include "fingerprint.h"

/* Largest AuthorizedKeys= or TrustedUserCAKeys= file read. */
#define SSH_AUTH_KEYS_FILE_MAX (4u * 1024u * 1024u)

typedef struct SshAuthRequest {
        const char *user;                       /* the SSH user name */
        const struct sockaddr *peer;            /* the client's address; the port is ignored */
        const uint8_t *key_blob;                /* ssh_pki_export_pubkey_blob() of the offered */
        size_t key_blob_size;                   /* key: a plain key or a certificate */
        uint64_t now;                           /* seconds since the epoch (time(NULL)) */
} SshAuthRequest;

typedef struct SshAuthResult {
        bool accepted;
        /* A stable word for the log line. Accepted: "key", "certificate". Rejected:
         * "unknown-key", "bad-key", "from-mismatch", "key-expired", "cert-malformed",
         * "cert-unsupported", "cert-not-user", "cert-unknown-ca", "cert-signature-algorithm",
         * "cert-bad-signature", "cert-not-yet-valid", "cert-expired", "cert-critical-option",
         * "cert-source-address", "cert-no-principals", "cert-principal". */
        const char *reason;
        /* SHA256 of the offered key; for a certificate, of the certified key inside it. */
        char fingerprint[FINGERPRINT_SIZE];
        /* Certificates only (else "" / NULL / 0): the CA's fingerprint, the key id and serial
         * as the CA wrote them (not yet trusted when the certificate is rejected). */
        char ca_fingerprint[FINGERPRINT_SIZE];
        char *key_id;
        uint64_t serial;
        /* "reason=WORD", for certificates followed by " ca_fingerprint=SHA256:...
         * key_id=ID serial=N" with the key id escaped (ssh_auth_log_escape), ready to be
         * appended to the "auth attempt ..." line. */
        char *log_fields;
        /* What an accepted key may forward (owned; all off when rejected). */
        ForwardPermissions forward;
} SshAuthResult;

/* Decides one attempt. authorized and trusted_cas may be NULL (no such file configured);
 * trusted_cas is a file parsed with AUTHORIZED_KEYS_NO_OPTIONS, each key a CA.
 *
 * Plain keys: accepted by an AuthorizedKeys line with the same key that is not
 * cert-authority, whose from= matches the peer and whose expiry-time has not passed.
 * Certificates: a user certificate whose CA is in trusted_cas or on a cert-authority line,
 * with a good signature (Ed25519, ECDSA P-256/384/521, RSA with SHA-256/512; never SHA-1),
 * inside its validity window, with no critical option but source-address (which must
 * match the peer). Through trusted_cas the user name must be one of its principals;
 * through a cert-authority line one of the line's principals= names must be, or else the
 * user name; the line's from= and expiry-time apply too. An empty principals list is
 * refused: OpenSSH takes it as "anyone" only together with AuthorizedPrincipalsFile, which
 * we do not have. Forwarding needs the permit-port-forwarding extension (and, through a
 * cert-authority line, that line's forwarding options).
 *
 * Returns 0 with *ret filled for both outcomes (release it with ssh_auth_result_done);
 * -ENOMEM or -EINVAL otherwise (then *ret is untouched and the attempt must fail). */
int ssh_auth_check(const SshAuthRequest *req, const AuthorizedKeys *authorized,
                   const AuthorizedKeys *trusted_cas, SshAuthResult *ret);
void ssh_auth_result_done(SshAuthResult *r);

/* Turns a result into a rejection for a reason found outside this module (e.g.
 * "bad-signature" when libssh says the client's signature was wrong): sets accepted, reason
 * (a static string) and the "reason=" word in log_fields, keeping the certificate fields,
 * and drops the forwarding permissions. -ENOMEM leaves a rejection with log_fields NULL. */
int ssh_auth_result_reject(SshAuthResult *r, const char *reason);

/* Verifies a CA signature over data with OpenSSL. 0 when good; -EBADMSG when it does not
 * verify or the key is unusable; -EOPNOTSUPP for rsa SHA-1 or an algorithm that does not
 * belong to the key; -ENOMEM. */
int ssh_auth_verify_signature(const SshPublicKey *key, const SshSignature *sig,
                              const uint8_t *data, size_t size);

/* The OpenSSH fingerprint of a key blob: "SHA256:" + unpadded base64. */
int ssh_auth_fingerprint(const uint8_t *blob, size_t size, char ret[FINGERPRINT_SIZE]);

/* A copy of s safe inside a space-separated key=value log line: bytes outside
 * [A-Za-z0-9._@:+/-] become \xNN, so that nothing a client chose can add fields, quotes or
 * lines. NULL on allocation failure. */
char *ssh_auth_log_escape(const char *s);

/* Reads and parses an AuthorizedKeys= (flags 0) or TrustedUserCAKeys=
 * (AUTHORIZED_KEYS_NO_OPTIONS) file; per-line problems are in (*ret)->errors for the
 * caller to log. -EFBIG above SSH_AUTH_KEYS_FILE_MAX, or the read error. */
int ssh_auth_load_keys(const char *path, AuthorizedKeysFlags flags, AuthorizedKeys **ret);
