/* Loading profiles from their two directories and storing managed ones crash-safely. */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>

#include "fileio.h"
#include "log.h"
#include "profile-store.h"

#define PROFILE_FILE_MODE 0640

int profile_store_new(const char *config_dir, const char *state_dir, ProfileStore **ret) {
        _cleanup_(profile_store_freep) ProfileStore *s = NULL;

        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        if (asprintf(&s->admin_dir, "%s/profiles.d", config_dir) < 0) {
                s->admin_dir = NULL;
                return -ENOMEM;
        }
        if (asprintf(&s->managed_dir, "%s/profiles", state_dir) < 0) {
                s->managed_dir = NULL;
                return -ENOMEM;
        }
        *ret = TAKE_PTR(s);
        return 0;
}

static void profiles_free(Profile **l, size_t n) {
        for (size_t i = 0; i < n; i++)
                profile_free(l[i]);
        free(l);
}

ProfileStore *profile_store_free(ProfileStore *s) {
        if (!s)
                return NULL;
        profiles_free(s->profiles, s->n_profiles);
        free(s->admin_dir);
        free(s->managed_dir);
        free(s);
        return NULL;
}

static ssize_t find_index(Profile *const *l, size_t n, const char *name, size_t *ret_insert) {
        size_t lo = 0, hi = n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = strcmp(name, l[mid]->name);
                if (c == 0)
                        return (ssize_t) mid;
                if (c < 0)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        if (ret_insert)
                *ret_insert = lo;
        return -1;
}

Profile *profile_store_get(const ProfileStore *s, const char *name) {
        ssize_t i = find_index(s->profiles, s->n_profiles, name, NULL);
        return i < 0 ? NULL : s->profiles[i];
}

