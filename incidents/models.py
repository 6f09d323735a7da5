"""Sources, the error-type catalog, classification rules, incidents, events and rollups."""

import secrets
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Severity(models.IntegerChoices):
    """Severity levels; the integer order lets "highest seen" be a MAX."""

    INFO = 10, "INFO"
    LOW = 20, "LOW"
    MEDIUM = 30, "MEDIUM"
    HIGH = 40, "HIGH"
    CRITICAL = 50, "CRITICAL"


class Category(models.TextChoices):
    NETWORK = "NETWORK"
    DATABASE = "DATABASE"
    API = "API"
    RATE_LIMIT = "RATE_LIMIT"
    AUTH = "AUTH"
    VALIDATION = "VALIDATION"
    DATA = "DATA"
    STORAGE = "STORAGE"
    PROCESSING = "PROCESSING"
    WEBSOCKET = "WEBSOCKET"
    CONFIGURATION = "CONFIGURATION"
    SYSTEM = "SYSTEM"
    UNKNOWN = "UNKNOWN"


class Level(models.TextChoices):
    """Event levels as Sentry SDKs send them."""

    FATAL = "fatal"
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"
    DEBUG = "debug"


class Source(models.Model):
    """An application (a Sentry "project") that reports events."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    environments = models.JSONField(
        default=list,
        blank=True,
        help_text="Environments this source may report from; empty accepts any.",
    )
    rate_limit_per_minute = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Events accepted per minute; empty uses the console default, 0 means unlimited.",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if not isinstance(self.environments, list) or not all(
            isinstance(env, str) and 0 < len(env) <= 64 for env in self.environments
        ):
            raise ValidationError({"environments": "Must be a list of names of 1 to 64 characters."})

    @property
    def effective_rate_limit(self) -> int:
        if self.rate_limit_per_minute is None:
            return settings.INGEST_DEFAULT_RATE_LIMIT_PER_MINUTE
        return self.rate_limit_per_minute

    def accepts_environment(self, environment: str) -> bool:
        return not self.environments or environment in self.environments


def _new_public_key() -> str:
    return secrets.token_hex(16)


class IngestKey(models.Model):
    """A key that lets an application send events to one source, and nothing else."""

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="keys")
    public_key = models.CharField(max_length=32, unique=True, default=_new_public_key, editable=False)
    label = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="Set when the key is rotated: it keeps working until then."
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.source} key {self.public_key[:8]}…"

    def is_usable(self, now=None) -> bool:
        now = now or timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    @property
    def dsn(self) -> str:
        """The Sentry DSN an SDK needs: <scheme>://<key>@<host>[/<path>]/<source id>."""
        url = urlsplit(settings.CONSOLE_URL)
        return f"{url.scheme}://{self.public_key}@{url.netloc}{url.path.rstrip('/')}/{self.source_id}"


class ErrorType(models.Model):
    """A kind of error in the catalog: what it is, how bad, and what to do about it."""

    class ActionType(models.TextChoices):
        RETRY = "retry"
        WAIT = "wait"
        REAUTHENTICATE = "reauthenticate"
        FIX_INPUT = "fix_input"
        CHECK_CONFIGURATION = "check_configuration"
        CONTACT_SUPPORT = "contact_support"
        NONE = "none"

    code = models.CharField(
        max_length=64,
        unique=True,
        validators=[RegexValidator(r"^[A-Z][A-Z0-9_]*$", "Use upper-case letters, digits and underscores.")],
    )
    category = models.CharField(max_length=16, choices=Category.choices)
    default_severity = models.PositiveSmallIntegerField(choices=Severity.choices, default=Severity.MEDIUM)
    description = models.CharField(max_length=255)
    transient = models.BooleanField(
        default=False, help_text="Transient errors may succeed when retried; permanent ones will not."
    )
    action_type = models.CharField(max_length=24, choices=ActionType.choices, default=ActionType.NONE)
    suggested_action = models.CharField(max_length=255, blank=True, help_text="Shown to users next to the error.")

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(condition=Q(category__in=Category.values), name="errortype_category_valid"),
            models.CheckConstraint(condition=Q(default_severity__in=Severity.values), name="errortype_severity_valid"),
        ]

    def __str__(self) -> str:
        return self.code


