"""The process runtime: hot-applied snapshots keep state, refuse bad entries one by one, and the default runtime."""

import pytest

from resilience.exceptions import ConfigError, StrategyError
from resilience.runtime.breaker import BreakerConfig, CallNotPermitted, State, WindowKind
from resilience.runtime.catalog import Catalog
from resilience.runtime.degradation import Condition, DegradationRule, Feature, Level
from resilience.runtime.ratelimit import RateLimitPolicy
from resilience.runtime.recovery import RecoveryPolicy, Strategy
from resilience.runtime.runtime import (
    Runtime,
    breaker_config_from_dict,
    breaker_config_to_dict,
    get_runtime,
    set_runtime,
)
from tests.resilience.runtime.harness import retry_policy


class Boom(Exception):
    pass


def fail(error: Exception | None = None):
    """Return a function that raises `error` (a fresh Boom by default) whatever it is called with."""

    def raising(*args, **kwargs):
        raise error if error is not None else Boom("down")

    return raising


def fields_of(errors: list[ConfigError]) -> list[str]:
    return [error.field for error in errors]


# Breakers


def test_applying_a_new_breaker_config_keeps_its_window_counts_and_uses_the_new_thresholds(harness):
    runtime = harness.runtime
    runtime.apply({"breakers": {"payments-api": {"window_size": 10, "minimum_calls": 8}}})
    breaker = runtime.breaker("payments-api")
    for _ in range(3):
        with pytest.raises(Boom):
            breaker.call(fail())
    breaker.call(lambda: "ok")

    errors = runtime.apply({"breakers": {"payments-api": {"window_size": 20, "minimum_calls": 5}}})

    assert errors == []
    assert runtime.breaker("payments-api") is breaker
    metrics = breaker.metrics()
    assert (metrics.calls, metrics.failures, metrics.window_size) == (4, 3, 20)
    with pytest.raises(Boom):
        breaker.call(fail())  # the 5th call reaches the new minimum: 4 of 5 failed
    assert breaker.state is State.OPEN


def test_an_open_breaker_stays_open_across_a_config_update(harness):
    runtime = harness.runtime
    runtime.apply({"breakers": {"db": {"consecutive_failures": 1, "wait_duration": 30}}})
    with pytest.raises(Boom):
        runtime.breaker("db").call(fail())

    runtime.apply({"breakers": {"db": {"consecutive_failures": 5, "wait_duration": 5}}})

    assert runtime.breaker("db").state is State.OPEN
    assert runtime.breaker("db").config.consecutive_failures == 5
    with pytest.raises(CallNotPermitted):
        runtime.breaker("db").call(lambda: "ok")


def test_an_invalid_breaker_entry_is_refused_with_its_path_while_the_others_apply(harness):
    runtime = harness.runtime
    runtime.apply({"breakers": {"payments-api": {"failure_rate_threshold": 40}}})

    errors = runtime.apply(
        {
            "breakers": {
                "payments-api": {"failure_rate_threshold": 150},
                "quotes": {"window_size": 7, "minimum_calls": 7, "failure_statuses": ["5xx", 429]},
            }
        }
    )

    assert fields_of(errors) == ["breakers.payments-api.failure_rate_threshold"]
    assert "150" in errors[0].reason
    assert runtime.breaker("payments-api").config.failure_rate_threshold == 40
    assert runtime.breaker("quotes").config.window_size == 7
    assert runtime.breaker("quotes").config.failure_statuses == ("5xx", 429)


def test_a_breaker_entry_with_an_unknown_field_or_exception_is_refused(harness):
    errors = harness.runtime.apply(
        {
            "breakers": {
                "a": {"window_sise": 5},
                "b": {"record_exceptions": ["no.such.Error"]},
                "c": {"record_exceptions": "ConnectionError"},
                "d": ["not", "an", "object"],
            }
        }
    )

    assert fields_of(errors) == [
        "breakers.a.window_sise",
        "breakers.b.record_exceptions",
        "breakers.c.record_exceptions",
        "breakers.d",
    ]
    assert not any(name in harness.runtime.breakers for name in "abcd")


def test_a_breaker_missing_from_a_snapshot_keeps_running_on_its_last_config(harness):
    runtime = harness.runtime
    runtime.apply({"breakers": {"legacy": {"consecutive_failures": 2}}})
    breaker = runtime.breaker("legacy")

    assert runtime.apply({"breakers": {}}) == []

    assert runtime.breaker("legacy") is breaker
    assert breaker.config.consecutive_failures == 2


