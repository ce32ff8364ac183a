/* Public-key and OpenSSH user certificate decisions for the server role; certificate
 * signatures are verified here with OpenSSL 3 EVP (libssh never looks inside a
 * certificate). */
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <stdio.h>
#include <string.h>

#include "fileio.h"
#include "macro.h"
#include "ssh-auth.h"

DEFINE_VOID_CLEANUP_FUNC(EVP_PKEY, EVP_PKEY_free);
DEFINE_VOID_CLEANUP_FUNC(EVP_PKEY_CTX, EVP_PKEY_CTX_free);
DEFINE_VOID_CLEANUP_FUNC(EVP_MD_CTX, EVP_MD_CTX_free);
DEFINE_VOID_CLEANUP_FUNC(OSSL_PARAM_BLD, OSSL_PARAM_BLD_free);
DEFINE_VOID_CLEANUP_FUNC(OSSL_PARAM, OSSL_PARAM_free);
DEFINE_VOID_CLEANUP_FUNC(BIGNUM, BN_free);
DEFINE_VOID_CLEANUP_FUNC(ECDSA_SIG, ECDSA_SIG_free);

/* Builds an EVP_PKEY of the given type ("EC", "RSA") from provider parameters. */
static int pkey_from_params(const char *type, OSSL_PARAM_BLD *bld, EVP_PKEY **ret) {
        _cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = NULL;
        _cleanup_(OSSL_PARAM_freep) OSSL_PARAM *params = NULL;
        EVP_PKEY *pkey = NULL;

        params = OSSL_PARAM_BLD_to_param(bld);
        ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
        if (!params || !ctx)
                return -ENOMEM;
        if (EVP_PKEY_fromdata_init(ctx) <= 0 ||
            EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
                return -EBADMSG; /* e.g. a point that is not on the curve */
        *ret = pkey;
        return 0;
}

static int pkey_from_ssh(const SshPublicKey *key, EVP_PKEY **ret) {
        _cleanup_(OSSL_PARAM_BLD_freep) OSSL_PARAM_BLD *bld = NULL;
        _cleanup_(BN_freep) BIGNUM *n = NULL, *e = NULL;
        const char *group;

        switch (key->type) {
        case SSH_KEY_ED25519:
                *ret = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, key->pk.data, key->pk.size);
                return *ret ? 0 : -EBADMSG;
        case SSH_KEY_ECDSA_P256:
        case SSH_KEY_ECDSA_P384:
        case SSH_KEY_ECDSA_P521:
                group = key->type == SSH_KEY_ECDSA_P256 ? "P-256" :
                        key->type == SSH_KEY_ECDSA_P384 ? "P-384" : "P-521";
                bld = OSSL_PARAM_BLD_new();
                if (!bld ||
                    !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) ||
                    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, key->pk.data, key->pk.size))
                        return -ENOMEM;
                return pkey_from_params("EC", bld, ret);
        case SSH_KEY_RSA:
                n = BN_bin2bn(key->rsa_n.data, (int) key->rsa_n.size, NULL);
                e = BN_bin2bn(key->rsa_e.data, (int) key->rsa_e.size, NULL);
                bld = OSSL_PARAM_BLD_new();
                if (!n || !e || !bld ||
                    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
                    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
                        return -ENOMEM;
                return pkey_from_params("RSA", bld, ret);
        default:
                return -EOPNOTSUPP;
        }
}

/* SSH carries ECDSA signatures as two mpints; EVP wants DER. */
static int ecdsa_sig_to_der(const SshSignature *sig, uint8_t **ret, size_t *ret_size) {
        _cleanup_(ECDSA_SIG_freep) ECDSA_SIG *s = NULL;
        BIGNUM *r = NULL, *ss = NULL;
        unsigned char *der = NULL;
        int n;

        s = ECDSA_SIG_new();
        r = BN_bin2bn(sig->ecdsa_r.data, (int) sig->ecdsa_r.size, NULL);
        ss = BN_bin2bn(sig->ecdsa_s.data, (int) sig->ecdsa_s.size, NULL);
        if (!s || !r || !ss || !ECDSA_SIG_set0(s, r, ss)) {
                BN_free(r);
                BN_free(ss);
                return -ENOMEM;
        }
        n = i2d_ECDSA_SIG(s, &der);
        if (n <= 0)
                return -ENOMEM;
        *ret = der;
        *ret_size = (size_t) n;
        return 0;
}

