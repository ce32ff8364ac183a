/* SOCKS5 wire codec (RFC 1928, RFC 1929): incremental parsers of untrusted bytes and
 * builders into caller buffers, for the SOCKS server and for dialling upstream proxies. */
#include <arpa/inet.h>
#include <assert.h>
#include <netinet/in.h>
#include <string.h>

#include "macro.h"
#include "socks5.h"

int socks5_parse_greeting(const uint8_t *buf, size_t n, Socks5Greeting *ret) {
        size_t size;

        assert(buf || n == 0);
        assert(ret);

        if (n >= 1 && buf[0] != SOCKS5_VERSION)
                return -EBADMSG;
        if (n < 2)
                return 0;
        if (buf[1] == 0)
                return -EBADMSG;
        size = 2 + (size_t) buf[1];
        if (n < size)
                return 0;

        ret->n_methods = buf[1];
        memcpy(ret->methods, buf + 2, buf[1]);
        return (int) size;
}

static bool greeting_offers(const Socks5Greeting *g, uint8_t method) {
        return memchr(g->methods, method, g->n_methods) != NULL;
}

uint8_t socks5_select_method(const Socks5Greeting *g, bool require_userpass) {
        uint8_t wanted = require_userpass ? SOCKS5_METHOD_USERPASS : SOCKS5_METHOD_NO_AUTH;

        assert(g);
        return greeting_offers(g, wanted) ? wanted : SOCKS5_METHOD_NO_ACCEPTABLE;
}

int socks5_build_method_selection(uint8_t method, uint8_t out[static SOCKS5_METHOD_SELECTION_SIZE]) {
        out[0] = SOCKS5_VERSION;
        out[1] = method;
        return SOCKS5_METHOD_SELECTION_SIZE;
}

int socks5_parse_userpass(const uint8_t *buf, size_t n, Socks5UserPass *ret) {
        size_t ulen, plen;

        assert(buf || n == 0);
        assert(ret);

        if (n >= 1 && buf[0] != SOCKS5_USERPASS_VERSION)
                return -EBADMSG;
        if (n < 2)
                return 0;
        ulen = buf[1];
        if (ulen == 0)
                return -EBADMSG;
        if (n < 2 + ulen + 1)
                return 0;
        plen = buf[2 + ulen];
        if (plen == 0)
                return -EBADMSG;
        if (n < 3 + ulen + plen)
                return 0;

        /* Written in place: a copy through a local would leave the password on the stack.
         * The zero padding up to the end of each field is what the matcher relies on. */
        memset(ret, 0, sizeof *ret);
        memcpy(ret->username, buf + 2, ulen);
        ret->username_len = ulen;
        memcpy(ret->password, buf + 3 + ulen, plen);
        ret->password_len = plen;
        return (int) (3 + ulen + plen);
}

/* Nonzero unless field[0..field_len) equals s. Always walks the whole field and masks by
 * index rather than stopping early, so that the time does not tell how much matched. */
static unsigned field_diff(const char field[static 256], size_t field_len, const char *s) {
        size_t len = strnlen(s, 256); /* 256: longer than any field can be, never equal */
        unsigned diff = len != field_len;

        for (size_t i = 0; i < 256; i++) {
                uint8_t a = i < field_len ? (uint8_t) field[i] : 0;
                uint8_t b = i < len ? (uint8_t) s[i] : 0;

                diff |= a ^ b;
        }
        return diff;
}

bool socks5_userpass_matches(const Socks5UserPass *up, const char *user, const char *pass) {
        unsigned diff;

        assert(up);
        assert(user);
        assert(pass);

        /* Both compared every time: no early exit on a wrong user name. */
        diff = field_diff(up->username, up->username_len, user);
        diff |= field_diff(up->password, up->password_len, pass);
        return diff == 0;
}

void socks5_userpass_erase(Socks5UserPass *up) {
        if (up)
                explicit_bzero(up, sizeof *up);
}

int socks5_build_userpass_reply(bool ok, uint8_t out[static SOCKS5_USERPASS_REPLY_SIZE]) {
        out[0] = SOCKS5_USERPASS_VERSION;
        out[1] = ok ? 0x00 : 0x01;
        return SOCKS5_USERPASS_REPLY_SIZE;
}