def test_code_defined_predicates_survive_a_config_from_json(harness):
    runtime = harness.runtime
    is_refusal = lambda error: "refused" in str(error)  # noqa: E731
    runtime.breaker("orders", BreakerConfig(failure_predicate=is_refusal, consecutive_failures=1))

    runtime.apply({"breakers": {"orders": {"consecutive_failures": 1, "wait_duration": 9}}})

    breaker = runtime.breaker("orders")
    assert breaker.config.failure_predicate is is_refusal
    with pytest.raises(Boom):
        breaker.call(fail(Boom("timeout")))  # not a failure by the predicate
    assert breaker.state is State.CLOSED


def test_breaker_configs_round_trip_through_json_data():
    config = BreakerConfig(
        window_kind=WindowKind.TIME,
        window_size=30,
        record_exceptions=(ConnectionError, "tests.resilience.runtime.test_runtime.Boom"),
        ignore_exceptions=(KeyError,),
        failure_statuses=("5xx", 429),
    )

    data = breaker_config_to_dict(config)

    assert data["window_kind"] == "time"
    assert data["record_exceptions"] == ["ConnectionError", "tests.resilience.runtime.test_runtime.Boom"]
    assert data["ignore_exceptions"] == ["KeyError"]
    assert data["failure_statuses"] == ["5xx", 429]
    assert "failure_predicate" not in data
    rebuilt = breaker_config_from_dict(data)
    assert breaker_config_to_dict(rebuilt) == data
    assert rebuilt.window_kind is WindowKind.TIME


def test_a_predicate_in_json_data_is_refused():
    with pytest.raises(ConfigError) as refused:
        breaker_config_from_dict({"failure_predicate": "lambda e: True"})
    assert refused.value.field == "failure_predicate"


def test_transitions_are_reported_to_the_console(harness):
    harness.runtime.apply({"breakers": {"db": {"consecutive_failures": 1}}})
    with pytest.raises(Boom):
        harness.runtime.breaker("db").call(fail())

    kind, payload = harness.reports[-1]
    assert kind == "breaker.transition"
    assert payload["breaker"] == "db"
    assert (payload["from_state"], payload["to_state"]) == ("closed", "open")


# Retry policies


def test_the_seeded_retry_policies_exist_before_any_snapshot(harness):
    assert harness.runtime.retrier("server_error").policy.max_attempts == 4


def test_a_retry_policy_update_keeps_the_retriers_stats_and_budget(harness):
    runtime = harness.runtime
    runtime.apply({"retry_policies": {"net": retry_policy("net", max_attempts=2, budget_percent=20.0)}})
    retrier = runtime.retrier("net")
    budget = retrier.budget
    with pytest.raises(ConnectionError):
        retrier.call(fail(ConnectionError("reset")))

    runtime.apply({"retry_policies": {"net": retry_policy("net", max_attempts=4, budget_percent=20.0)}})

    assert runtime.retrier("net") is retrier
    assert retrier.budget is budget
    with pytest.raises(ConnectionError):
        retrier.call(fail(ConnectionError("reset")))
    stats = retrier.stats()
    assert (stats.calls, stats.attempts) == (2, 2 + 4)


def test_a_retry_policy_with_other_budget_settings_gets_a_new_budget(harness):
    runtime = harness.runtime
    runtime.apply({"retry_policies": {"net": retry_policy("net", budget_percent=20.0)}})
    before = runtime.retrier("net").budget

    runtime.apply({"retry_policies": {"net": retry_policy("net", budget_percent=50.0)}})

    assert runtime.retrier("net").budget is not before
    assert runtime.retrier("net").budget.percent == 50.0


def test_retry_policies_missing_from_a_snapshot_are_removed(harness):
    runtime = harness.runtime
    runtime.apply({"retry_policies": {"a": retry_policy("a"), "b": retry_policy("b")}})

    runtime.apply({"retry_policies": {"a": retry_policy("a")}})

    assert set(runtime.retry_policies()) == {"a"}
    with pytest.raises(ConfigError) as refused:
        runtime.retrier("b")
    assert refused.value.field == "retry_policies.b"
    assert "'b'" in str(refused.value)


