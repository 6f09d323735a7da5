"""The resilience config as the JSON a Runtime applies (resilience.runtime.runtime.Runtime.apply):
what the console's own processes apply, and what a service pulls for its source."""

from resilience.config_watcher import config_version
from resilience.models import (
    Breaker,
    DegradationFeature,
    DegradationRule,
    RateLimitPolicy,
    RecoveryPolicy,
    RetryPolicy,
    is_console_breaker_name,
)


def config_snapshot(*, source=None) -> dict:
    """The whole config, or what a service reporting as `source` (a Source) may know.

    For the console's own processes (no `source`) all of it; for a service reporting as `source`
    the breakers that source runs, the unassigned ones (it may be the first to run one) and the
    shared policies, never another's breakers nor the console's own.
    """
    # Error types are the incidents app's: reached through the breaker's relation, not imported.
    error_types = Breaker._meta.get_field("error_type").related_model
    breakers = list(Breaker.objects.all())
    features = [row.to_config().to_dict() for row in DegradationFeature.objects.all()]
    if source is not None:
        hidden = {row.name for row in breakers if not _may_know(row, source)}
        breakers = [row for row in breakers if row.name not in hidden]
        features = [_without_breakers(feature, hidden) for feature in features]
    return {
        "version": config_version(),
        "breakers": {row.name: breaker_config_dict(row) for row in breakers},
        "retry_policies": {row.name: row.to_config().to_dict() for row in RetryPolicy.objects.all()},
        "recovery_policies": [row.to_config().to_dict() for row in RecoveryPolicy.objects.all()],
        "degradation": {
            "features": features,
            "rules": [row.to_config().to_dict() for row in DegradationRule.objects.all()],
        },
        "rate_limits": {row.name: row.to_config().to_dict() for row in RateLimitPolicy.objects.all()},
        "error_types": [
            {"code": code, "category": category, "transient": transient}
            for code, category, transient in error_types.objects.order_by("code").values_list(
                "code", "category", "transient"
            )
        ],
    }


def _may_know(row: Breaker, source) -> bool:
    """Whether a service reporting as `source` is sent the breaker's config: its own, or nobody's yet."""
    return row.is_run_by(source) or row.is_unassigned


def _without_breakers(feature: dict, hidden: set[str]) -> dict:
    """The feature without the breakers a service may not know of: others' and the console's (never its own)."""
    shown = [name for name in feature["breakers"] if name not in hidden and not is_console_breaker_name(name)]
    return {**feature, "breakers": shown}


def breaker_config_dict(row: Breaker) -> dict:
    """A breaker's config as plain JSON: exception classes by dotted name, statuses as typed."""
    config = row.to_config()
    return {
        "window_kind": str(config.window_kind),
        "window_size": config.window_size,
        "minimum_calls": config.minimum_calls,
        "failure_rate_threshold": config.failure_rate_threshold,
        "slow_call_rate_threshold": config.slow_call_rate_threshold,
        "slow_call_duration": config.slow_call_duration,
        "consecutive_failures": config.consecutive_failures,
        "wait_duration": config.wait_duration,
        "wait_multiplier": config.wait_multiplier,
        "max_wait_duration": config.max_wait_duration,
        "automatic_half_open": config.automatic_half_open,
        "max_half_open_duration": config.max_half_open_duration,
        "permitted_calls_in_half_open": config.permitted_calls_in_half_open,
        "success_threshold": config.success_threshold,
        "call_timeout": config.call_timeout,
        "record_exceptions": [_dotted(spec) for spec in config.record_exceptions],
        "ignore_exceptions": [_dotted(spec) for spec in config.ignore_exceptions],
        "failure_statuses": list(config.failure_statuses),
    }


def _dotted(spec) -> str:
    if isinstance(spec, str):
        return spec
    return spec.__qualname__ if spec.__module__ == "builtins" else f"{spec.__module__}.{spec.__qualname__}"
