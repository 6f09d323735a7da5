"""Resilience configuration the console stores and every running process applies live."""

import logging

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models

from resilience.exceptions import ConfigError
from resilience.runtime import degradation, ratelimit, recovery, retry
from resilience.runtime.breaker import BreakerConfig, resolve_statuses

logger = logging.getLogger(__name__)


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


# The console's own source: its processes report their breakers (redis, notify:...) under it, directly.
CONSOLE_SOURCE_SLUG = "console"
# Names of the console's own breakers (resilience.process_runtime.REDIS_BREAKER, NotificationChannel.breaker_name):
# no service may run or report one, registered in admin or not.
CONSOLE_BREAKER_NAMES = frozenset({"redis"})
CONSOLE_BREAKER_PREFIX = "notify:"


def is_console_breaker_name(name: str) -> bool:
    return name in CONSOLE_BREAKER_NAMES or name.startswith(CONSOLE_BREAKER_PREFIX)


# Any printable name without a slash (it is a URL segment in the API) or surrounding spaces:
# notification channels, whose names are free text, get breakers named "notify:<channel name>".
BREAKER_NAME = RegexValidator(
    r"^[^\s/](?:[^/\x00-\x1f\x7f]*[^\s/])?\Z",
    "Use printable characters without '/' and without leading or trailing spaces.",
)


def _positive(field: str) -> models.Q:
    return models.Q(**{f"{field}__isnull": True}) | models.Q(**{f"{field}__gt": 0})