class ClassificationRule(models.Model):
    """An ordered rule mapping what an event looks like to an error type.

    Every filled-in condition must match; the first enabled rule that matches wins.
    """

    name = models.CharField(max_length=100)
    position = models.PositiveIntegerField(default=100, help_text="Rules are tried in ascending position.")
    enabled = models.BooleanField(default=True)
    exception_type = models.CharField(
        max_length=200,
        blank=True,
        help_text="Exception class name (or a base class name), e.g. TimeoutError or requests.HTTPError. "
        "Several may be given, separated by commas.",
    )
    message_pattern = models.CharField(
        max_length=500, blank=True, help_text="Regular expression searched in the message, case-insensitive."
    )
    http_status = models.CharField(max_length=100, blank=True, help_text="Status codes: 429, 401,403, 500-599 or 5xx.")
    logger = models.CharField(max_length=200, blank=True, help_text="Logger name or dotted prefix.")
    component = models.CharField(max_length=200, blank=True)
    context_match = models.JSONField(
        default=dict,
        blank=True,
        help_text='Context keys and the values they must have, e.g. {"storage_operation": "read"}; '
        '"*" matches any value.',
    )
    error_type = models.ForeignKey(ErrorType, on_delete=models.PROTECT, related_name="rules")
    severity_override = models.PositiveSmallIntegerField(choices=Severity.choices, null=True, blank=True)

    class Meta:
        ordering = ["position", "id"]
        indexes = [models.Index(fields=["enabled", "position"])]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from incidents.classify import validate_rule  # the matcher owns the grammar it reads

        validate_rule(self)


class Incident(models.Model):
    """A group of events sharing a fingerprint within one source."""

    class Status(models.TextChoices):
        OPEN = "open"
        ACKNOWLEDGED = "acknowledged"
        RESOLVED = "resolved"
        MUTED = "muted"

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="incidents")
    fingerprint = models.CharField(max_length=64)
    title = models.CharField(max_length=255)
    culprit = models.CharField(max_length=255, blank=True)
    error_type = models.ForeignKey(ErrorType, on_delete=models.PROTECT, related_name="incidents")
    category = models.CharField(max_length=16, choices=Category.choices)
    severity = models.PositiveSmallIntegerField(choices=Severity.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    event_count = models.PositiveBigIntegerField(default=0)
    user_count = models.PositiveIntegerField(default=0)
    regressed = models.BooleanField(default=False)
    resolved_at = models.DateTimeField(null=True, blank=True)
    muted_until = models.DateTimeField(null=True, blank=True)
    unmute_after_events = models.PositiveIntegerField(null=True, blank=True)
    unmute_window_minutes = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-last_seen"]
        constraints = [
            models.UniqueConstraint(fields=["source", "fingerprint"], name="incident_unique_fingerprint"),
            models.CheckConstraint(
                condition=Q(status__in=["open", "acknowledged", "resolved", "muted"]), name="incident_status_valid"
            ),
            models.CheckConstraint(condition=Q(severity__in=Severity.values), name="incident_severity_valid"),
            models.CheckConstraint(condition=Q(last_seen__gte=models.F("first_seen")), name="incident_seen_order"),
            models.CheckConstraint(
                condition=Q(unmute_after_events__isnull=True, unmute_window_minutes__isnull=True)
                | Q(unmute_after_events__gte=1, unmute_window_minutes__gte=1),
                name="incident_unmute_condition_whole",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "-last_seen"], name="incident_status_seen"),
            models.Index(fields=["severity", "-last_seen"], name="incident_severity_seen"),
            models.Index(fields=["category", "-last_seen"], name="incident_category_seen"),
            models.Index(fields=["source", "-last_seen"], name="incident_source_seen"),
            models.Index(fields=["error_type", "-last_seen"], name="incident_type_seen"),
            models.Index(fields=["-last_seen", "-id"], name="incident_seen"),
        ]

    def __str__(self) -> str:
        return self.title


class IncidentEnvironment(models.Model):
    """An environment an incident has been seen in, so the admin can filter on it by index."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="environments")
    environment = models.CharField(max_length=64)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["environment", "incident"], name="incident_environment_unique")]


class IncidentUser(models.Model):
    """A distinct affected user of an incident, hashed: only its count is ever shown."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="+")
    user_hash = models.CharField(max_length=40)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["incident", "user_hash"], name="incident_user_unique")]


