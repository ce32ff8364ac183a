/* Tests for OpenSSH certificate parsing (src/shared/ssh-cert.c) and the server's auth
 * decision (src/daemon/ssh-auth.c) with real certificates made by ssh-keygen -s at test
 * time: every CA key type, validity, principals, CAs, critical options, extensions,
 * tampering, every truncation point, and hand-built blobs for what ssh-keygen won't make. */
#include <arpa/inet.h>
#include <check.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "authorized-keys.h"
#include "macro.h"
#include "ssh-auth.h"
#include "ssh-cert.h"

static char dir[] = "/tmp/test-ssh-cert-XXXXXX";

static void *mfree(void *p) {
        free(p);
        return NULL;
}

static void run(const char *fmt, ...) _printf_(1, 2);
static void run(const char *fmt, ...) {
        _cleanup_(freep) char *cmd = NULL;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&cmd, fmt, ap);
        va_end(ap);
        ck_assert_int_ge(r, 0);
        r = system(cmd);
        ck_assert_msg(r == 0, "command failed (%d): %s", r, cmd);
}

static char *read_text(const char *name) {
        _cleanup_(freep) char *path = NULL;
        char *text;
        FILE *f;
        long n;

        ck_assert_int_ge(asprintf(&path, "%s/%s", dir, name), 0);
        f = fopen(path, "re");
        ck_assert_msg(f, "cannot open %s", path);
        ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
        n = ftell(f);
        rewind(f);
        text = calloc(1, (size_t) n + 1);
        ck_assert_ptr_nonnull(text);
        ck_assert_uint_eq(fread(text, 1, (size_t) n, f), (size_t) n);
        fclose(f);
        return text;
}

/* The blob of a "type base64 comment" .pub file. */
static uint8_t *read_pub_blob(const char *name, size_t *ret_size) {
        _cleanup_(freep) char *text = read_text(name);
        char *b64 = strchr(text, ' '), *end;
        uint8_t *blob;
        size_t n, pad = 0;
        int r;

        ck_assert_ptr_nonnull(b64);
        b64++;
        end = strpbrk(b64, " \n");
        n = end ? (size_t) (end - b64) : strlen(b64);
        blob = malloc(n);
        ck_assert_ptr_nonnull(blob);
        r = EVP_DecodeBlock(blob, (const unsigned char *) b64, (int) n);
        ck_assert_int_gt(r, 0);
        pad = (n > 0 && b64[n - 1] == '=') + (n > 1 && b64[n - 2] == '=');
        *ret_size = (size_t) r - pad;
        return blob;
}

/* Signs a copy of user.pub with ca; returns the certificate blob. */
static uint8_t *make_cert(const char *name, const char *ca, const char *user, const char *id, const char *args,
                          size_t *ret_size) {
        _cleanup_(freep) char *cert = NULL;

        run("cp %s/%s.pub %s/%s.pub", dir, user, dir, name);
        run("ssh-keygen -q -s %s/%s -I '%s' %s %s/%s.pub", dir, ca, id, args, dir, name);
        ck_assert_int_ge(asprintf(&cert, "%s-cert.pub", name), 0);
        return read_pub_blob(cert, ret_size);
}

static AuthorizedKeys *keys_from(const char *text, AuthorizedKeysFlags flags) {
        AuthorizedKeys *k = NULL;

        ck_assert_int_eq(authorized_keys_parse(text, strlen(text), flags, &k), 0);
        ck_assert_msg(k->n_errors == 0, "%s", k->n_errors ? k->errors[0].message : "");
        return k;
}

/* A TrustedUserCAKeys file of the named CAs' .pub files (comma-separated names). */
static AuthorizedKeys *trusted_from(const char *names) {
        _cleanup_(freep) char *text = strdup(""), *copy = strdup(names);
        char *save = NULL;

        ck_assert_ptr_nonnull(text);
        ck_assert_ptr_nonnull(copy);
        for (char *n = strtok_r(copy, ",", &save); n; n = strtok_r(NULL, ",", &save)) {
                _cleanup_(freep) char *file = NULL, *pub = NULL;
                char *joined;

                ck_assert_int_ge(asprintf(&file, "%s.pub", n), 0);
                pub = read_text(file);
                ck_assert_int_ge(asprintf(&joined, "%s%s", text, pub), 0);
                free(text);
                text = joined;
        }
        return keys_from(text, AUTHORIZED_KEYS_NO_OPTIONS);
}

static void make_peer(const char *text, struct sockaddr_storage *ss) {
        memset(ss, 0, sizeof *ss);
        if (strchr(text, ':')) {
                struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) ss;

                in6->sin6_family = AF_INET6;
                ck_assert_int_eq(inet_pton(AF_INET6, text, &in6->sin6_addr), 1);
        } else {
                struct sockaddr_in *in = (struct sockaddr_in *) ss;

                in->sin_family = AF_INET;
                ck_assert_int_eq(inet_pton(AF_INET, text, &in->sin_addr), 1);
        }
}

static void check_auth(const uint8_t *blob, size_t size, const AuthorizedKeys *authorized, const AuthorizedKeys *trusted,
                       const char *user, const char *peer, SshAuthResult *ret) {
        struct sockaddr_storage ss;
        SshAuthRequest req = {
                .user = user,
                .peer = (struct sockaddr *) &ss,
                .key_blob = blob,
                .key_blob_size = size,
                .now = (uint64_t) time(NULL),
        };

        make_peer(peer, &ss);
        ck_assert_int_eq(ssh_auth_check(&req, authorized, trusted, ret), 0);
        ck_assert_ptr_nonnull(ret->reason);
        ck_assert_ptr_nonnull(ret->log_fields);
        ck_assert(strncmp(ret->fingerprint, "SHA256:", 7) == 0 && strlen(ret->fingerprint) == 50);
        if (!ret->accepted) {
                ck_assert(!ret->forward.allowed);
                ck_assert_uint_eq(ret->forward.n_open + ret->forward.n_listen, 0);
        }
}

