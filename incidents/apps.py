import os

from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class IncidentsConfig(AppConfig):
    name = "incidents"
    verbose_name = "Incidents"

    def ready(self) -> None:
        from incidents.fleet import receivers  # noqa: F401  app loading: importing connects them; they use models
        from incidents.ingest.classification import forget_rules  # app loading: imports the models
        from incidents.models import ClassificationRule, ErrorType  # app loading: ready only now

        for model in (ClassificationRule, ErrorType):
            post_save.connect(forget_rules, sender=model, dispatch_uid=f"forget-rules-on-save-{model.__name__}")
            post_delete.connect(forget_rules, sender=model, dispatch_uid=f"forget-rules-on-delete-{model.__name__}")
        # django-q2 forks its workers from a parent that may already hold database connections.
        os.register_at_fork(after_in_child=_forget_parent_connections)


def _forget_parent_connections() -> None:
    """Drop, without closing, the connections and pools a forked process inherited.

    Their sockets belong to the parent (closing them would end its sessions) and a pool's
    worker threads stayed behind in the parent: used here, a pool hands out a socket two
    processes talk over, and can never open a new connection.
    """
    from django.db import connections
    from django.db.backends.postgresql.base import DatabaseWrapper

    DatabaseWrapper._connection_pools.clear()
    for connection in connections.all(initialized_only=True):
        connection.connection = None
