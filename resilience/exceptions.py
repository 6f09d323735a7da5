"""Exceptions applications raise, and the resilience runtime raises, with structured context.

Every class carries an `error_code` (the code applications know it by, e.g. NETWORK_ERROR),
a default `error_type` (the console's error-type catalog code, e.g. NETWORK_CONNECTION, which the
catalog maps to a category and to transient/permanent) and a default severity. `to_dict()` gives the
serialised error's shape: message, error_code, severity, context, timestamp (plus error_type and cause).

Pure Python: no Django, so applications can raise these without the console installed.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    """The console's severity levels, lowest first: the one definition both apps derive theirs from.

    The value is the level's name; `rank` is the integer the console stores (a model field's value),
    so that the worst of several severities is their MAX.
    """

    INFO = "INFO", 10
    LOW = "LOW", 20
    MEDIUM = "MEDIUM", 30
    HIGH = "HIGH", 40
    CRITICAL = "CRITICAL", 50

    rank: int

    def __new__(cls, name: str, rank: int) -> Severity:
        level = str.__new__(cls, name)
        level._value_ = name
        level.rank = rank
        return level

    @classmethod
    def parse(cls, value: str) -> Severity:
        """Return the level a name means, accepting the logging names WARNING and ERROR."""
        name = str(value).upper()
        name = _SEVERITY_ALIASES.get(name, name)
        try:
            return cls(name)
        except ValueError:
            allowed = ", ".join([*cls, *_SEVERITY_ALIASES])
            raise ValueError(f"severity must be one of {allowed}, not {value!r}") from None


# Applications log with WARNING/ERROR; the console stores MEDIUM/HIGH (as the default error-type catalog does).
_SEVERITY_ALIASES = {"WARNING": Severity.MEDIUM.value, "ERROR": Severity.HIGH.value}


def _restore(cls: type[ApplicationError], args: tuple, state: dict[str, Any]) -> ApplicationError:
    """Rebuild a pickled error without calling its keyword-only constructor."""
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


class ApplicationError(Exception):
    """Base of the hierarchy: a message with a code, a severity, a context dict, a timestamp and a cause."""

    error_code: str = "APPLICATION_ERROR"
    error_type: str = "UNEXPECTED"
    default_severity: Severity = Severity.HIGH
    component: str | None = None
    # Named context entries: always present in `context` (None when not given) and readable as attributes.
    context_fields: tuple[str, ...] = ()

    def __init__(
        self,
        message: str,
        *,
        error_code: str | None = None,
        error_type: str | None = None,
        severity: str | None = None,
        context: dict[str, Any] | None = None,
        cause: BaseException | None = None,
        timestamp: dt.datetime | None = None,
        **fields: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.error_code = error_code or type(self).error_code
        # Only an explicit code lands in the instance dict: the catalog's classifier prefers it over
        # an HTTP status, and falls back to the class's code after the status.
        if error_type is not None:
            self.error_type = error_type
        self.severity = Severity.parse(severity) if severity is not None else self.default_severity
        self.timestamp = timestamp or dt.datetime.now(dt.UTC)
        if cause is not None:
            self.__cause__ = cause
        self.context = {name: None for name in self.context_fields} | (context or {}) | fields
        if self.component is not None:
            self.context.setdefault("component", self.component)
        for name in self.context_fields:
            setattr(self, name, self.context[name])

    @property
    def cause(self) -> BaseException | None:
        """Return the exception this one was raised from, whether given as `cause=` or by `raise ... from`."""
        return self.__cause__

    def to_dict(self) -> dict[str, Any]:
        """Return the serialised error (message, code, severity, context, timestamp), catalog code and cause."""
        cause = self.cause
        return {
            "message": self.message,
            "error_code": self.error_code,
            "error_type": self.error_type,
            "severity": self.severity.value,
            "context": dict(self.context),
            "timestamp": self.timestamp.astimezone(dt.UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z",
            "cause": f"{type(cause).__name__}: {cause}" if cause is not None else None,
        }

    def __reduce__(self) -> tuple:
        # Exception's default pickling replays only `args`, which the keyword-only constructor
        # cannot take; errors cross process boundaries (task queues), so keep the whole state.
        return (_restore, (type(self), self.args, self.__dict__))


class NetworkError(ApplicationError):
    """A remote endpoint could not be reached or did not answer properly."""

    error_code = "NETWORK_ERROR"
    error_type = "NETWORK_CONNECTION"
    component = "network"
    context_fields = ("url", "status_code", "timeout")


class NetworkTimeoutError(NetworkError):
    """A remote endpoint did not answer in time."""

    error_code = "NETWORK_TIMEOUT"
    error_type = "NETWORK_TIMEOUT"
    default_severity = Severity.MEDIUM


class DnsResolutionError(NetworkError):
    """A host name could not be resolved."""

    error_code = "NETWORK_DNS"
    error_type = "NETWORK_DNS"
    context_fields = (*NetworkError.context_fields, "host")


class ApiError(ApplicationError):
    """A remote API answered with an error; its HTTP status, when known, decides the error type."""

    error_code = "API_ERROR"
    error_type = "API_ERROR"
    default_severity = Severity.MEDIUM
    component = "api"
    context_fields = ("service", "endpoint", "status_code")


class BrokerError(ApiError):
    """A broker or exchange refused or failed an order."""

    error_code = "BROKER_ERROR"
    default_severity = Severity.HIGH
    component = "broker"
    context_fields = ("broker_type", "symbol", "order_type", "status_code")


class RateLimitError(ApiError):
    """A remote API rate-limited us; `retry_after` (seconds or an HTTP-date) says when to come back."""

    error_code = "RATE_LIMIT_EXCEEDED"
    error_type = "API_RATE_LIMIT"
    context_fields = (*ApiError.context_fields, "retry_after")

    def __init__(self, message: str = "Rate limit exceeded", **kwargs: Any) -> None:
        kwargs.setdefault("status_code", 429)
        super().__init__(message, **kwargs)


class DataFeedError(ApplicationError):
    """A data source had no data, or not the data asked for."""

    error_code = "DATA_FEED_ERROR"
    error_type = "DATA_MISSING"
    default_severity = Severity.MEDIUM
    component = "data_feed"
    context_fields = ("data_source", "symbol", "interval")


class DataValidationError(ApplicationError):
    """Data failed validation; retrying the same data will not help."""

    error_code = "VALIDATION_ERROR"
    error_type = "DATA_VALIDATION"
    default_severity = Severity.MEDIUM
    component = "validation"
    context_fields = ("field", "value", "invalid_rows")


class StrategyError(ApplicationError):
    """Application logic (a trading strategy, a pipeline step) failed while processing."""

    error_code = "STRATEGY_ERROR"
    error_type = "PROCESSING_ERROR"
    component = "strategy"
    context_fields = ("strategy_name",)


class StorageError(ApplicationError):
    """Reading or writing storage failed; `operation` ("read" or "write") picks the error type."""

    error_code = "STORAGE_ERROR"
    error_type = "STORAGE_WRITE"
    component = "storage"
    context_fields = ("path", "operation")

    def __init__(self, message: str, *, operation: str | None = None, **kwargs: Any) -> None:
        if operation == "read":
            kwargs.setdefault("error_type", "STORAGE_READ")
        super().__init__(message, operation=operation, **kwargs)


class ConfigurationError(ApplicationError):
    """A setting is missing or wrong."""

    error_code = "CONFIGURATION_ERROR"
    error_type = "CONFIGURATION_ERROR"
    component = "configuration"
    context_fields = ("setting",)


class ConfigError(ConfigurationError, ValueError):
    """A configuration value is invalid: names the field and the limit it broke."""

    context_fields = ("field",)

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", field=field, setting=field)
        self.reason = message


class RecoveryError(ApplicationError):
    """A recovery strategy (fallback, degrade, restart) failed itself."""

    error_code = "RECOVERY_ERROR"
    error_type = "INTERNAL"
    component = "recovery"
    context_fields = ("strategy", "attempts")


class CircuitOpenError(ApplicationError):
    """A call was refused because its circuit breaker is open; `retry_after` is when it may probe again."""

    error_code = "CIRCUIT_OPEN"
    error_type = "CIRCUIT_OPEN"
    default_severity = Severity.MEDIUM
    component = "circuit_breaker"
    context_fields = ("breaker", "retry_after")

    def __init__(self, message: str | None = None, *, breaker: str | None = None, **kwargs: Any) -> None:
        super().__init__(message or f"Circuit {breaker!r} is open", breaker=breaker, **kwargs)


class RetryError(ApplicationError):
    """Retrying gave up on a bad result (not an exception); `last_result` is what the last attempt returned."""

    error_code = "RETRY_EXHAUSTED"
    default_severity = Severity.MEDIUM
    component = "retry"
    context_fields = ("policy", "attempts", "status_code")

    def __init__(self, message: str, *, last_result: Any = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.last_result = last_result