static const struct {
        const char *name, *ca, *user_key, *args;
        const char *trusted;            /* CA names for TrustedUserCAKeys, NULL for none */
        const char *auth_opts;          /* an AuthorizedKeys line: options ... */
        const char *auth_key;           /* ... and this key's .pub; NULL for no file */
        const char *user, *peer;
        bool accepted;
        const char *reason;
        bool forward;
        size_t n_open;
} cert_cases[] = {
        { "ed25519", "ca-ed25519", "user-ed25519", "-n alknet -V -5m:+1h", "ca-ed25519", NULL, NULL, "alknet", "127.0.0.1", true, "certificate", true, 0 },
        { "ecdsa256", "ca-ecdsa256", "user-ecdsa", "-n alknet -V -5m:+1h", "ca-ecdsa256", NULL, NULL, "alknet", "127.0.0.1", true, "certificate", true, 0 },
        { "ecdsa384", "ca-ecdsa384", "user-ed25519", "-n alknet", "ca-ecdsa384", NULL, NULL, "alknet", "127.0.0.1", true, "certificate", true, 0 },
        { "ecdsa521", "ca-ecdsa521", "user-rsa", "-n alknet", "ca-ecdsa521", NULL, NULL, "alknet", "127.0.0.1", true, "certificate", true, 0 },
        { "rsa512", "ca-rsa", "user-rsa", "-n alknet", "ca-rsa", NULL, NULL, "alknet", "127.0.0.1", true, "certificate", true, 0 },
        { "rsa256", "ca-rsa", "user-ed25519", "-t rsa-sha2-256 -n alknet", "ca-rsa", NULL, NULL, "alknet", "127.0.0.1", true, "certificate", true, 0 },
        { "rsa-sha1", "ca-rsa", "user-ed25519", "-t ssh-rsa -n alknet", "ca-rsa", NULL, NULL, "alknet", "127.0.0.1", false, "cert-signature-algorithm", false, 0 },
        { "several-cas", "ca-ecdsa256", "user-ed25519", "-n alknet", "ca-other,ca-ecdsa256,ca-rsa", NULL, NULL, "alknet", "127.0.0.1", true, "certificate", true, 0 },
        { "principals", "ca-ed25519", "user-ed25519", "-n ops,alknet,web", "ca-ed25519", NULL, NULL, "alknet", "127.0.0.1", true, "certificate", true, 0 },
        { "expired", "ca-ed25519", "user-ed25519", "-n alknet -V 20200101:20200102", "ca-ed25519", NULL, NULL, "alknet", "127.0.0.1", false, "cert-expired", false, 0 },
        { "just-expired", "ca-ed25519", "user-ed25519", "-n alknet -V -2h:-1s", "ca-ed25519", NULL, NULL, "alknet", "127.0.0.1", false, "cert-expired", false, 0 },
        { "not-yet-valid", "ca-ed25519", "user-ed25519", "-n alknet -V +1d:+2d", "ca-ed25519", NULL, NULL, "alknet", "127.0.0.1", false, "cert-not-yet-valid", false, 0 },
        { "wrong-principal", "ca-ed25519", "user-ed25519", "-n bob", "ca-ed25519", NULL, NULL, "alknet", "127.0.0.1", false, "cert-principal", false, 0 },
        { "principal-case", "ca-ed25519", "user-ed25519", "-n Alknet", "ca-ed25519", NULL, NULL, "alknet", "127.0.0.1", false, "cert-principal", false, 0 },
        { "no-principals", "ca-ed25519", "user-ed25519", "", "ca-ed25519", NULL, NULL, "alknet", "127.0.0.1", false, "cert-no-principals", false, 0 },
        { "wrong-ca", "ca-other", "user-ed25519", "-n alknet", "ca-ed25519", NULL, NULL, "alknet", "127.0.0.1", false, "cert-unknown-ca", false, 0 },
        { "no-ca-file", "ca-ed25519", "user-ed25519", "-n alknet", NULL, NULL, NULL, "alknet", "127.0.0.1", false, "cert-unknown-ca", false, 0 },
        { "host-cert", "ca-ed25519", "user-ed25519", "-h -n alknet", "ca-ed25519", NULL, NULL, "alknet", "127.0.0.1", false, "cert-not-user", false, 0 },
        { "unknown-critical", "ca-ed25519", "user-ed25519", "-n alknet -O critical:foo@example.com=bar", "ca-ed25519", NULL, NULL, "alknet", "127.0.0.1", false, "cert-critical-option", false, 0 },
        { "force-command", "ca-ed25519", "user-ed25519", "-n alknet -O force-command=/bin/true", "ca-ed25519", NULL, NULL, "alknet", "127.0.0.1", false, "cert-critical-option", false, 0 },
        { "verify-required", "ca-ed25519", "user-ed25519", "-n alknet -O verify-required", "ca-ed25519", NULL, NULL, "alknet", "127.0.0.1", false, "cert-critical-option", false, 0 },
        { "unknown-extension", "ca-ed25519", "user-ed25519", "-n alknet -O extension:foo@example.com=bar", "ca-ed25519", NULL, NULL, "alknet", "127.0.0.1", true, "certificate", true, 0 },
        { "source-v4", "ca-ed25519", "user-ed25519", "-n alknet -O source-address=127.0.0.0/8,::1", "ca-ed25519", NULL, NULL, "alknet", "127.0.0.1", true, "certificate", true, 0 },
        { "source-v6", "ca-ed25519", "user-ed25519", "-n alknet -O source-address=127.0.0.0/8,::1", "ca-ed25519", NULL, NULL, "alknet", "::1", true, "certificate", true, 0 },
        { "source-mapped", "ca-ed25519", "user-ed25519", "-n alknet -O source-address=127.0.0.0/8,::1", "ca-ed25519", NULL, NULL, "alknet", "::ffff:127.0.0.9", true, "certificate", true, 0 },
        { "source-mismatch", "ca-ed25519", "user-ed25519", "-n alknet -O source-address=127.0.0.0/8,::1", "ca-ed25519", NULL, NULL, "alknet", "192.0.2.1", false, "cert-source-address", false, 0 },
        { "source-mismatch-v6", "ca-ed25519", "user-ed25519", "-n alknet -O source-address=10.0.0.1", "ca-ed25519", NULL, NULL, "alknet", "2001:db8::1", false, "cert-source-address", false, 0 },
        { "no-port-forwarding", "ca-ed25519", "user-ed25519", "-n alknet -O no-port-forwarding", "ca-ed25519", NULL, NULL, "alknet", "127.0.0.1", true, "certificate", false, 0 },
        { "clear", "ca-ed25519", "user-ed25519", "-n alknet -O clear", "ca-ed25519", NULL, NULL, "alknet", "127.0.0.1", true, "certificate", false, 0 },
        { "clear-permit", "ca-ed25519", "user-ed25519", "-n alknet -O clear -O permit-port-forwarding", "ca-ed25519", NULL, NULL, "alknet", "127.0.0.1", true, "certificate", true, 0 },
        /* Through cert-authority lines in AuthorizedKeys. */
        { "line", "ca-ed25519", "user-ed25519", "-n alknet", NULL, "cert-authority", "ca-ed25519", "alknet", "127.0.0.1", true, "certificate", true, 0 },
        { "line-principals", "ca-ed25519", "user-ed25519", "-n ops", NULL, "cert-authority,principals=\"ops,dev\"", "ca-ed25519", "alknet", "127.0.0.1", true, "certificate", true, 0 },
        { "line-principals-not-user", "ca-ed25519", "user-ed25519", "-n alknet", NULL, "cert-authority,principals=\"ops\"", "ca-ed25519", "alknet", "127.0.0.1", false, "cert-principal", false, 0 },
        { "line-from", "ca-ed25519", "user-ed25519", "-n alknet", NULL, "cert-authority,from=\"10.0.0.0/8\"", "ca-ed25519", "alknet", "127.0.0.1", false, "from-mismatch", false, 0 },
        { "line-from-ok", "ca-ed25519", "user-ed25519", "-n alknet", NULL, "cert-authority,from=\"127.0.0.0/8\"", "ca-ed25519", "alknet", "127.0.0.1", true, "certificate", true, 0 },
        { "line-expiry", "ca-ed25519", "user-ed25519", "-n alknet", NULL, "cert-authority,expiry-time=\"20200101\"", "ca-ed25519", "alknet", "127.0.0.1", false, "key-expired", false, 0 },
        { "line-restrict", "ca-ed25519", "user-ed25519", "-n alknet", NULL, "cert-authority,restrict", "ca-ed25519", "alknet", "127.0.0.1", true, "certificate", false, 0 },
        { "line-permitopen", "ca-ecdsa256", "user-ed25519", "-n alknet", NULL, "restrict,port-forwarding,cert-authority,permitopen=\"db:5432\"", "ca-ecdsa256", "alknet", "127.0.0.1", true, "certificate", true, 1 },
        { "line-permit-no-ext", "ca-ed25519", "user-ed25519", "-n alknet -O no-port-forwarding", NULL, "cert-authority,permitopen=\"db:5432\"", "ca-ed25519", "alknet", "127.0.0.1", true, "certificate", false, 1 },
        { "line-plain-key", "ca-ed25519", "user-ed25519", "-n alknet", NULL, "", "user-ed25519", "alknet", "127.0.0.1", false, "cert-unknown-ca", false, 0 },
        { "line-other-ca", "ca-other", "user-ed25519", "-n alknet", NULL, "cert-authority", "ca-ed25519", "alknet", "127.0.0.1", false, "cert-unknown-ca", false, 0 },
        /* The file route refuses (principal), the line route accepts. */
        { "both-routes", "ca-ed25519", "user-ed25519", "-n ops", "ca-ed25519", "cert-authority,principals=\"ops\"", "ca-ed25519", "alknet", "127.0.0.1", true, "certificate", true, 0 },
        /* Checks that hold for every route come before the routes. */
        { "line-expired", "ca-ed25519", "user-ed25519", "-n alknet -V 20200101:20200102", NULL, "cert-authority", "ca-ed25519", "alknet", "127.0.0.1", false, "cert-expired", false, 0 },
        { "line-host", "ca-ed25519", "user-ed25519", "-h -n alknet", NULL, "cert-authority", "ca-ed25519", "alknet", "127.0.0.1", false, "cert-not-user", false, 0 },
};

