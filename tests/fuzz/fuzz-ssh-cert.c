/* libFuzzer target for OpenSSH key, signature and certificate blobs (src/shared/ssh-cert.c)
 * and the daemon's decision on them (src/daemon/ssh-auth.c, OpenSSL verification included):
 * only documented results, consistent views, no read past the input; abort() otherwise.
 * Input: one blob, as a client would present it. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-check.h"
#include "macro.h"
#include "ssh-auth.h"
#include "ssh-cert.h"

static bool inside(const SshBytes *b, const uint8_t *base, size_t size) {
        return b->size == 0 || (b->data >= base && b->data + b->size <= base + size);
}

static void check_key(const SshPublicKey *k, const uint8_t *base, size_t size) {
        check(k->type >= 0 && k->type < _SSH_KEY_TYPE_MAX);
        switch (k->type) {
        case SSH_KEY_ED25519:
                check(k->pk.size == 32 && inside(&k->pk, base, size));
                break;
        case SSH_KEY_ECDSA_P256:
        case SSH_KEY_ECDSA_P384:
        case SSH_KEY_ECDSA_P521:
                check(k->pk.size == 65 || k->pk.size == 97 || k->pk.size == 133);
                check(k->pk.data[0] == 0x04 && inside(&k->pk, base, size));
                break;
        case SSH_KEY_RSA:
                check(inside(&k->rsa_e, base, size) && inside(&k->rsa_n, base, size));
                check(k->rsa_n.size >= SSH_RSA_BITS_MIN / 8 && k->rsa_n.size <= SSH_RSA_BITS_MAX / 8);
                check(k->rsa_n.data[0] != 0 && k->rsa_e.data[0] != 0); /* sign byte dropped */
                check(k->rsa_e.data[k->rsa_e.size - 1] & 1);
                break;
        default:
                abort();
        }
}

static void check_cert(const SshCert *c, const uint8_t *data, size_t size) {
        SshPublicKey plain;

        check(c->blob_size == size && memcmp(c->blob, data, size) == 0);
        check(ssh_key_blob_is_cert(data, size));
        check_key(&c->key, c->blob, size);
        check(c->key.type == c->type);
        check_key(&c->ca, c->ca_key_blob.data, c->ca_key_blob.size);
        check(inside(&c->ca_key_blob, c->blob, size));
        check(inside(&c->nonce, c->blob, size));
        check(c->signed_data.data == c->blob);
        check(c->signed_data.size + 4 + c->signature_blob.size == size);
        check(c->signature_blob.data == c->blob + c->signed_data.size + 4);
        check(ssh_sig_alg_matches_key(c->signature.alg, c->ca.type));

        /* The certified key as a plain blob parses back to the same key. */
        check(ssh_key_blob_parse(c->key_blob, c->key_blob_size, &plain) == 0);
        check(plain.type == c->type && !ssh_key_blob_is_cert(c->key_blob, c->key_blob_size));
        check(plain.pk.size == c->key.pk.size && plain.rsa_n.size == c->key.rsa_n.size &&
              plain.rsa_e.size == c->key.rsa_e.size);
        if (plain.pk.size > 0)
                check(memcmp(plain.pk.data, c->key.pk.data, plain.pk.size) == 0);
        if (plain.rsa_n.size > 0)
                check(memcmp(plain.rsa_n.data, c->key.rsa_n.data, plain.rsa_n.size) == 0 &&
                      memcmp(plain.rsa_e.data, c->key.rsa_e.data, plain.rsa_e.size) == 0);

        check(c->key_id);
        check(c->principals && c->n_principals <= SSH_CERT_PRINCIPALS_MAX && !c->principals[c->n_principals]);
        for (size_t i = 0; i < c->n_principals; i++)
                check(ssh_cert_has_principal(c, c->principals[i]));
        check(!c->unknown_critical || *c->unknown_critical);
        check((c->extensions & ~0x3fu) == 0);
}

