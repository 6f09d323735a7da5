"""Sources, the error-type catalog, classification rules, incidents, events and rollups."""

import secrets
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import connection, models, transaction
from django.db.models import Q
from django.utils import timezone

import resilience.exceptions
import resilience.runtime.catalog
from incidents.alerting.templates import alert_template_problem
from incidents.alerting.transports.base import Delivery, Message, Transport, TransportError, transport_class
from incidents.ingest.rule_grammar import validate_rule
from resilience.exceptions import ConfigError
from resilience.process_runtime import breaker
from resilience.runtime.breaker import CallNotPermitted

# Severity and Category are defined once, in pure modules of resilience both apps share; these are their choices.
# A severity is stored as its level's rank (INFO 10 ... CRITICAL 50), so "highest seen" is a MAX.
Severity = models.IntegerChoices(
    "Severity", [(level.name, (level.rank, level.value)) for level in resilience.exceptions.Severity]
)
Category = models.TextChoices(
    "Category", [(category.name, category.value) for category in resilience.runtime.catalog.Category]
)


class Level(models.TextChoices):
    """Event levels as Sentry SDKs send them."""

    FATAL = "fatal"
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"
    DEBUG = "debug"


# The longest anything is kept: ten years.
MAX_RETENTION_DAYS = 3650


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
    last_heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Last post to the heartbeat URL: a dead man's switch for jobs."
    )
    last_event_at = models.DateTimeField(null=True, blank=True, help_text="Newest event digested.")
    event_retention_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_RETENTION_DAYS)],
        help_text="Days this source's events are kept; empty uses the retention policy's default.",
    )

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
        validate_rule(self)  # the grammar the matcher reads (ingest/rule_grammar.py)


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
    capped_at_event_count = models.PositiveBigIntegerField(
        null=True, blank=True, editable=False, help_text="event_count when the retention cap last trimmed its events."
    )

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

    def live_payload(self, **extra) -> dict:
        """What the live stream says about this incident: enough to draw its row without asking the API."""
        return {
            "id": self.pk,
            "title": self.title,
            "status": self.status,
            "severity": self.severity,
            "event_count": self.event_count,
            "last_seen": self.last_seen.isoformat() if self.last_seen else None,
            "source": self.source_id,
            **extra,
        }


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
    last_seen = models.DateTimeField(null=True, help_text="Distinct users in a window are counted by this.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["incident", "user_hash"], name="incident_user_unique")]
        indexes = [models.Index(fields=["last_seen"], name="incident_user_seen")]


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
    # them, and every index costs each insert on the hot path. No foreign key constraints in the
    # database either (Django still cascades deletes): each would lock the source row of every
    # inserted event (FOR KEY SHARE, contended by every writer), and on PostgreSQL dropping an
    # expired partition would lock the sources, incidents and error types tables, deadlocking
    # with the digest, which writes them.
    source = models.ForeignKey(
        Source, on_delete=models.CASCADE, related_name="events", db_index=False, db_constraint=False
    )
    event_id = models.UUIDField()
    incident = models.ForeignKey(
        Incident,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="events",
        db_index=False,
        db_constraint=False,
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
        ErrorType,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    severity = models.PositiveSmallIntegerField(choices=Severity.choices, null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        # No unique (source, event_id): on PostgreSQL the table is partitioned by received_at, and a
        # unique constraint there must include it. EventReceipt keeps event_id idempotent instead.
        indexes = [
            models.Index(fields=["incident", "-received_at", "-id"], name="event_incident_time"),
            models.Index(fields=["-received_at", "-id"], name="event_received"),
            models.Index(fields=["source", "-received_at", "-id"], name="event_source_received"),
            models.Index(fields=["id"], condition=Q(incident__isnull=True), name="event_pending_digest"),
        ]

    def __str__(self) -> str:
        return str(self.event_id)


class EventReceipt(models.Model):
    """An event_id a source has sent, kept as long as the source's events: a repeat within it is a retry.

    The event table cannot be unique on (source, event_id) once partitioned by time, so ingest
    inserts here first (ON CONFLICT DO NOTHING) and stores only the events whose receipt is new,
    in the same statement.
    """

    pk = models.CompositePrimaryKey("source", "event_id")
    # No constraint, as on ErrorEvent: it would lock the source row of every receipt inserted.
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False)
    event_id = models.UUIDField()
    received_at = models.DateTimeField()

    class Meta:
        # Per source, oldest first: what the purge deletes, for each source at its own cut-off.
        indexes = [models.Index(fields=["source", "received_at"], name="event_receipt_received")]


class IncidentMinute(models.Model):
    """Events per incident per minute: charts and sparklines read this, never raw events."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="+")
    minute = models.DateTimeField()
    count = models.PositiveIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["incident", "minute"], name="incident_minute_unique")]
        # Top incidents in a window read only this index (PostgreSQL: an index-only scan).
        indexes = [models.Index(fields=["minute"], include=["incident", "count"], name="incident_minute_time")]


class IncidentHour(models.Model):
    """Events per incident per hour, for the admin's day-long sparklines."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField()
    count = models.PositiveIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["incident", "hour"], name="incident_hour_unique")]
        indexes = [models.Index(fields=["hour"], include=["incident", "count"], name="incident_hour_time")]