START_TEST(test_certificates) {
        _cleanup_(authorized_keys_freep) AuthorizedKeys *authorized = NULL, *trusted = NULL;
        _cleanup_(ssh_auth_result_done) SshAuthResult res = {};
        _cleanup_(freep) uint8_t *blob = NULL;
        size_t size;

        blob = make_cert(cert_cases[_i].name, cert_cases[_i].ca, cert_cases[_i].user_key, cert_cases[_i].name,
                         cert_cases[_i].args, &size);
        if (cert_cases[_i].trusted)
                trusted = trusted_from(cert_cases[_i].trusted);
        if (cert_cases[_i].auth_key) {
                _cleanup_(freep) char *file = NULL, *pub = NULL, *text = NULL;

                ck_assert_int_ge(asprintf(&file, "%s.pub", cert_cases[_i].auth_key), 0);
                pub = read_text(file);
                ck_assert_int_ge(asprintf(&text, "%s %s", cert_cases[_i].auth_opts, pub), 0);
                authorized = keys_from(text, 0);
        }

        check_auth(blob, size, authorized, trusted, cert_cases[_i].user, cert_cases[_i].peer, &res);
        ck_assert_msg(res.accepted == cert_cases[_i].accepted && streq(res.reason, cert_cases[_i].reason),
                      "%s: got %s (%s), expected %s", cert_cases[_i].name, res.accepted ? "accept" : "reject",
                      res.reason, cert_cases[_i].reason);
        ck_assert_int_eq(res.forward.allowed, cert_cases[_i].forward);
        ck_assert_uint_eq(res.forward.n_open, cert_cases[_i].accepted ? cert_cases[_i].n_open : 0);
        ck_assert_str_eq(res.key_id, cert_cases[_i].name);
        ck_assert(strncmp(res.ca_fingerprint, "SHA256:", 7) == 0);
        if (cert_cases[_i].n_open > 0 && cert_cases[_i].accepted) {
                ck_assert(permitopen_allows(&res.forward, "db", 5432) == cert_cases[_i].forward);
                ck_assert(!permitopen_allows(&res.forward, "db", 5433));
        }
}
END_TEST

/* The logged fingerprints are the ones ssh-keygen -l prints. */
static char *keygen_fingerprint(const char *name) {
        _cleanup_(freep) char *cmd = NULL;
        char line[512], *fp, *end;
        FILE *p;

        ck_assert_int_ge(asprintf(&cmd, "ssh-keygen -l -E sha256 -f %s/%s", dir, name), 0);
        p = popen(cmd, "re");
        ck_assert_ptr_nonnull(p);
        ck_assert_ptr_nonnull(fgets(line, sizeof line, p));
        ck_assert_int_eq(pclose(p), 0);
        fp = strchr(line, ' ');
        ck_assert_ptr_nonnull(fp);
        fp++;
        end = strchr(fp, ' ');
        ck_assert_ptr_nonnull(end);
        *end = 0;
        return strdup(fp);
}

START_TEST(test_fingerprints_and_log_fields) {
        _cleanup_(authorized_keys_freep) AuthorizedKeys *trusted = trusted_from("ca-ecdsa256");
        _cleanup_(ssh_auth_result_done) SshAuthResult res = {};
        _cleanup_(freep) uint8_t *blob = NULL;
        _cleanup_(freep) char *user_fp = NULL, *ca_fp = NULL, *cert_fp = NULL, *expected = NULL;
        size_t size;

        blob = make_cert("logged", "ca-ecdsa256", "user-ed25519", "evil id=1 remote_addr=192.0.2.1\"\\",
                         "-z 7 -n alknet", &size);
        user_fp = keygen_fingerprint("user-ed25519.pub");
        cert_fp = keygen_fingerprint("logged-cert.pub");
        ca_fp = keygen_fingerprint("ca-ecdsa256.pub");
        ck_assert_str_eq(user_fp, cert_fp);

        check_auth(blob, size, NULL, trusted, "alknet", "127.0.0.1", &res);
        ck_assert(res.accepted);
        ck_assert_str_eq(res.fingerprint, user_fp);
        ck_assert_str_eq(res.ca_fingerprint, ca_fp);
        ck_assert_uint_eq(res.serial, 7);
        ck_assert_str_eq(res.key_id, "evil id=1 remote_addr=192.0.2.1\"\\");
        ck_assert_int_ge(asprintf(&expected,
                                  "reason=certificate ca_fingerprint=%s key_id=evil\\x20id\\x3d1\\x20remote_addr\\x3d192.0.2.1\\x22\\x5c serial=7",
                                  ca_fp), 0);
        ck_assert_str_eq(res.log_fields, expected);

        /* Rejected later (libssh: wrong signature): the cert fields stay, the grant goes. */
        ck_assert(res.forward.allowed);
        ck_assert_int_eq(ssh_auth_result_reject(&res, "bad-signature"), 0);
        ck_assert(!res.accepted);
        ck_assert(!res.forward.allowed);
        ck_assert_str_eq(res.reason, "bad-signature");
        {
                _cleanup_(freep) char *again = NULL;

                ck_assert_int_ge(asprintf(&again, "reason=bad-signature%s", strchr(expected, ' ')), 0);
                ck_assert_str_eq(res.log_fields, again);
        }
        ck_assert_int_eq(ssh_auth_result_reject(NULL, "x"), -EINVAL);
}
END_TEST

static const struct {
        const char *in, *out;
} escapes[] = {
        { "", "" },
        { "alice@example.com", "alice@example.com" },
        { "a b", "a\\x20b" },
        { "x=y", "x\\x3dy" },
        { "line\nbreak", "line\\x0abreak" },
        { "tab\there", "tab\\x09here" },
        { "\xc3\xa9", "\\xc3\\xa9" },
        { "A-Z_0.9+/:", "A-Z_0.9+/:" },
};

START_TEST(test_log_escape) {
        _cleanup_(freep) char *s = ssh_auth_log_escape(escapes[_i].in);

        ck_assert_str_eq(s, escapes[_i].out);
}
END_TEST

