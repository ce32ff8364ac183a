/* HTTP CONNECT (RFC 9110 §9.3.6) client codec for upstream Proxy=http://: the request
 * that opens a tunnel and an incremental parser of the proxy's response header. No I/O. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Largest response header block accepted, the terminating empty line included. */
#define HTTP_CONNECT_RESPONSE_MAX (8u * 1024u)

/* Room any request needs: "CONNECT " host ":65535" " HTTP/1.1\r\n" "Host: " host ":65535"
 * "\r\n\r\n" and the NUL, host at most 255 bytes plus two brackets. */
#define HTTP_CONNECT_REQUEST_MAX (8u + 257u + 6u + 11u + 6u + 257u + 6u + 4u + 1u)

/* Writes "CONNECT host:port HTTP/1.1\r\nHost: host:port\r\n\r\n" NUL-terminated into out and
 * returns its length without the NUL. An IPv6 literal (given without brackets) is written
 * in brackets. Any other host must be a registered name or IPv4 literal of 1..255 bytes made
 * of RFC 3986 unreserved and sub-delims characters only (letters, digits, "-._~!$&'()*+,;="),
 * so whitespace, control characters, '@', '/', ':', '%', '[', ']' and non-ASCII bytes
 * (use the IDNA form) are refused with -EINVAL, and nothing can be smuggled into the
 * request. -ENOBUFS if size is too small (HTTP_CONNECT_REQUEST_MAX always suffices). */
int http_connect_build_request(const char *host, uint16_t port, char *out, size_t size);

/* Parses the proxy's response header in buf[0..n). Returns 0 until the whole header block
 * (up to the first empty line; lines end in "\r\n" or a bare "\n") is there, then the bytes
 * it takes, with the status code in *ret_status: any bytes after it are the tunnel's (on
 * 2xx) or a body to discard. A 1xx status is interim: parse the next block after it.
 * The status line must be "HTTP/1.<digit> <100..599>", then the end of the line or a space
 * and a reason phrase without control characters other than HTAB; header fields are not
 * interpreted. Malformed status lines fail with -EBADMSG as soon as the bytes show it;
 * -EMSGSIZE when HTTP_CONNECT_RESPONSE_MAX bytes hold no end of the header. Each call scans
 * from the start, at most HTTP_CONNECT_RESPONSE_MAX bytes. */
int http_connect_parse_response(const char *buf, size_t n, int *ret_status);
