from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class IncidentsConfig(AppConfig):
    name = "incidents"
    verbose_name = "Incidents"

    def ready(self) -> None:
        from incidents.ingest.classification import forget_rules
        from incidents.models import ClassificationRule, ErrorType

        for model in (ClassificationRule, ErrorType):
            post_save.connect(forget_rules, sender=model, dispatch_uid=f"forget-rules-on-save-{model.__name__}")
            post_delete.connect(forget_rules, sender=model, dispatch_uid=f"forget-rules-on-delete-{model.__name__}")
