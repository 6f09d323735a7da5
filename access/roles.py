"""Roles: viewer (read), triager (incident and alert actions), admin (configuration, sources, keys).

A role is a Django group of that name; a superuser is an admin. Each role includes the ones
below it. The groups also carry the matching admin-site permissions (data migration), so the
admin and the API agree on who may do what.
"""

from enum import IntEnum


class Role(IntEnum):
    NONE = 0
    VIEWER = 1
    TRIAGER = 2
    ADMIN = 3


GROUP_ROLES = {"viewer": Role.VIEWER, "triager": Role.TRIAGER, "admin": Role.ADMIN}


def role_of(user) -> Role:
    """The highest role `user` holds (cached on the user object for the request)."""
    if user is None or not user.is_authenticated or not user.is_active:
        return Role.NONE
    cached = getattr(user, "_console_role", None)
    if cached is None:
        if user.is_superuser:
            cached = Role.ADMIN
        else:
            names = user.groups.filter(name__in=GROUP_ROLES).values_list("name", flat=True)
            cached = max((GROUP_ROLES[name] for name in names), default=Role.NONE)
        user._console_role = cached
    return cached
