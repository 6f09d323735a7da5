"""The role groups and their admin-site permissions, kept in step after every migrate."""

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
_CONSOLE_APPS = ("incidents", "resilience", "access", "django_q")


def sync_role_groups(sender=None, **kwargs) -> None:
    """Create the viewer, triager and admin groups and give each its permissions."""
    from django.contrib.auth.models import Group, Permission

    permissions = list(
        Permission.objects.filter(content_type__app_label__in=_CONSOLE_APPS).select_related("content_type")
    )
    by_name = {f"{p.content_type.app_label}.{p.codename}": p for p in permissions}
    viewing = [p for p in permissions if p.codename.startswith("view_") and p.content_type.app_label != "access"]
    triaging = viewing + [by_name[name] for name in sorted(_CHANGES_BY_ROLE[Role.TRIAGER]) if name in by_name]
    for name, granted in (("viewer", viewing), ("triager", triaging), ("admin", permissions)):
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(granted)