class SourceRollup(models.Model):
    """What the per-source rollups count by: source, error type, severity and environment."""

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="+")
    error_type = models.ForeignKey(ErrorType, on_delete=models.CASCADE, related_name="+")
    severity = models.PositiveSmallIntegerField(choices=Severity.choices)
    environment = models.CharField(max_length=64, blank=True)

    class Meta:
        abstract = True


class SourceMinute(SourceRollup):
    """Events per source, error type, severity and environment per minute: thresholds read this."""

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


class SourceHour(SourceRollup):
    """Events per source, error type, severity and environment per hour: long charts and totals.

    Kept longer than the minute rollups, so charts over weeks and the ingested-events counter do
    not change when minute detail expires; rows past the hour retention are folded into one row per
    key at FOLDED_HOUR, so totals stay whole.
    """

    FOLDED_HOUR = datetime(1970, 1, 1, tzinfo=UTC)

    hour = models.DateTimeField()
    count = models.PositiveBigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "error_type", "severity", "environment", "hour"], name="source_hour_unique"
            )
        ]
        indexes = [models.Index(fields=["hour"], name="source_hour_time")]


def _aware(value: datetime | str) -> datetime:
    """A timestamp read by raw SQL: SQLite's come back naive, in UTC (or as text)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if timezone.is_aware(value) else value.replace(tzinfo=UTC)


class DigestRequest(models.Model):
    """Whether a digest task is queued and not yet started: one row, shared by every process.

    Each web process asks for a digest after it commits events. Asking enqueues a task only when
    none is waiting, so at low load every commit is digested within milliseconds, and under load
    one task is queued while another digests: batches grow with the load instead of the queue.
    The digest clears the request before it reads, so an event committed after that asks again.
    A request older than STALE (its task lost with a broker) no longer holds asking back.

    Digests start at most every DIGEST_MIN_INTERVAL_SECONDS: at a few hundred events a second a
    digest per commit would spend a core on its fixed cost; waiting for the interval to end
    lets the commits of those milliseconds join one digest.
    """

    STALE_SECONDS = 10

    requested_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True, help_text="When the last digest started.")

    def __str__(self) -> str:
        return f"digest requested at {self.requested_at}" if self.requested_at else "no digest requested"

    @classmethod
    def ask(cls) -> bool:
        """Record a request unless a fresh one is waiting; True when the caller must enqueue the task.

        Raw SQL: the web processes ask after every commit, and the ORM's compiling is ten times the query.
        """
        now = timezone.now()
        stale = now - timedelta(seconds=cls.STALE_SECONDS)
        table = connection.ops.quote_name(cls._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT requested_at FROM {table} WHERE id = 1")
            row = cursor.fetchone()
            if row is not None and row[0] is not None and _aware(row[0]) > stale:
                return False  # a read, not a write: the common case under load takes no lock
            if cls._record(cursor, table, now, stale):
                return True
        return cls.objects.get_or_create(pk=1, defaults={"requested_at": now})[1]  # the row was missing

    @staticmethod
    def _record(cursor, table: str, now: datetime, stale: datetime) -> bool:
        adapt = connection.ops.adapt_datetimefield_value
        with transaction.atomic():
            if connection.vendor == "postgresql":
                # Not worth a WAL flush: after a database crash a lost request is asked again within STALE.
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
            cursor.execute(
                f"UPDATE {table} SET requested_at = %s WHERE id = 1 AND (requested_at IS NULL OR requested_at <= %s)",
                [adapt(now), adapt(stale)],
            )
            return cursor.rowcount == 1

    @classmethod
    def take(cls, *, min_interval: float = 0.0) -> None:
        """The digest starts, once `min_interval` has passed since the last one did: events committed from
        then on need another one."""
        last = cls.objects.filter(pk=1).values_list("started_at", flat=True).first()
        if last is not None:
            wait = min_interval - (timezone.now() - last).total_seconds()
            if wait > 0:
                time.sleep(min(wait, min_interval))  # a rate limit: what commits meanwhile joins this digest
        cls.objects.filter(pk=1).update(requested_at=None, started_at=timezone.now())


class LiveMessage(models.Model):
    """One message of the live stream, recorded in the transaction that caused it.

    The increasing id is the stream's position: a browser that reconnects with the last id
    it saw is sent every later message, in order. Old messages expire on a schedule.
    """

    topic = models.CharField(max_length=64)  # "breaker.transition", "incident.updated", ...
    key = models.CharField(max_length=250, help_text="What the message is about; bursts are coalesced per key.")
    source = models.ForeignKey(Source, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    incident = models.ForeignKey(Incident, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    payload = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.id} {self.topic} {self.key}"


class NotificationChannel(models.Model):
    """Where alerts are sent: a webhook, Slack, PagerDuty, email or an Alertmanager receiver."""

    class Kind(models.TextChoices):
        WEBHOOK = "webhook", "Webhook (JSON)"
        SLACK = "slack", "Slack incoming webhook"
        PAGERDUTY = "pagerduty", "PagerDuty Events API v2"
        EMAIL = "email", "Email"
        ALERTMANAGER = "alertmanager", "Alertmanager-compatible webhook"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    config = models.JSONField(default=dict, blank=True, help_text="Settings of the kind: url, routing_key, to ...")
    min_severity = models.PositiveSmallIntegerField(
        choices=Severity.choices, default=Severity.INFO, help_text="Alerts below this severity are not sent here."
    )
    default_for = models.JSONField(
        default=list,
        blank=True,
        help_text='Severities (e.g. ["CRITICAL", "HIGH"]) whose alerts come here when their rule names no channel.',
    )
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=500, blank=True, help_text="Why the console disabled it.")
    consecutive_permanent_failures = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=1000, blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=["webhook", "slack", "pagerduty", "email", "alertmanager"]),
                name="channel_kind_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def breaker_name(self) -> str:
        """Deliveries to this channel go through this breaker (configurable in admin under that name)."""
        return f"notify:{self.name.replace('/', '-')}"  # a breaker name is a URL segment

    def clean(self) -> None:
        try:
            transport_class(self.kind).validate(self.config)
        except ConfigError as error:
            raise ValidationError({"config": f"{error.field}: {error.reason}"}) from error
        if not isinstance(self.default_for, list):
            raise ValidationError({"default_for": f"must be a list of severities from {Severity.names}"})
        unknown = [name for name in self.default_for if name not in Severity.names]
        if unknown:
            raise ValidationError({"default_for": f"unknown severities {unknown}; use {Severity.names}"})

    def transport(self) -> Transport:
        """The transport that sends this channel's messages; TransportError (permanent) when it cannot send at all."""
        if not self.enabled:
            raise TransportError(f"channel disabled: {self.disabled_reason or 'by an operator'}", permanent=True)
        try:
            return transport_class(self.kind)(self.config)
        except ConfigError as error:  # saved before a rule tightened, or edited outside admin
            raise TransportError(f"channel config refused: {error.field}: {error.reason}", permanent=True) from error

    def notify(self, message: Message) -> Delivery:
        """Make one delivery attempt through this channel's breaker, raising TransportError when it fails.

        A channel that cannot send at all fails before the breaker: that is no failure of the receiver.
        """
        transport = self.transport()
        try:
            return breaker(self.breaker_name).call(transport.notify, message)
        except CallNotPermitted as refused:
            raise TransportError(
                f"circuit breaker {self.breaker_name} is open", permanent=False, retry_after=refused.remaining_wait
            ) from refused


