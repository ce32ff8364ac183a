/* The list of load problems a reload reports back, and their one log line each. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load-problem.h"
#include "log.h"

int load_problems_add(LoadProblems *problems, const char *file, unsigned line, const char *field,
                      const char *reason, const char *suffix) {
        LoadProblem *p;
        char where[32] = "";

        if (line > 0)
                (void) snprintf(where, sizeof where, ":%u", line);
        log_warning("%s%s: %s%s%s; %s", file, where, strempty(field), isempty(field) ? "" : ": ",
                    reason, suffix);

        if (!problems)
                return 0;
        p = realloc(problems->items, (problems->n + 1) * sizeof *p);
        if (!p)
                return -ENOMEM;
        problems->items = p;
        p = &problems->items[problems->n];
        *p = (LoadProblem) {
                .file = strdup(file),
                .line = line,
                .field = strdup(strempty(field)),
                .reason = strdup(reason),
        };
        if (!p->file || !p->field || !p->reason) {
                free(p->file);
                free(p->field);
                free(p->reason);
                return -ENOMEM;
        }
        problems->n++;
        return 0;
}

void load_problems_done(LoadProblems *problems) {
        for (size_t i = 0; i < problems->n; i++) {
                free(problems->items[i].file);
                free(problems->items[i].field);
                free(problems->items[i].reason);
        }
        free(problems->items);
        *problems = (LoadProblems) {};
}
