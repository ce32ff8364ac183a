/* Unit tests for bounded reads, atomic replacement (including a crash just before the
 * rename) and the listing of *.conf files. */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "fileio.h"
#include "macro.h"

static char dir[] = "/tmp/test-fileio-XXXXXX";
static int dfd = -EBADF;

static void setup(void) {
        strcpy(dir, "/tmp/test-fileio-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(dir));
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ck_assert_int_ge(dfd, 0);
}

static void teardown(void) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        ck_assert_int_eq(system(cmd), 0);
        dfd = safe_close(dfd);
}

static void put(const char *name, const char *text) {
        int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t) strlen(text));
        close(fd);
}

static char *get(const char *name) {
        char *text = NULL;
        size_t size = 0;
        ck_assert_int_eq(read_full_file_at(dfd, name, 1024, &text, &size), 0);
        ck_assert_uint_eq(size, strlen(text));
        return text;
}

static unsigned count_temp_files(void) {
        _cleanup_(freep) char *cmd = NULL;
        unsigned n = 0;
        char line[512];
        FILE *f;

        ck_assert_int_ge(asprintf(&cmd, "ls -a '%s'", dir), 0);
        f = popen(cmd, "r");
        ck_assert_ptr_nonnull(f);
        while (fgets(line, sizeof line, f))
                if (is_atomic_temp_name(line))
                        n++;
        pclose(f);
        return n;
}

START_TEST(test_read_full_file) {
        _cleanup_(freep) char *a = NULL, *b = NULL;
        char big[2048], *text = (char *) 0x1;
        size_t size = 7;

        put("a", "hello\n");
        a = get("a");
        ck_assert_str_eq(a, "hello\n");

        put("empty", "");
        b = get("empty");
        ck_assert_str_eq(b, "");

        memset(big, 'x', sizeof big - 1);
        big[sizeof big - 1] = '\0';
        put("big", big);
        ck_assert_int_eq(read_full_file_at(dfd, "big", 1024, &text, &size), -EFBIG);
        ck_assert_ptr_eq(text, (char *) 0x1); /* untouched on failure */
        ck_assert_uint_eq(size, 7);

        ck_assert_int_eq(mkdirat(dfd, "sub", 0755), 0);
        ck_assert_int_eq(read_full_file_at(dfd, "sub", 1024, &text, NULL), -EISDIR);
        ck_assert_int_eq(read_full_file_at(dfd, "missing", 1024, &text, NULL), -ENOENT);
        ck_assert_int_eq(symlinkat("a", dfd, "link"), 0);
        ck_assert_int_eq(read_full_file_at(dfd, "link", 1024, &text, NULL), -ELOOP);
}
END_TEST

START_TEST(test_atomic_write_new_and_replace) {
        _cleanup_(freep) char *a = NULL, *b = NULL;
        struct stat st;

        ck_assert_int_eq(write_file_atomic_at(dfd, "p.conf", "one\n", 4, 0640), 0);
        a = get("p.conf");
        ck_assert_str_eq(a, "one\n");
        ck_assert_int_eq(fstatat(dfd, "p.conf", &st, 0), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0640);

        ck_assert_int_eq(write_file_atomic_at(dfd, "p.conf", "two\n", 4, 0600), 0);
        b = get("p.conf");
        ck_assert_str_eq(b, "two\n");
        ck_assert_int_eq(fstatat(dfd, "p.conf", &st, 0), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0600);
        ck_assert_uint_eq(count_temp_files(), 0);

        ck_assert_int_eq(write_file_atomic_at(dfd, "a/b", "x", 1, 0600), -EINVAL);
}
END_TEST

static int fail_hook(int d, const char *temp, void *userdata) {
        _cleanup_(freep) char *text = NULL;

        /* The temp file is complete at this point. */
        ck_assert_int_eq(read_full_file_at(d, temp, 1024, &text, NULL), 0);
        ck_assert_str_eq(text, userdata);
        return -EIO;
}

START_TEST(test_atomic_write_failure_keeps_old) {
        _cleanup_(freep) char *a = NULL;

        put("p.conf", "old\n");
        ck_assert_int_eq(write_file_atomic_at_full(dfd, "p.conf", "new\n", 4, 0640, fail_hook, (void *) "new\n"), -EIO);
        a = get("p.conf");
        ck_assert_str_eq(a, "old\n");
        ck_assert_uint_eq(count_temp_files(), 0);
}
END_TEST

static int crash_hook(int d, const char *temp, void *userdata) {
        _exit(0); /* a crash at the worst moment: temp written, not yet renamed */
}

START_TEST(test_atomic_write_crash_keeps_old) {
        _cleanup_(freep) char *a = NULL;
        pid_t pid;
        int status;

        put("p.conf", "old\n");
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                (void) write_file_atomic_at_full(dfd, "p.conf", "new\n", 4, 0640, crash_hook, NULL);
                _exit(1);
        }
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);

        a = get("p.conf");
        ck_assert_str_eq(a, "old\n");
        /* The stray temp file is recognisable so that the loader can clear it. */
        ck_assert_uint_eq(count_temp_files(), 1);
}
END_TEST

START_TEST(test_unlink_durable) {
        put("x.conf", "x");
        ck_assert_int_eq(unlink_durable_at(dfd, "x.conf"), 0);
        ck_assert_int_eq(unlink_durable_at(dfd, "x.conf"), -ENOENT);
}
END_TEST

START_TEST(test_list_conf_files) {
        _cleanup_(strv_freep) char **l = NULL;

        put("b.conf", "");
        put("a.conf", "");
        put(".hidden.conf", "");
        put("c.conf.bak", "");
        put(".conf", "");
        put("x.txt", "");
        put(".p.conf.tmp0123", "");
        ck_assert_int_eq(list_conf_files_at(dfd, ".", &l), 0);
        ck_assert_str_eq(l[0], "a.conf");
        ck_assert_str_eq(l[1], "b.conf");
        ck_assert_ptr_null(l[2]);
        ck_assert_int_eq(list_conf_files_at(dfd, "nope", &l), -ENOENT);

        ck_assert(is_atomic_temp_name(".p.conf.tmp0123"));
        ck_assert(!is_atomic_temp_name("p.conf"));
}
END_TEST

int main(void) {
        Suite *s = suite_create("fileio");
        TCase *tc = tcase_create("fileio");
        SRunner *sr;
        int failed;

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_read_full_file);
        tcase_add_test(tc, test_atomic_write_new_and_replace);
        tcase_add_test(tc, test_atomic_write_failure_keeps_old);
        tcase_add_test(tc, test_atomic_write_crash_keeps_old);
        tcase_add_test(tc, test_unlink_durable);
        tcase_add_test(tc, test_list_conf_files);
        suite_add_tcase(s, tc);

        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
