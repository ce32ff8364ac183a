/* OpenSSH key blobs, signature blobs and certificates: parsing of untrusted bytes with a
 * bounds check before every read. Verification is the daemon's job (ssh-auth.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "ssh-cert.h"

#define CERT_SUFFIX "-cert-v01@openssh.com"

static const char *const key_type_table[_SSH_KEY_TYPE_MAX] = {
        [SSH_KEY_ED25519] = "ssh-ed25519",
        [SSH_KEY_ECDSA_P256] = "ecdsa-sha2-nistp256",
        [SSH_KEY_ECDSA_P384] = "ecdsa-sha2-nistp384",
        [SSH_KEY_ECDSA_P521] = "ecdsa-sha2-nistp521",
        [SSH_KEY_RSA] = "ssh-rsa",
};

static const char *const cert_type_table[_SSH_KEY_TYPE_MAX] = {
        [SSH_KEY_ED25519] = "ssh-ed25519" CERT_SUFFIX,
        [SSH_KEY_ECDSA_P256] = "ecdsa-sha2-nistp256" CERT_SUFFIX,
        [SSH_KEY_ECDSA_P384] = "ecdsa-sha2-nistp384" CERT_SUFFIX,
        [SSH_KEY_ECDSA_P521] = "ecdsa-sha2-nistp521" CERT_SUFFIX,
        [SSH_KEY_RSA] = "ssh-rsa" CERT_SUFFIX,
};

/* The curve identifier inside ECDSA blobs and the size of an uncompressed point. */
static const struct {
        const char *curve;
        size_t point_size;
} ecdsa_table[_SSH_KEY_TYPE_MAX] = {
        [SSH_KEY_ECDSA_P256] = { "nistp256", 1 + 2 * 32 },
        [SSH_KEY_ECDSA_P384] = { "nistp384", 1 + 2 * 48 },
        [SSH_KEY_ECDSA_P521] = { "nistp521", 1 + 2 * 66 },
};

static const char *const sig_alg_table[_SSH_SIG_ALG_MAX] = {
        [SSH_SIG_ED25519] = "ssh-ed25519",
        [SSH_SIG_ECDSA_P256] = "ecdsa-sha2-nistp256",
        [SSH_SIG_ECDSA_P384] = "ecdsa-sha2-nistp384",
        [SSH_SIG_ECDSA_P521] = "ecdsa-sha2-nistp521",
        [SSH_SIG_RSA_SHA256] = "rsa-sha2-256",
        [SSH_SIG_RSA_SHA512] = "rsa-sha2-512",
        [SSH_SIG_RSA_SHA1] = "ssh-rsa",
};

static const SshKeyType sig_alg_key[_SSH_SIG_ALG_MAX] = {
        [SSH_SIG_ED25519] = SSH_KEY_ED25519,
        [SSH_SIG_ECDSA_P256] = SSH_KEY_ECDSA_P256,
        [SSH_SIG_ECDSA_P384] = SSH_KEY_ECDSA_P384,
        [SSH_SIG_ECDSA_P521] = SSH_KEY_ECDSA_P521,
        [SSH_SIG_RSA_SHA256] = SSH_KEY_RSA,
        [SSH_SIG_RSA_SHA512] = SSH_KEY_RSA,
        [SSH_SIG_RSA_SHA1] = SSH_KEY_RSA,
};

static int table_lookup(const char *const *table, size_t n, const char *s) {
        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (table[i] && streq(table[i], s))
                        return (int) i;
        return -EINVAL;
}

const char *ssh_key_type_to_string(SshKeyType t) {
        return t >= 0 && t < _SSH_KEY_TYPE_MAX ? key_type_table[t] : NULL;
}

SshKeyType ssh_key_type_from_string(const char *s) {
        return (SshKeyType) table_lookup(key_type_table, _SSH_KEY_TYPE_MAX, s);
}

const char *ssh_key_type_to_cert_string(SshKeyType t) {
        return t >= 0 && t < _SSH_KEY_TYPE_MAX ? cert_type_table[t] : NULL;
}

SshKeyType ssh_key_type_from_cert_string(const char *s) {
        return (SshKeyType) table_lookup(cert_type_table, _SSH_KEY_TYPE_MAX, s);
}

const char *ssh_sig_alg_to_string(SshSigAlg a) {
        return a >= 0 && a < _SSH_SIG_ALG_MAX ? sig_alg_table[a] : NULL;
}

