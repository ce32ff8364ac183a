/* HTTP CONNECT client codec: builds the tunnel request for an upstream HTTP proxy and
 * parses its response header incrementally, leaving the bytes after it to the tunnel. */
#include <arpa/inet.h>
#include <assert.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "http-connect.h"
#include "macro.h"

/* RFC 3986 reg-name characters, pct-encoded left out: unreserved and sub-delims. */
static bool is_reg_name_char(char c) {
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
                return true;
        return c && strchr("-._~!$&'()*+,;=", c);
}

int http_connect_build_request(const char *host, uint16_t port, char *out, size_t size) {
        struct in6_addr a6;
        const char *lb = "", *rb = "";
        size_t len;
        int r;

        assert(host);
        assert(out || size == 0);

        len = strnlen(host, 256);
        if (len == 0 || len > 255)
                return -EINVAL;

        if (inet_pton(AF_INET6, host, &a6) == 1) {
                lb = "[";
                rb = "]";
        } else
                for (size_t i = 0; i < len; i++)
                        if (!is_reg_name_char(host[i]))
                                return -EINVAL;

        r = snprintf(out, size, "CONNECT %s%s%s:%u HTTP/1.1\r\nHost: %s%s%s:%u\r\n\r\n",
                     lb, host, rb, (unsigned) port, lb, host, rb, (unsigned) port);
        assert(r >= 0);
        if ((size_t) r >= size)
                return -ENOBUFS;
        return r;
}

static bool is_digit(char c) {
        return c >= '0' && c <= '9';
}

/* Checks the status line as far as buf[0..n) holds it. Returns the status code once the
 * whole line is there and good, 0 while what is there is good so far, or -EBADMSG. */
static int check_status_line(const char *buf, size_t n) {
        static const char version[] = "HTTP/1.";
        const size_t vlen = sizeof version - 1;
        int status = 0;

        for (size_t i = 0; i < MIN(n, vlen); i++)
                if (buf[i] != version[i])
                        return -EBADMSG;
        if (n <= vlen)
                return 0;
        if (!is_digit(buf[vlen]))
                return -EBADMSG;
        if (n <= vlen + 1)
                return 0;
        if (buf[vlen + 1] != ' ')
                return -EBADMSG;

        for (size_t i = vlen + 2; i < vlen + 5; i++) {
                if (n <= i)
                        return 0;
                if (!is_digit(buf[i]) || (i == vlen + 2 && (buf[i] < '1' || buf[i] > '5')))
                        return -EBADMSG;
                status = status * 10 + (buf[i] - '0');
        }

        /* After the code: the end of the line, or a space and the reason phrase. A CR may
         * only end the line. */
        for (size_t i = vlen + 5; i < n; i++) {
                unsigned char c = (unsigned char) buf[i];

                if (c == '\n')
                        return status;
                if (c == '\r') {
                        if (i + 1 >= n)
                                return 0;
                        if (buf[i + 1] != '\n')
                                return -EBADMSG;
                        continue;
                }
                if (i == vlen + 5 && c != ' ')
                        return -EBADMSG; /* "HTTP/1.1 2000" */
                if ((c < 0x20 && c != '\t') || c == 0x7f)
                        return -EBADMSG;
        }
        return 0;
}

int http_connect_parse_response(const char *buf, size_t n, int *ret_status) {
        size_t limit = MIN(n, (size_t) HTTP_CONNECT_RESPONSE_MAX);
        int status;

        assert(buf || n == 0);
        assert(ret_status);

        status = check_status_line(buf, limit);
        if (status < 0)
                return status;

        /* The header ends at the first empty line: "\n" then "\n" or "\r\n". */
        for (size_t i = 0; i < limit; i++) {
                size_t end;

                if (buf[i] != '\n')
                        continue;
                if (i + 1 < limit && buf[i + 1] == '\n')
                        end = i + 2;
                else if (i + 2 < limit && buf[i + 1] == '\r' && buf[i + 2] == '\n')
                        end = i + 3;
                else
                        continue;

                /* The first LF ends the status line, so it was checked whole. */
                assert(status > 0);
                *ret_status = status;
                return (int) end;
        }

        return n >= HTTP_CONNECT_RESPONSE_MAX ? -EMSGSIZE : 0;
}