class Breaker(models.Model):
    """A circuit breaker's configuration, applied live by every process that uses it.

    Fields mirror resilience.runtime.breaker.BreakerConfig (durations in seconds). The form
    validates through BreakerConfig.validate, so admin, API and running processes refuse
    the same configs; the check constraints keep rows sane whatever writes them.
    """

    class WindowKind(models.TextChoices):
        COUNT = "count", "Last N calls"
        TIME = "time", "Last N seconds"

    name = models.CharField(
        max_length=200,
        unique=True,
        validators=[BREAKER_NAME],
        help_text="What code names it: @breaker('payments-api'). The console's own: 'redis', and "
        "'notify:' followed by a notification channel's name for deliveries to that channel.",
    )
    source = models.ForeignKey(
        "incidents.Source",
        null=True,
        blank=True,
        # Only its keys may report it and get its config. Once its source is gone it is unassigned again,
        # as an admin-defined breaker is before the service that runs it first reports (see claim).
        on_delete=models.SET_NULL,
        related_name="breakers",
        help_text="The service (source) that runs this breaker. Empty: the first source to report it takes it; "
        "the console's own breakers (redis, notify:*) have none.",
    )
    description = models.TextField(blank=True)
    component = models.CharField(max_length=200, blank=True, help_text="Reported with its events.")
    error_type = models.ForeignKey(
        "incidents.ErrorType",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Classifies the events its transitions become (its category and severity).",
    )
    window_kind = models.CharField(max_length=8, choices=WindowKind.choices, default=WindowKind.COUNT)
    window_size = models.PositiveIntegerField(default=100, help_text="Calls (count window) or seconds (time).")
    minimum_calls = models.PositiveIntegerField(default=10, help_text="Calls in the window before any rate can trip.")
    failure_rate_threshold = models.FloatField(default=50.0, help_text="Percent of failed calls that opens it.")
    slow_call_rate_threshold = models.FloatField(default=100.0, help_text="Percent of slow calls that opens it.")
    slow_call_duration = models.FloatField(
        null=True, blank=True, help_text="Seconds from which a call counts as slow; empty: no slow-call detection."
    )
    consecutive_failures = models.PositiveIntegerField(
        default=0, help_text="Failures in a row that open it whatever the rate; 0: off."
    )
    wait_duration = models.FloatField(default=60.0, help_text="Seconds to stay open before probing.")
    wait_multiplier = models.FloatField(default=1.0, help_text="Growth of the wait on each consecutive opening.")
    max_wait_duration = models.FloatField(null=True, blank=True, help_text="Cap on the grown wait, seconds.")
    automatic_half_open = models.BooleanField(
        default=False, help_text="Move to half-open when the wait ends, not at the first call after it."
    )
    max_half_open_duration = models.FloatField(
        null=True, blank=True, help_text="Seconds half-open may last without a verdict before reopening."
    )
    permitted_calls_in_half_open = models.PositiveIntegerField(default=1, help_text="Probes admitted at once.")
    success_threshold = models.PositiveIntegerField(default=1, help_text="Probe successes that close it.")
    call_timeout = models.FloatField(null=True, blank=True, help_text="Seconds after which a call counts as failed.")
    record_exceptions = models.TextField(
        blank=True, help_text="Exception classes that count as failures, dotted, one per line; empty: every exception."
    )
    ignore_exceptions = models.TextField(
        blank=True, help_text="Exception classes that count neither way, dotted, one per line."
    )
    failure_statuses = models.CharField(
        max_length=200, blank=True, help_text="HTTP statuses or classes of results that count as failures: 5xx, 429."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=models.Q(window_size__gte=1), name="breaker_window_size_min"),
            models.CheckConstraint(condition=models.Q(minimum_calls__gte=1), name="breaker_minimum_calls_min"),
            models.CheckConstraint(
                condition=models.Q(failure_rate_threshold__gt=0, failure_rate_threshold__lte=100),
                name="breaker_failure_rate_range",
            ),
            models.CheckConstraint(
                condition=models.Q(slow_call_rate_threshold__gt=0, slow_call_rate_threshold__lte=100),
                name="breaker_slow_rate_range",
            ),
            models.CheckConstraint(condition=_positive("slow_call_duration"), name="breaker_slow_call_positive"),
            models.CheckConstraint(condition=models.Q(wait_duration__gt=0), name="breaker_wait_positive"),
            models.CheckConstraint(condition=models.Q(wait_multiplier__gte=1), name="breaker_multiplier_min"),
            models.CheckConstraint(
                condition=models.Q(max_wait_duration__isnull=True)
                | models.Q(max_wait_duration__gte=models.F("wait_duration")),
                name="breaker_max_wait_not_below_wait",
            ),
            models.CheckConstraint(condition=_positive("call_timeout"), name="breaker_call_timeout_positive"),
            models.CheckConstraint(
                condition=models.Q(max_half_open_duration__isnull=True)
                | models.Q(call_timeout__isnull=True)
                | models.Q(max_half_open_duration__gte=models.F("call_timeout")),
                name="breaker_half_open_cap_not_below_timeout",
            ),
            models.CheckConstraint(condition=models.Q(permitted_calls_in_half_open__gte=1), name="breaker_permits_min"),
            models.CheckConstraint(condition=models.Q(success_threshold__gte=1), name="breaker_successes_min"),
        ]

    def __str__(self) -> str:
        return self.name

    def is_run_by(self, source) -> bool:
        """Whether `source` reports this breaker: its own source, or the console's for the console's own."""
        if is_console_breaker_name(self.name):
            return source.slug == CONSOLE_SOURCE_SLUG
        return self.source_id is not None and self.source_id == source.pk

    def keeps_history_from(self, source) -> bool:
        """Whether transitions `source` reports belong to this breaker's history: those of the source that
        runs it, and the console's, whose processes make the operators' switches (admin, API) of any breaker."""
        return source.slug == CONSOLE_SOURCE_SLUG or self.is_run_by(source)

    @property
    def is_unassigned(self) -> bool:
        """Whether no source runs it yet: the first to report it will (the console's own never are)."""
        return self.source_id is None and not is_console_breaker_name(self.name)

    def claim(self, source) -> bool:
        """Give the breaker to `source` if nobody runs it yet; whether `source` runs it now.

        One conditional UPDATE decides, so of two sources reporting it at once only one gets it.
        """
        if self.is_unassigned and source.slug != CONSOLE_SOURCE_SLUG:
            if Breaker.objects.filter(pk=self.pk, source__isnull=True).update(source=source):
                logger.info("breaker %s now belongs to source %s, the first to report it", self.name, source.slug)
                self.source = source
                return True
            self.refresh_from_db(fields=["source"])  # another report took it first: whose?
        return self.is_run_by(source)

    def to_config(self) -> BreakerConfig:
        """The runtime config this row stands for (not yet validated)."""
        return BreakerConfig(
            window_kind=self.window_kind,
            window_size=self.window_size,
            minimum_calls=self.minimum_calls,
            failure_rate_threshold=self.failure_rate_threshold,
            slow_call_rate_threshold=self.slow_call_rate_threshold,
            slow_call_duration=self.slow_call_duration,
            consecutive_failures=self.consecutive_failures,
            wait_duration=self.wait_duration,
            wait_multiplier=self.wait_multiplier,
            max_wait_duration=self.max_wait_duration,
            automatic_half_open=self.automatic_half_open,
            max_half_open_duration=self.max_half_open_duration,
            permitted_calls_in_half_open=self.permitted_calls_in_half_open,
            success_threshold=self.success_threshold,
            call_timeout=self.call_timeout,
            record_exceptions=_names(self.record_exceptions) or (Exception,),
            ignore_exceptions=_names(self.ignore_exceptions),
            failure_statuses=_names(self.failure_statuses),
        )

    def clean(self) -> None:
        """Refuse what the runtime would refuse, naming the field."""
        if self.source_id is not None and is_console_breaker_name(self.name):
            raise ValidationError({"source": f"{self.name} is the console's own breaker: leave the source empty"})
        try:
            self.to_config().validate()
        except ConfigError as error:
            raise ValidationError({error.field: error.reason}) from error