START_TEST(test_plain_keys) {
        _cleanup_(authorized_keys_freep) AuthorizedKeys *authorized = NULL;
        _cleanup_(freep) uint8_t *blob = NULL, *other = NULL, *ca = NULL;
        _cleanup_(freep) char *pub = read_text("user-ed25519.pub"), *rsa = read_text("user-rsa.pub"),
                              *capub = read_text("ca-ed25519.pub"), *text = NULL, *fp = NULL;
        SshAuthResult res = {};
        size_t size, other_size, ca_size;

        blob = read_pub_blob("user-ed25519.pub", &size);
        other = read_pub_blob("user-ecdsa.pub", &other_size);
        ca = read_pub_blob("ca-ed25519.pub", &ca_size);
        fp = keygen_fingerprint("user-ed25519.pub");

        /* The first line refuses by from=, the second accepts with its own options. */
        ck_assert_int_ge(asprintf(&text,
                                  "from=\"10.0.0.0/8\" %s"
                                  "restrict,port-forwarding,permitlisten=\"localhost:8022\" %s"
                                  "expiry-time=\"20200101\" %s"
                                  "cert-authority %s",
                                  pub, pub, rsa, capub), 0);
        authorized = keys_from(text, 0);
        ck_assert_uint_eq(authorized->n_entries, 4);

        check_auth(blob, size, authorized, NULL, "alknet", "127.0.0.1", &res);
        ck_assert(res.accepted);
        ck_assert_str_eq(res.reason, "key");
        ck_assert_str_eq(res.log_fields, "reason=key");
        ck_assert_str_eq(res.fingerprint, fp);
        ck_assert_str_eq(res.ca_fingerprint, "");
        ck_assert_ptr_null(res.key_id);
        ck_assert(res.forward.allowed);
        ck_assert(permitlisten_allows(&res.forward, "localhost", 8022));
        ck_assert(!permitlisten_allows(&res.forward, "localhost", 8023));
        ck_assert(permitopen_allows(&res.forward, "anywhere", 80));
        ssh_auth_result_done(&res);

        /* Only the from= line for this peer? No: the second line has no from=. Drop it. */
        authorized->n_entries = 1;
        check_auth(blob, size, authorized, NULL, "alknet", "127.0.0.1", &res);
        ck_assert(!res.accepted);
        ck_assert_str_eq(res.reason, "from-mismatch");
        ssh_auth_result_done(&res);
        check_auth(blob, size, authorized, NULL, "alknet", "10.1.2.3", &res);
        ck_assert(res.accepted);
        ssh_auth_result_done(&res);
        authorized->n_entries = 4;

        {
                _cleanup_(freep) uint8_t *rsa_blob = read_pub_blob("user-rsa.pub", &other_size);

                check_auth(rsa_blob, other_size, authorized, NULL, "alknet", "127.0.0.1", &res);
                ck_assert(!res.accepted);
                ck_assert_str_eq(res.reason, "key-expired");
                ssh_auth_result_done(&res);
        }
        other = mfree(other);
        other = read_pub_blob("user-ecdsa.pub", &other_size);
        check_auth(other, other_size, authorized, NULL, "alknet", "127.0.0.1", &res);
        ck_assert(!res.accepted);
        ck_assert_str_eq(res.reason, "unknown-key");
        ck_assert_str_eq(res.log_fields, "reason=unknown-key");
        ssh_auth_result_done(&res);

        /* A CA key presented as a plain key is not a login key. */
        check_auth(ca, ca_size, authorized, NULL, "alknet", "127.0.0.1", &res);
        ck_assert(!res.accepted);
        ck_assert_str_eq(res.reason, "unknown-key");
        ssh_auth_result_done(&res);

        /* No file at all; garbage; an empty blob. */
        check_auth(blob, size, NULL, NULL, "alknet", "127.0.0.1", &res);
        ck_assert_str_eq(res.reason, "unknown-key");
        ssh_auth_result_done(&res);
        check_auth(blob, size - 1, authorized, NULL, "alknet", "127.0.0.1", &res);
        ck_assert_str_eq(res.reason, "bad-key");
        ssh_auth_result_done(&res);
        check_auth((const uint8_t *) "", 0, authorized, NULL, "alknet", "127.0.0.1", &res);
        ck_assert_str_eq(res.reason, "bad-key");
        ssh_auth_result_done(&res);
}
END_TEST

START_TEST(test_bad_arguments) {
        SshAuthResult res = { .reason = "untouched" };
        struct sockaddr_storage ss;
        SshAuthRequest req = { .user = "alknet", .peer = (struct sockaddr *) &ss, .key_blob = NULL, .key_blob_size = 1 };

        make_peer("127.0.0.1", &ss);
        ck_assert_int_eq(ssh_auth_check(&req, NULL, NULL, &res), -EINVAL);
        req.key_blob = (const uint8_t *) "x";
        req.user = NULL;
        ck_assert_int_eq(ssh_auth_check(&req, NULL, NULL, &res), -EINVAL);
        req.user = "alknet";
        req.peer = NULL;
        ck_assert_int_eq(ssh_auth_check(&req, NULL, NULL, &res), -EINVAL);
        ck_assert_int_eq(ssh_auth_check(NULL, NULL, NULL, &res), -EINVAL);
        ck_assert_str_eq(res.reason, "untouched");
        ssh_auth_result_done(NULL);
}
END_TEST

