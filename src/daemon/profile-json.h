/* The io.alknet.Manager Profile object of a profile. */
#pragma once

#include <json-c/json.h>

#include "profile.h"

int profile_to_json(const Profile *p, struct json_object **ret);