static void check_auth(const SshCert *c, const uint8_t *data, size_t size) {
        static const char *const peers[] = { "127.0.0.1", "::1" };
        AuthorizedKey ca_entry = {
                .line = 1,
                .type = c ? c->ca.type : SSH_KEY_ED25519,
                .blob = c ? (uint8_t *) c->ca_key_blob.data : NULL,
                .blob_size = c ? c->ca_key_blob.size : 0,
        };
        AuthorizedKeys trusted = { .entries = &ca_entry, .n_entries = c ? 1 : 0 };

        for (size_t i = 0; i < ELEMENTSOF(peers); i++) {
                struct sockaddr_storage ss = {};
                SshAuthResult res = {};
                SshAuthRequest req = {
                        .user = c && c->n_principals > 0 ? c->principals[0] : "alknet",
                        .peer = (struct sockaddr *) &ss,
                        .key_blob = data,
                        .key_blob_size = size,
                        .now = 1700000000,
                };

                if (i == 0) {
                        ((struct sockaddr_in *) &ss)->sin_family = AF_INET;
                        check(inet_pton(AF_INET, peers[i], &((struct sockaddr_in *) &ss)->sin_addr) == 1);
                } else {
                        ((struct sockaddr_in6 *) &ss)->sin6_family = AF_INET6;
                        check(inet_pton(AF_INET6, peers[i], &((struct sockaddr_in6 *) &ss)->sin6_addr) == 1);
                }
                check(ssh_auth_check(&req, NULL, &trusted, &res) == 0);
                check(res.reason && res.log_fields && strncmp(res.log_fields, "reason=", 7) == 0);
                check(strncmp(res.fingerprint, "SHA256:", 7) == 0 && strlen(res.fingerprint) == 50);
                for (const char *p = res.log_fields; *p; p++)
                        check(*p > 0x20 - 1 && *p < 0x7f && *p != '\n');
                if (res.accepted) {
                        /* Only a certificate that really verifies, for this user, now. */
                        check(c && streq(res.reason, "certificate"));
                        check(ssh_auth_verify_signature(&c->ca, &c->signature, c->signed_data.data,
                                                        c->signed_data.size) == 0);
                        check(c->cert_type == SSH_CERT_TYPE_USER && ssh_cert_has_principal(c, req.user));
                        check(c->valid_after <= req.now && req.now < c->valid_before);
                        check(!c->force_command && !c->unknown_critical);
                        check(res.forward.allowed == !!(c->extensions & SSH_CERT_EXT_PERMIT_PORT_FORWARDING));
                } else
                        check(!res.forward.allowed);
                if (c)
                        check(streq(res.key_id, c->key_id));
                ssh_auth_result_done(&res);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        uint8_t *copy = malloc(size ? size : 1); /* exactly sized, so ASan sees overreads */
        SshCert *c = NULL;
        SshPublicKey key;
        SshSignature sig;
        int r;

        check(copy);
        memcpy(copy, data, size);

        r = ssh_cert_parse(copy, size, &c);
        check(r == 0 || r == -EBADMSG || r == -EOPNOTSUPP || r == -E2BIG || r == -EFBIG);
        check((r == 0) == (c != NULL));
        if (c) {
                check_cert(c, copy, size);
                /* Certificates are self-delimiting: a byte more or less is malformed. */
                check(ssh_cert_parse(copy, size - 1, &(SshCert *) { NULL }) == -EBADMSG);
        }

        r = ssh_key_blob_parse(copy, size, &key);
        check(r == 0 || r == -EBADMSG || r == -EOPNOTSUPP || r == -EFBIG);
        if (r == 0) {
                check_key(&key, copy, size);
                check(!c && !ssh_key_blob_is_cert(copy, size));
        }

        r = ssh_signature_parse(copy, size, &sig);
        check(r == 0 || r == -EBADMSG || r == -EOPNOTSUPP);
        if (r == 0) {
                check(sig.alg >= 0 && sig.alg < _SSH_SIG_ALG_MAX);
                check(inside(&sig.data, copy, size));
                if (sig.alg >= SSH_SIG_ECDSA_P256 && sig.alg <= SSH_SIG_ECDSA_P521)
                        check(sig.ecdsa_r.size >= 1 && sig.ecdsa_r.size <= 66 && sig.ecdsa_s.size >= 1 &&
                              sig.ecdsa_s.size <= 66 && sig.ecdsa_r.data[0] != 0 && sig.ecdsa_s.data[0] != 0);
        }

        if (size <= SSH_KEY_BLOB_MAX)
                check_auth(c, copy, size);

        ssh_cert_free(c);
        free(copy);
        return 0;
}
