"""The role groups and their admin-site permissions, kept in step after every migrate.

`sync_role_groups` sets each group's permissions whole, so a deployment that migrates gets
exactly what is listed here, whatever older versions granted.
"""

from access.roles import Role

# Who may change what in the admin site, by role; each role also has the ones below it.
_CHANGES_BY_ROLE = {
    Role.TRIAGER: {
        "incidents.change_incident",
        "incidents.change_alert",
        "incidents.add_silence",
        "incidents.change_silence",
        "incidents.delete_silence",
    },
}
# django_q is left out on purpose: a schedule names a function the worker runs, so tasks and
# schedules are for superusers only (and even they may schedule only the console's own tasks).
_CONSOLE_APPS = ("incidents", "resilience", "access")
# What the API shows admins only (sources, keys and DSNs, channels, the notification log) the admin
# site shows admins only too.
ADMIN_ONLY_MODELS = frozenset(
    {
        "incidents.source",
        "incidents.ingestkey",
        "incidents.notificationchannel",
        "incidents.notification",
    }
)


def sync_role_groups(sender=None, **kwargs) -> None:
    """Create the viewer, triager and admin groups and give each exactly its permissions."""
    from django.contrib.auth.models import Group, Permission

    permissions = list(
        Permission.objects.filter(content_type__app_label__in=_CONSOLE_APPS).select_related("content_type")
    )
    by_name = {f"{p.content_type.app_label}.{p.codename}": p for p in permissions}
    viewing = [p for p in permissions if _viewable_below_admin(p)]
    triaging = viewing + [by_name[name] for name in sorted(_CHANGES_BY_ROLE[Role.TRIAGER]) if name in by_name]
    for name, granted in (("viewer", viewing), ("triager", triaging), ("admin", permissions)):
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(granted)


def _viewable_below_admin(permission) -> bool:
    model = f"{permission.content_type.app_label}.{permission.content_type.model}"
    return (
        permission.codename.startswith("view_")
        and permission.content_type.app_label != "access"
        and model not in ADMIN_ONLY_MODELS
    )
