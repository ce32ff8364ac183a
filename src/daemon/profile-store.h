/* The set of profiles: admin files in CONFIG/profiles.d (read-only here) and managed files
 * in STATE/profiles, which the daemon writes atomically. */
#pragma once

#include "load-problem.h"
#include "profile.h"

/* Named limit on profiles, so control clients cannot make us hold without bound. */
#define PROFILES_MAX 1024u

typedef struct ProfileStore {
        char *admin_dir;
        char *managed_dir;
        Profile **profiles; /* sorted by name, owned */
        size_t n_profiles;
} ProfileStore;

int profile_store_new(const char *config_dir, const char *state_dir, ProfileStore **ret);
ProfileStore *profile_store_free(ProfileStore *s);
DEFINE_POINTER_CLEANUP_FUNC(ProfileStore, profile_store_free);

/* (Re)reads every file. A file that fails to load is reported and skipped; when it held a
 * profile that was loaded before, that version stays. Same name in both places: the admin
 * file wins. A profile whose listeners conflict with an earlier one is skipped. */
int profile_store_load(ProfileStore *s, LoadProblems *problems);

Profile *profile_store_get(const ProfileStore *s, const char *name);

/* Checks p against every other profile (one of the same name is ignored): -EADDRINUSE. */
int profile_store_check_conflicts(const ProfileStore *s, const Profile *p, ProfileError *err);

/* Validates, stores STATE/profiles/NAME.conf and takes ownership of p on success.
 * -EEXIST name taken, -E2BIG PROFILES_MAX reached, -EINVAL/-EADDRINUSE (err set),
 * or the errno of the failed write (nothing changed then). */
int profile_store_add(ProfileStore *s, Profile *p, ProfileError *err);

/* Replaces the managed profile of the same name; ownership as for add.
 * -ENOENT no such profile, -EROFS an admin profile. */
int profile_store_replace(ProfileStore *s, Profile *p, ProfileError *err);

/* -ENOENT, -EROFS as above. */
int profile_store_remove(ProfileStore *s, const char *name);
