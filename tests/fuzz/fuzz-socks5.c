/* libFuzzer target for the SOCKS5 and HTTP CONNECT codecs: every parser on the input and
 * on a prefix of it, with round trips through the builders; abort() on a broken invariant.
 * Input: byte 0 picks the prefix length (modulo the rest + 1); the rest is the message. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-check.h"
#include "http-connect.h"
#include "macro.h"
#include "socks5.h"

typedef enum Kind {
        KIND_GREETING,
        KIND_USERPASS,
        KIND_REQUEST,
        KIND_METHOD_SELECTION,
        KIND_CONNECT_REPLY,
        KIND_HTTP_RESPONSE,
        _KIND_MAX,
} Kind;

typedef union Out {
        Socks5Greeting greeting;
        Socks5UserPass userpass;
        Socks5Request request;
        uint8_t code;
        int status;
} Out;

/* Runs one parser on an exactly sized copy of buf[0..n), so that ASan catches any read
 * past n, and checks the contract every parser shares. */
static int parse(Kind kind, const uint8_t *buf, size_t n, Out *out) {
        uint8_t *copy = malloc(n ? n : 1);
        Out before;
        int r;

        check(copy);
        memcpy(copy, buf, n);
        memset(out, 0x5a, sizeof *out);
        before = *out;

        switch (kind) {
        case KIND_GREETING:
                r = socks5_parse_greeting(copy, n, &out->greeting);
                check(r == 0 || r == -EBADMSG || (r >= 3 && (size_t) r <= SOCKS5_GREETING_MAX));
                break;
        case KIND_USERPASS:
                r = socks5_parse_userpass(copy, n, &out->userpass);
                check(r == 0 || r == -EBADMSG || (r >= 5 && (size_t) r <= SOCKS5_USERPASS_MAX));
                break;
        case KIND_REQUEST:
                r = socks5_parse_request(copy, n, &out->request);
                check(r == 0 || r == -EBADMSG || r == -EAFNOSUPPORT ||
                      (r >= 8 && (size_t) r <= SOCKS5_REQUEST_MAX));
                break;
        case KIND_METHOD_SELECTION:
                r = socks5_parse_method_selection(copy, n, &out->code);
                check(r == 0 || r == -EBADMSG || r == (int) SOCKS5_METHOD_SELECTION_SIZE);
                break;
        case KIND_CONNECT_REPLY:
                r = socks5_parse_connect_reply(copy, n, &out->code);
                check(r == 0 || r == -EBADMSG || (r >= 7 && (size_t) r <= SOCKS5_REPLY_MAX));
                break;
        case KIND_HTTP_RESPONSE:
                r = http_connect_parse_response((const char *) copy, n, &out->status);
                check(r == 0 || r == -EBADMSG || r == -EMSGSIZE ||
                      (r >= 12 && (size_t) r <= HTTP_CONNECT_RESPONSE_MAX));
                if (r == -EMSGSIZE)
                        check(n >= HTTP_CONNECT_RESPONSE_MAX);
                break;
        default:
                abort();
        }
        free(copy);

        check(r <= 0 || (size_t) r <= n);
        if (r <= 0)
                check(memcmp(out, &before, sizeof *out) == 0); /* ret_* untouched */
        return r;
}

static void check_greeting(const uint8_t *buf, const Socks5Greeting *g) {
        uint8_t m;

        check(g->n_methods == buf[1] && g->n_methods >= 1);
        check(memcmp(g->methods, buf + 2, g->n_methods) == 0);
        for (int req = 0; req <= 1; req++) {
                m = socks5_select_method(g, req);
                check(m == (req ? SOCKS5_METHOD_USERPASS : SOCKS5_METHOD_NO_AUTH) ||
                      m == SOCKS5_METHOD_NO_ACCEPTABLE);
                check((m != SOCKS5_METHOD_NO_ACCEPTABLE) == (memchr(g->methods, req ? 2 : 0, g->n_methods) != NULL));
        }
}

