"""What every notification transport shares: the message, the outcome, the error, the base class and the registry.

Transports take plain data and never touch the models: the caller builds a `Message` from an alert,
calls `notify()` once per attempt, records each attempt as a `Notification` row, and retries with
backoff while the `TransportError` it gets is not permanent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from resilience.exceptions import ConfigError, Severity

EVENTS = ("firing", "resolved", "acknowledged", "test")
# The severity levels as a message carries them: lower-case names, worst first.
SEVERITIES = tuple(level.name.lower() for level in reversed(Severity))

DEFAULT_TRANSPORTS = {
    "webhook": "incidents.alerting.transports.webhook.WebhookTransport",
    "slack": "incidents.alerting.transports.slack.SlackTransport",
    "pagerduty": "incidents.alerting.transports.pagerduty.PagerDutyTransport",
    "email": "incidents.alerting.transports.email.EmailTransport",
    "alertmanager": "incidents.alerting.transports.alertmanager.AlertmanagerTransport",
}


def isoformat(value: datetime | None) -> str | None:
    """Return the moment as ISO 8601 in UTC with a Z suffix, reading a naive datetime as UTC."""
    if value is None:
        return None
    value = value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return value.isoformat().replace("+00:00", "Z")


def finite(value: float | None) -> float | None:
    """Return the number, or None when it is missing, NaN or infinite (JSON has no spelling for those)."""
    if value is None or not math.isfinite(value):
        return None
    return value


@dataclass(frozen=True, slots=True)
class Message:
    """What a channel is told about one alert."""

    event: str  # "firing" | "resolved" | "acknowledged" | "test"
    dedup_key: str  # stable per alert (rule + group key): PagerDuty dedup_key, Alertmanager fingerprint
    rule: str
    severity: str  # "critical" | "high" | "medium" | "low" | "info"
    summary: str
    runbook: str = ""
    value: float | None = None
    threshold: float | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    url: str = ""

    def __post_init__(self) -> None:
        # A wrong event or severity is a bug in the caller: fail here, not as a KeyError inside a transport.
        if self.event not in EVENTS:
            raise ValueError(f"event must be one of {', '.join(EVENTS)}, not {self.event!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}, not {self.severity!r}")
        if not self.dedup_key:
            raise ValueError("dedup_key must not be empty")

    def as_dict(self) -> dict[str, Any]:
        """Return every field as JSON-ready data: datetimes in ISO 8601, labels as a plain dict."""
        return {
            "event": self.event,
            "dedup_key": self.dedup_key,
            "rule": self.rule,
            "severity": self.severity,
            "summary": self.summary,
            "runbook": self.runbook,
            "value": finite(self.value),
            "threshold": finite(self.threshold),
            "labels": {str(key): str(value) for key, value in self.labels.items()},
            "started_at": isoformat(self.started_at),
            "ended_at": isoformat(self.ended_at),
            "url": self.url,
        }


@dataclass(frozen=True, slots=True)
class Delivery:
    """What one successful attempt got back, for the notification log."""

    status_code: int | None  # HTTP status, or None for email
    response: str  # the first 1,000 characters of the answer


def _rebuild_error(message: str, permanent: bool, status_code: int | None, retry_after: float | None):
    return TransportError(message, permanent=permanent, status_code=status_code, retry_after=retry_after)


class TransportError(Exception):
    """One attempt failed; `permanent` says whether trying again can help."""

    def __init__(
        self, message: str, *, permanent: bool, status_code: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.status_code = status_code
        self.retry_after = retry_after

    def __reduce__(self) -> tuple:
        # The default pickling replays only `args`, which the keyword-only constructor cannot take;
        # task queues pickle exceptions across processes.
        return (_rebuild_error, (self.message, self.permanent, self.status_code, self.retry_after))


@dataclass(frozen=True, slots=True)
class ConfigField:
    """One key of a channel's config, described for the admin form's help text.

    A `secret` key (a signing secret, a routing key, a URL that is itself a credential,
    headers carrying tokens) is never shown back: forms display it masked.
    """

    name: str
    required: bool
    help: str
    secret: bool = False


class Transport:
    """Deliver messages to one channel; subclasses set `kind`, `label`, `config_fields` and implement `notify`."""

    kind: ClassVar[str]
    label: ClassVar[str]
    config_fields: ClassVar[tuple[ConfigField, ...]] = ()

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = type(self).clean(config)

    @classmethod
    def validate(cls, config: Mapping[str, Any]) -> None:
        """Raise ConfigError naming the first bad key of the config."""
        cls.clean(config)

    @classmethod
    def clean(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        """Return the config checked and normalised, or raise ConfigError naming the bad key."""
        if not isinstance(config, Mapping):
            raise ConfigError("config", "must be a mapping of setting names to values")
        # Admin forms submit empty optional fields as "" or None: they mean "not set".
        present = {key: value for key, value in config.items() if value is not None and value != ""}
        known = [spec.name for spec in cls.config_fields]
        for key in present:
            if key not in known:
                raise ConfigError(str(key), f"is not a {cls.kind} setting; expected one of {', '.join(known)}")
        for spec in cls.config_fields:
            if spec.required and spec.name not in present:
                raise ConfigError(spec.name, "is required")
        return cls.clean_fields(present)

    @classmethod
    def clean_fields(cls, config: dict[str, Any]) -> dict[str, Any]:
        """Return the config with each key checked and normalised; the base class checks only presence."""
        return config

    def notify(self, message: Message) -> Delivery:
        """Make one delivery attempt, raising TransportError when it fails."""
        raise NotImplementedError


def transport_class(kind: str) -> type[Transport]:
    """Return the transport class configured for a kind in NOTIFICATION_TRANSPORTS."""
    paths = getattr(settings, "NOTIFICATION_TRANSPORTS", DEFAULT_TRANSPORTS)
    if kind not in paths:
        raise ConfigError("kind", f"must be one of {', '.join(paths)}, not {kind!r}")
    try:
        cls = import_string(paths[kind])
    except ImportError as exc:
        raise ImproperlyConfigured(f"NOTIFICATION_TRANSPORTS[{kind!r}]: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Transport)):
        raise ImproperlyConfigured(f"NOTIFICATION_TRANSPORTS[{kind!r}] must name a Transport subclass")
    return cls


# What forms show in place of a secret value; submitting it back keeps the stored value.
MASK = "********"


def masked_config(kind: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """`config` with the kind's secret values replaced by MASK (each value of a mapping, like headers)."""
    secrets = _secret_keys(kind)
    return {key: _mask(value) if key in secrets else value for key, value in config.items()}


def unmasked_config(kind: str, submitted: Mapping[str, Any], stored: Mapping[str, Any]) -> dict[str, Any]:
    """`submitted` with every MASK put back to the value stored under the same key."""
    secrets = _secret_keys(kind)
    return {key: _unmask(value, stored.get(key)) if key in secrets else value for key, value in submitted.items()}


def _secret_keys(kind: str) -> set[str]:
    try:
        return {field.name for field in transport_class(kind).config_fields if field.secret}
    except (ConfigError, ImproperlyConfigured):
        return set()


def _mask(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: MASK for key in value}
    return MASK if value not in (None, "") else value


def _unmask(value: Any, stored: Any) -> Any:
    if isinstance(value, Mapping) and isinstance(stored, Mapping):
        return {key: stored.get(key, item) if item == MASK else item for key, item in value.items()}
    return stored if value == MASK and stored is not None else value


def transport_for(kind: str, config: Mapping[str, Any]) -> Transport:
    """Return a transport of the kind built from the config, raising ConfigError if either is wrong."""
    return transport_class(kind)(config)