SshSigAlg ssh_sig_alg_from_string(const char *s) {
        return (SshSigAlg) table_lookup(sig_alg_table, _SSH_SIG_ALG_MAX, s);
}

bool ssh_sig_alg_matches_key(SshSigAlg a, SshKeyType t) {
        return a >= 0 && a < _SSH_SIG_ALG_MAX && sig_alg_key[a] == t;
}

static bool has_cert_suffix(const char *s, size_t n) {
        /* v00 certificates were removed from OpenSSH in 7.0; both are "known" names. */
        static const char *const suffixes[] = { "-cert-v01@openssh.com", "-cert-v00@openssh.com" };

        for (size_t i = 0; i < ELEMENTSOF(suffixes); i++) {
                size_t l = strlen(suffixes[i]);

                if (n > l && memcmp(s + n - l, suffixes[i], l) == 0)
                        return true;
        }
        return false;
}

bool ssh_key_type_is_known_unsupported(const char *s) {
        static const char *const names[] = {
                "ssh-dss",
                "sk-ssh-ed25519@openssh.com",
                "sk-ecdsa-sha2-nistp256@openssh.com",
                "ssh-xmss@openssh.com",
        };

        if (!s)
                return false;
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (streq(s, names[i]))
                        return true;
        return has_cert_suffix(s, strlen(s));
}

/* A cursor over untrusted bytes. Every getter fails with -EBADMSG rather than read past
 * the end, and leaves the cursor unusable for nothing: callers stop at the first error. */
typedef struct Reader {
        const uint8_t *p;
        size_t left;
} Reader;

static int read_bytes(Reader *r, size_t n, const uint8_t **ret) {
        if (r->left < n)
                return -EBADMSG;
        *ret = r->p;
        r->p += n;
        r->left -= n;
        return 0;
}

static int read_u32(Reader *r, uint32_t *ret) {
        const uint8_t *b;

        if (read_bytes(r, 4, &b) < 0)
                return -EBADMSG;
        *ret = (uint32_t) b[0] << 24 | (uint32_t) b[1] << 16 | (uint32_t) b[2] << 8 | b[3];
        return 0;
}

static int read_u64(Reader *r, uint64_t *ret) {
        uint32_t hi, lo;

        if (read_u32(r, &hi) < 0 || read_u32(r, &lo) < 0)
                return -EBADMSG;
        *ret = (uint64_t) hi << 32 | lo;
        return 0;
}

static int read_string(Reader *r, SshBytes *ret) {
        uint32_t n;

        if (read_u32(r, &n) < 0 || read_bytes(r, n, &ret->data) < 0)
                return -EBADMSG;
        ret->size = n;
        return 0;
}

/* A string that must hold text: no NUL inside, copied out NUL-terminated. */
static int read_cstring(Reader *r, char **ret) {
        SshBytes b;
        char *s;

        if (read_string(r, &b) < 0)
                return -EBADMSG;
        if (b.size > 0 && memchr(b.data, 0, b.size))
                return -EBADMSG;
        s = malloc(b.size + 1);
        if (!s)
                return -ENOMEM;
        if (b.size > 0)
                memcpy(s, b.data, b.size);
        s[b.size] = 0;
        *ret = s;
        return 0;
}

/* Compares a string field with a name without copying it. */
static bool bytes_streq(SshBytes b, const char *s) {
        return b.size == strlen(s) && memcmp(b.data, s, b.size) == 0;
}

/* Copies a short name field into buf for table lookups; names longer than buf or holding
 * a NUL cannot be any of ours, so they become "". */
static void bytes_to_name(SshBytes b, char *buf, size_t size) {
        if (b.size >= size || (b.size > 0 && memchr(b.data, 0, b.size))) {
                buf[0] = 0;
                return;
        }
        if (b.size > 0)
                memcpy(buf, b.data, b.size);
        buf[b.size] = 0;
}

/* An mpint that must be positive (RFC 4251 5): the sign bit clear, leading zero bytes
 * dropped; max is the largest magnitude allowed in bytes. */
static int read_mpint_positive(Reader *r, size_t max, SshBytes *ret) {
        SshBytes b;

        if (read_string(r, &b) < 0)
                return -EBADMSG;
        if (b.size > 0 && (b.data[0] & 0x80))
                return -EBADMSG;
        while (b.size > 0 && b.data[0] == 0) {
                b.data++;
                b.size--;
        }
        if (b.size == 0 || b.size > max)
                return -EBADMSG;
        *ret = b;
        return 0;
}

