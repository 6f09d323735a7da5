from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccessConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "access"
    verbose_name = "API access"

    def ready(self) -> None:
        from access import schema  # noqa: F401  (registers the token scheme with drf-spectacular)
        from access.groups import sync_role_groups  # imports the auth models: not before the apps are loaded

        post_migrate.connect(sync_role_groups, sender=self, dispatch_uid="access.sync_role_groups")
