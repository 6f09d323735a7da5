"""Runtime reports in the console's formats, shared by the console's processes and the client.

A recovery outcome or alert becomes one event; its fingerprint groups all of a policy's
outcomes of one kind into one incident, wherever the report was made. So does a config
entry a process refused. Window figures are reported as they are, for the console to add up.
"""

from collections.abc import Iterable, Mapping
from typing import Any

from resilience.exceptions import ConfigError
from resilience.runtime.breaker import BreakerMetrics, CircuitBreaker

_ALERT_LEVELS = {"critical": "fatal", "error": "error", "warning": "warning", "info": "info"}


def recovery_event(kind: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """A "recovery.outcome" or "recovery.alert" report as a native event."""
    outcome = "alert" if kind == "recovery.alert" else str(payload.get("outcome", "unknown"))
    levels = {"alert": _ALERT_LEVELS.get(str(payload.get("severity", "")), "error"), "failed": "error"}
    policy = str(payload.get("policy", ""))
    event: dict[str, Any] = {
        "message": f"recovery policy {policy} {outcome} for {payload.get('component')}: {payload.get('error')}",
        "level": levels.get(outcome, "info"),
        "logger": "resilience.recovery",
        "tags": {
            "policy": policy,
            "strategy": str(payload.get("strategy", "")),
            "outcome": outcome,
            "error_type": str(payload.get("error_type", "")),
        },
        "fingerprint": ["recovery", policy, outcome],
    }
    if payload.get("component"):
        event["component"] = str(payload["component"])
    return event


def config_refused_event(error: ConfigError) -> dict[str, Any]:
    """A config entry a running process refused, as a native event: one incident per field at fault."""
    return {
        "message": f"resilience config refused, last good config kept: {error.field}: {error.reason}",
        "level": "error",
        "logger": "resilience.config",
        "tags": {"field": error.field[:200]},
        "fingerprint": ["resilience-config-refused", error.field],
    }


def window_reports(breakers: Iterable[CircuitBreaker]) -> list[dict[str, Any]]:
    """Each breaker's window figures as reported to the console (see BreakerWindow)."""
    return [_window_report(breaker.metrics()) for breaker in breakers]


def _window_report(metrics: BreakerMetrics) -> dict[str, Any]:
    return {
        "breaker": metrics.name,
        "state": metrics.state.value,
        "mode": metrics.mode.value,
        "calls": metrics.calls,
        "failures": metrics.failures,
        "slow_calls": metrics.slow_calls,
        "not_permitted": metrics.not_permitted,
    }
