/* File helpers for the daemon: bounded reads and crash-safe atomic replacement. */
#pragma once

#include <stddef.h>
#include <sys/types.h>

/* Largest config or profile file we read; anything bigger is refused, not truncated. */
#define CONFIG_FILE_SIZE_MAX (1024u * 1024u)

/* Reads name (relative to dirfd, or absolute) into a NUL-terminated buffer.
 * -EFBIG when the file is larger than max. Relative to a directory fd a symlink is refused
 * (-ELOOP); with AT_FDCWD (a configured path) it is followed. */
int read_full_file_at(int dirfd, const char *name, size_t max, char **ret, size_t *ret_size);

/* Called between "temp file written and fsynced" and "renamed into place"; a negative
 * return aborts the write. Lets tests inject a failure or a crash at that instant. */
typedef int (*AtomicWriteHook)(int dirfd, const char *temp_name, void *userdata);

/* Replaces dirfd/name with data: write to a temp file in the same directory, fsync it,
 * rename over name, fsync the directory. A crash at any instant leaves either the old or
 * the new file under name (and maybe a stray ".name.tmp*" file). */
int write_file_atomic_at(int dirfd, const char *name, const void *data, size_t size, mode_t mode);
int write_file_atomic_at_full(int dirfd, const char *name, const void *data, size_t size, mode_t mode,
                              AtomicWriteHook before_rename, void *userdata);

/* Removes dirfd/name and makes the removal durable (fsync of the directory). */
int unlink_durable_at(int dirfd, const char *name);

/* True for names that write_file_atomic_at() uses for its temp files. */
int is_atomic_temp_name(const char *name);

/* The "*.conf" entries of dirfd/subdir (subdir may be "."), sorted by name, as a
 * NULL-terminated list; names starting with '.' are skipped. -ENOENT if there is no such
 * directory. */
int list_conf_files_at(int dirfd, const char *subdir, char ***ret);