/* What ssh-keygen wrote is what the parser reads. */
START_TEST(test_cert_fields) {
        _cleanup_(ssh_cert_freep) SshCert *c = NULL;
        _cleanup_(freep) uint8_t *blob = NULL, *user = NULL, *ca = NULL;
        size_t size, user_size, ca_size;

        blob = make_cert("fields", "ca-rsa", "user-ecdsa", "key id 1",
                         "-z 18446744073709551615 -n alice,bob -V 20300101:20300201 "
                         "-O source-address=10.0.0.0/8 -O critical:zz@example.com -O extension:x@example.com=y",
                         &size);
        user = read_pub_blob("user-ecdsa.pub", &user_size);
        ca = read_pub_blob("ca-rsa.pub", &ca_size);

        ck_assert_int_eq(ssh_cert_parse(blob, size, &c), 0);
        ck_assert_int_eq(c->type, SSH_KEY_ECDSA_P256);
        ck_assert_int_eq(c->key.type, SSH_KEY_ECDSA_P256);
        ck_assert_uint_eq(c->key.pk.size, 65);
        ck_assert_uint_eq(c->key_blob_size, user_size);
        ck_assert_mem_eq(c->key_blob, user, user_size);
        ck_assert_uint_eq(c->nonce.size, 32);
        ck_assert_uint_eq(c->serial, UINT64_MAX);
        ck_assert_uint_eq(c->cert_type, SSH_CERT_TYPE_USER);
        ck_assert_str_eq(c->key_id, "key id 1");
        ck_assert_uint_eq(c->n_principals, 2);
        ck_assert_str_eq(c->principals[0], "alice");
        ck_assert_str_eq(c->principals[1], "bob");
        ck_assert_ptr_null(c->principals[2]);
        ck_assert(ssh_cert_has_principal(c, "bob"));
        ck_assert(!ssh_cert_has_principal(c, "carol"));
        ck_assert_uint_eq(c->valid_after, 1893456000);  /* 2030-01-01 00:00 UTC (TZ=UTC) */
        ck_assert_uint_eq(c->valid_before, 1896134400); /* 2030-02-01 */
        ck_assert_str_eq(c->source_address, "10.0.0.0/8");
        ck_assert_ptr_null(c->force_command);
        ck_assert_str_eq(c->unknown_critical, "zz@example.com");
        /* ssh-keygen's defaults; the unknown extension is ignored. */
        ck_assert_uint_eq(c->extensions, SSH_CERT_EXT_PERMIT_X11_FORWARDING | SSH_CERT_EXT_PERMIT_AGENT_FORWARDING |
                                         SSH_CERT_EXT_PERMIT_PORT_FORWARDING | SSH_CERT_EXT_PERMIT_PTY |
                                         SSH_CERT_EXT_PERMIT_USER_RC);
        ck_assert_uint_eq(c->ca_key_blob.size, ca_size);
        ck_assert_mem_eq(c->ca_key_blob.data, ca, ca_size);
        ck_assert_int_eq(c->ca.type, SSH_KEY_RSA);
        ck_assert_uint_eq(c->ca.rsa_n.size, 256);
        ck_assert_int_eq(c->signature.alg, SSH_SIG_RSA_SHA512);
        ck_assert_uint_eq(c->signature.data.size, 256);
        ck_assert_ptr_eq(c->signed_data.data, c->blob);
        ck_assert_uint_eq(c->signed_data.size + 4 + c->signature_blob.size, size);
        ck_assert_int_eq(ssh_auth_verify_signature(&c->ca, &c->signature, c->signed_data.data, c->signed_data.size), 0);
        ck_assert_int_eq(ssh_auth_verify_signature(&c->ca, &c->signature, c->signed_data.data, c->signed_data.size - 1),
                         -EBADMSG);
        c = ssh_cert_free(c);

        blob = mfree(blob);
        blob = make_cert("fields2", "ca-ed25519", "user-rsa", "", "-O force-command=\"echo hi\" -O clear", &size);
        ck_assert_int_eq(ssh_cert_parse(blob, size, &c), 0);
        ck_assert_int_eq(c->type, SSH_KEY_RSA);
        ck_assert_str_eq(c->key_id, "");
        ck_assert_uint_eq(c->n_principals, 0);
        ck_assert_ptr_nonnull(c->principals);
        ck_assert_ptr_null(c->principals[0]);
        ck_assert_uint_eq(c->valid_after, 0);
        ck_assert_uint_eq(c->valid_before, SSH_CERT_VALID_FOREVER);
        ck_assert_str_eq(c->force_command, "echo hi");
        ck_assert_ptr_null(c->source_address);
        ck_assert_ptr_null(c->unknown_critical);
        ck_assert_uint_eq(c->extensions, 0);
        ck_assert_int_eq(c->signature.alg, SSH_SIG_ED25519);
}
END_TEST

/* A flipped bit anywhere in the signed part or the signature is caught. */
static const struct {
        const char *ca;
        const char *args;
} tamper_cases[] = {
        { "ca-ed25519", "-n alknet" },
        { "ca-ecdsa256", "-n alknet" },
        { "ca-ecdsa384", "-n alknet" },
        { "ca-ecdsa521", "-n alknet" },
        { "ca-rsa", "-n alknet" },
        { "ca-rsa", "-t rsa-sha2-256 -n alknet" },
};

START_TEST(test_tampered) {
        _cleanup_(authorized_keys_freep) AuthorizedKeys *trusted = trusted_from(tamper_cases[_i].ca);
        _cleanup_(ssh_cert_freep) SshCert *c = NULL;
        _cleanup_(freep) uint8_t *blob = NULL;
        _cleanup_(freep) char *name = NULL;
        SshAuthResult res = {};
        size_t size, positions[3];

        ck_assert_int_ge(asprintf(&name, "tamper%d", _i), 0);
        blob = make_cert(name, tamper_cases[_i].ca, "user-ed25519", "tamper-id", tamper_cases[_i].args, &size);
        check_auth(blob, size, NULL, trusted, "alknet", "127.0.0.1", &res);
        ck_assert_str_eq(res.reason, "certificate");
        ssh_auth_result_done(&res);

        ck_assert_int_eq(ssh_cert_parse(blob, size, &c), 0);
        positions[0] = size - 1;                                            /* last signature byte */
        positions[1] = (size_t) ((const uint8_t *) memmem(c->blob, size, "tamper-id", 9) - c->blob); /* key id */
        positions[2] = (size_t) (c->key.pk.data - c->blob) + 5;             /* the certified key */
        for (size_t i = 0; i < ELEMENTSOF(positions); i++) {
                blob[positions[i]] ^= 0x01;
                check_auth(blob, size, NULL, trusted, "alknet", "127.0.0.1", &res);
                ck_assert_msg(!res.accepted, "%s: byte %zu", tamper_cases[_i].ca, positions[i]);
                /* ECDSA: a last-byte change can leave s out of range, which the parser
                 * may already refuse; anything else must fail the signature. */
                ck_assert_msg(streq(res.reason, "cert-bad-signature") || streq(res.reason, "cert-malformed"),
                              "%s: byte %zu: %s", tamper_cases[_i].ca, positions[i], res.reason);
                if (i > 0)
                        ck_assert_str_eq(res.reason, "cert-bad-signature");
                ssh_auth_result_done(&res);
                blob[positions[i]] ^= 0x01;
        }
}
END_TEST

START_TEST(test_truncations) {
        static const char *const cas[] = { "ca-ed25519", "ca-ecdsa521", "ca-rsa" };
        _cleanup_(freep) uint8_t *blob = NULL, *longer = NULL;
        _cleanup_(freep) char *name = NULL;
        SshCert *c = (SshCert *) 0x1;
        size_t size;

        ck_assert_int_ge(asprintf(&name, "trunc%d", _i), 0);
        blob = make_cert(name, cas[_i], _i == 2 ? "user-rsa" : "user-ecdsa", "t",
                         "-n a,b -O source-address=127.0.0.1 -O force-command=x", &size);
        for (size_t n = 0; n < size; n++) {
                uint8_t *copy = malloc(n ? n : 1); /* exactly sized for ASan */

                ck_assert_ptr_nonnull(copy);
                memcpy(copy, blob, n);
                ck_assert_msg(ssh_cert_parse(copy, n, &c) == -EBADMSG, "prefix %zu of %zu", n, size);
                free(copy);
        }
        ck_assert_ptr_eq(c, (SshCert *) 0x1);

        longer = malloc(size + 1);
        ck_assert_ptr_nonnull(longer);
        memcpy(longer, blob, size);
        longer[size] = 0;
        ck_assert_int_eq(ssh_cert_parse(longer, size + 1, &c), -EBADMSG);
        ck_assert_int_eq(ssh_cert_parse(blob, size, &c), 0);
        ssh_cert_free(c);
}
END_TEST

/* Hand-built certificates for what ssh-keygen will not produce. Nothing is signed: these
 * only exercise the parser. */
typedef struct Buf {
        uint8_t *data;
        size_t n, cap;
} Buf;

static void put_bytes(Buf *b, const void *p, size_t n) {
        if (b->n + n > b->cap) {
                b->cap = MAX(b->cap * 2, b->n + n + 64);
                b->data = realloc(b->data, b->cap);
                ck_assert_ptr_nonnull(b->data);
        }
        if (n > 0)
                memcpy(b->data + b->n, p, n);
        b->n += n;
}

static void put_u32(Buf *b, uint32_t v) {
        uint8_t x[4] = { (uint8_t) (v >> 24), (uint8_t) (v >> 16), (uint8_t) (v >> 8), (uint8_t) v };

        put_bytes(b, x, 4);
}

static void put_u64(Buf *b, uint64_t v) {
        put_u32(b, (uint32_t) (v >> 32));
        put_u32(b, (uint32_t) v);
}