static size_t bit_length(SshBytes b) {
        /* b has no leading zero byte */
        size_t bits = (b.size - 1) * 8;

        for (uint8_t top = b.data[0]; top; top >>= 1)
                bits++;
        return bits;
}

/* The key fields after the type name, the same in plain keys and (after the nonce) in
 * certificates. */
static int read_key_fields(Reader *r, SshKeyType type, SshPublicKey *ret) {
        SshPublicKey k = { .type = type };
        SshBytes curve;

        switch (type) {
        case SSH_KEY_ED25519:
                if (read_string(r, &k.pk) < 0 || k.pk.size != 32)
                        return -EBADMSG;
                break;
        case SSH_KEY_ECDSA_P256:
        case SSH_KEY_ECDSA_P384:
        case SSH_KEY_ECDSA_P521:
                if (read_string(r, &curve) < 0 || !bytes_streq(curve, ecdsa_table[type].curve))
                        return -EBADMSG;
                /* Only the uncompressed form: what OpenSSH writes and accepts. */
                if (read_string(r, &k.pk) < 0 || k.pk.size != ecdsa_table[type].point_size ||
                    k.pk.data[0] != 0x04)
                        return -EBADMSG;
                break;
        case SSH_KEY_RSA:
                if (read_mpint_positive(r, SSH_RSA_BITS_MAX / 8, &k.rsa_e) < 0 ||
                    read_mpint_positive(r, SSH_RSA_BITS_MAX / 8, &k.rsa_n) < 0)
                        return -EBADMSG;
                if (bit_length(k.rsa_n) < SSH_RSA_BITS_MIN || !(k.rsa_e.data[k.rsa_e.size - 1] & 1))
                        return -EBADMSG;
                break;
        default:
                return -EINVAL;
        }
        *ret = k;
        return 0;
}

int ssh_key_blob_parse(const uint8_t *blob, size_t size, SshPublicKey *ret) {
        Reader r = { blob, size };
        SshPublicKey k;
        SshBytes name;
        char buf[64];
        SshKeyType type;

        if (!blob && size > 0)
                return -EINVAL;
        if (size > SSH_KEY_BLOB_MAX)
                return -EFBIG;
        if (read_string(&r, &name) < 0)
                return -EBADMSG;
        bytes_to_name(name, buf, sizeof buf);
        type = ssh_key_type_from_string(buf);
        if (type < 0)
                return ssh_key_type_is_known_unsupported(buf) ? -EOPNOTSUPP : -EBADMSG;
        if (read_key_fields(&r, type, &k) < 0 || r.left != 0)
                return -EBADMSG;
        *ret = k;
        return 0;
}

static bool bytes_equal(SshBytes a, SshBytes b) {
        return a.size == b.size && (a.size == 0 || memcmp(a.data, b.data, a.size) == 0);
}

bool ssh_public_key_equal(const SshPublicKey *a, const SshPublicKey *b) {
        if (!a || !b)
                return false;
        return a->type == b->type && bytes_equal(a->pk, b->pk) && bytes_equal(a->rsa_e, b->rsa_e) &&
               bytes_equal(a->rsa_n, b->rsa_n);
}

bool ssh_key_blob_is_cert(const uint8_t *blob, size_t size) {
        Reader r = { blob, size };
        SshBytes name;

        if (!blob || read_string(&r, &name) < 0)
                return false;
        return has_cert_suffix((const char *) name.data, name.size);
}

int ssh_signature_parse(const uint8_t *blob, size_t size, SshSignature *ret) {
        static const size_t ecdsa_scalar[_SSH_KEY_TYPE_MAX] = {
                [SSH_KEY_ECDSA_P256] = 32,
                [SSH_KEY_ECDSA_P384] = 48,
                [SSH_KEY_ECDSA_P521] = 66,
        };
        Reader r = { blob, size };
        SshSignature s = {};
        SshBytes name;
        char buf[64];

        if (!blob && size > 0)
                return -EINVAL;
        if (read_string(&r, &name) < 0)
                return -EBADMSG;
        bytes_to_name(name, buf, sizeof buf);
        s.alg = ssh_sig_alg_from_string(buf);
        if (s.alg < 0)
                return -EOPNOTSUPP;
        if (read_string(&r, &s.data) < 0 || r.left != 0)
                return -EBADMSG;

        switch (sig_alg_key[s.alg]) {
        case SSH_KEY_ED25519:
                if (s.data.size != 64)
                        return -EBADMSG;
                break;
        case SSH_KEY_ECDSA_P256:
        case SSH_KEY_ECDSA_P384:
        case SSH_KEY_ECDSA_P521: {
                Reader inner = { s.data.data, s.data.size };
                size_t max = ecdsa_scalar[sig_alg_key[s.alg]];

                if (read_mpint_positive(&inner, max, &s.ecdsa_r) < 0 ||
                    read_mpint_positive(&inner, max, &s.ecdsa_s) < 0 || inner.left != 0)
                        return -EBADMSG;
                break;
        }
        case SSH_KEY_RSA:
                if (s.data.size == 0 || s.data.size > SSH_RSA_BITS_MAX / 8)
                        return -EBADMSG;
                break;
        default:
                return -EBADMSG;
        }
        *ret = s;
        return 0;
}