# The longest alert rule window: 90 days of minute rollups.
MAX_WINDOW_MINUTES = 90 * 24 * 60


class AlertRule(models.Model):
    """When to tell someone: a windowed value of a selection compared with thresholds."""

    GROUP_KEYS = ("source", "error_type", "incident")
    TEMPLATE_FIELDS = ("summary_template", "runbook_template")

    class Target(models.TextChoices):
        EVENTS = "events", "Events matching the filters"
        ABSENCE = "absence", "No events (or heartbeats) for longer than the window"
        BREAKERS = "breakers", "Circuit breakers open"
        DEGRADATION = "degradation", "Degradation level"

    class Value(models.TextChoices):
        COUNT = "count", "Event count in the window"
        RATE = "rate", "Events per minute over the window"
        INCIDENTS = "incidents", "Distinct incidents in the window"
        USERS = "users", "Distinct users in the window"
        RATIO = "ratio", "Percent of the source's events in the window"

    class Comparator(models.TextChoices):
        GT = "gt", ">"
        GTE = "gte", ">="
        LT = "lt", "<"
        LTE = "lte", "<="

    name = models.CharField(max_length=100, unique=True)
    enabled = models.BooleanField(default=True)
    description = models.TextField(blank=True)
    target = models.CharField(max_length=16, choices=Target.choices, default=Target.EVENTS)
    # Filters (empty: any).
    source = models.ForeignKey(Source, null=True, blank=True, on_delete=models.CASCADE, related_name="alert_rules")
    error_type = models.ForeignKey(ErrorType, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    category = models.CharField(max_length=16, choices=Category.choices, blank=True)
    min_severity = models.PositiveSmallIntegerField(choices=Severity.choices, null=True, blank=True)
    environment = models.CharField(max_length=64, blank=True)
    breaker = models.CharField(max_length=200, blank=True, help_text="Breaker name for breaker rules; empty: any.")
    heartbeat = models.BooleanField(
        default=False, help_text="Absence rules: watch the source's heartbeat URL instead of its events."
    )
    value = models.CharField(max_length=16, choices=Value.choices, default=Value.COUNT)
    window_minutes = models.PositiveIntegerField(
        default=5,
        help_text="1 = per minute, 60 = per hour, 1440 = per day; any whole number of minutes up to 90 days.",
    )
    comparator = models.CharField(max_length=4, choices=Comparator.choices, default=Comparator.GT)
    warning_threshold = models.FloatField(null=True, blank=True)
    critical_threshold = models.FloatField(null=True, blank=True)
    resolve_threshold = models.FloatField(
        null=True, blank=True, help_text="Resolves once the value is back past this; empty: the firing threshold."
    )
    pending_for = models.PositiveIntegerField(default=0, help_text="Seconds the condition must hold before firing.")
    keep_firing_for = models.PositiveIntegerField(default=0, help_text="Seconds to keep firing after it stops.")
    cooldown = models.PositiveIntegerField(default=3600, help_text="Seconds between repeat notifications.")
    group_by = models.JSONField(default=list, blank=True, help_text='Any of "source", "error_type", "incident".')
    send_resolved = models.BooleanField(default=True)
    channels = models.ManyToManyField(NotificationChannel, blank=True, related_name="rules")
    summary_template = models.CharField(
        max_length=500, default="{{ rule }}: {{ value }} (threshold {{ threshold }})", help_text="Django template."
    )
    runbook_template = models.CharField(max_length=500, blank=True, help_text="Django template: text or URL.")
    evaluated_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(window_minutes__gte=1, window_minutes__lte=MAX_WINDOW_MINUTES), name="rule_window_range"
            ),
            models.CheckConstraint(
                condition=~Q(target="events")
                | Q(warning_threshold__isnull=False)
                | Q(critical_threshold__isnull=False),
                name="rule_has_a_threshold",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """Thresholds in order, a resolve threshold on the right side, known group keys, templates that render."""
        errors: dict[str, str] = {}
        if self.window_minutes is not None and not 1 <= self.window_minutes <= MAX_WINDOW_MINUTES:
            errors["window_minutes"] = f"must be from 1 to {MAX_WINDOW_MINUTES} minutes (90 days)"
        elif self.window_minutes is not None and self.enabled:
            kept = RetentionPolicy.current().minute_rollup_days
            if self.window_minutes > kept * 1440:
                errors["window_minutes"] = (
                    f"must be at most {kept * 1440} minutes: minute rollups, which windows read, are kept "
                    f"{kept} days (retention policy)"
                )
        warning, critical, resolve = self.warning_threshold, self.critical_threshold, self.resolve_threshold
        if self.target in ("events", "breakers") and warning is None and critical is None:
            errors["warning_threshold"] = "set a warning or a critical threshold (or both)"
        rising = self.comparator in ("gt", "gte")
        if warning is not None and critical is not None and (critical < warning if rising else critical > warning):
            errors["critical_threshold"] = f"must be {'at or above' if rising else 'at or below'} the warning threshold"
        firing = self.firing_threshold
        if resolve is not None and firing is not None and (resolve > firing if rising else resolve < firing):
            side = "at or below" if rising else "at or above"
            errors["resolve_threshold"] = f"must be {side} the firing threshold {firing} (the value resolves past it)"
        if (
            self.value == "ratio"
            and self.target == "events"
            and any(t is not None and t > 100 for t in (warning, critical))
        ):
            errors["critical_threshold" if critical and critical > 100 else "warning_threshold"] = (
                "a ratio is a percentage: at most 100"
            )
        errors.update(self._group_by_errors())
        for field in self.TEMPLATE_FIELDS:
            problem = self.template_error(getattr(self, field))
            if problem:
                errors[field] = problem
        if errors:
            raise ValidationError(errors)

    def _group_by_errors(self) -> dict[str, str]:
        errors: dict[str, str] = {}
        group_by = self.group_by if isinstance(self.group_by, list) else None
        unknown = [key for key in group_by or [] if key not in self.GROUP_KEYS]
        if group_by is None or unknown:
            errors["group_by"] = f"unknown group keys {unknown}; use any of {list(self.GROUP_KEYS)}"
        if self.value == "ratio" and "incident" in (group_by or []):
            errors["group_by"] = "a ratio compares a source's events: group it by source or error type, not incident"
        if self.target == "absence" and self.group_by:
            errors["group_by"] = "absence rules watch one source or all sources; leave group_by empty"
        if self.target == "absence" and self.heartbeat and self.source_id is None:
            errors["source"] = "a heartbeat rule watches one source's heartbeat URL: choose the source"
        return errors

    @property
    def firing_threshold(self) -> float | None:
        """The threshold a value must pass to fire at all: the nearer of warning and critical, None without either."""
        thresholds = [t for t in (self.warning_threshold, self.critical_threshold) if t is not None]
        if not thresholds:
            return None
        return min(thresholds) if self.comparator in ("gt", "gte") else max(thresholds)

    @classmethod
    def template_error(cls, text: str) -> str | None:
        """Why `text` cannot be rendered as a summary or runbook template, or None."""
        return alert_template_problem(text, cls._template_context_example())

    @classmethod
    def _template_context_example(cls) -> dict:
        # The longest values an alert can carry, so that a template within the bounds here stays within them at send.
        name_length = cls._meta.get_field("name").max_length
        breaker_length = cls._meta.get_field("breaker").max_length
        labels = {"source": 10**9, "error_type": 10**9, "incident": 10**12, "breaker": "b" * breaker_length}
        return {
            "rule": "r" * name_length,
            "value": 123456789.125,
            "threshold": 123456789.125,
            "severity": "CRITICAL",
            "labels": {**labels, "level": "EMERGENCY"},
            "state": "acknowledged",
        }


class Alert(models.Model):
    """One rule's state for one group (a source, an error type, an incident, or everything)."""

    class State(models.TextChoices):
        INACTIVE = "inactive"
        PENDING = "pending"
        FIRING = "firing"
        RESOLVED = "resolved"

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    group_key = models.CharField(max_length=200, blank=True)
    labels = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.INACTIVE)
    severity = models.PositiveSmallIntegerField(choices=Severity.choices, null=True, blank=True)
    value = models.FloatField(null=True, blank=True)
    active_at = models.DateTimeField(null=True, blank=True, help_text="When the condition started to hold.")
    fired_at = models.DateTimeField(null=True, blank=True)
    last_met_at = models.DateTimeField(null=True, blank=True)
    last_notified_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.CharField(max_length=150, blank=True)
    resolved_by = models.CharField(max_length=150, blank=True, help_text="Who resolved it by hand; empty: the rule.")
    history = models.CharField(max_length=21, blank=True, help_text="Last evaluations, newest last: 1 met, 0 not.")
    flapping = models.BooleanField(default=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["rule", "group_key"], name="alert_per_rule_group")]
        indexes = [models.Index(fields=["state", "rule"], name="alert_state_rule")]

    def __str__(self) -> str:
        return f"{self.rule} {self.group_key}".strip()

    @property
    def was_notified(self) -> bool:
        """Whether a firing notification went out in this firing episode."""
        return bool(self.last_notified_at and self.fired_at and self.last_notified_at >= self.fired_at)

    def live_payload(self) -> dict:
        """What the live stream says about this alert."""
        return {
            "id": self.pk,
            "rule": self.rule.name,
            "state": self.state,
            "severity": self.severity,
            "value": self.value,
            "labels": self.labels,
            "flapping": self.flapping,
            "acknowledged": self.acknowledged_at is not None,
        }


