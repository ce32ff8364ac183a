/* Bounded file reads and atomic, durable file replacement (temp, fsync, rename, fsync dir). */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "fileio.h"
#include "macro.h"

int read_full_file_at(int dirfd, const char *name, size_t max, char **ret, size_t *ret_size) {
        _cleanup_(closep) int fd = -EBADF;
        _cleanup_(freep) char *buf = NULL;
        size_t size = 0, allocated = 0;
        struct stat st;

        /* Entries of a directory we list are never followed out of it; a path an admin
         * configured may be a symlink (certbot's live/ files are). */
        fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | (dirfd == AT_FDCWD ? 0 : O_NOFOLLOW));
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return S_ISDIR(st.st_mode) ? -EISDIR : -EBADFD;
        if ((uint64_t) st.st_size > max)
                return -EFBIG;

        /* The size may change under us: read until EOF, bounded by max. */
        for (;;) {
                ssize_t n;

                if (allocated - size < 2) {
                        size_t want = MAX(allocated * 2, (size_t) st.st_size + 2);
                        char *p;

                        want = MAX(want, (size_t) 256);
                        if (want > max + 2)
                                want = max + 2;
                        if (want <= allocated)
                                return -EFBIG;
                        p = realloc(buf, want);
                        if (!p)
                                return -ENOMEM;
                        buf = p;
                        allocated = want;
                }
                n = read(fd, buf + size, allocated - size - 1);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                size += (size_t) n;
                if (size > max)
                        return -EFBIG;
        }

        if (!buf) {
                buf = strdup("");
                if (!buf)
                        return -ENOMEM;
        }
        buf[size] = '\0';
        *ret = TAKE_PTR(buf);
        if (ret_size)
                *ret_size = size;
        return 0;
}

static int write_all(int fd, const void *data, size_t size) {
        const char *p = data;

        while (size > 0) {
                ssize_t n = write(fd, p, size);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += n;
                size -= (size_t) n;
        }
        return 0;
}

int is_atomic_temp_name(const char *name) {
        return name[0] == '.' && strstr(name, ".tmp") != NULL;
}

int write_file_atomic_at_full(int dirfd, const char *name, const void *data, size_t size, mode_t mode,
                              AtomicWriteHook before_rename, void *userdata) {
        _cleanup_(closep) int fd = -EBADF;
        char temp[NAME_MAX + 1];
        uint64_t rnd;
        int r;

        if (strchr(name, '/') || strlen(name) + 32 > NAME_MAX)
                return -EINVAL;
        if (getrandom(&rnd, sizeof rnd, GRND_NONBLOCK) != sizeof rnd)
                rnd = (uint64_t) getpid() ^ (uint64_t) (uintptr_t) &rnd;
        (void) snprintf(temp, sizeof temp, ".%s.tmp%016llx", name, (unsigned long long) rnd);

        fd = openat(dirfd, temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0)
                return -errno;
        /* openat() applies the umask; the file must have exactly the mode asked for. */
        if (fchmod(fd, mode) < 0) {
                r = -errno;
                goto fail;
        }
        r = write_all(fd, data, size);
        if (r < 0)
                goto fail;
        if (fsync(fd) < 0) {
                r = -errno;
                goto fail;
        }
        fd = safe_close(fd);

        if (before_rename) {
                r = before_rename(dirfd, temp, userdata);
                if (r < 0)
                        goto fail;
        }

        if (renameat(dirfd, temp, dirfd, name) < 0) {
                r = -errno;
                goto fail;
        }
        /* The rename is durable only once the directory is on disk. */
        if (fsync(dirfd) < 0)
                return -errno;
        return 0;

fail:
        (void) unlinkat(dirfd, temp, 0);
        return r;
}

int write_file_atomic_at(int dirfd, const char *name, const void *data, size_t size, mode_t mode) {
        return write_file_atomic_at_full(dirfd, name, data, size, mode, NULL, NULL);
}

int unlink_durable_at(int dirfd, const char *name) {
        if (unlinkat(dirfd, name, 0) < 0)
                return -errno;
        if (fsync(dirfd) < 0)
                return -errno;
        return 0;
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

int list_conf_files_at(int dirfd, const char *subdir, char ***ret) {
        _cleanup_(strv_freep) char **names = NULL;
        size_t n = 0;
        int fd;
        DIR *d;

        fd = openat(dirfd, subdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        d = fdopendir(fd);
        if (!d) {
                safe_close(fd);
                return -errno;
        }

        names = calloc(1, sizeof *names);
        if (!names)
                goto oom;
        for (struct dirent *de; (de = readdir(d));) {
                size_t l = strlen(de->d_name);
                char **p;

                if (de->d_name[0] == '.' || l < 6 || !streq(de->d_name + l - 5, ".conf"))
                        continue;
                p = realloc(names, (n + 2) * sizeof *names);
                if (!p)
                        goto oom;
                names = p;
                names[n] = strdup(de->d_name);
                if (!names[n])
                        goto oom;
                names[++n] = NULL;
        }
        closedir(d);

        qsort(names, n, sizeof *names, cmp_str);
        *ret = TAKE_PTR(names);
        return 0;

oom:
        closedir(d);
        return -ENOMEM;
}