/* Builds "string type, key fields" from the certificate's key fields, which sit between
 * the nonce and the serial in the same encoding. */
static int build_plain_blob(SshKeyType type, const uint8_t *fields, size_t n, uint8_t **ret, size_t *ret_size) {
        const char *name = ssh_key_type_to_string(type);
        size_t l = strlen(name);
        uint8_t *b;

        b = malloc(4 + l + n);
        if (!b)
                return -ENOMEM;
        b[0] = (uint8_t) (l >> 24);
        b[1] = (uint8_t) (l >> 16);
        b[2] = (uint8_t) (l >> 8);
        b[3] = (uint8_t) l;
        memcpy(b + 4, name, l);
        memcpy(b + 4 + l, fields, n);
        *ret = b;
        *ret_size = 4 + l + n;
        return 0;
}

static int parse_principals(SshBytes packed, SshCert *c) {
        Reader r = { packed.data, packed.size };
        size_t n = 0;
        int k;

        /* Count first, so that the limit is checked before anything is allocated. */
        for (Reader count = r; count.left > 0; n++) {
                SshBytes b;

                if (read_string(&count, &b) < 0)
                        return -EBADMSG;
                if (n >= SSH_CERT_PRINCIPALS_MAX)
                        return -E2BIG;
        }
        c->principals = calloc(n + 1, sizeof(char *));
        if (!c->principals)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                k = read_cstring(&r, &c->principals[i]);
                if (k < 0)
                        return k;
                c->n_principals++;
        }
        return 0;
}

static const struct {
        const char *name;
        SshCertExtension bit;
} extension_table[] = {
        { "permit-X11-forwarding", SSH_CERT_EXT_PERMIT_X11_FORWARDING },
        { "permit-agent-forwarding", SSH_CERT_EXT_PERMIT_AGENT_FORWARDING },
        { "permit-port-forwarding", SSH_CERT_EXT_PERMIT_PORT_FORWARDING },
        { "permit-pty", SSH_CERT_EXT_PERMIT_PTY },
        { "permit-user-rc", SSH_CERT_EXT_PERMIT_USER_RC },
        { "no-touch-required", SSH_CERT_EXT_NO_TOUCH_REQUIRED },
};

/* The option value is itself a string inside the data string, with nothing after it. */
static int read_option_value(SshBytes data, char **ret) {
        Reader r = { data.data, data.size };
        char *s = NULL;
        int k;

        k = read_cstring(&r, &s);
        if (k < 0)
                return k;
        if (r.left != 0) {
                free(s);
                return -EBADMSG;
        }
        *ret = s;
        return 0;
}

/* Critical options and extensions: a sequence of (string name, string data). Names must
 * be NUL-free; a critical option we know must not appear twice (OpenSSH refuses that). */
static int parse_options(SshBytes packed, bool critical, SshCert *c) {
        Reader r = { packed.data, packed.size };
        size_t n = 0;
        int k;

        while (r.left > 0) {
                SshBytes name, data;

                if (read_string(&r, &name) < 0 || read_string(&r, &data) < 0)
                        return -EBADMSG;
                if (name.size == 0 || memchr(name.data, 0, name.size))
                        return -EBADMSG;
                if (++n > SSH_CERT_OPTIONS_MAX)
                        return -E2BIG;

                if (!critical) {
                        for (size_t i = 0; i < ELEMENTSOF(extension_table); i++)
                                if (bytes_streq(name, extension_table[i].name)) {
                                        /* Flag extensions carry no data. */
                                        if (data.size != 0)
                                                return -EBADMSG;
                                        c->extensions |= extension_table[i].bit;
                                }
                        continue;
                }

                if (bytes_streq(name, "source-address")) {
                        if (c->source_address)
                                return -EBADMSG;
                        k = read_option_value(data, &c->source_address);
                        if (k < 0)
                                return k;
                } else if (bytes_streq(name, "force-command")) {
                        if (c->force_command)
                                return -EBADMSG;
                        k = read_option_value(data, &c->force_command);
                        if (k < 0)
                                return k;
                } else if (!c->unknown_critical) {
                        c->unknown_critical = strndup((const char *) name.data, name.size);
                        if (!c->unknown_critical)
                                return -ENOMEM;
                }
        }
        return 0;
}