static void check_userpass(const uint8_t *buf, const Socks5UserPass *up) {
        bool clean;

        check(up->username_len == buf[1] && up->username_len >= 1);
        check(up->password_len == buf[2 + up->username_len] && up->password_len >= 1);
        check(memcmp(up->username, buf + 2, up->username_len) == 0);
        check(memcmp(up->password, buf + 3 + up->username_len, up->password_len) == 0);
        for (size_t i = up->username_len; i < sizeof up->username; i++)
                check(up->username[i] == 0);
        for (size_t i = up->password_len; i < sizeof up->password; i++)
                check(up->password[i] == 0);

        /* Credentials match themselves as C strings exactly when they hold no NUL. */
        clean = strlen(up->username) == up->username_len && strlen(up->password) == up->password_len;
        check(socks5_userpass_matches(up, up->username, up->password) == clean);
        check(!socks5_userpass_matches(up, up->username, ""));
}

/* A reply built for this address and code parses back through the client side. */
static void check_reply_round_trip(uint8_t code, const struct sockaddr *sa) {
        uint8_t out[SOCKS5_SERVER_REPLY_MAX], back = 0;
        int r;

        r = socks5_build_reply(code, sa, out, sizeof out);
        check(r == 10 || r == 22);
        check(socks5_build_reply(code, sa, out, (size_t) r - 1) == -ENOBUFS);
        check(socks5_parse_connect_reply(out, (size_t) r, &back) == r);
        check(back == code);
        for (int n = 0; n < r; n++)
                check(socks5_parse_connect_reply(out, (size_t) n, &back) == 0);
}

static void check_request(const uint8_t *buf, int len, const Socks5Request *req) {
        struct sockaddr_storage ss = {};
        uint8_t addr[16], out[SOCKS5_REQUEST_MAX];
        const uint8_t *port_bytes = buf + len - 2;
        Socks5Request back;
        int r;

        check(req->cmd == buf[1]);
        check(req->atyp == buf[3]);
        check(req->port == (port_bytes[0] << 8 | port_bytes[1]));
        check(socks5_request_supported(req) == (req->cmd == SOCKS5_CMD_CONNECT));

        switch (req->atyp) {
        case SOCKS5_ATYP_IPV4: {
                struct sockaddr_in *sin = (struct sockaddr_in *) &ss;

                check(len == 10);
                check(inet_pton(AF_INET, req->address, addr) == 1 && memcmp(addr, buf + 4, 4) == 0);
                sin->sin_family = AF_INET;
                memcpy(&sin->sin_addr, addr, 4);
                sin->sin_port = htons(req->port);
                check_reply_round_trip(buf[1], (const struct sockaddr *) sin);
                break;
        }
        case SOCKS5_ATYP_IPV6: {
                struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) &ss;

                check(len == 22);
                check(inet_pton(AF_INET6, req->address, addr) == 1 && memcmp(addr, buf + 4, 16) == 0);
                sin6->sin6_family = AF_INET6;
                memcpy(&sin6->sin6_addr, addr, 16);
                sin6->sin6_port = htons(req->port);
                check_reply_round_trip(buf[1], (const struct sockaddr *) sin6);
                break;
        }
        case SOCKS5_ATYP_DOMAIN:
                /* The parsed name is the sent one: same length, no NUL cut it short. */
                check(buf[4] >= 1 && strlen(req->address) == buf[4]);
                check(memcmp(req->address, buf + 5, buf[4]) == 0);
                check(len == 5 + buf[4] + 2);
                check_reply_round_trip(buf[1], NULL);
                break;
        default:
                abort();
        }

        /* Our client side sends the same target; our server side reads it back. A name
         * that happens to be an IP literal comes back as that address. */
        r = socks5_build_connect_request(req->address, req->port, out, sizeof out);
        check(r > 0);
        check(socks5_parse_request(out, (size_t) r, &back) == r);
        check(back.cmd == SOCKS5_CMD_CONNECT && back.port == req->port);
        if (req->atyp != SOCKS5_ATYP_DOMAIN || back.atyp == SOCKS5_ATYP_DOMAIN)
                check(streq(back.address, req->address));
        if (back.atyp == SOCKS5_ATYP_DOMAIN)
                check(r == len && memcmp(out + 3, buf + 3, (size_t) r - 3) == 0);
}

