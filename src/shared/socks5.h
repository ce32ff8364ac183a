/* SOCKS5 wire codec (RFC 1928 with RFC 1929 username/password), both as server (local
 * listeners) and as client (upstream Proxy=socks5://). Pure code on caller buffers, no I/O. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Every parser here is incremental: it returns 0 while buf[0..n) holds only a prefix of the
 * element (call again with more bytes), > 0 the number of bytes the complete element takes
 * (bytes after it are not looked at and belong to whatever comes next), or -errno. Bytes
 * that already prove the element malformed fail at once, without waiting for the rest.
 * Return values are at most SOCKS5_MESSAGE_MAX, so they always fit in an int. ret_* are
 * written only when a complete element was parsed. */

#define SOCKS5_VERSION 0x05
#define SOCKS5_USERPASS_VERSION 0x01 /* RFC 1929 subnegotiation version */

/* Authentication methods (RFC 1928 §3). */
#define SOCKS5_METHOD_NO_AUTH 0x00
#define SOCKS5_METHOD_GSSAPI 0x01
#define SOCKS5_METHOD_USERPASS 0x02
#define SOCKS5_METHOD_NO_ACCEPTABLE 0xFF

/* Commands and address types (RFC 1928 §4, §5). */
#define SOCKS5_CMD_CONNECT 0x01
#define SOCKS5_CMD_BIND 0x02
#define SOCKS5_CMD_UDP_ASSOCIATE 0x03
#define SOCKS5_ATYP_IPV4 0x01
#define SOCKS5_ATYP_DOMAIN 0x03
#define SOCKS5_ATYP_IPV6 0x04

/* Channel open failure reasons (RFC 4254 §5.1), as the SSH peer reports them. Written out
 * here so that this file needs no libssh header; identical redefinitions are harmless. */
#define SSH_OPEN_ADMINISTRATIVELY_PROHIBITED 1
#define SSH_OPEN_CONNECT_FAILED 2
#define SSH_OPEN_UNKNOWN_CHANNEL_TYPE 3
#define SSH_OPEN_RESOURCE_SHORTAGE 4

/* Reply codes, REP (RFC 1928 §6). */
typedef enum Socks5ReplyCode {
        SOCKS5_REPLY_SUCCEEDED = 0x00,
        SOCKS5_REPLY_GENERAL_FAILURE = 0x01,
        SOCKS5_REPLY_NOT_ALLOWED = 0x02,
        SOCKS5_REPLY_NETWORK_UNREACHABLE = 0x03,
        SOCKS5_REPLY_HOST_UNREACHABLE = 0x04,
        SOCKS5_REPLY_CONNECTION_REFUSED = 0x05,
        SOCKS5_REPLY_TTL_EXPIRED = 0x06,
        SOCKS5_REPLY_COMMAND_NOT_SUPPORTED = 0x07,
        SOCKS5_REPLY_ADDRESS_TYPE_NOT_SUPPORTED = 0x08,
        _SOCKS5_REPLY_MAX,
        _SOCKS5_REPLY_INVALID = -EINVAL,
} Socks5ReplyCode;

/* Largest message of each kind, for sizing buffers. */
#define SOCKS5_GREETING_MAX (2u + 255u)              /* VER NMETHODS METHODS[255] */
#define SOCKS5_USERPASS_MAX (1u + 1u + 255u + 1u + 255u) /* VER ULEN UNAME PLEN PASSWD */
#define SOCKS5_REQUEST_MAX (4u + 1u + 255u + 2u)     /* VER CMD RSV ATYP LEN DOMAIN PORT */
#define SOCKS5_REPLY_MAX SOCKS5_REQUEST_MAX          /* same layout; a domain BND.ADDR at most */
#define SOCKS5_METHOD_SELECTION_SIZE 2u              /* VER METHOD */
#define SOCKS5_USERPASS_REPLY_SIZE 2u                /* VER STATUS */
#define SOCKS5_CLIENT_GREETING_SIZE 3u               /* 05 01 00 */
#define SOCKS5_SERVER_REPLY_MAX (4u + 16u + 2u)      /* what socks5_build_reply() writes at most */
/* The largest of all of the above: one buffer of this size holds any single message. */
#define SOCKS5_MESSAGE_MAX SOCKS5_USERPASS_MAX

/* Room for a request's address as text: a domain of up to 255 bytes or an IPv6 literal
 * (INET6_ADDRSTRLEN is 46), plus the NUL. */
#define SOCKS5_ADDRESS_TEXT_MAX 256u

/* ---- Server side: we are the SOCKS server, a local application is the client. ---- */

typedef struct Socks5Greeting {
        uint8_t n_methods; /* >= 1 */
        uint8_t methods[255];
} Socks5Greeting;

/* Method negotiation message. -EBADMSG: VER is not 5 or NMETHODS is 0. */
int socks5_parse_greeting(const uint8_t *buf, size_t n, Socks5Greeting *ret);

/* The method to answer with: with require_userpass, SOCKS5_METHOD_USERPASS if the client
 * offers it; otherwise SOCKS5_METHOD_NO_AUTH if offered. SOCKS5_METHOD_NO_ACCEPTABLE when
 * the client does not offer that one method: a server without credentials configured never
 * picks username/password, so there is no "accept any password" mode. */