def _names(text: str) -> tuple[str, ...]:
    """Split a list typed one per line or comma-separated."""
    return tuple(name.strip() for name in text.replace(",", "\n").splitlines() if name.strip())


class BreakerTransition(models.Model):
    """One change of a breaker's state or mode, by whichever process made it."""

    breaker_name = models.CharField(max_length=200)
    breaker = models.ForeignKey(Breaker, null=True, blank=True, on_delete=models.SET_NULL, related_name="transitions")
    source = models.ForeignKey(
        "incidents.Source",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="Whose key reported it (the console's source for console processes); empty: recorded before "
        "reports were attributed.",
    )
    from_state = models.CharField(max_length=16, choices=BreakerState.State.choices)
    to_state = models.CharField(max_length=16, choices=BreakerState.State.choices)
    mode = models.CharField(max_length=16, choices=BreakerState.Mode.choices)
    generation = models.BigIntegerField()
    reason = models.CharField(max_length=500, blank=True)
    process = models.CharField(max_length=200, blank=True, help_text="Host and pid, or the reporting client.")
    at = models.DateTimeField()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["breaker_name", "-at"], name="transition_breaker_time")]
        constraints = [
            # A client that resends a batch it got no answer for must not double the history; per
            # source, so that another source naming the same process cannot pre-empt its transitions.
            models.UniqueConstraint(
                fields=["source", "breaker_name", "process", "generation"], name="transition_once_per_source"
            )
        ]

    def __str__(self) -> str:
        return f"{self.breaker_name}: {self.from_state} -> {self.to_state}"


class BreakerWindow(models.Model):
    """The latest sliding-window figures one process reported for one breaker.

    Windows stay in each process (sharing every call would cost a round trip per call),
    so processes report them every few seconds and admin, API and dashboard add up the
    fresh reports: calls and failures across every process that uses the breaker. Rows are
    kept per reporting source: a breaker's figures add up only its own source's reports
    (the console's source for the console's own breakers), so no key can overwrite or
    outweigh another source's.
    """

    source = models.ForeignKey("incidents.Source", on_delete=models.CASCADE, related_name="+")
    breaker_name = models.CharField(max_length=200)
    process = models.CharField(max_length=200, help_text="Host and pid of the reporting process.")
    reported_at = models.DateTimeField()
    state = models.CharField(max_length=16, choices=BreakerState.State.choices)
    mode = models.CharField(max_length=16, choices=BreakerState.Mode.choices)
    calls = models.PositiveIntegerField()
    failures = models.PositiveIntegerField()
    slow_calls = models.PositiveIntegerField()
    not_permitted = models.PositiveBigIntegerField(help_text="Calls refused since the process started.")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "breaker_name", "process"], name="breaker_window_per_source_process"
            ),
            models.CheckConstraint(
                condition=models.Q(failures__lte=models.F("calls")) & models.Q(slow_calls__lte=models.F("calls")),
                name="breaker_window_counts_within_calls",
            ),
        ]
        indexes = [models.Index(fields=["reported_at"], name="breaker_window_reported")]

    def __str__(self) -> str:
        return f"{self.breaker_name} in {self.process}"


class ValidatedByRuntime(models.Model):
    """A config row the runtime validates: the form refuses exactly what running processes would."""

    class Meta:
        abstract = True

    def to_config(self):
        raise NotImplementedError

    def clean(self) -> None:
        try:
            self.to_config().validate()
        except ConfigError as error:
            field = error.field if error.field in {f.name for f in self._meta.fields} else "__all__"
            raise ValidationError({field: error.reason}) from error


def _choices(enum) -> list[tuple[str, str]]:
    return [(member.value, member.value.replace("_", " ").capitalize()) for member in enum]