int ssh_auth_verify_signature(const SshPublicKey *key, const SshSignature *sig,
                              const uint8_t *data, size_t size) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
        _cleanup_(freep) uint8_t *padded = NULL;
        unsigned char *der = NULL;
        const uint8_t *s;
        const EVP_MD *md;
        size_t sn;
        int r;

        if (!key || !sig || (!data && size > 0))
                return -EINVAL;
        if (!ssh_sig_alg_matches_key(sig->alg, key->type) || sig->alg == SSH_SIG_RSA_SHA1)
                return -EOPNOTSUPP;

        switch (sig->alg) {
        case SSH_SIG_ED25519:
                md = NULL; /* Ed25519 hashes internally: one-shot verify without a digest */
                break;
        case SSH_SIG_ECDSA_P256:
        case SSH_SIG_RSA_SHA256:
                md = EVP_sha256();
                break;
        case SSH_SIG_ECDSA_P384:
                md = EVP_sha384();
                break;
        case SSH_SIG_ECDSA_P521:
        case SSH_SIG_RSA_SHA512:
                md = EVP_sha512();
                break;
        default:
                return -EOPNOTSUPP;
        }

        r = pkey_from_ssh(key, &pkey);
        if (r < 0)
                return r;

        s = sig->data.data;
        sn = sig->data.size;
        if (key->type == SSH_KEY_RSA) {
                /* OpenSSH may send a signature shorter than the modulus: left-pad it. */
                size_t modlen = (size_t) EVP_PKEY_get_size(pkey);

                if (sn > modlen)
                        return -EBADMSG;
                if (sn < modlen) {
                        padded = calloc(1, modlen);
                        if (!padded)
                                return -ENOMEM;
                        memcpy(padded + modlen - sn, s, sn);
                        s = padded;
                        sn = modlen;
                }
        } else if (key->type != SSH_KEY_ED25519) {
                r = ecdsa_sig_to_der(sig, &der, &sn);
                if (r < 0)
                        return r;
                s = der;
        }

        ctx = EVP_MD_CTX_new();
        if (!ctx) {
                OPENSSL_free(der);
                return -ENOMEM;
        }
        if (EVP_DigestVerifyInit_ex(ctx, NULL, md ? EVP_MD_get0_name(md) : NULL, NULL, NULL, pkey, NULL) <= 0)
                r = -EBADMSG;
        else
                r = EVP_DigestVerify(ctx, s, sn, data, size) == 1 ? 0 : -EBADMSG;
        OPENSSL_free(der);
        return r;
}

int ssh_auth_fingerprint(const uint8_t *blob, size_t size, char ret[FINGERPRINT_SIZE]) {
        uint8_t digest[32];
        unsigned n = 0;

        if (!blob && size > 0)
                return -EINVAL;
        if (EVP_Digest(blob, size, digest, &n, EVP_sha256(), NULL) != 1 || n != sizeof digest)
                return -ENOMEM;
        fingerprint_format_sha256(digest, ret);
        return 0;
}

char *ssh_auth_log_escape(const char *s) {
        static const char hex[] = "0123456789abcdef";
        size_t n = 0, o = 0;
        char *out;

        s = strempty(s);
        for (const char *c = s; *c; c++)
                n++;
        out = malloc(n * 4 + 1);
        if (!out)
                return NULL;
        for (const unsigned char *c = (const unsigned char *) s; *c; c++) {
                if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                    strchr("._@:+/-", *c))
                        out[o++] = (char) *c;
                else {
                        out[o++] = '\\';
                        out[o++] = 'x';
                        out[o++] = hex[*c >> 4];
                        out[o++] = hex[*c & 15];
                }
        }
        out[o] = 0;
        return out;
}

/* Keys are compared by their parsed components, not their bytes. */
static bool entry_is_key(const AuthorizedKey *e, const SshPublicKey *k) {
        SshPublicKey ek;

        return ssh_key_blob_parse(e->blob, e->blob_size, &ek) >= 0 && ssh_public_key_equal(&ek, k);
}

/* The checks of one certificate-authority route (a TrustedUserCAKeys key, or a
 * cert-authority line with its options). Returns NULL when it accepts, else the reason. */