static void put_string(Buf *b, const void *p, size_t n) {
        put_u32(b, (uint32_t) n);
        put_bytes(b, p, n);
}

static void put_cstring(Buf *b, const char *s) {
        put_string(b, s, strlen(s));
}

static void put_buf(Buf *b, const Buf *inner) {
        put_string(b, inner->data, inner->n);
}

static void buf_done(Buf *b) {
        free(b->data);
        *b = (Buf) {};
}

typedef struct Craft {
        const char *type;
        const char *key_id;
        size_t key_id_len;              /* 0: strlen */
        Buf principals, critical, extensions;
        const char *ca_type;
        const char *sig_alg;
        size_t sig_size;
        bool trailing;
} Craft;

static void craft_build(const Craft *cr, Buf *out) {
        uint8_t pk[32], sig[64];
        Buf ca = {}, s = {};

        memset(pk, 0x42, sizeof pk);
        memset(sig, 0x17, sizeof sig);
        put_cstring(out, cr->type ?: "ssh-ed25519-cert-v01@openssh.com");
        put_string(out, pk, 32);                        /* nonce */
        put_string(out, pk, 32);                        /* ed25519 key */
        put_u64(out, 1);
        put_u32(out, SSH_CERT_TYPE_USER);
        put_string(out, cr->key_id ?: "id", cr->key_id ? (cr->key_id_len ?: strlen(cr->key_id)) : 2);
        put_buf(out, &cr->principals);
        put_u64(out, 0);
        put_u64(out, SSH_CERT_VALID_FOREVER);
        put_buf(out, &cr->critical);
        put_buf(out, &cr->extensions);
        put_string(out, "", 0);                          /* reserved */
        put_cstring(&ca, cr->ca_type ?: "ssh-ed25519");
        if (!cr->ca_type || streq(cr->ca_type, "ssh-ed25519"))
                put_string(&ca, pk, 32);
        else {
                /* a plain-looking key whose type is a certificate's */
                put_string(&ca, pk, 32);
                put_string(&ca, pk, 32);
        }
        put_buf(out, &ca);
        put_cstring(&s, cr->sig_alg ?: "ssh-ed25519");
        put_string(&s, sig, cr->sig_size ?: 64);
        put_buf(out, &s);
        if (cr->trailing)
                put_u32(out, 0);
        buf_done(&ca);
        buf_done(&s);
}

static void craft_option(Buf *b, const char *name, const char *value) {
        Buf v = {};

        put_cstring(b, name);
        if (value) {
                put_cstring(&v, value);
                put_buf(b, &v);
        } else
                put_string(b, "", 0);
        buf_done(&v);
}

static int craft_parse(Craft *cr, SshCert **ret) {
        Buf out = {};
        int r;

        craft_build(cr, &out);
        r = ssh_cert_parse(out.data, out.n, ret);
        buf_done(&out);
        buf_done(&cr->principals);
        buf_done(&cr->critical);
        buf_done(&cr->extensions);
        return r;
}

START_TEST(test_crafted) {
        SshCert *c = NULL;
        Craft cr;

        /* The baseline parses. */
        cr = (Craft) {};
        put_cstring(&cr.principals, "alknet");
        ck_assert_int_eq(craft_parse(&cr, &c), 0);
        ck_assert_str_eq(c->principals[0], "alknet");
        c = ssh_cert_free(c);

        cr = (Craft) { .trailing = true };
        ck_assert_int_eq(craft_parse(&cr, &c), -EBADMSG);

        cr = (Craft) { .type = "ssh-dss-cert-v01@openssh.com" };
        ck_assert_int_eq(craft_parse(&cr, &c), -EOPNOTSUPP);
        cr = (Craft) { .type = "ssh-ed25519" };
        ck_assert_int_eq(craft_parse(&cr, &c), -EBADMSG);
        cr = (Craft) { .type = "nonsense" };
        ck_assert_int_eq(craft_parse(&cr, &c), -EBADMSG);

        /* NULs inside names. */
        cr = (Craft) { .key_id = "a\0b", .key_id_len = 3 };
        ck_assert_int_eq(craft_parse(&cr, &c), -EBADMSG);
        cr = (Craft) {};
        put_string(&cr.principals, "al\0knet", 7);
        ck_assert_int_eq(craft_parse(&cr, &c), -EBADMSG);
        cr = (Craft) {};
        put_string(&cr.critical, "source\0address", 14);
        put_string(&cr.critical, "", 0);
        ck_assert_int_eq(craft_parse(&cr, &c), -EBADMSG);

        /* Principals: a truncated packed list, the limit, one more. */
        cr = (Craft) {};
        put_u32(&cr.principals, 9);
        put_bytes(&cr.principals, "abc", 3);
        ck_assert_int_eq(craft_parse(&cr, &c), -EBADMSG);
        cr = (Craft) {};
        for (unsigned i = 0; i < SSH_CERT_PRINCIPALS_MAX; i++)
                put_cstring(&cr.principals, "p");
        ck_assert_int_eq(craft_parse(&cr, &c), 0);
        ck_assert_uint_eq(c->n_principals, SSH_CERT_PRINCIPALS_MAX);
        c = ssh_cert_free(c);
        cr = (Craft) {};
        for (unsigned i = 0; i <= SSH_CERT_PRINCIPALS_MAX; i++)
                put_cstring(&cr.principals, "p");
        ck_assert_int_eq(craft_parse(&cr, &c), -E2BIG);

        /* Critical options. */
        cr = (Craft) {};
        craft_option(&cr.critical, "source-address", "10.0.0.1");
        craft_option(&cr.critical, "source-address", "10.0.0.2");
        ck_assert_int_eq(craft_parse(&cr, &c), -EBADMSG);
        cr = (Craft) {};
        craft_option(&cr.critical, "force-command", "a");
        craft_option(&cr.critical, "force-command", "b");
        ck_assert_int_eq(craft_parse(&cr, &c), -EBADMSG);
        cr = (Craft) {};
        craft_option(&cr.critical, "source-address", NULL); /* value missing */
        ck_assert_int_eq(craft_parse(&cr, &c), -EBADMSG);
        cr = (Craft) {};
        put_cstring(&cr.critical, "source-address");
        {
                Buf v = {};

                put_cstring(&v, "10.0.0.1");
                put_u32(&v, 0); /* extra data after the value */
                put_buf(&cr.critical, &v);
                buf_done(&v);
        }
        ck_assert_int_eq(craft_parse(&cr, &c), -EBADMSG);
        cr = (Craft) {};
        put_cstring(&cr.critical, "");
        put_string(&cr.critical, "", 0);
        ck_assert_int_eq(craft_parse(&cr, &c), -EBADMSG);
        cr = (Craft) {};
        craft_option(&cr.critical, "b@example.com", "x");
        craft_option(&cr.critical, "a@example.com", "y");
        ck_assert_int_eq(craft_parse(&cr, &c), 0);
        ck_assert_str_eq(c->unknown_critical, "b@example.com"); /* the first one */
        c = ssh_cert_free(c);
        cr = (Craft) {};
        put_cstring(&cr.critical, "name-without-data");
        ck_assert_int_eq(craft_parse(&cr, &c), -EBADMSG);

        /* Extensions: flags carry no data; unknown ones are ignored; the limit. */
        cr = (Craft) {};
        craft_option(&cr.extensions, "permit-port-forwarding", "yes");
        ck_assert_int_eq(craft_parse(&cr, &c), -EBADMSG);
        cr = (Craft) {};
        craft_option(&cr.extensions, "permit-port-forwarding", NULL);
        craft_option(&cr.extensions, "whatever@example.com", "data");
        ck_assert_int_eq(craft_parse(&cr, &c), 0);
        ck_assert_uint_eq(c->extensions, SSH_CERT_EXT_PERMIT_PORT_FORWARDING);
        c = ssh_cert_free(c);
        cr = (Craft) {};
        for (unsigned i = 0; i <= SSH_CERT_OPTIONS_MAX; i++)
                craft_option(&cr.extensions, "x@example.com", NULL);
        ck_assert_int_eq(craft_parse(&cr, &c), -E2BIG);

        /* The CA key: a certificate type, an unsupported type. */
        cr = (Craft) { .ca_type = "ssh-ed25519-cert-v01@openssh.com" };
        ck_assert_int_eq(craft_parse(&cr, &c), -EBADMSG);
        cr = (Craft) { .ca_type = "ssh-dss" };
        ck_assert_int_eq(craft_parse(&cr, &c), -EOPNOTSUPP);

        /* The signature: unknown algorithm, another key type's, wrong size. */
        cr = (Craft) { .sig_alg = "ssh-foo" };
        ck_assert_int_eq(craft_parse(&cr, &c), -EOPNOTSUPP);
        cr = (Craft) { .sig_alg = "rsa-sha2-256" };
        ck_assert_int_eq(craft_parse(&cr, &c), -EBADMSG);
        cr = (Craft) { .sig_size = 63 };
        ck_assert_int_eq(craft_parse(&cr, &c), -EBADMSG);
        ck_assert_ptr_null(c);

        /* Size limit. */
        {
                uint8_t *big = calloc(1, SSH_KEY_BLOB_MAX + 1);

                ck_assert_ptr_nonnull(big);
                ck_assert_int_eq(ssh_cert_parse(big, SSH_KEY_BLOB_MAX + 1, &c), -EFBIG);
                free(big);
        }
        ck_assert_int_eq(ssh_cert_parse(NULL, 1, &c), -EINVAL);
}
END_TEST

