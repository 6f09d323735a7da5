"""Resilience configuration the console stores and every running process applies live."""

from django.db import models


class ConfigVersion(models.Model):
    """One row whose version goes up whenever resilience configuration changes.

    Running processes compare it with the version they applied: a cheap primary-key read
    when polling, and a Redis message wakes them at once when Redis is configured.
    """

    SINGLETON_ID = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON_ID, editable=False)
    version = models.BigIntegerField(default=0)
    changed_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="config_version_single_row")]

    def __str__(self) -> str:
        return f"resilience config v{self.version}"
