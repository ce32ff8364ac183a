/* libFuzzer target for the server's forwarding policy, whose destination string comes from
 * the SSH peer. Differential: whatever getaddrinfo() reads as a numeric address (it is
 * what the dialer will connect to) must be refused by a DenyOpen= entry for exactly that
 * address, both as the destination string and as the resolved address; and no input may
 * crash the parser or the matcher. */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-check.h"
#include "macro.h"
#include "server-config.h"

/* The destination as getaddrinfo() with AI_NUMERICHOST reads it, for one family. */
static bool numeric(const char *host, int family, struct sockaddr_storage *ret) {
        struct addrinfo hints = { .ai_family = family, .ai_flags = AI_NUMERICHOST, .ai_socktype = SOCK_STREAM };
        struct addrinfo *ai = NULL;
        bool ok;

        if (getaddrinfo(host, NULL, &hints, &ai) != 0)
                return false;
        ok = ai && ai->ai_addrlen <= sizeof *ret;
        if (ok)
                memcpy(ret, ai->ai_addr, ai->ai_addrlen);
        freeaddrinfo(ai);
        return ok;
}

static void check_denied(const char *host, const struct sockaddr_storage *sa) {
        char text[INET6_ADDRSTRLEN], entry[INET6_ADDRSTRLEN + 16];
        char *deny[] = { entry, NULL };

        if (sa->ss_family == AF_INET) {
                inet_ntop(AF_INET, &((const struct sockaddr_in *) sa)->sin_addr, text, sizeof text);
                snprintf(entry, sizeof entry, "%s/32:*", text);
        } else {
                inet_ntop(AF_INET6, &((const struct sockaddr_in6 *) sa)->sin6_addr, text, sizeof text);
                snprintf(entry, sizeof entry, "[%s]/128:*", text);
        }
        check(!server_policy_allows(NULL, deny, host, 443));
        check(server_policy_denies_address(deny, (const struct sockaddr *) sa, 443));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static char *permit[] = { (char *) "*.internal:1-1024", (char *) "10.0.0.0/8:*",
                                  (char *) "[2001:db8::]/32:443", NULL };
        static char *deny[] = { (char *) "127.0.0.0/8:*", (char *) "[::1]:*", (char *) "localhost:*",
                                (char *) "*.corp.:22", NULL };
        struct sockaddr_storage sa;
        char host[512];
        size_t n = strnlen((const char *) data, MIN(size, sizeof host - 1));

        memcpy(host, data, n);
        host[n] = '\0';

        /* Anything goes through both lists without crashing. */
        (void) server_policy_allows(permit, deny, host, 22);
        (void) server_policy_allows(NULL, deny, host, 1);
        (void) server_policy_allows(permit, NULL, host, 65535);

        if (numeric(host, AF_INET, &sa))
                check_denied(host, &sa);
        if (numeric(host, AF_INET6, &sa)) {
                check_denied(host, &sa);
                /* Loopback by any spelling meets the loopback entries. */
                if (IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *) &sa)->sin6_addr))
                        check(!server_policy_allows(NULL, deny, host, 80));
        }
        if (numeric(host, AF_INET, &sa) &&
            (ntohl(((struct sockaddr_in *) &sa)->sin_addr.s_addr) >> 24) == 127)
                check(!server_policy_allows(NULL, deny, host, 80));
        return 0;
}