/* A hand-edited file may hold a non-minimal mpint; libssh sends the minimal one. */
START_TEST(test_key_equality) {
        _cleanup_(authorized_keys_freep) AuthorizedKeys *authorized = NULL;
        _cleanup_(freep) uint8_t *blob = NULL;
        _cleanup_(freep) char *text = NULL, *b64 = NULL;
        SshAuthResult res = {};
        SshPublicKey k;
        uint8_t e[16];
        size_t size;
        Buf b = {};

        blob = read_pub_blob("user-rsa.pub", &size);
        ck_assert_int_eq(ssh_key_blob_parse(blob, size, &k), 0);
        e[0] = 0;
        memcpy(e + 1, k.rsa_e.data, k.rsa_e.size);
        put_cstring(&b, "ssh-rsa");
        put_string(&b, e, k.rsa_e.size + 1);
        put_u32(&b, (uint32_t) k.rsa_n.size + 1);
        put_bytes(&b, "", 1);
        put_bytes(&b, k.rsa_n.data, k.rsa_n.size);
        ck_assert_uint_eq(b.n, size + 1);
        b64 = malloc(b.n * 2 + 4);
        ck_assert_ptr_nonnull(b64);
        ck_assert_int_gt(EVP_EncodeBlock((unsigned char *) b64, b.data, (int) b.n), 0);
        ck_assert_int_ge(asprintf(&text, "ssh-rsa %s hand-edited\n", b64), 0);
        authorized = keys_from(text, 0);
        ck_assert_uint_eq(authorized->n_entries, 1);

        check_auth(blob, size, authorized, NULL, "alknet", "127.0.0.1", &res);
        ck_assert_str_eq(res.reason, "key");
        ssh_auth_result_done(&res);
        buf_done(&b);
}
END_TEST

START_TEST(test_signature_parse) {
        SshSignature s;
        Buf b = {}, inner = {};
        uint8_t r[67];

        memset(r, 0x01, sizeof r);
        /* ECDSA: r and s must be positive and fit the curve. */
        put_string(&inner, r, 32);
        put_string(&inner, r, 32);
        put_cstring(&b, "ecdsa-sha2-nistp256");
        put_buf(&b, &inner);
        ck_assert_int_eq(ssh_signature_parse(b.data, b.n, &s), 0);
        ck_assert_int_eq(s.alg, SSH_SIG_ECDSA_P256);
        ck_assert_uint_eq(s.ecdsa_r.size, 32);
        buf_done(&b);
        buf_done(&inner);

        put_string(&inner, r, 33);
        put_string(&inner, r, 32);
        put_cstring(&b, "ecdsa-sha2-nistp256");
        put_buf(&b, &inner);
        ck_assert_int_eq(ssh_signature_parse(b.data, b.n, &s), -EBADMSG);
        buf_done(&b);
        buf_done(&inner);

        r[0] = 0x80;
        put_string(&inner, r, 32);
        put_string(&inner, r, 32);
        put_cstring(&b, "ecdsa-sha2-nistp256");
        put_buf(&b, &inner);
        ck_assert_int_eq(ssh_signature_parse(b.data, b.n, &s), -EBADMSG);
        buf_done(&b);
        buf_done(&inner);

        r[0] = 0x00;
        put_string(&inner, r, 1); /* zero */
        put_string(&inner, r, 32);
        put_cstring(&b, "ecdsa-sha2-nistp256");
        put_buf(&b, &inner);
        ck_assert_int_eq(ssh_signature_parse(b.data, b.n, &s), -EBADMSG);
        buf_done(&b);
        buf_done(&inner);

        /* P-521 scalars take 66 bytes, plus a sign byte. */
        r[0] = 0x00;
        r[1] = 0x01;
        put_string(&inner, r, 67);
        put_string(&inner, r + 1, 66);
        put_cstring(&b, "ecdsa-sha2-nistp521");
        put_buf(&b, &inner);
        ck_assert_int_eq(ssh_signature_parse(b.data, b.n, &s), 0);
        ck_assert_uint_eq(s.ecdsa_r.size, 66);
        buf_done(&b);
        buf_done(&inner);

        put_cstring(&b, "rsa-sha2-512");
        put_string(&b, "", 0);
        ck_assert_int_eq(ssh_signature_parse(b.data, b.n, &s), -EBADMSG);
        buf_done(&b);

        put_cstring(&b, "ssh-rsa");
        put_string(&b, r, 8);
        ck_assert_int_eq(ssh_signature_parse(b.data, b.n, &s), 0);
        ck_assert_int_eq(s.alg, SSH_SIG_RSA_SHA1);
        buf_done(&b);

        ck_assert_str_eq(ssh_sig_alg_to_string(SSH_SIG_RSA_SHA256), "rsa-sha2-256");
        ck_assert_ptr_null(ssh_sig_alg_to_string(_SSH_SIG_ALG_MAX));
        ck_assert_int_eq(ssh_sig_alg_from_string("ecdsa-sha2-nistp384"), SSH_SIG_ECDSA_P384);
        ck_assert_int_eq(ssh_sig_alg_from_string("nope"), _SSH_SIG_ALG_INVALID);
        ck_assert(ssh_sig_alg_matches_key(SSH_SIG_RSA_SHA1, SSH_KEY_RSA));
        ck_assert(!ssh_sig_alg_matches_key(SSH_SIG_ECDSA_P256, SSH_KEY_ECDSA_P384));
        ck_assert_str_eq(ssh_key_type_to_cert_string(SSH_KEY_ECDSA_P521), "ecdsa-sha2-nistp521-cert-v01@openssh.com");
        ck_assert_int_eq(ssh_key_type_from_cert_string("ssh-rsa-cert-v01@openssh.com"), SSH_KEY_RSA);
        ck_assert_int_eq(ssh_key_type_from_string("ssh-rsa-cert-v01@openssh.com"), _SSH_KEY_TYPE_INVALID);
        ck_assert_ptr_null(ssh_key_type_to_string(_SSH_KEY_TYPE_INVALID));
}
END_TEST

