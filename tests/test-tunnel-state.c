/* Unit tests for tunnel states, reasons and their string tables, and the reconnect
 * backoff schedule with its jitter bounds. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>

#include "macro.h"
#include "tunnel-state.h"

static const struct {
        TunnelState state;
        const char *name;
} states[] = {
        { TUNNEL_DOWN, "down" },
        { TUNNEL_CONNECTING, "connecting" },
        { TUNNEL_AUTHENTICATING, "authenticating" },
        { TUNNEL_UP, "up" },
        { TUNNEL_BACKOFF, "backoff" },
        { TUNNEL_FAILED, "failed" },
};

static const struct {
        TunnelReason reason;
        const char *name;
        bool final;
} reasons[] = {
        { TUNNEL_REASON_NONE, "none", false },
        { TUNNEL_REASON_RESOLVE_FAILED, "resolve-failed", false },
        { TUNNEL_REASON_CONNECT_REFUSED, "connect-refused", false },
        { TUNNEL_REASON_CONNECT_TIMEOUT, "connect-timeout", false },
        { TUNNEL_REASON_TLS_FAILED, "tls-failed", false },
        { TUNNEL_REASON_PROXY_FAILED, "proxy-failed", false },
        { TUNNEL_REASON_AUTH_DENIED, "auth-denied", false },
        { TUNNEL_REASON_KEEPALIVE_TIMEOUT, "keepalive-timeout", false },
        { TUNNEL_REASON_DISCONNECTED, "disconnected", false },
        { TUNNEL_REASON_HOSTKEY_UNKNOWN, "hostkey-unknown", true },
        { TUNNEL_REASON_HOSTKEY_MISMATCH, "hostkey-mismatch", true },
        { TUNNEL_REASON_IDENTITY_UNREADABLE, "identity-unreadable", true },
        { TUNNEL_REASON_CONFIG_INVALID, "config-invalid", true },
};

static const char *const unknown_names[] = {
        "", "Down", "UP", "up ", " up", "down\n", "hostkey", "hostkey-unknown-", "config_invalid",
        "connecting\x01", "failed(hostkey-unknown)", "-1", "0",
};

START_TEST(test_state_table_complete) {
        /* Every enum value has a row here, so the loops below cover the whole table. */
        ck_assert_uint_eq(ELEMENTSOF(states), _TUNNEL_STATE_MAX);
        ck_assert_uint_eq(ELEMENTSOF(reasons), _TUNNEL_REASON_MAX);
}
END_TEST

START_TEST(test_state_round_trip) {
        const char *name = tunnel_state_to_string(states[_i].state);

        ck_assert_ptr_nonnull(name);
        ck_assert_str_eq(name, states[_i].name);
        ck_assert_int_eq(tunnel_state_from_string(states[_i].name), states[_i].state);
        ck_assert_int_eq(tunnel_state_from_string(name), states[_i].state);
}
END_TEST

START_TEST(test_reason_round_trip) {
        const char *name = tunnel_reason_to_string(reasons[_i].reason);

        ck_assert_ptr_nonnull(name);
        ck_assert_str_eq(name, reasons[_i].name);
        ck_assert_int_eq(tunnel_reason_from_string(reasons[_i].name), reasons[_i].reason);
        ck_assert_int_eq(tunnel_reason_is_final(reasons[_i].reason), reasons[_i].final);
}
END_TEST

START_TEST(test_unknown_strings) {
        ck_assert_int_eq(tunnel_state_from_string(unknown_names[_i]), -EINVAL);
        ck_assert_int_eq(tunnel_reason_from_string(unknown_names[_i]), -EINVAL);
}
END_TEST

START_TEST(test_out_of_range) {
        ck_assert_int_eq(tunnel_state_from_string(NULL), -EINVAL);
        ck_assert_int_eq(tunnel_reason_from_string(NULL), -EINVAL);
        /* A state name is not a reason and vice versa. */
        ck_assert_int_eq(tunnel_reason_from_string("up"), -EINVAL);
        ck_assert_int_eq(tunnel_state_from_string("disconnected"), -EINVAL);

        ck_assert_ptr_null(tunnel_state_to_string(_TUNNEL_STATE_MAX));
        ck_assert_ptr_null(tunnel_state_to_string(_TUNNEL_STATE_INVALID));
        ck_assert_ptr_null(tunnel_state_to_string((TunnelState) 1000));
        ck_assert_ptr_null(tunnel_reason_to_string(_TUNNEL_REASON_MAX));
        ck_assert_ptr_null(tunnel_reason_to_string(_TUNNEL_REASON_INVALID));
        ck_assert_ptr_null(tunnel_reason_to_string((TunnelReason) 1000));

        ck_assert(!tunnel_reason_is_final(_TUNNEL_REASON_MAX));
        ck_assert(!tunnel_reason_is_final(_TUNNEL_REASON_INVALID));
        ck_assert(!tunnel_reason_is_final((TunnelReason) 1000));
}
END_TEST

/* The base delay of each attempt before jitter. */
static uint64_t base_usec(unsigned attempt) {
        static const uint64_t schedule[] = { 1, 1, 2, 4, 8, 16 }; /* index 0: attempt 0 acts as 1 */
        return (attempt < ELEMENTSOF(schedule) ? schedule[attempt] : 30) * USEC_PER_SEC;
}

