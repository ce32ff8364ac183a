/* The stealth probe and the nginx-lookalike 404. The response bytes were copied from a
 * real nginx 1.22.1 ("server_tokens off", `curl -si -H 'Connection: close'`): header
 * order, CRLFs and the body's line breaks all matter to anyone comparing. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "macro.h"
#include "stealth.h"

StealthClass stealth_classify(const uint8_t *buf, size_t n) {
        static const char prefix[] = STEALTH_SSH_PREFIX;
        size_t m = MIN(n, sizeof prefix - 1);

        for (size_t i = 0; i < m; i++)
                if (buf[i] != (uint8_t) prefix[i])
                        return STEALTH_OTHER;
        return m == sizeof prefix - 1 ? STEALTH_SSH : STEALTH_NEED_MORE;
}

static const char *const stealth_class_table[_STEALTH_CLASS_MAX] = {
        [STEALTH_NEED_MORE] = "need-more",
        [STEALTH_SSH] = "ssh",
        [STEALTH_OTHER] = "other",
};

const char *stealth_class_to_string(StealthClass c) {
        if (c < 0 || c >= _STEALTH_CLASS_MAX)
                return NULL;
        return stealth_class_table[c];
}

/* nginx's ngx_http_error_404_page followed by its "tail" with server_tokens off. */
static const char decoy_body[] =
        "<html>\r\n"
        "<head><title>404 Not Found</title></head>\r\n"
        "<body>\r\n"
        "<center><h1>404 Not Found</h1></center>\r\n"
        "<hr><center>nginx</center>\r\n"
        "</body>\r\n"
        "</html>\r\n";

int stealth_decoy_response(char *out, size_t size, time_t now) {
        /* HTTP dates are English whatever the locale (RFC 9110 5.6.7): no strftime(). */
        static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
        static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
        struct tm tm;
        int n;

        if (!gmtime_r(&now, &tm) || tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999)
                return -EINVAL;
        n = snprintf(out, size,
                     "HTTP/1.1 404 Not Found\r\n"
                     "Server: nginx\r\n"
                     "Date: %s, %02d %s %04d %02d:%02d:%02d GMT\r\n"
                     "Content-Type: text/html\r\n"
                     "Content-Length: %zu\r\n"
                     "Connection: close\r\n"
                     "\r\n"
                     "%s",
                     days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, sizeof decoy_body - 1, decoy_body);
        if (n < 0)
                return -EINVAL;
        if ((size_t) n >= size)
                return -ENOBUFS;
        return n;
}
