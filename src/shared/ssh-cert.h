/* OpenSSH public key blobs (RFC 4253 6.6, RFC 5656, RFC 8709) and user/host certificates
 * (OpenSSH PROTOCOL.certkeys): strict, bounds-checked parsing only, no crypto and no I/O. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest certificate or key blob we look at: a 16384-bit RSA certificate signed by a
 * 16384-bit RSA CA with 256 principals still fits. */
#define SSH_KEY_BLOB_MAX (64u * 1024u)
/* OpenSSH's own limit (SSHKEY_CERT_MAX_PRINCIPALS). */
#define SSH_CERT_PRINCIPALS_MAX 256u
/* Critical options and extensions, each. */
#define SSH_CERT_OPTIONS_MAX 64u
/* RSA modulus sizes accepted (OpenSSH refuses keys under 1024 bits). */
#define SSH_RSA_BITS_MIN 1024u
#define SSH_RSA_BITS_MAX 16384u

typedef enum SshKeyType {
        SSH_KEY_ED25519,
        SSH_KEY_ECDSA_P256,
        SSH_KEY_ECDSA_P384,
        SSH_KEY_ECDSA_P521,
        SSH_KEY_RSA,
        _SSH_KEY_TYPE_MAX,
        _SSH_KEY_TYPE_INVALID = -EINVAL,
} SshKeyType;

/* "ssh-ed25519", "ecdsa-sha2-nistp256", ..., "ssh-rsa". */
const char *ssh_key_type_to_string(SshKeyType t);
SshKeyType ssh_key_type_from_string(const char *s);
/* "ssh-ed25519-cert-v01@openssh.com", ... */
const char *ssh_key_type_to_cert_string(SshKeyType t);
SshKeyType ssh_key_type_from_cert_string(const char *s);
/* True for key type names OpenSSH knows but we refuse: ssh-dss, the security-key types,
 * every "*-cert-v0?@openssh.com". Used to give a precise error for such lines. */
bool ssh_key_type_is_known_unsupported(const char *s);

/* Signature algorithms a CA may have used (the string inside the signature blob). */
typedef enum SshSigAlg {
        SSH_SIG_ED25519,          /* "ssh-ed25519" */
        SSH_SIG_ECDSA_P256,       /* "ecdsa-sha2-nistp256", SHA-256 */
        SSH_SIG_ECDSA_P384,       /* SHA-384 */
        SSH_SIG_ECDSA_P521,       /* SHA-512 */
        SSH_SIG_RSA_SHA256,       /* "rsa-sha2-256" */
        SSH_SIG_RSA_SHA512,       /* "rsa-sha2-512" */
        SSH_SIG_RSA_SHA1,         /* "ssh-rsa": parsed so it can be refused by name */
        _SSH_SIG_ALG_MAX,
        _SSH_SIG_ALG_INVALID = -EINVAL,
} SshSigAlg;

const char *ssh_sig_alg_to_string(SshSigAlg a);
SshSigAlg ssh_sig_alg_from_string(const char *s);

/* A view into someone else's buffer. */
typedef struct SshBytes {
        const uint8_t *data;
        size_t size;
} SshBytes;

/* A parsed public key; the fields point into the blob it was parsed from. */
typedef struct SshPublicKey {
        SshKeyType type;
        SshBytes pk;        /* Ed25519: the 32-byte key; ECDSA: the uncompressed point (0x04 X Y) */
        SshBytes rsa_e;     /* RSA: exponent and modulus, big-endian, leading zeros removed */
        SshBytes rsa_n;
} SshPublicKey;

/* Parses a plain public key blob; every byte must belong to the key.
 * -EBADMSG: malformed (truncated, trailing bytes, wrong sizes, type name mismatch);
 * -EOPNOTSUPP: a well-formed type name we do not accept (ssh-dss, sk-*, a certificate). */
int ssh_key_blob_parse(const uint8_t *blob, size_t size, SshPublicKey *ret);

/* Whether two parsed keys are the same key (type and public components). Comparing
 * components rather than blobs tolerates a non-minimal mpint in a hand-edited file. */
bool ssh_public_key_equal(const SshPublicKey *a, const SshPublicKey *b);

/* True when the blob starts with a certificate type name ("...-cert-v01@openssh.com").
 * Never reads past size. */
