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


class BreakerState(models.Model):
    """The shared part of one circuit breaker's state, agreed on by every process.

    Sliding windows stay in each process; transitions, forced modes and half-open permits
    go through this row with conditional UPDATEs guarded by `generation`, so processes
    racing to move a breaker agree on one winner. Times are epoch milliseconds.
    """

    class State(models.TextChoices):
        CLOSED = "closed", "Closed"
        OPEN = "open", "Open"
        HALF_OPEN = "half_open", "Half-open"

    class Mode(models.TextChoices):
        AUTO = "auto", "Automatic"
        FORCED_OPEN = "forced_open", "Forced open"
        FORCED_CLOSED = "forced_closed", "Forced closed (disabled)"
        METRICS_ONLY = "metrics_only", "Metrics only"

    name = models.CharField(max_length=200, unique=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.CLOSED)
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.AUTO)
    generation = models.BigIntegerField(default=0)
    changed_at_ms = models.BigIntegerField(default=0)
    opened_at_ms = models.BigIntegerField(default=0)
    open_until_ms = models.BigIntegerField(default=0)
    attempt = models.PositiveIntegerField(default=0, help_text="Consecutive openings, for growing open waits.")
    half_open_permits_used = models.PositiveIntegerField(default=0)
    half_open_successes = models.PositiveIntegerField(default=0)
    last_reason = models.CharField(max_length=500, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(generation__gte=0), name="breaker_state_generation_positive"),
            models.CheckConstraint(
                condition=models.Q(state__in=["closed", "open", "half_open"]), name="breaker_state_known_state"
            ),
            models.CheckConstraint(
                condition=models.Q(mode__in=["auto", "forced_open", "forced_closed", "metrics_only"]),
                name="breaker_state_known_mode",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name}: {self.state}"