class Silence(models.Model):
    """Holds notifications of matching alerts for a time, or every week in a maintenance window."""

    rule = models.ForeignKey(AlertRule, null=True, blank=True, on_delete=models.CASCADE, related_name="silences")
    matchers = models.JSONField(
        default=dict, blank=True, help_text='Alert labels that must all match, e.g. {"source": "checkout"}.'
    )
    starts_at = models.DateTimeField(default=timezone.now)
    ends_at = models.DateTimeField()
    weekdays = models.JSONField(
        default=list, blank=True, help_text="Recurring: ISO weekdays (1 = Monday) on which the window applies."
    )
    daily_start = models.TimeField(null=True, blank=True, help_text="Recurring: start of the window each day (UTC).")
    daily_minutes = models.PositiveIntegerField(null=True, blank=True, help_text="Recurring: window length.")
    comment = models.CharField(max_length=500)
    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(ends_at__gt=models.F("starts_at")), name="silence_ends_after_start"),
            models.CheckConstraint(
                condition=Q(daily_start__isnull=True, daily_minutes__isnull=True)
                | Q(daily_start__isnull=False, daily_minutes__gte=1, daily_minutes__lte=1440),
                name="silence_recurrence_whole",
            ),
        ]

    def __str__(self) -> str:
        return self.comment

    def clean(self) -> None:
        """It ends after it starts, matchers are label values, a daily window is whole."""
        errors: dict[str, str] = {}
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            errors["ends_at"] = "must be after the start"
        matchers = self.matchers
        if not isinstance(matchers, dict) or not all(
            isinstance(value, str | int | float) and not isinstance(value, bool) for value in matchers.values()
        ):
            errors["matchers"] = 'must be a JSON object of label names to values, e.g. {"source": "3"}'
        weekdays = self.weekdays
        if not isinstance(weekdays, list) or not all(
            isinstance(day, int) and not isinstance(day, bool) and 1 <= day <= 7 for day in weekdays
        ):
            errors["weekdays"] = "must be a JSON list of ISO weekdays from 1 (Monday) to 7 (Sunday)"
        start, minutes = self.daily_start, self.daily_minutes
        if (start is None) != (minutes is None):
            errors["daily_minutes"] = "a daily window needs both its start and its length"
        elif minutes is not None and not 1 <= minutes <= 1440:
            errors["daily_minutes"] = "must be from 1 to 1440 minutes"
        elif weekdays and start is None and "weekdays" not in errors:
            errors["daily_start"] = "weekdays apply to a daily window: give its start and length"
        if errors:
            raise ValidationError(errors)

    def applies_to(self, alert: Alert, now: datetime) -> bool:
        """Whether this silence holds `alert`'s notifications at `now` (rule, label matchers, recurring window)."""
        if self.rule_id and self.rule_id != alert.rule_id:
            return False
        labels = {key: str(value) for key, value in (alert.labels or {}).items()}
        labels["rule"] = alert.rule.name
        if any(labels.get(key) != str(value) for key, value in (self.matchers or {}).items()):
            return False
        return self.in_daily_window(now)

    def in_daily_window(self, now: datetime) -> bool:
        """Whether `now` falls in the silence's daily window on one of its weekdays; always, without a window."""
        if self.daily_start is None:
            return True
        for days_back in (0, 1):  # a window that started yesterday may run past midnight
            day = (now - timedelta(days=days_back)).date()
            if self.weekdays and day.isoweekday() not in self.weekdays:
                continue
            start = datetime.combine(day, self.daily_start, tzinfo=now.tzinfo)
            if start <= now < start + timedelta(minutes=self.daily_minutes):
                return True
        return False


