/* Small helpers every file uses: cleanup attributes, ownership transfer, string tests. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _fallthrough_ __attribute__((fallthrough))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _pure_ __attribute__((pure))
#define _likely_(x) (__builtin_expect(!!(x), 1))
#define _unlikely_(x) (__builtin_expect(!!(x), 0))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Hand ownership on: returns the value and clears the variable so its cleanup is a no-op. */
#define TAKE_PTR(p)                      \
        ({                               \
                __typeof__(p) _p_ = (p); \
                (p) = NULL;              \
                _p_;                     \
        })
#define TAKE_FD(fd)                \
        ({                         \
                int _fd_ = (fd);   \
                (fd) = -EBADF;     \
                _fd_;              \
        })

static inline void freep(void *p) {
        free(*(void **) p);
}

static inline int safe_close(int fd) {
        if (fd >= 0) {
                int saved = errno;
                (void) close(fd);
                errno = saved;
        }
        return -EBADF;
}

static inline void closep(int *fd) {
        *fd = safe_close(*fd);
}

/* Defines funcp() for use with _cleanup_(funcp): calls func(*p) when *p is set. */
#define DEFINE_POINTER_CLEANUP_FUNC(type, func)          \
        static inline void func##p(type **p) {           \
                if (*p)                                  \
                        *p = func(*p);                   \
        }
#define DEFINE_VOID_CLEANUP_FUNC(type, func)             \
        static inline void func##p(type **p) {           \
                if (*p)                                  \
                        func(*p);                        \
        }

static inline bool streq(const char *a, const char *b) {
        return strcmp(a, b) == 0;
}

static inline bool streq_ptr(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return streq(a, b);
}

static inline bool isempty(const char *s) {
        return !s || !*s;
}

static inline const char *strempty(const char *s) {
        return s ?: "";
}

static inline const char *strna(const char *s) {
        return s ?: "n/a";
}

static inline char *startswith(const char *s, const char *prefix) {
        size_t l = strlen(prefix);
        return strncmp(s, prefix, l) == 0 ? (char *) s + l : NULL;
}

/* Overwrite secrets before their memory is released. */
static inline void erase_and_free(char *s) {
        if (!s)
                return;
        explicit_bzero(s, strlen(s));
        free(s);
}
static inline void erase_and_freep(char **s) {
        erase_and_free(*s);
}

/* Free an array of strings terminated by NULL. */
static inline char **strv_free(char **l) {
        if (l) {
                for (char **i = l; *i; i++)
                        free(*i);
                free(l);
        }
        return NULL;
}
DEFINE_POINTER_CLEANUP_FUNC(char *, strv_free);

#define USEC_PER_SEC ((uint64_t) 1000000ULL)
#define USEC_PER_MSEC ((uint64_t) 1000ULL)

/* Intrusive doubly linked lists: item has prev and next members; head points at the first. */
#define LIST_PREPEND(head, item)                        \
        do {                                            \
                (item)->prev = NULL;                    \
                (item)->next = (head);                  \
                if (head)                               \
                        (head)->prev = (item);          \
                (head) = (item);                        \
        } while (0)
#define LIST_REMOVE(head, item)                                 \
        do {                                                    \
                if ((item)->prev)                               \
                        (item)->prev->next = (item)->next;      \
                else                                            \
                        (head) = (item)->next;                  \
                if ((item)->next)                               \
                        (item)->next->prev = (item)->prev;      \
                (item)->prev = (item)->next = NULL;             \
        } while (0)

static inline uint64_t clock_now_usec(clockid_t clock) {
        struct timespec ts;
        clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}
