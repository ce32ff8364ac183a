/* A tiny column table printer for alknetctl: a header row, then rows of text cells, left
 * aligned, each column as wide as its widest cell. */
#pragma once

#include <stdio.h>

#include "macro.h"

typedef struct Table Table;

/* n_columns headers, copied. */
int table_new(const char *const *headers, size_t n_columns, Table **ret);
Table *table_free(Table *t);
DEFINE_POINTER_CLEANUP_FUNC(Table, table_free);

/* Appends one cell (copied; NULL or "" shows as "-"); rows fill left to right. */
int table_add_cell(Table *t, const char *s);

/* Appends a whole row of n_columns cells. */
int table_add_row(Table *t, const char *const *cells);

size_t table_rows(const Table *t); /* complete rows, without the header */

/* Writes the table; the header is bold only when f is a terminal that wants color. A
 * partly filled last row is an error (-EINVAL). Control characters show as '?'. */
int table_print(const Table *t, FILE *f);
