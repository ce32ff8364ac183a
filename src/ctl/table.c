/* A tiny column table printer for alknetctl. Plain text: the only decoration is a bold
 * header on a terminal, so that piping the output gives clean columns for awk/cut. */
#include <assert.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "table.h"

struct Table {
        size_t n_columns;
        char **cells; /* row-major, the header row first */
        size_t n_cells;
        size_t allocated;
};

static int table_push(Table *t, const char *s) {
        if (t->n_cells == t->allocated) {
                size_t n = MAX(t->allocated * 2, (size_t) 16);
                char **c = reallocarray(t->cells, n, sizeof(char *));
                if (!c)
                        return -ENOMEM;
                t->cells = c;
                t->allocated = n;
        }

        char *copy = strdup(isempty(s) ? "-" : s);
        if (!copy)
                return -ENOMEM;
        t->cells[t->n_cells++] = copy;
        return 0;
}

int table_new(const char *const *headers, size_t n_columns, Table **ret) {
        _cleanup_(table_freep) Table *t = NULL;
        int r;

        assert(headers);
        assert(n_columns > 0);
        assert(ret);

        t = calloc(1, sizeof(Table));
        if (!t)
                return -ENOMEM;
        t->n_columns = n_columns;

        r = table_add_row(t, headers);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(t);
        return 0;
}

Table *table_free(Table *t) {
        if (!t)
                return NULL;

        for (size_t i = 0; i < t->n_cells; i++)
                free(t->cells[i]);
        free(t->cells);
        free(t);
        return NULL;
}

int table_add_cell(Table *t, const char *s) {
        assert(t);
        return table_push(t, s);
}

int table_add_row(Table *t, const char *const *cells) {
        assert(t);
        assert(cells);

        for (size_t i = 0; i < t->n_columns; i++) {
                int r = table_push(t, cells[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

size_t table_rows(const Table *t) {
        assert(t);
        return t->n_cells / t->n_columns - 1;
}

/* Display width in terminal columns, close enough for our content: one per UTF-8
 * character (continuation bytes do not count). */
static size_t text_width(const char *s) {
        size_t w = 0;

        for (; *s; s++)
                if (((unsigned char) *s & 0xC0) != 0x80)
                        w++;
        return w;
}

static void put_text(const char *s, FILE *f) {
        /* A value is data, never terminal control: an escape sequence in a file name must
         * not repaint the user's screen. */
        for (; *s; s++)
                fputc((unsigned char) *s < 0x20 || *s == 0x7F ? '?' : *s, f);
}

static bool want_color(FILE *f) {
        const char *term = getenv("TERM");

        if (getenv("NO_COLOR"))
                return false;
        if (!term || streq(term, "dumb"))
                return false;
        return isatty(fileno(f));
}

int table_print(const Table *t, FILE *f) {
        _cleanup_(freep) size_t *widths = NULL;
        bool color;

        assert(t);
        assert(f);

        if (t->n_cells % t->n_columns != 0)
                return -EINVAL;

        widths = calloc(t->n_columns, sizeof(size_t));
        if (!widths)
                return -ENOMEM;

        for (size_t i = 0; i < t->n_cells; i++)
                widths[i % t->n_columns] = MAX(widths[i % t->n_columns], text_width(t->cells[i]));

        color = want_color(f);

        for (size_t i = 0; i < t->n_cells; i++) {
                size_t col = i % t->n_columns;
                bool header = i < t->n_columns, last = col == t->n_columns - 1;

                if (header && color)
                        fputs("\033[1m", f);
                put_text(t->cells[i], f);
                if (header && color)
                        fputs("\033[0m", f);

                if (last)
                        fputc('\n', f); /* no trailing blanks */
                else
                        fprintf(f, "%*s", (int) (widths[col] - text_width(t->cells[i]) + 2), "");
        }

        return fflush(f) == EOF ? -errno : 0;
}