class Notification(models.Model):
    """One delivery attempt of one alert message to one channel."""

    class Status(models.TextChoices):
        QUEUED = "queued"  # waiting for next_attempt_at
        SENDING = "sending"  # claimed by a worker until lease_until
        SENT = "sent"
        RETRIED = "retried"  # failed; the next attempt is a new row
        FAILED = "failed"  # failed for good
        HELD = "held"  # silenced, flapping or acknowledged when its turn came

    alert = models.ForeignKey(Alert, null=True, blank=True, on_delete=models.CASCADE, related_name="notifications")
    channel = models.ForeignKey(NotificationChannel, on_delete=models.CASCADE, related_name="notifications")
    event = models.CharField(max_length=16)  # firing, resolved, acknowledged, test
    severity = models.PositiveSmallIntegerField(choices=Severity.choices)
    message = models.JSONField(help_text="What is sent, rendered when the alert changed.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    attempt = models.PositiveSmallIntegerField(default=1)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    lease_until = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response = models.CharField(max_length=1000, blank=True)
    error = models.CharField(max_length=1000, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="notification_due"),
            models.Index(fields=["alert", "-created_at"], name="notification_alert_time"),
        ]

    def __str__(self) -> str:
        return f"{self.event} to {self.channel} (attempt {self.attempt})"