static const char *check_ca_route(const SshAuthRequest *req, const SshCert *c, const AuthorizedKey *line) {
        if (!line)
                return ssh_cert_has_principal(c, req->user) ? NULL : "cert-principal";

        if (line->options.principals) {
                bool found = false;

                for (size_t i = 0; i < line->options.n_principals && !found; i++)
                        found = ssh_cert_has_principal(c, line->options.principals[i]);
                if (!found)
                        return "cert-principal";
        } else if (!ssh_cert_has_principal(c, req->user))
                return "cert-principal";
        if (line->options.expiry_time != 0 && req->now >= line->options.expiry_time)
                return "key-expired";
        if (!authorized_keys_match_from(line, req->peer))
                return "from-mismatch";
        return NULL;
}

/* Reasons ordered by how far an attempt got, so that when several routes refuse, the
 * log names the most telling one (a matching CA whose principals do not fit says more
 * than an unrelated line). */
static int reason_rank(const char *reason) {
        static const char *const order[] = { "cert-principal", "key-expired", "from-mismatch" };

        for (size_t i = 0; i < ELEMENTSOF(order); i++)
                if (streq(reason, order[i]))
                        return (int) i;
        return -1;
}

/* Stands for "no decision": an allocation failed, *ret_error says how. */
static const char reason_error[] = "error";

/* Returns the reason the certificate is refused, NULL when accepted (then *ret_forward is
 * set), or reason_error. */
static const char *check_certificate(const SshAuthRequest *req, const SshCert *c,
                                     const AuthorizedKeys *authorized, const AuthorizedKeys *trusted_cas,
                                     ForwardPermissions *ret_forward, int *ret_error) {
        const AuthorizedKey *accepted_line = NULL;
        const char *reason = NULL;
        bool trusted = false, via_file = false;
        int r;

        if (c->cert_type != SSH_CERT_TYPE_USER)
                return "cert-not-user";

        for (size_t i = 0; trusted_cas && i < trusted_cas->n_entries; i++)
                if (entry_is_key(&trusted_cas->entries[i], &c->ca))
                        trusted = via_file = true;
        for (size_t i = 0; authorized && i < authorized->n_entries; i++)
                if (authorized->entries[i].options.cert_authority &&
                    entry_is_key(&authorized->entries[i], &c->ca))
                        trusted = true;
        if (!trusted)
                return "cert-unknown-ca";

        r = ssh_auth_verify_signature(&c->ca, &c->signature, c->signed_data.data, c->signed_data.size);
        if (r == -EOPNOTSUPP)
                return "cert-signature-algorithm";
        if (r < 0)
                return "cert-bad-signature";

        if (req->now < c->valid_after)
                return "cert-not-yet-valid";
        if (req->now >= c->valid_before)
                return "cert-expired";
        if (c->force_command || c->unknown_critical)
                return "cert-critical-option";
        if (c->source_address && ssh_cidr_list_match(c->source_address, req->peer) != 1)
                return "cert-source-address";
        if (c->n_principals == 0)
                return "cert-no-principals";

        if (via_file) {
                reason = check_ca_route(req, c, NULL);
                if (!reason)
                        goto accept;
        }
        for (size_t i = 0; authorized && i < authorized->n_entries; i++) {
                const AuthorizedKey *e = &authorized->entries[i];
                const char *why;

                if (!e->options.cert_authority ||
                    !entry_is_key(e, &c->ca))
                        continue;
                why = check_ca_route(req, c, e);
                if (!why) {
                        accepted_line = e;
                        goto accept;
                }
                if (!reason || reason_rank(why) > reason_rank(reason))
                        reason = why;
        }
        return reason;

accept:
        if (accepted_line) {
                r = forward_permissions_copy(&accepted_line->options.forward, ret_forward);
                if (r < 0) {
                        *ret_error = r;
                        return reason_error;
                }
        } else
                *ret_forward = (ForwardPermissions) { .allowed = true };
        /* The certificate's extension and the line's options must both allow it. */
        if (!(c->extensions & SSH_CERT_EXT_PERMIT_PORT_FORWARDING))
                ret_forward->allowed = false;
        return NULL;
}

static const char *check_plain_key(const SshAuthRequest *req, const SshPublicKey *key,
                                   const AuthorizedKeys *authorized, const AuthorizedKey **ret_line) {
        const char *reason = "unknown-key";

        for (size_t i = 0; authorized && i < authorized->n_entries; i++) {
                const AuthorizedKey *e = &authorized->entries[i];
                const char *why;

                /* A CA key only vouches for certificates (as in OpenSSH). */
                if (e->options.cert_authority ||
                    !entry_is_key(e, key))
                        continue;
                if (e->options.expiry_time != 0 && req->now >= e->options.expiry_time)
                        why = "key-expired";
                else if (!authorized_keys_match_from(e, req->peer))
                        why = "from-mismatch";
                else {
                        *ret_line = e;
                        return NULL;
                }
                if (reason_rank(why) > reason_rank(reason))
                        reason = why;
        }
        return reason;
}