class IncidentActivity(models.Model):
    """One timeline entry: who or what changed what about an incident, and when."""

    class Kind(models.TextChoices):
        CREATED = "created"
        ACKNOWLEDGED = "acknowledged"
        RESOLVED = "resolved"
        REOPENED = "reopened"
        REGRESSED = "regressed"
        MUTED = "muted"
        UNMUTED = "unmuted"
        SEVERITY_RAISED = "severity_raised"

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="activities")
    created_at = models.DateTimeField(default=timezone.now)
    kind = models.CharField(max_length=24, choices=Kind.choices)
    actor = models.CharField(max_length=150, help_text="user:<name>, token:<name> or system:<part>.")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["incident", "-created_at"], name="activity_incident_time")]
        verbose_name_plural = "incident activities"

    def __str__(self) -> str:
        return f"{self.kind} by {self.actor}"


class ErrorEvent(models.Model):
    """One event as a client reported it, scrubbed, with what the console made of it.

    Ingest classifies and fingerprints the event before storing it; `incident` stays empty
    until the digest has grouped it into one.
    """

    # No single-column indexes on the foreign keys: the composite indexes below lead with
    # them, and every index costs each insert on the hot path.
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="events", db_index=False)
    event_id = models.UUIDField()
    incident = models.ForeignKey(
        Incident, null=True, blank=True, on_delete=models.CASCADE, related_name="events", db_index=False
    )
    timestamp = models.DateTimeField()
    received_at = models.DateTimeField()
    level = models.CharField(max_length=8, choices=Level.choices, default=Level.ERROR)
    message = models.TextField(blank=True)
    exception = models.JSONField(
        default=list,
        blank=True,
        help_text="Exception chain, oldest cause first; the last entry is the one that surfaced.",
    )
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    logger = models.CharField(max_length=200, blank=True)
    component = models.CharField(max_length=200, blank=True)
    platform = models.CharField(max_length=32, blank=True)
    server_name = models.CharField(max_length=200, blank=True)
    release = models.CharField(max_length=200, blank=True)
    environment = models.CharField(max_length=64, blank=True)
    transaction = models.CharField(max_length=200, blank=True)
    tags = models.JSONField(default=dict, blank=True)
    user = models.JSONField(default=dict, blank=True)
    request = models.JSONField(default=dict, blank=True)
    contexts = models.JSONField(default=dict, blank=True)
    extra = models.JSONField(default=dict, blank=True)
    sdk = models.JSONField(default=dict, blank=True)
    client_fingerprint = models.JSONField(null=True, blank=True, help_text="Fingerprint sent by the SDK.")
    # Classified and grouped at ingest; the digest fills in the incident.
    fingerprint = models.CharField(max_length=64, blank=True)
    title = models.CharField(max_length=255, blank=True)
    culprit = models.CharField(max_length=255, blank=True)
    error_type = models.ForeignKey(
        ErrorType, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    severity = models.PositiveSmallIntegerField(choices=Severity.choices, null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["source", "event_id"], name="event_unique_per_source")]
        indexes = [
            models.Index(fields=["incident", "-received_at", "-id"], name="event_incident_time"),
            models.Index(fields=["-received_at", "-id"], name="event_received"),
            models.Index(fields=["source", "-received_at", "-id"], name="event_source_received"),
            models.Index(fields=["id"], condition=Q(incident__isnull=True), name="event_pending_digest"),
        ]

    def __str__(self) -> str:
        return str(self.event_id)


class IncidentMinute(models.Model):
    """Events per incident per minute: charts and sparklines read this, never raw events."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="+")
    minute = models.DateTimeField()
    count = models.PositiveIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["incident", "minute"], name="incident_minute_unique")]


class IncidentHour(models.Model):
    """Events per incident per hour, for the admin's day-long sparklines."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField()
    count = models.PositiveIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["incident", "hour"], name="incident_hour_unique")]


class SourceMinute(models.Model):
    """Events per source, error type, severity and environment per minute: thresholds read this."""

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="+")
    error_type = models.ForeignKey(ErrorType, on_delete=models.CASCADE, related_name="+")
    severity = models.PositiveSmallIntegerField(choices=Severity.choices)
    environment = models.CharField(max_length=64, blank=True)
    minute = models.DateTimeField()
    count = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "error_type", "severity", "environment", "minute"],
                name="source_minute_unique",
            )
        ]
        indexes = [
            models.Index(fields=["minute"], name="source_minute_time"),
            models.Index(fields=["source", "minute"], name="source_minute_source_time"),
        ]