class RetryPolicy(ValidatedByRuntime):
    """How a failed call is retried: a row of the retry table (the defaults are seeded), edited live."""

    name = models.SlugField(max_length=100, unique=True, help_text="What code names it: @retry('server_error').")
    description = models.TextField(blank=True)
    strategy = models.CharField(max_length=16, choices=_choices(retry.Strategy), default="exponential")
    jitter = models.CharField(max_length=16, choices=_choices(retry.Jitter), default="none")
    max_attempts = models.PositiveIntegerField(default=3, help_text="Attempts in all, the first call included.")
    base_delay = models.FloatField(default=1.0, help_text="Seconds before the first retry.")
    multiplier = models.FloatField(default=2.0, help_text="Growth of the exponential strategy.")
    max_delay = models.FloatField(default=60.0, help_text="Cap on each wait, seconds.")
    max_total_time = models.FloatField(null=True, blank=True, help_text="Give up when the next wait would pass it.")
    retry_on_transient = models.BooleanField(
        default=True, help_text="Retry what the error-type catalog calls transient."
    )
    retry_on_exceptions = models.TextField(blank=True, help_text="Exception classes, dotted, one per line.")
    retry_on_error_types = models.TextField(blank=True, help_text="Error-type codes, e.g. NETWORK_TIMEOUT.")
    retry_on_categories = models.CharField(
        max_length=300, blank=True, help_text="Categories, e.g. NETWORK, RATE_LIMIT."
    )
    retry_on_statuses = models.CharField(max_length=300, blank=True, help_text="HTTP statuses, e.g. 500, 502, 503.")
    honour_retry_after = models.BooleanField(default=True)
    cap_retry_after = models.BooleanField(default=True, help_text="Cut a server's Retry-After to the max delay.")
    return_bad_result = models.BooleanField(default=False, help_text="On giving up on a bad result, return it.")
    on_give_up = models.CharField(max_length=8, choices=_choices(retry.GiveUpAction), default="NONE")
    budget_percent = models.FloatField(
        null=True,
        blank=True,
        help_text="Retries allowed as a percentage of calls: retries cannot amplify an outage.",
    )
    budget_window_seconds = models.FloatField(default=10.0)
    budget_min_per_second = models.FloatField(default=1.0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "retry policies"
        constraints = [
            models.CheckConstraint(condition=models.Q(max_attempts__gte=1), name="retry_attempts_min"),
            models.CheckConstraint(condition=models.Q(base_delay__gte=0), name="retry_base_delay_min"),
            models.CheckConstraint(condition=models.Q(multiplier__gte=1), name="retry_multiplier_min"),
            models.CheckConstraint(
                condition=models.Q(max_delay__gte=models.F("base_delay")), name="retry_max_delay_not_below_base"
            ),
            models.CheckConstraint(
                condition=models.Q(budget_percent__isnull=True)
                | models.Q(budget_percent__gte=0, budget_percent__lte=100),
                name="retry_budget_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def to_config(self) -> retry.RetryPolicy:
        return retry.RetryPolicy(
            name=self.name,
            strategy=self.strategy,
            jitter=self.jitter,
            max_attempts=self.max_attempts,
            base_delay=self.base_delay,
            multiplier=self.multiplier,
            max_delay=self.max_delay,
            max_total_time=self.max_total_time,
            retry_on_transient=self.retry_on_transient,
            retry_on_exceptions=_names(self.retry_on_exceptions),
            retry_on_error_types=_names(self.retry_on_error_types),
            retry_on_categories=_names(self.retry_on_categories),
            retry_on_statuses=tuple(sorted(resolve_statuses("retry_on_statuses", _names(self.retry_on_statuses)))),
            honour_retry_after=self.honour_retry_after,
            cap_retry_after=self.cap_retry_after,
            return_bad_result=self.return_bad_result,
            on_give_up=self.on_give_up,
            budget_percent=self.budget_percent,
            budget_window_seconds=self.budget_window_seconds,
            budget_min_per_second=self.budget_min_per_second,
        )


class RecoveryPolicy(ValidatedByRuntime):
    """What to do when a component or error type fails: retry, fall back, degrade, restart, ignore or alert."""

    name = models.SlugField(max_length=100, unique=True)
    strategy = models.CharField(max_length=16, choices=_choices(recovery.Strategy))
    component = models.CharField(max_length=100, blank=True, help_text="Empty: any component.")
    error_type = models.CharField(max_length=64, blank=True, help_text="Error-type code; empty: any.")
    max_attempts = models.PositiveIntegerField(default=3)
    fallback = models.CharField(max_length=100, blank=True, help_text="Name of a fallback registered in code.")
    degraded_result = models.CharField(max_length=100, blank=True, help_text="Name of a degraded-result provider.")
    degrade_feature = models.CharField(max_length=100, blank=True, help_text="Feature marked degraded meanwhile.")
    degrade_seconds = models.FloatField(default=60.0)
    restart_hook = models.CharField(max_length=100, blank=True, help_text="Name of a restart hook registered in code.")
    default = models.JSONField(null=True, blank=True, help_text="What IGNORE returns.")
    severity = models.CharField(max_length=8, choices=_choices(recovery.Severity), default="error")
    raise_recovery_errors = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["component", "error_type", "name"]
        verbose_name_plural = "recovery policies"
        constraints = [
            models.CheckConstraint(condition=models.Q(max_attempts__gte=1), name="recovery_attempts_min"),
            models.CheckConstraint(condition=models.Q(degrade_seconds__gt=0), name="recovery_degrade_positive"),
        ]

    def __str__(self) -> str:
        return self.name

    def to_config(self) -> recovery.RecoveryPolicy:
        return recovery.RecoveryPolicy(
            name=self.name,
            strategy=recovery.Strategy(self.strategy) if self.strategy in set(recovery.Strategy) else self.strategy,
            component=self.component or None,
            error_type=self.error_type or None,
            max_attempts=self.max_attempts,
            fallback=self.fallback or None,
            degraded_result=self.degraded_result or None,
            degrade_feature=self.degrade_feature or None,
            degrade_seconds=self.degrade_seconds,
            restart_hook=self.restart_hook or None,
            default=self.default,
            severity=recovery.Severity(self.severity) if self.severity in set(recovery.Severity) else self.severity,
            raise_recovery_errors=self.raise_recovery_errors,
        )


class RateLimitPolicy(ValidatedByRuntime):
    """A sliding-window limit an application tracks per key (an upstream API, an account)."""

    name = models.SlugField(max_length=100, unique=True)
    limit = models.PositiveIntegerField(default=100, help_text="Calls allowed per window.")
    window_seconds = models.FloatField(default=60.0)
    max_keys = models.PositiveIntegerField(default=10_000, help_text="Keys tracked before the oldest are forgotten.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=models.Q(limit__gte=1), name="rate_limit_min"),
            models.CheckConstraint(condition=models.Q(window_seconds__gt=0), name="rate_limit_window_positive"),
            models.CheckConstraint(condition=models.Q(max_keys__gte=1), name="rate_limit_keys_min"),
        ]

    def __str__(self) -> str:
        return self.name

    def to_config(self) -> ratelimit.RateLimitPolicy:
        return ratelimit.RateLimitPolicy(limit=self.limit, window_seconds=self.window_seconds, max_keys=self.max_keys)


def _level_choices() -> list[tuple[int, str]]:
    return [(level.value, level.name.capitalize()) for level in degradation.Level]


class DegradationFeature(ValidatedByRuntime):
    """A feature that depends on breakers, with what to serve when it is unavailable."""

    name = models.SlugField(max_length=100, unique=True)
    breakers = models.TextField(blank=True, help_text="Names of the breakers it depends on, one per line.")
    fallback = models.CharField(max_length=100, blank=True, help_text="Fallback registered in code.")
    critical = models.BooleanField(default=False, help_text="Its breakers opening lowers the whole system's level.")
    min_level = models.PositiveSmallIntegerField(
        choices=_level_choices(), default=degradation.Level.DEGRADED, help_text="Worst level at which it still runs."
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def to_config(self) -> degradation.Feature:
        return degradation.Feature(
            name=self.name,
            breakers=_names(self.breakers),
            fallback=self.fallback or None,
            critical=self.critical,
            min_level=degradation.Level(self.min_level),
        )


class DegradationRule(ValidatedByRuntime):
    """When the system drops to a level: breakers open, features degraded, error rate."""

    name = models.SlugField(max_length=100, unique=True)
    condition = models.CharField(max_length=32, choices=_choices(degradation.Condition))
    level = models.PositiveSmallIntegerField(choices=_level_choices())
    threshold = models.FloatField(default=0, help_text="Features degraded, or error rate in percent.")

    class Meta:
        ordering = ["-level", "name"]

    def __str__(self) -> str:
        return self.name

    def to_config(self) -> degradation.DegradationRule:
        return degradation.DegradationRule(
            name=self.name,
            condition=degradation.Condition(self.condition)
            if self.condition in set(degradation.Condition)
            else self.condition,
            level=degradation.Level(self.level),
            threshold=self.threshold,
        )