static int conflicts_in(Profile *const *l, size_t n, const Profile *p, ProfileError *err) {
        for (size_t i = 0; i < n; i++) {
                int r;

                if (streq(l[i]->name, p->name))
                        continue;
                r = profile_conflicts(l[i], p, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

int profile_store_check_conflicts(const ProfileStore *s, const Profile *p, ProfileError *err) {
        return conflicts_in(s->profiles, s->n_profiles, p, err);
}

/* A growing, name-sorted list used while loading. */
typedef struct ProfileList {
        Profile **items;
        size_t n;
} ProfileList;

static int list_insert(ProfileList *l, Profile *p) {
        Profile **a;
        size_t at = 0;

        if (find_index(l->items, l->n, p->name, &at) >= 0)
                return -EEXIST;
        a = realloc(l->items, (l->n + 1) * sizeof *a);
        if (!a)
                return -ENOMEM;
        l->items = a;
        memmove(a + at + 1, a + at, (l->n - at) * sizeof *a);
        a[at] = p;
        l->n++;
        return 0;
}

static int set_origin(Profile *p, const char *dir, const char *file, bool read_only) {
        char *path;

        if (asprintf(&path, "%s/%s", dir, file) < 0)
                return -ENOMEM;
        free(p->source);
        p->source = path;
        p->read_only = read_only;
        return 0;
}

/* Puts the previously loaded version of a profile from the same file into the new list,
 * so that a typo in a file being edited does not take a working profile away. */
static int keep_previous(const ProfileStore *s, ProfileList *l, const char *name, const char *path) {
        Profile *old = profile_store_get(s, name), *copy;
        int r;

        if (!old || !streq_ptr(old->source, path))
                return 0;
        r = profile_dup(old, &copy);
        if (r < 0)
                return r;
        /* The old version may clash with what loaded before it this time. */
        if (conflicts_in(l->items, l->n, copy, &(ProfileError) {}) < 0) {
                profile_free(copy);
                return 0;
        }
        r = list_insert(l, copy);
        if (r < 0) {
                profile_free(copy);
                return r == -EEXIST ? 0 : r;
        }
        return 1;
}

static int load_dir(const ProfileStore *s, const char *dir, bool read_only, ProfileList *l, LoadProblems *problems) {
        _cleanup_(strv_freep) char **names = NULL;
        _cleanup_(closep) int dfd = -EBADF;
        int r;

        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0) {
                if (errno == ENOENT)
                        return 0;
                char reason[128];
                (void) snprintf(reason, sizeof reason, "cannot open directory: %s", strerror(errno));
                return load_problems_add(problems, dir, 0, "", reason, "skipped");
        }
        r = list_conf_files_at(dfd, ".", &names);
        if (r < 0)
                return r == -ENOMEM ? r : 0;

        for (char **f = names; *f; f++) {
                _cleanup_(profile_freep) Profile *p = NULL;
                _cleanup_(freep) char *text = NULL, *name = NULL, *path = NULL;
                ProfileError err = {};
                size_t size;

                name = strndup(*f, strlen(*f) - strlen(".conf"));
                if (!name || asprintf(&path, "%s/%s", dir, *f) < 0) {
                        path = NULL;
                        return -ENOMEM;
                }

                if (!profile_name_is_valid(name)) {
                        r = load_problems_add(problems, path, 0, "Name",
                                              "not a valid profile name ([A-Za-z0-9_.-], 1-64 characters)",
                                              "file skipped");
                        if (r < 0)
                                return r;
                        continue;
                }
                if (find_index(l->items, l->n, name, NULL) >= 0) {
                        char reason[PATH_MAX + 64];
                        (void) snprintf(reason, sizeof reason, "profile %s is also defined in %s", name, s->admin_dir);
                        r = load_problems_add(problems, path, 0, "Name", reason, "this file is ignored");
                        if (r < 0)
                                return r;
                        continue;
                }

                r = read_full_file_at(dfd, *f, CONFIG_FILE_SIZE_MAX, &text, &size);
                if (r < 0) {
                        snprintf(err.reason, sizeof err.reason, "cannot read: %s", strerror(-r));
                        err.line = 0;
                        err.field[0] = '\0';
                } else
                        r = profile_parse(name, text, size, &p, &err);
                if (r >= 0)
                        r = set_origin(p, dir, *f, read_only);
                if (r == -ENOMEM)
                        return r;
                if (r >= 0 && l->n >= PROFILES_MAX) {
                        r = -E2BIG;
                        snprintf(err.reason, sizeof err.reason, "more than %u profiles", PROFILES_MAX);
                        err.field[0] = '\0';
                        err.line = 0;
                }
                if (r >= 0) {
                        r = conflicts_in(l->items, l->n, p, &err);
                        if (r < 0)
                                err.line = 0;
                }
                if (r < 0) {
                        int k = keep_previous(s, l, name, path);
                        if (k < 0)
                                return k;
                        r = load_problems_add(problems, path, err.line, err.field, err.reason,
                                              k > 0 ? "keeping the previously loaded version" : "file skipped");
                        if (r < 0)
                                return r;
                        continue;
                }

                r = list_insert(l, p);
                if (r < 0)
                        return r;
                TAKE_PTR(p);
        }
        return 0;
}

/* A crash between temp write and rename leaves ".NAME.conf.tmp*" behind: clear them. */
static void remove_stale_temp_files(const char *dir) {
        _cleanup_(closep) int dfd = -EBADF;
        DIR *d;

        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return;
        int fd2 = dup(dfd);
        if (fd2 < 0)
                return;
        d = fdopendir(fd2);
        if (!d) {
                safe_close(fd2);
                return;
        }
        for (struct dirent *de; (de = readdir(d));)
                if (is_atomic_temp_name(de->d_name) && unlinkat(dfd, de->d_name, 0) >= 0)
                        log_info("Removed %s/%s left by an interrupted write.", dir, de->d_name);
        closedir(d);
}

int profile_store_load(ProfileStore *s, LoadProblems *problems) {
        ProfileList l = {};
        int r;

        /* Create the managed directory early, so admins see where alknetctl's profiles go. */
        if (mkdir(s->managed_dir, 0750) < 0 && errno != EEXIST)
                log_debug_errno(errno, "Cannot create %s: %m", s->managed_dir);
        remove_stale_temp_files(s->managed_dir);

        r = load_dir(s, s->admin_dir, true, &l, problems);
        if (r >= 0)
                r = load_dir(s, s->managed_dir, false, &l, problems);
        if (r < 0) {
                profiles_free(l.items, l.n);
                return r;
        }

        profiles_free(s->profiles, s->n_profiles);
        s->profiles = l.items;
        s->n_profiles = l.n;
        return 0;
}

static int open_managed_dir(const ProfileStore *s) {
        int fd;

        fd = open(s->managed_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT) {
                if (mkdir(s->managed_dir, 0750) < 0 && errno != EEXIST)
                        return -errno;
                fd = open(s->managed_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        }
        return fd < 0 ? -errno : fd;
}

static int store_file(const ProfileStore *s, Profile *p) {
        _cleanup_(freep) char *text = NULL, *file = NULL;
        _cleanup_(closep) int dfd = -EBADF;
        int r;

        r = profile_format(p, &text);
        if (r < 0)
                return r;
        if (asprintf(&file, "%s.conf", p->name) < 0) {
                file = NULL;
                return -ENOMEM;
        }
        dfd = open_managed_dir(s);
        if (dfd < 0)
                return dfd;
        r = write_file_atomic_at(dfd, file, text, strlen(text), PROFILE_FILE_MODE);
        if (r < 0)
                return r;
        return set_origin(p, s->managed_dir, file, false);
}

static int check_new(const ProfileStore *s, const Profile *p, ProfileError *err) {
        int r;

        r = profile_validate(p, err);
        if (r < 0)
                return r;
        return profile_store_check_conflicts(s, p, err);
}

int profile_store_add(ProfileStore *s, Profile *p, ProfileError *err) {
        Profile **a;
        size_t at = 0;
        int r;

        if (find_index(s->profiles, s->n_profiles, p->name, &at) >= 0)
                return -EEXIST;
        if (s->n_profiles >= PROFILES_MAX)
                return -E2BIG;
        r = check_new(s, p, err);
        if (r < 0)
                return r;

        /* Make room first, so that after the file is written nothing can fail. */
        a = realloc(s->profiles, (s->n_profiles + 1) * sizeof *a);
        if (!a)
                return -ENOMEM;
        s->profiles = a;

        r = store_file(s, p);
        if (r < 0)
                return r;

        memmove(a + at + 1, a + at, (s->n_profiles - at) * sizeof *a);
        a[at] = p;
        s->n_profiles++;
        return 0;
}

int profile_store_replace(ProfileStore *s, Profile *p, ProfileError *err) {
        ssize_t i = find_index(s->profiles, s->n_profiles, p->name, NULL);
        int r;

        if (i < 0)
                return -ENOENT;
        if (s->profiles[i]->read_only)
                return -EROFS;
        r = check_new(s, p, err);
        if (r < 0)
                return r;
        r = store_file(s, p);
        if (r < 0)
                return r;

        profile_free(s->profiles[i]);
        s->profiles[i] = p;
        return 0;
}

int profile_store_remove(ProfileStore *s, const char *name) {
        _cleanup_(closep) int dfd = -EBADF;
        _cleanup_(freep) char *file = NULL;
        ssize_t i = find_index(s->profiles, s->n_profiles, name, NULL);
        int r;

        if (i < 0)
                return -ENOENT;
        if (s->profiles[i]->read_only)
                return -EROFS;

        if (asprintf(&file, "%s.conf", name) < 0) {
                file = NULL;
                return -ENOMEM;
        }
        dfd = open(s->managed_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return -errno;
        r = unlink_durable_at(dfd, file);
        if (r < 0 && r != -ENOENT)
                return r;

        profile_free(s->profiles[i]);
        memmove(s->profiles + i, s->profiles + i + 1, (s->n_profiles - (size_t) i - 1) * sizeof *s->profiles);
        s->n_profiles--;
        return 0;
}