bool ssh_key_blob_is_cert(const uint8_t *blob, size_t size);

/* A signature blob: string algorithm, string signature. */
typedef struct SshSignature {
        SshSigAlg alg;
        SshBytes data;      /* Ed25519: 64 bytes; RSA: the PKCS#1 signature (may be shorter than n) */
        SshBytes ecdsa_r;   /* ECDSA: r and s, big-endian, leading zeros removed */
        SshBytes ecdsa_s;
} SshSignature;

/* -EBADMSG when malformed, -EOPNOTSUPP for an algorithm name we do not know. */
int ssh_signature_parse(const uint8_t *blob, size_t size, SshSignature *ret);

/* Whether a signature algorithm belongs to a key type (RSA SHA-1 counts as belonging;
 * refusing it is policy, see ssh-auth.c). */
bool ssh_sig_alg_matches_key(SshSigAlg a, SshKeyType t);

typedef enum SshCertType {
        SSH_CERT_TYPE_USER = 1,
        SSH_CERT_TYPE_HOST = 2,
} SshCertType;

/* Extensions we recognise; unknown extensions are ignored, as OpenSSH does. */
typedef enum SshCertExtension {
        SSH_CERT_EXT_PERMIT_X11_FORWARDING   = 1u << 0,
        SSH_CERT_EXT_PERMIT_AGENT_FORWARDING = 1u << 1,
        SSH_CERT_EXT_PERMIT_PORT_FORWARDING  = 1u << 2,
        SSH_CERT_EXT_PERMIT_PTY              = 1u << 3,
        SSH_CERT_EXT_PERMIT_USER_RC          = 1u << 4,
        SSH_CERT_EXT_NO_TOUCH_REQUIRED       = 1u << 5,
} SshCertExtension;

#define SSH_CERT_VALID_FOREVER UINT64_MAX

typedef struct SshCert {
        uint8_t *blob;              /* owned copy of the whole certificate; views point here */
        size_t blob_size;

        SshKeyType type;            /* of the certified key */
        SshPublicKey key;           /* the certified key */
        uint8_t *key_blob;          /* the same key as a plain key blob (owned), for */
        size_t key_blob_size;       /* fingerprints and comparison with plain keys */
        SshBytes nonce;
        uint64_t serial;
        uint32_t cert_type;         /* SshCertType, or any other value the CA wrote */
        char *key_id;               /* NUL-free */
        char **principals;          /* NUL-free names, NULL-terminated; an empty list */
        size_t n_principals;        /* means "any" to OpenSSH (we refuse it, see ssh-auth.h) */
        uint64_t valid_after;       /* seconds since the epoch, inclusive */
        uint64_t valid_before;      /* exclusive; SSH_CERT_VALID_FOREVER */

        /* Critical options. */
        char *source_address;       /* the CIDR list, unvalidated; NULL when absent */
        char *force_command;        /* NULL when absent */
        char *unknown_critical;     /* name of the first other critical option, NULL if none */

        uint32_t extensions;        /* SshCertExtension bits */

        SshBytes ca_key_blob;       /* the signature key (a plain key blob) */
        SshPublicKey ca;
        SshBytes signed_data;       /* everything from the start up to and including the CA key */
        SshBytes signature_blob;
        SshSignature signature;     /* its algorithm matches the CA key's type */
} SshCert;

/* Parses a certificate blob as libssh exports it (ssh_pki_export_pubkey_blob).
 * -EBADMSG: malformed (truncated, trailing bytes, duplicate critical option, NUL in a name,
 * a CA key that is itself a certificate, a signature algorithm of another key type);
 * -EOPNOTSUPP: a certificate or CA key type we do not support; -EFBIG: larger than
 * SSH_KEY_BLOB_MAX; -E2BIG: more than SSH_CERT_PRINCIPALS_MAX principals or
 * SSH_CERT_OPTIONS_MAX options; -ENOMEM. Nothing is verified here. */
int ssh_cert_parse(const uint8_t *blob, size_t size, SshCert **ret);
SshCert *ssh_cert_free(SshCert *c);

static inline void ssh_cert_freep(SshCert **c) {
        if (*c)
                *c = ssh_cert_free(*c);
}

/* Whether name is one of the certificate's principals (exact, case-sensitive). */
bool ssh_cert_has_principal(const SshCert *c, const char *name);
