/* Problems found while loading configuration files: kept for the Reload reply and logged. */
#pragma once

#include <stddef.h>

typedef struct LoadProblem {
        char *file;
        unsigned line; /* 0: the whole file */
        char *field;   /* key name, or "" */
        char *reason;
} LoadProblem;

typedef struct LoadProblems {
        LoadProblem *items;
        size_t n;
} LoadProblems;

/* Records the problem and logs it once as "FILE:LINE: FIELD: REASON; SUFFIX" at warning level.
 * problems may be NULL (only log). Returns 0 or -ENOMEM. */
int load_problems_add(LoadProblems *problems, const char *file, unsigned line, const char *field,
                      const char *reason, const char *suffix);
void load_problems_done(LoadProblems *problems);