int ssh_auth_check(const SshAuthRequest *req, const AuthorizedKeys *authorized,
                   const AuthorizedKeys *trusted_cas, SshAuthResult *ret) {
        _cleanup_(ssh_cert_freep) SshCert *c = NULL;
        _cleanup_(ssh_auth_result_done) SshAuthResult res = {};
        _cleanup_(freep) char *escaped = NULL;
        const char *reason;
        int r;

        if (!req || !req->user || !req->peer || (!req->key_blob && req->key_blob_size > 0) || !ret)
                return -EINVAL;

        r = ssh_auth_fingerprint(req->key_blob, req->key_blob_size, res.fingerprint);
        if (r < 0)
                return r;

        if (!ssh_key_blob_is_cert(req->key_blob, req->key_blob_size)) {
                const AuthorizedKey *line = NULL;
                SshPublicKey key;

                if (ssh_key_blob_parse(req->key_blob, req->key_blob_size, &key) < 0)
                        reason = "bad-key";
                else
                        reason = check_plain_key(req, &key, authorized, &line);
                if (!reason) {
                        r = forward_permissions_copy(&line->options.forward, &res.forward);
                        if (r < 0)
                                return r;
                        res.accepted = true;
                        reason = "key";
                }
                res.reason = reason;
                if (asprintf(&res.log_fields, "reason=%s", reason) < 0)
                        return -ENOMEM;
                *ret = res;
                res = (SshAuthResult) {};
                return 0;
        }

        r = ssh_cert_parse(req->key_blob, req->key_blob_size, &c);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                res.reason = r == -EOPNOTSUPP ? "cert-unsupported" : "cert-malformed";
                if (asprintf(&res.log_fields, "reason=%s", res.reason) < 0)
                        return -ENOMEM;
                *ret = res;
                res = (SshAuthResult) {};
                return 0;
        }

        r = ssh_auth_fingerprint(c->key_blob, c->key_blob_size, res.fingerprint);
        if (r < 0)
                return r;
        r = ssh_auth_fingerprint(c->ca_key_blob.data, c->ca_key_blob.size, res.ca_fingerprint);
        if (r < 0)
                return r;
        res.key_id = strdup(c->key_id);
        escaped = ssh_auth_log_escape(c->key_id);
        if (!res.key_id || !escaped)
                return -ENOMEM;
        res.serial = c->serial;

        reason = check_certificate(req, c, authorized, trusted_cas, &res.forward, &r);
        if (reason == reason_error)
                return r;
        if (!reason) {
                res.accepted = true;
                reason = "certificate";
        }
        res.reason = reason;
        if (asprintf(&res.log_fields, "reason=%s ca_fingerprint=%s key_id=%s serial=%" PRIu64,
                     reason, res.ca_fingerprint, escaped, c->serial) < 0)
                return -ENOMEM;
        *ret = res;
        res = (SshAuthResult) {};
        return 0;
}

void ssh_auth_result_done(SshAuthResult *r) {
        if (!r)
                return;
        free(r->key_id);
        free(r->log_fields);
        forward_permissions_done(&r->forward);
        *r = (SshAuthResult) {};
}

int ssh_auth_result_reject(SshAuthResult *r, const char *reason) {
        const char *rest;
        char *fields;

        if (!r || !reason)
                return -EINVAL;
        r->accepted = false;
        r->reason = reason;
        forward_permissions_done(&r->forward);
        rest = r->log_fields ? strchr(r->log_fields, ' ') : NULL;
        if (asprintf(&fields, "reason=%s%s", reason, strempty(rest)) < 0) {
                free(r->log_fields);
                r->log_fields = NULL;
                return -ENOMEM;
        }
        free(r->log_fields);
        r->log_fields = fields;
        return 0;
}

int ssh_auth_load_keys(const char *path, AuthorizedKeysFlags flags, AuthorizedKeys **ret) {
        _cleanup_(freep) char *text = NULL;
        size_t size;
        int r;

        if (!path || !ret)
                return -EINVAL;
        r = read_full_file_at(AT_FDCWD, path, SSH_AUTH_KEYS_FILE_MAX, &text, &size);
        if (r < 0)
                return r;
        return authorized_keys_parse(text, size, flags, ret);
}
