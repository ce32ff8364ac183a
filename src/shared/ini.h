/* systemd-style INI keyfile parser: [Section], Key=Value, '#'/';' comments. Pure, no I/O. */
#pragma once

#include <stddef.h>

/* Longest line the parser accepts (bytes, without the newline). */
#define INI_LINE_MAX 4096u

/* Called for each assignment in file order. Leading/trailing whitespace is stripped from
 * key and value; the value may be empty. A negative return aborts parsing and is
 * returned from ini_parse() unchanged. */
typedef int (*IniAssignmentCallback)(const char *section, const char *key, const char *value,
                                     unsigned line, void *userdata);

/* Parses text[0..size). Returns 0 on success, the callback's negative return, or
 * -EBADMSG for a malformed line; then *ret_line (1-based) and *ret_reason (a static
 * string such as "missing '='") say where and why. Both out params may be NULL and are
 * written only on failure. */
int ini_parse(const char *text, size_t size, IniAssignmentCallback cb, void *userdata,
              unsigned *ret_line, const char **ret_reason);