/* Requests and replies share a layout: VER CMD|REP RSV ATYP ADDR PORT. Returns the size of
 * the whole message once buf holds it, 0 before. A request is checked strictly (its address
 * is used); a reply's address is only skipped over. */
static int parse_addressed(const uint8_t *buf, size_t n, bool request) {
        size_t addr_off = 4, addr_len, size;

        if (n >= 1 && buf[0] != SOCKS5_VERSION)
                return -EBADMSG;
        if (n >= 3 && buf[2] != 0)
                return -EBADMSG;
        if (n < 4)
                return 0;

        switch (buf[3]) {
        case SOCKS5_ATYP_IPV4:
                addr_len = 4;
                break;
        case SOCKS5_ATYP_IPV6:
                addr_len = 16;
                break;
        case SOCKS5_ATYP_DOMAIN:
                if (n < 5)
                        return 0;
                addr_off = 5;
                addr_len = buf[4];
                if (request) {
                        if (addr_len == 0)
                                return -EBADMSG;
                        /* A NUL would cut the name short for every C consumer after us. */
                        if (memchr(buf + addr_off, 0, MIN(n - addr_off, addr_len)))
                                return -EBADMSG;
                }
                break;
        default:
                /* Without a known ATYP the message has no known end; the server's answer
                 * for a request (0x08) differs from plain garbage. */
                return request ? -EAFNOSUPPORT : -EBADMSG;
        }

        size = addr_off + addr_len + 2;
        if (n < size)
                return 0;
        return (int) size;
}

static void address_to_text(int family, const uint8_t *addr, char out[static SOCKS5_ADDRESS_TEXT_MAX]) {
        const char *s;

        /* Cannot fail: the family is supported and the buffer is larger than
         * INET6_ADDRSTRLEN. */
        s = inet_ntop(family, addr, out, SOCKS5_ADDRESS_TEXT_MAX);
        assert(s);
        (void) s;
}

int socks5_parse_request(const uint8_t *buf, size_t n, Socks5Request *ret) {
        Socks5Request req = {};
        const uint8_t *p;
        int size;

        assert(buf || n == 0);
        assert(ret);

        size = parse_addressed(buf, n, true);
        if (size <= 0)
                return size;

        p = buf + 4;
        switch (buf[3]) {
        case SOCKS5_ATYP_IPV4:
                address_to_text(AF_INET, p, req.address);
                p += 4;
                break;
        case SOCKS5_ATYP_IPV6:
                address_to_text(AF_INET6, p, req.address);
                p += 16;
                break;
        case SOCKS5_ATYP_DOMAIN:
                memcpy(req.address, p + 1, p[0]);
                p += 1 + p[0];
                break;
        }
        req.cmd = buf[1];
        req.atyp = buf[3];
        req.port = (uint16_t) (p[0] << 8 | p[1]);
        *ret = req;
        return size;
}

bool socks5_request_supported(const Socks5Request *req) {
        assert(req);
        return req->cmd == SOCKS5_CMD_CONNECT;
}

int socks5_build_reply(uint8_t code, const struct sockaddr *bound, uint8_t *out, size_t size) {
        static const uint8_t any[4 + 2] = {}; /* 0.0.0.0 and port 0 */
        const uint8_t *addr = any, *port = any + 4;
        size_t addr_len = 4;
        uint8_t atyp = SOCKS5_ATYP_IPV4;

        assert(out || size == 0);

        if (bound) {
                if (bound->sa_family == AF_INET) {
                        const struct sockaddr_in *sin = (const struct sockaddr_in *) bound;

                        addr = (const uint8_t *) &sin->sin_addr;
                        port = (const uint8_t *) &sin->sin_port; /* already network order */
                } else if (bound->sa_family == AF_INET6) {
                        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *) bound;

                        atyp = SOCKS5_ATYP_IPV6;
                        addr = (const uint8_t *) &sin6->sin6_addr;
                        addr_len = 16;
                        port = (const uint8_t *) &sin6->sin6_port;
                } else
                        return -EAFNOSUPPORT;
        }

        if (size < 4 + addr_len + 2)
                return -ENOBUFS;
        out[0] = SOCKS5_VERSION;
        out[1] = code;
        out[2] = 0;
        out[3] = atyp;
        memcpy(out + 4, addr, addr_len);
        memcpy(out + 4 + addr_len, port, 2);
        return (int) (4 + addr_len + 2);
}