uint8_t socks5_select_method(const Socks5Greeting *g, bool require_userpass);

/* Writes VER METHOD; returns SOCKS5_METHOD_SELECTION_SIZE. */
int socks5_build_method_selection(uint8_t method, uint8_t out[static SOCKS5_METHOD_SELECTION_SIZE]);

/* RFC 1929 credentials. The fields are NUL-terminated and zero-padded to the end, but the
 * client may send NUL bytes inside them: the lengths are authoritative and
 * socks5_userpass_matches() compares by length. Wipe with socks5_userpass_erase(). */
typedef struct Socks5UserPass {
        char username[256];
        char password[256];
        size_t username_len; /* 1..255 */
        size_t password_len; /* 1..255 */
} Socks5UserPass;

/* -EBADMSG: VER is not 1, ULEN or PLEN is 0. */
int socks5_parse_userpass(const uint8_t *buf, size_t n, Socks5UserPass *ret);

/* True if the credentials equal user and pass exactly (length and bytes). The time taken
 * does not depend on the bytes or lengths received, nor on where they differ: every byte of
 * both fields is compared every time. */
bool socks5_userpass_matches(const Socks5UserPass *up, const char *user, const char *pass);

void socks5_userpass_erase(Socks5UserPass *up);

/* Writes VER=1 STATUS (0x00 success, 0x01 failure; on failure the server closes, RFC 1929
 * §2); returns SOCKS5_USERPASS_REPLY_SIZE. */
int socks5_build_userpass_reply(bool ok, uint8_t out[static SOCKS5_USERPASS_REPLY_SIZE]);

typedef struct Socks5Request {
        uint8_t cmd;  /* any value; see socks5_request_supported() */
        uint8_t atyp; /* SOCKS5_ATYP_IPV4, _DOMAIN or _IPV6 */
        /* IPv4/IPv6 literal from inet_ntop(), or the domain exactly as sent (1..255 bytes,
         * no NUL inside). Never resolved: domain targets are passed on as names. */
        char address[SOCKS5_ADDRESS_TEXT_MAX];
        uint16_t port; /* host byte order */
} Socks5Request;

/* Request. -EBADMSG: VER is not 5, RSV is not 0, a domain of length 0 or with a NUL byte
 * inside. -EAFNOSUPPORT: an ATYP other than 1, 3, 4; its length is unknown, so the server
 * answers SOCKS5_REPLY_ADDRESS_TYPE_NOT_SUPPORTED and closes. Any CMD parses; check it
 * with socks5_request_supported(). */
int socks5_parse_request(const uint8_t *buf, size_t n, Socks5Request *ret);

/* Only CONNECT is: BIND, UDP ASSOCIATE and unknown commands are answered
 * SOCKS5_REPLY_COMMAND_NOT_SUPPORTED. */
bool socks5_request_supported(const Socks5Request *req);

/* Writes VER REP RSV ATYP BND.ADDR BND.PORT: bound is an AF_INET or AF_INET6 address, or
 * NULL for 0.0.0.0:0 (what error replies and an SSH-tunnelled CONNECT have). Returns the
 * bytes written (10 or 22), -ENOBUFS if size is too small, -EAFNOSUPPORT for another
 * family. */
int socks5_build_reply(uint8_t code, const struct sockaddr *bound, uint8_t *out, size_t size);

/* The reply for an SSH channel open failure with this reason code. */
uint8_t socks5_reply_for_ssh_open_failure(int ssh_reason);

/* "succeeded", "general SOCKS server failure", ...; NULL for codes RFC 1928 does not define. */
const char *socks5_reply_to_string(int code);

/* ---- Client side: we talk to an upstream SOCKS5 proxy. ---- */

/* Writes 05 01 00 (one method, no authentication); returns SOCKS5_CLIENT_GREETING_SIZE,
 * or -ENOBUFS. */
int socks5_build_client_greeting(uint8_t *out, size_t size);

/* The proxy's method selection; *ret_method is whatever it chose, the caller goes on only
 * for SOCKS5_METHOD_NO_AUTH (the only one offered). -EBADMSG: VER is not 5. */
int socks5_parse_method_selection(const uint8_t *buf, size_t n, uint8_t *ret_method);

/* CONNECT to host:port. host is an IPv4 or IPv6 literal without brackets (sent as ATYP 1
 * or 4) or anything else, sent unresolved as a domain (ATYP 3); an IPv6 literal with a
 * zone ("fe80::1%eth0") is not one for inet_pton() and goes as a name. Returns the bytes
 * written; -EINVAL for an empty host or one longer than 255 bytes, -ENOBUFS if size is
 * too small (SOCKS5_REQUEST_MAX always suffices). */
int socks5_build_connect_request(const char *host, uint16_t port, uint8_t *out, size_t size);

/* The proxy's reply to CONNECT, BND.ADDR and BND.PORT included (they are skipped, not
 * checked; a domain BND.ADDR may be empty). *ret_code is REP: the tunnel is up only for
 * SOCKS5_REPLY_SUCCEEDED. -EBADMSG: VER is not 5, RSV is not 0, ATYP not 1, 3 or 4. */
int socks5_parse_connect_reply(const uint8_t *buf, size_t n, uint8_t *ret_code);