def test_an_invalid_retry_policy_keeps_its_previous_config(harness):
    runtime = harness.runtime
    runtime.apply({"retry_policies": {"a": retry_policy("a", max_attempts=2)}})

    errors = runtime.apply(
        {
            "retry_policies": {
                "a": retry_policy("a") | {"max_attempts": 0},
                "b": retry_policy("b"),
                "c": retry_policy("other"),
            }
        }
    )

    assert fields_of(errors) == ["retry_policies.a.max_attempts", "retry_policies.c.name"]
    assert runtime.retrier("a").policy.max_attempts == 2
    assert set(runtime.retry_policies()) == {"a", "b"}


# Error types


def test_an_error_types_snapshot_changes_what_retriers_call_transient(harness):
    runtime = harness.runtime
    runtime.apply({"retry_policies": {"t": retry_policy("t", retry_on_transient=True, retry_on_exceptions=())}})
    calls = []

    def strategy() -> None:
        calls.append(1)
        raise StrategyError("flaky")  # PROCESSING_ERROR: permanent in the default catalog

    with pytest.raises(StrategyError):
        runtime.retrier("t").call(strategy)
    assert len(calls) == 1

    rows = [row for row in Catalog.default().to_data() if row["code"] != "PROCESSING_ERROR"]
    errors = runtime.apply(
        {"error_types": [*rows, {"code": "PROCESSING_ERROR", "category": "PROCESSING", "transient": True}]}
    )

    assert errors == []
    with pytest.raises(StrategyError):
        runtime.retrier("t").call(strategy)
    assert len(calls) == 1 + 3


def test_an_invalid_error_type_row_keeps_the_previous_entry(harness):
    runtime = harness.runtime

    errors = runtime.apply(
        {
            "error_types": [
                {"code": "NETWORK_TIMEOUT", "category": "NETWORK", "transient": "yes"},
                {"code": "CUSTOM", "category": "API", "transient": True},
            ]
        }
    )

    assert fields_of(errors) == ["error_types.NETWORK_TIMEOUT.transient"]
    assert runtime.catalog.is_transient("NETWORK_TIMEOUT")
    assert runtime.catalog.is_transient("CUSTOM")
    assert "API_AUTH" not in runtime.catalog  # rows left out of the section are removed


# Recovery policies


def recovery_policy(name: str, **overrides) -> dict:
    return RecoveryPolicy(name=name, **({"strategy": Strategy.IGNORE, "component": name} | overrides)).to_dict()


def test_recovery_policies_apply_one_by_one_and_keep_their_stats(harness):
    runtime = harness.runtime
    runtime.register_fallback("cached", lambda symbol: f"cached {symbol}")
    runtime.apply({"recovery_policies": [recovery_policy("quotes", strategy=Strategy.FALLBACK, fallback="cached")]})
    assert runtime.recovery.execute(fail(), "EUR", component="quotes") == "cached EUR"

    errors = runtime.apply(
        {
            "recovery_policies": [
                recovery_policy("quotes", strategy=Strategy.FALLBACK, fallback="missing"),
                recovery_policy("orders", default="skipped"),
                recovery_policy("orders-again", component="orders"),
            ]
        }
    )

    assert fields_of(errors) == ["recovery_policies.quotes.fallback", "recovery_policies.orders-again.component"]
    assert runtime.recovery.execute(fail(), "EUR", component="quotes") == "cached EUR"  # previous good config
    assert runtime.recovery.execute(fail(), component="orders") == "skipped"
    recovered = {row["policy"]: row["recovered"] for row in runtime.recovery.stats()["policies"]}
    assert recovered == {"quotes": 2, "orders": 1}


def test_recovery_policies_missing_from_a_snapshot_are_removed(harness):
    runtime = harness.runtime
    runtime.apply({"recovery_policies": [recovery_policy("a"), recovery_policy("b")]})

    runtime.apply({"recovery_policies": [recovery_policy("a")]})

    assert [policy.name for policy in runtime.recovery.policies] == ["a"]
    with pytest.raises(Boom):
        runtime.recovery.execute(fail(), component="b")


def test_registering_a_named_fallback_reapplies_the_entries_refused_for_want_of_it(harness):
    runtime = harness.runtime
    errors = runtime.apply(
        {"version": 3, "recovery_policies": [recovery_policy("q", strategy=Strategy.FALLBACK, fallback="later")]}
    )
    assert fields_of(errors) == ["recovery_policies.q.fallback"]

    runtime.register_fallback("later", lambda: "from later")

    assert runtime.snapshot_errors == []
    assert runtime.recovery.execute(fail(), component="q") == "from later"


# Degradation and rate limits


