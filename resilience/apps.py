from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class ResilienceConfig(AppConfig):
    name = "resilience"
    verbose_name = "Resilience"

    def ready(self) -> None:
        from resilience.models import (
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


def _config_changed(**_signal_arguments) -> None:
    from resilience.config_watcher import config_version_bump

    config_version_bump()