int ssh_cert_parse(const uint8_t *blob, size_t size, SshCert **ret) {
        _cleanup_(ssh_cert_freep) SshCert *c = NULL;
        SshBytes name, principals, critical, extensions, reserved;
        const uint8_t *fields_start;
        char buf[64];
        Reader r;
        int k;

        if (!blob && size > 0)
                return -EINVAL;
        if (size > SSH_KEY_BLOB_MAX)
                return -EFBIG;

        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->blob = malloc(size ? size : 1);
        if (!c->blob)
                return -ENOMEM;
        if (size > 0)
                memcpy(c->blob, blob, size);
        c->blob_size = size;
        r = (Reader) { c->blob, size };

        if (read_string(&r, &name) < 0)
                return -EBADMSG;
        bytes_to_name(name, buf, sizeof buf);
        c->type = ssh_key_type_from_cert_string(buf);
        if (c->type < 0)
                return has_cert_suffix((const char *) name.data, name.size) ? -EOPNOTSUPP : -EBADMSG;

        if (read_string(&r, &c->nonce) < 0)
                return -EBADMSG;
        fields_start = r.p;
        k = read_key_fields(&r, c->type, &c->key);
        if (k < 0)
                return k;
        k = build_plain_blob(c->type, fields_start, (size_t) (r.p - fields_start), &c->key_blob, &c->key_blob_size);
        if (k < 0)
                return k;

        if (read_u64(&r, &c->serial) < 0 || read_u32(&r, &c->cert_type) < 0)
                return -EBADMSG;
        k = read_cstring(&r, &c->key_id);
        if (k < 0)
                return k;
        if (read_string(&r, &principals) < 0 ||
            read_u64(&r, &c->valid_after) < 0 || read_u64(&r, &c->valid_before) < 0 ||
            read_string(&r, &critical) < 0 ||
            read_string(&r, &extensions) < 0 ||
            read_string(&r, &reserved) < 0 ||
            read_string(&r, &c->ca_key_blob) < 0)
                return -EBADMSG;
        c->signed_data = (SshBytes) { c->blob, (size_t) (r.p - c->blob) };
        if (read_string(&r, &c->signature_blob) < 0 || r.left != 0)
                return -EBADMSG;

        k = parse_principals(principals, c);
        if (k < 0)
                return k;
        k = parse_options(critical, true, c);
        if (k < 0)
                return k;
        k = parse_options(extensions, false, c);
        if (k < 0)
                return k;

        /* The CA key must be a plain key (OpenSSH refuses certificates as CAs). */
        if (ssh_key_blob_is_cert(c->ca_key_blob.data, c->ca_key_blob.size))
                return -EBADMSG;
        k = ssh_key_blob_parse(c->ca_key_blob.data, c->ca_key_blob.size, &c->ca);
        if (k < 0)
                return k;
        k = ssh_signature_parse(c->signature_blob.data, c->signature_blob.size, &c->signature);
        if (k == -EOPNOTSUPP)
                return k;
        if (k < 0 || !ssh_sig_alg_matches_key(c->signature.alg, c->ca.type))
                return -EBADMSG;

        *ret = TAKE_PTR(c);
        return 0;
}

SshCert *ssh_cert_free(SshCert *c) {
        if (!c)
                return NULL;
        free(c->blob);
        free(c->key_blob);
        free(c->key_id);
        strv_free(c->principals);
        free(c->source_address);
        free(c->force_command);
        free(c->unknown_critical);
        free(c);
        return NULL;
}

bool ssh_cert_has_principal(const SshCert *c, const char *name) {
        if (!c || !name)
                return false;
        for (size_t i = 0; i < c->n_principals; i++)
                if (streq(c->principals[i], name))
                        return true;
        return false;
}