def test_degradation_features_follow_this_runtimes_breakers(harness):
    runtime = harness.runtime
    errors = runtime.apply(
        {
            "breakers": {"pay": {"consecutive_failures": 1}},
            "degradation": {
                "features": [Feature("checkout", breakers=("pay",), critical=True).to_dict()],
                "rules": [DegradationRule("crit", Condition.CRITICAL_BREAKER_OPEN, Level.MINIMAL).to_dict()],
            },
        }
    )
    assert errors == []
    assert runtime.degradation.is_available("checkout")

    with pytest.raises(Boom):
        runtime.breaker("pay").call(fail())

    assert runtime.degradation.evaluate() is Level.MINIMAL
    assert runtime.degradation.degraded_features() == ["checkout"]


def test_invalid_features_and_rules_are_refused_one_by_one(harness):
    runtime = harness.runtime
    runtime.apply({"degradation": {"features": [Feature("search").to_dict()]}})

    errors = runtime.apply(
        {
            "degradation": {
                "features": [Feature("search", fallback="nowhere").to_dict(), Feature("export").to_dict()],
                "rules": [{"name": "bad", "condition": "moon_phase", "level": "MINIMAL"}],
            }
        }
    )

    assert fields_of(errors) == ["degradation.features.search.fallback", "degradation.rules.bad.condition"]
    assert sorted(feature.name for feature in runtime.degradation.features) == ["export", "search"]
    assert runtime.degradation.rules == ()


def test_the_default_error_rate_is_the_failure_share_across_breaker_windows(harness):
    runtime = harness.runtime
    runtime.apply(
        {"degradation": {"rules": [DegradationRule("err", Condition.ERROR_RATE_ABOVE, Level.EMERGENCY, 60).to_dict()]}}
    )
    breaker = runtime.breaker("x", BreakerConfig(minimum_calls=100))
    breaker.call(lambda: "ok")
    with pytest.raises(Boom):
        breaker.call(fail())
    assert runtime.degradation.evaluate() is Level.FULL  # 50%

    with pytest.raises(Boom):
        breaker.call(fail())

    assert runtime.degradation.evaluate() is Level.EMERGENCY  # 67%


def test_rate_limit_detectors_keep_their_windows_until_their_policy_changes(harness):
    runtime = harness.runtime
    runtime.apply({"rate_limits": {"binance": RateLimitPolicy(limit=2).to_dict()}})
    detector = runtime.rate_limiter("binance")
    detector.record("orders")
    detector.record("orders")
    assert detector.is_limited("orders")

    errors = runtime.apply(
        {"rate_limits": {"binance": RateLimitPolicy(limit=2).to_dict(), "kraken": {"limit": 0}, "other": {}}}
    )

    assert fields_of(errors) == ["rate_limits.kraken.limit"]
    assert runtime.rate_limiter("binance") is detector
    runtime.apply({"rate_limits": {"binance": RateLimitPolicy(limit=5).to_dict()}})
    assert runtime.rate_limiter("binance").policy.limit == 5
    assert not runtime.rate_limiter("binance").is_limited("orders")
    with pytest.raises(ConfigError):
        runtime.rate_limiter("other")


# Snapshots as a whole


def test_the_version_is_the_last_applied_snapshots(harness):
    runtime = harness.runtime
    assert runtime.version is None

    runtime.apply({"version": 7})
    assert runtime.version == 7
    runtime.apply({"breakers": {}})
    assert runtime.version == 7

    errors = runtime.apply({"version": "eight"})

    assert fields_of(errors) == ["version"]
    assert runtime.version == 7


def test_unknown_sections_and_malformed_sections_are_reported(harness):
    runtime = harness.runtime

    errors = runtime.apply({"breakers": [], "recovery_policies": {}, "alerts": {}})

    assert sorted(fields_of(errors)) == ["alerts", "breakers", "recovery_policies"]
    assert runtime.snapshot_errors == errors
    assert runtime.apply("not a snapshot")[0].field == "snapshot"


def test_every_apply_bumps_the_generation(harness):
    before = harness.runtime.generation
    harness.runtime.apply({})
    harness.runtime.register_fallback("f", lambda: None)
    assert harness.runtime.generation == before + 2


# The process's runtime


def test_set_runtime_replaces_the_process_runtime_and_returns_the_previous_one():
    mine = Runtime()
    previous = set_runtime(mine)
    try:
        assert get_runtime() is mine
        assert set_runtime(None) is mine
        fresh = get_runtime()
        assert fresh is not mine
        assert get_runtime() is fresh
    finally:
        set_runtime(previous)