uint8_t socks5_reply_for_ssh_open_failure(int ssh_reason) {
        switch (ssh_reason) {
        case SSH_OPEN_ADMINISTRATIVELY_PROHIBITED:
                return SOCKS5_REPLY_NOT_ALLOWED;
        case SSH_OPEN_CONNECT_FAILED:
                return SOCKS5_REPLY_CONNECTION_REFUSED;
        default:
                return SOCKS5_REPLY_GENERAL_FAILURE;
        }
}

static const char *const reply_table[_SOCKS5_REPLY_MAX] = {
        [SOCKS5_REPLY_SUCCEEDED] = "succeeded",
        [SOCKS5_REPLY_GENERAL_FAILURE] = "general SOCKS server failure",
        [SOCKS5_REPLY_NOT_ALLOWED] = "connection not allowed by ruleset",
        [SOCKS5_REPLY_NETWORK_UNREACHABLE] = "network unreachable",
        [SOCKS5_REPLY_HOST_UNREACHABLE] = "host unreachable",
        [SOCKS5_REPLY_CONNECTION_REFUSED] = "connection refused",
        [SOCKS5_REPLY_TTL_EXPIRED] = "TTL expired",
        [SOCKS5_REPLY_COMMAND_NOT_SUPPORTED] = "command not supported",
        [SOCKS5_REPLY_ADDRESS_TYPE_NOT_SUPPORTED] = "address type not supported",
};

const char *socks5_reply_to_string(int code) {
        if (code < 0 || code >= _SOCKS5_REPLY_MAX)
                return NULL;
        return reply_table[code];
}

int socks5_build_client_greeting(uint8_t *out, size_t size) {
        assert(out || size == 0);

        if (size < SOCKS5_CLIENT_GREETING_SIZE)
                return -ENOBUFS;
        out[0] = SOCKS5_VERSION;
        out[1] = 1;
        out[2] = SOCKS5_METHOD_NO_AUTH;
        return SOCKS5_CLIENT_GREETING_SIZE;
}

int socks5_parse_method_selection(const uint8_t *buf, size_t n, uint8_t *ret_method) {
        assert(buf || n == 0);
        assert(ret_method);

        if (n >= 1 && buf[0] != SOCKS5_VERSION)
                return -EBADMSG;
        if (n < SOCKS5_METHOD_SELECTION_SIZE)
                return 0;
        *ret_method = buf[1];
        return SOCKS5_METHOD_SELECTION_SIZE;
}

int socks5_build_connect_request(const char *host, uint16_t port, uint8_t *out, size_t size) {
        uint8_t addr[16];
        size_t len, addr_len, n;
        uint8_t atyp;

        assert(host);
        assert(out || size == 0);

        len = strnlen(host, 256);
        if (len == 0 || len > 255)
                return -EINVAL;

        if (inet_pton(AF_INET, host, addr) == 1) {
                atyp = SOCKS5_ATYP_IPV4;
                addr_len = 4;
        } else if (inet_pton(AF_INET6, host, addr) == 1) {
                atyp = SOCKS5_ATYP_IPV6;
                addr_len = 16;
        } else {
                atyp = SOCKS5_ATYP_DOMAIN;
                addr_len = 1 + len;
        }

        n = 4 + addr_len + 2;
        if (size < n)
                return -ENOBUFS;
        out[0] = SOCKS5_VERSION;
        out[1] = SOCKS5_CMD_CONNECT;
        out[2] = 0;
        out[3] = atyp;
        if (atyp == SOCKS5_ATYP_DOMAIN) {
                out[4] = (uint8_t) len;
                memcpy(out + 5, host, len);
        } else
                memcpy(out + 4, addr, addr_len);
        out[n - 2] = (uint8_t) (port >> 8);
        out[n - 1] = (uint8_t) port;
        return (int) n;
}

int socks5_parse_connect_reply(const uint8_t *buf, size_t n, uint8_t *ret_code) {
        int size;

        assert(buf || n == 0);
        assert(ret_code);

        size = parse_addressed(buf, n, false);
        if (size <= 0)
                return size;
        *ret_code = buf[1];
        return size;
}
