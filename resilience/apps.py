from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save

from resilience.signals import config_changed


class ResilienceConfig(AppConfig):
    name = "resilience"
    verbose_name = "Resilience"

    def ready(self) -> None:
        from resilience import process_runtime  # app loading: it imports the models, ready only now
        from resilience.models import (  # app loading: models are importable only once the registry is ready
            Breaker,
            DegradationFeature,
            DegradationRule,
            RateLimitPolicy,
            RecoveryPolicy,
            RetryPolicy,
        )

        # Whatever saves configuration (admin, API, shell), running processes hear of it.
        for model in (Breaker, RetryPolicy, RecoveryPolicy, RateLimitPolicy, DegradationFeature, DegradationRule):
            post_save.connect(_config_changed, sender=model, dispatch_uid=f"config-saved-{model.__name__}")
            post_delete.connect(_config_changed, sender=model, dispatch_uid=f"config-deleted-{model.__name__}")
        config_changed.connect(process_runtime.announce_config_version, dispatch_uid="announce-config-version")


def _config_changed(**_signal_arguments) -> None:
    from resilience.config_watcher import config_version_bump  # app loading: apps.py is imported before models

    config_version_bump()