static void check_http_response(const uint8_t *buf, int len, int status) {
        check(status >= 100 && status <= 599);
        check(memcmp(buf, "HTTP/1.", 7) == 0);
        check(buf[len - 1] == '\n');
        check(buf[len - 2] == '\n' || (buf[len - 2] == '\r' && buf[len - 3] == '\n'));
}

/* Any string as a host: refused, or a request of the documented shape. */
static void check_http_build(const uint8_t *data, size_t n) {
        char host[300], out[HTTP_CONNECT_REQUEST_MAX];
        size_t l = MIN(n, sizeof host - 1), lf = 0, sp = 0, slash = 0;
        int r;

        memcpy(host, data, l);
        host[l] = 0;
        r = http_connect_build_request(host, 8080, out, sizeof out);
        check(r == -EINVAL || (r > 0 && (size_t) r < sizeof out));
        if (r < 0)
                return;
        check(strlen(out) == (size_t) r);
        check(strlen(host) >= 1 && strlen(host) <= 255);
        for (int i = 0; i < r; i++) {
                lf += out[i] == '\n';
                sp += out[i] == ' ';
                slash += out[i] == '/';
                check(out[i] != '@' && (out[i] == '\r' || out[i] == '\n' || (out[i] >= 0x20 && out[i] < 0x7f)));
        }
        /* Only the request's own line breaks, spaces and the slash of "HTTP/1.1". */
        check(lf == 3 && sp == 3 && slash == 1);
        check(strncmp(out, "CONNECT ", 8) == 0);
        check(http_connect_build_request(host, 8080, out, (size_t) r) == -ENOBUFS);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const uint8_t *buf;
        size_t n, split;

        if (size < 1)
                return 0;
        buf = data + 1;
        n = size - 1;
        split = data[0] % (n + 1);

        for (Kind k = 0; k < _KIND_MAX; k++) {
                Out full, part, exact;
                int r, rp;

                r = parse(k, buf, n, &full);
                rp = parse(k, buf, split, &part);

                /* Incremental: a prefix of the complete element needs more; a prefix that
                 * holds it gives the same answer; a fault seen in a prefix stays a fault. */
                if (r > 0) {
                        if (split < (size_t) r)
                                check(rp == 0);
                        else
                                check(rp == r && memcmp(&part, &full, sizeof full) == 0);
                        check(parse(k, buf, (size_t) r, &exact) == r);
                        check(memcmp(&exact, &full, sizeof full) == 0);
                } else if (r == 0)
                        check(rp == 0);
                else
                        check(rp == 0 || rp == r);

                if (r <= 0)
                        continue;
                switch (k) {
                case KIND_GREETING:
                        check_greeting(buf, &full.greeting);
                        break;
                case KIND_USERPASS:
                        check_userpass(buf, &full.userpass);
                        break;
                case KIND_REQUEST:
                        check_request(buf, r, &full.request);
                        break;
                case KIND_METHOD_SELECTION:
                        check(full.code == buf[1]);
                        break;
                case KIND_CONNECT_REPLY:
                        check(full.code == buf[1]);
                        check((socks5_reply_to_string(full.code) != NULL) == (full.code < _SOCKS5_REPLY_MAX));
                        break;
                case KIND_HTTP_RESPONSE:
                        check_http_response(buf, r, full.status);
                        break;
                default:
                        abort();
                }
        }

        check_http_build(buf, n);
        return 0;
}