/* ssh_auth_verify_signature() policy: SHA-1 and mismatched algorithms are refused before
 * any crypto runs. */
START_TEST(test_verify_policy) {
        _cleanup_(ssh_cert_freep) SshCert *c = NULL;
        _cleanup_(freep) uint8_t *blob = NULL;
        SshSignature s;
        size_t size;

        blob = make_cert("policy", "ca-rsa", "user-ed25519", "p", "-t ssh-rsa -n alknet", &size);
        ck_assert_int_eq(ssh_cert_parse(blob, size, &c), 0);
        ck_assert_int_eq(c->signature.alg, SSH_SIG_RSA_SHA1);
        ck_assert_int_eq(ssh_auth_verify_signature(&c->ca, &c->signature, c->signed_data.data, c->signed_data.size),
                         -EOPNOTSUPP);
        s = c->signature;
        s.alg = SSH_SIG_ED25519;
        ck_assert_int_eq(ssh_auth_verify_signature(&c->ca, &s, c->signed_data.data, c->signed_data.size), -EOPNOTSUPP);
        /* The same bytes claimed as SHA-256 or SHA-512 do not verify. */
        s.alg = SSH_SIG_RSA_SHA256;
        ck_assert_int_eq(ssh_auth_verify_signature(&c->ca, &s, c->signed_data.data, c->signed_data.size), -EBADMSG);
        s.alg = SSH_SIG_RSA_SHA512;
        ck_assert_int_eq(ssh_auth_verify_signature(&c->ca, &s, c->signed_data.data, c->signed_data.size), -EBADMSG);
        ck_assert_int_eq(ssh_auth_verify_signature(NULL, &s, NULL, 0), -EINVAL);
}
END_TEST

/* An ECDSA CA whose point is not on the curve is refused, not crashed on. */
START_TEST(test_bad_ca_point) {
        _cleanup_(ssh_cert_freep) SshCert *c = NULL;
        SshPublicKey bad;
        uint8_t point[65];

        memset(point, 0x33, sizeof point);
        point[0] = 0x04;
        bad = (SshPublicKey) { .type = SSH_KEY_ECDSA_P256, .pk = { point, sizeof point } };
        {
                _cleanup_(freep) uint8_t *blob = NULL;
                size_t size;

                blob = make_cert("badpoint", "ca-ecdsa256", "user-ed25519", "b", "-n alknet", &size);
                ck_assert_int_eq(ssh_cert_parse(blob, size, &c), 0);
        }
        ck_assert_int_eq(ssh_auth_verify_signature(&bad, &c->signature, c->signed_data.data, c->signed_data.size),
                         -EBADMSG);
}
END_TEST

START_TEST(test_load_keys) {
        _cleanup_(authorized_keys_freep) AuthorizedKeys *k = NULL;
        _cleanup_(freep) char *path = NULL, *big = NULL, *missing = NULL;
        _cleanup_(closep) int fd = -EBADF;

        ck_assert_int_ge(asprintf(&path, "%s/ca-ed25519.pub", dir), 0);
        ck_assert_int_eq(ssh_auth_load_keys(path, AUTHORIZED_KEYS_NO_OPTIONS, &k), 0);
        ck_assert_uint_eq(k->n_entries, 1);
        ck_assert_int_eq(k->entries[0].type, SSH_KEY_ED25519);
        ck_assert_str_eq(k->entries[0].comment, "ca-ed25519");

        ck_assert_int_ge(asprintf(&missing, "%s/missing", dir), 0);
        ck_assert_int_eq(ssh_auth_load_keys(missing, 0, &k), -ENOENT);
        ck_assert_int_ge(asprintf(&big, "%s/big", dir), 0);
        fd = open(big, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ftruncate(fd, SSH_AUTH_KEYS_FILE_MAX + 1), 0);
        ck_assert_int_eq(ssh_auth_load_keys(big, 0, &k), -EFBIG);
        ck_assert_int_eq(ssh_auth_load_keys(dir, 0, &k), -EISDIR);
        ck_assert_uint_eq(k->n_entries, 1); /* untouched on failure */
}
END_TEST

static Suite *ssh_cert_suite(void) {
        Suite *s = suite_create("ssh-cert");
        TCase *tc;

        tc = tcase_create("ssh-keygen");
        tcase_add_loop_test(tc, test_certificates, 0, ELEMENTSOF(cert_cases));
        tcase_add_test(tc, test_fingerprints_and_log_fields);
        tcase_add_test(tc, test_cert_fields);
        tcase_add_loop_test(tc, test_tampered, 0, ELEMENTSOF(tamper_cases));
        tcase_add_loop_test(tc, test_truncations, 0, 3);
        tcase_add_test(tc, test_verify_policy);
        tcase_add_test(tc, test_bad_ca_point);
        tcase_add_test(tc, test_plain_keys);
        tcase_add_test(tc, test_load_keys);
        tcase_set_timeout(tc, 120);
        suite_add_tcase(s, tc);

        tc = tcase_create("parser");
        tcase_add_test(tc, test_crafted);
        tcase_add_test(tc, test_signature_parse);
        tcase_add_test(tc, test_key_equality);
        tcase_add_loop_test(tc, test_log_escape, 0, ELEMENTSOF(escapes));
        tcase_add_test(tc, test_bad_arguments);
        suite_add_tcase(s, tc);

        return s;
}

int main(void) {
        static const char *const keys[][2] = {
                { "ca-ed25519", "-t ed25519" },
                { "ca-other", "-t ed25519" },
                { "ca-ecdsa256", "-t ecdsa -b 256" },
                { "ca-ecdsa384", "-t ecdsa -b 384" },
                { "ca-ecdsa521", "-t ecdsa -b 521" },
                { "ca-rsa", "-t rsa -b 2048" },
                { "user-ed25519", "-t ed25519" },
                { "user-ecdsa", "-t ecdsa -b 256" },
                { "user-rsa", "-t rsa -b 2048" },
        };
        SRunner *sr;
        int failed;

        if (system("command -v ssh-keygen >/dev/null 2>&1") != 0) {
                fprintf(stderr, "ssh-keygen not found (package openssh-client): skipping\n");
                return 77;
        }
        /* ssh-keygen -V takes absolute times in local time: pin it. */
        setenv("TZ", "UTC", 1);
        tzset();
        if (!mkdtemp(dir)) {
                perror("mkdtemp");
                return EXIT_FAILURE;
        }
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                char cmd[512];

                snprintf(cmd, sizeof cmd, "ssh-keygen -q %s -N '' -C %s -f %s/%s", keys[i][1], keys[i][0], dir, keys[i][0]);
                if (system(cmd) != 0) {
                        fprintf(stderr, "failed: %s\n", cmd);
                        return EXIT_FAILURE;
                }
        }

        sr = srunner_create(ssh_cert_suite());
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);

        {
                char cmd[256];

                snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
                (void) system(cmd);
        }
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