class RetentionPolicy(models.Model):
    """How long the console keeps each kind of data: one row, edited in admin, read by every purge."""

    event_days = models.PositiveIntegerField(default=30, help_text="Days events are kept, unless a source says.")
    events_per_incident = models.PositiveIntegerField(
        null=True,
        blank=True,
        default=10_000,
        help_text="Events stored per incident at most: the newest ones, plus the first few; empty keeps all. "
        "The incident's counts stay the totals seen.",
    )
    first_events_per_incident = models.PositiveIntegerField(
        default=5, help_text="How many of an incident's first events the cap keeps, so its page shows how it began."
    )
    minute_rollup_days = models.PositiveIntegerField(
        default=14, help_text="Days per-minute counts are kept: alert rule windows and day charts read them."
    )
    hour_rollup_days = models.PositiveIntegerField(
        default=400, help_text="Days per-hour counts are kept: charts over weeks read them."
    )
    notification_days = models.PositiveIntegerField(
        default=90, help_text="Days finished notification attempts are kept (waiting ones are never purged)."
    )
    timeline_days = models.PositiveIntegerField(default=365, help_text="Days incident timeline entries are kept.")
    transition_days = models.PositiveIntegerField(default=90, help_text="Days breaker transitions are kept.")
    window_report_days = models.PositiveIntegerField(
        default=7, help_text="Days a process's last breaker window report is kept after it stops reporting."
    )
    delete_expired_incidents = models.BooleanField(
        default=False,
        help_text="Delete incidents with no stored event left that are resolved and have seen no event for "
        "longer than their event retention, with their rollups and timeline.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    # Limits a value must keep, and why (said in the error naming the field).
    DAY_FIELDS = (
        "event_days",
        "minute_rollup_days",
        "hour_rollup_days",
        "notification_days",
        "timeline_days",
        "transition_days",
        "window_report_days",
    )
    MIN_MINUTE_ROLLUP_DAYS = 2  # windows up to a day read minute rollups, and the digest writes the last minutes
    MIN_HOUR_ROLLUP_DAYS = MAX_WINDOW_MINUTES // 1440  # the longest chart or summary window reads hour rollups
    MIN_EVENTS_PER_INCIDENT = 10

    class Meta:
        verbose_name = "retention policy"
        verbose_name_plural = "retention policy"
        constraints = [models.CheckConstraint(condition=Q(id=1), name="retention_policy_single_row")]

    def __str__(self) -> str:
        return "Retention policy"

    def save(self, *args, **kwargs) -> None:
        self.pk = 1  # one policy: whatever form or API call saves it, it is this row
        super().save(*args, **kwargs)

    @classmethod
    def current(cls) -> "RetentionPolicy":
        """The policy in force (its defaults, if the row is gone)."""
        return cls.objects.filter(pk=1).first() or cls()

    def clean(self) -> None:
        """Every period from one day to ten years, minute rollups within what alert rules read and below hours."""
        errors: dict[str, str] = {}
        for name in self.DAY_FIELDS:
            value = getattr(self, name)
            if value is None or not 1 <= value <= MAX_RETENTION_DAYS:
                errors[name] = f"must be from 1 to {MAX_RETENTION_DAYS} days"
        errors.update(self._rollup_errors(errors))
        if self.events_per_incident is not None and self.events_per_incident < self.MIN_EVENTS_PER_INCIDENT:
            errors["events_per_incident"] = f"must be at least {self.MIN_EVENTS_PER_INCIDENT} (or empty: no cap)"
        first = self.first_events_per_incident
        if first is None or not 0 <= first <= 100:
            errors["first_events_per_incident"] = "must be from 0 to 100"
        elif self.events_per_incident is not None and first >= self.events_per_incident:
            errors["first_events_per_incident"] = f"must be below the cap of {self.events_per_incident} events"
        if errors:
            raise ValidationError(errors)

    def _rollup_errors(self, errors: dict) -> dict[str, str]:
        minutes, hours = self.minute_rollup_days, self.hour_rollup_days
        found: dict[str, str] = {}
        if "minute_rollup_days" not in errors:
            longest = self.longest_rule_window_days()
            floor = max(self.MIN_MINUTE_ROLLUP_DAYS, longest)
            if minutes < floor:
                why = (
                    f"an alert rule's window covers {longest} days"
                    if longest > self.MIN_MINUTE_ROLLUP_DAYS
                    else ("day-long windows read them")
                )
                found["minute_rollup_days"] = f"must be at least {floor} days: {why}"
        if "hour_rollup_days" not in errors:
            if hours < self.MIN_HOUR_ROLLUP_DAYS:
                found["hour_rollup_days"] = (
                    f"must be at least {self.MIN_HOUR_ROLLUP_DAYS} days: charts and summaries cover up to 90 days"
                )
            elif "minute_rollup_days" not in errors and "minute_rollup_days" not in found and hours <= minutes:
                found["hour_rollup_days"] = f"must be longer than the minute rollups' {minutes} days"
        return found

    @staticmethod
    def longest_rule_window_days() -> int:
        """Whole days of minute rollups the longest enabled alert rule window reads."""
        longest = AlertRule.objects.filter(enabled=True).aggregate(m=models.Max("window_minutes"))["m"] or 0
        return -(-longest // 1440)

    def event_days_for(self, source: Source) -> int:
        return source.event_retention_days or self.event_days


class PurgeRun(models.Model):
    """One application of the retention policy: when, by whom, what it removed and how long it took.

    A run is claimed by inserting a running row: at most one can exist (a partial unique
    constraint), so the schedule and an operator's `manage.py purge` never purge side by side.
    A run whose heartbeat stopped (its process died) is marked interrupted by the next one.
    """

    class Status(models.TextChoices):
        RUNNING = "running"
        FINISHED = "finished"  # every step done
        PARTIAL = "partial"  # stopped at its time budget; the next run goes on
        INTERRUPTED = "interrupted"
        FAILED = "failed"

    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(default=timezone.now)
    trigger = models.CharField(max_length=16, help_text="schedule or command")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    removed = models.JSONField(default=dict, blank=True, help_text="Rows removed per policy step.")
    partitions_dropped = models.PositiveIntegerField(default=0)
    bytes_freed = models.PositiveBigIntegerField(default=0, help_text="Estimated from the sizes of what went.")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["status"], condition=Q(status="running"), name="purge_run_one_at_a_time")
        ]

    def __str__(self) -> str:
        return f"purge of {self.started_at:%Y-%m-%d %H:%M:%S} ({self.status})"

    @property
    def duration(self) -> timedelta | None:
        return self.finished_at - self.started_at if self.finished_at else None

    @property
    def rows_removed(self) -> int:
        return sum(self.removed.values())