static const unsigned attempts[] = { 0, 1, 2, 3, 4, 5, 6, 7, 10, 100, 1000, 65536, UINT32_MAX };
static const uint32_t randoms[] = {
        0, 1, 2, 0x7fffffff, 0x80000000, 0x80000001, 0xdeadbeef, UINT32_MAX - 1, UINT32_MAX,
};

START_TEST(test_backoff_bounds) {
        unsigned attempt = attempts[_i];
        uint64_t base = base_usec(attempt);

        for (size_t j = 0; j < ELEMENTSOF(randoms); j++) {
                uint64_t d = tunnel_backoff_usec(attempt, randoms[j]);

                /* Within ±10 %: [0.9, 1.1) of the base. */
                ck_assert_uint_ge(d, base * 9 / 10);
                ck_assert_uint_lt(d, base * 11 / 10);
                ck_assert_uint_le(d, TUNNEL_BACKOFF_CAP_USEC * 11 / 10);
        }
}
END_TEST

START_TEST(test_backoff_exact_ends) {
        unsigned attempt = attempts[_i];
        uint64_t base = base_usec(attempt);
        uint64_t hi = tunnel_backoff_usec(attempt, UINT32_MAX);

        /* random 0 is exactly 0.9x. */
        ck_assert_uint_eq(tunnel_backoff_usec(attempt, 0), base * 9 / 10);
        /* random UINT32_MAX is just under 1.1x: within one microsecond per 2^32 of range. */
        ck_assert_uint_lt(hi, base * 11 / 10);
        ck_assert_uint_ge(hi, base * 11 / 10 - 1);
        /* The midpoint is exactly the base. */
        ck_assert_uint_eq(tunnel_backoff_usec(attempt, 0x80000000), base);
}
END_TEST

START_TEST(test_backoff_schedule) {
        static const struct {
                unsigned attempt;
                uint64_t usec_at_0; /* random 0: 0.9x */
        } table[] = {
                { 0, 900000 },    { 1, 900000 },     { 2, 1800000 },     { 3, 3600000 },
                { 4, 7200000 },   { 5, 14400000 },   { 6, 27000000 },    { 7, 27000000 },
                { 1000, 27000000 }, { UINT32_MAX, 27000000 },
        };

        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                ck_assert_uint_eq(tunnel_backoff_usec(table[i].attempt, 0), table[i].usec_at_0);
        ck_assert_uint_eq(tunnel_backoff_usec(0, 12345), tunnel_backoff_usec(1, 12345));
        ck_assert_uint_eq(tunnel_backoff_usec(6, 0x80000000), 30 * USEC_PER_SEC);
        ck_assert_uint_eq(tunnel_backoff_usec(1000, 0x80000000), 30 * USEC_PER_SEC);
        ck_assert_uint_eq(TUNNEL_BACKOFF_CAP_USEC, 30 * USEC_PER_SEC);
}
END_TEST

START_TEST(test_backoff_monotone) {
        uint32_t random = randoms[_i];
        uint64_t previous = 0;

        for (unsigned attempt = 0; attempt <= 64; attempt++) {
                uint64_t d = tunnel_backoff_usec(attempt, random);
                ck_assert_uint_ge(d, previous);
                previous = d;
        }
        ck_assert_uint_eq(tunnel_backoff_usec(UINT32_MAX, random), previous);
}
END_TEST

START_TEST(test_backoff_monotone_in_random) {
        /* For a fixed attempt, a larger random value never gives a shorter delay. */
        unsigned attempt = attempts[_i];
        uint64_t previous = 0;

        for (uint64_t r = 0; r <= UINT32_MAX; r += 0x00fedcbau) {
                uint64_t d = tunnel_backoff_usec(attempt, (uint32_t) r);
                ck_assert_uint_ge(d, previous);
                previous = d;
        }
}
END_TEST

int main(void) {
        Suite *s = suite_create("tunnel-state");
        TCase *tc = tcase_create("tables");
        SRunner *sr;
        int failed;

        tcase_add_test(tc, test_state_table_complete);
        tcase_add_loop_test(tc, test_state_round_trip, 0, ELEMENTSOF(states));
        tcase_add_loop_test(tc, test_reason_round_trip, 0, ELEMENTSOF(reasons));
        tcase_add_loop_test(tc, test_unknown_strings, 0, ELEMENTSOF(unknown_names));
        tcase_add_test(tc, test_out_of_range);
        suite_add_tcase(s, tc);

        tc = tcase_create("backoff");
        tcase_add_loop_test(tc, test_backoff_bounds, 0, ELEMENTSOF(attempts));
        tcase_add_loop_test(tc, test_backoff_exact_ends, 0, ELEMENTSOF(attempts));
        tcase_add_test(tc, test_backoff_schedule);
        tcase_add_loop_test(tc, test_backoff_monotone, 0, ELEMENTSOF(randoms));
        tcase_add_loop_test(tc, test_backoff_monotone_in_random, 0, ELEMENTSOF(attempts));
        suite_add_tcase(s, tc);

        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
