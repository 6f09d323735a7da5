"""Recovery policies and the sync RecoveryManager: strategies, matching, limits, stats, config."""

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from resilience.runtime.degradation import DegradationManager, Feature
from resilience.runtime.recovery import (
    ConfigError,
    FallbackRegistry,
    RecoveryManager,
    RecoveryPolicy,
    Severity,
    Strategy,
    default_classify,
)
from tests.resilience.runtime.clocks import FakeClock


class CodedError(Exception):
    def __init__(self, code: str, message: str = "boom") -> None:
        super().__init__(message)
        self.error_code = code


class Flaky:
    """Fails `failures` times, then returns `result`; records every call's arguments."""

    def __init__(self, failures: int, result: object = "ok") -> None:
        self.failures = failures
        self.result = result
        self.calls: list[tuple] = []
        self.errors: list[Exception] = []

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        if len(self.calls) <= self.failures:
            error = CodedError("NETWORK_TIMEOUT", f"failure {len(self.calls)}")
            self.errors.append(error)
            raise error
        return self.result


class FakeMarker:
    def __init__(self) -> None:
        self.marks: list[tuple[str, float, str]] = []

    def mark_degraded(self, feature: str, *, duration: float, reason: str) -> None:
        self.marks.append((feature, duration, reason))


def make_manager(*policies: RecoveryPolicy, **overrides) -> RecoveryManager:
    options = {"fallbacks": FallbackRegistry(), "restart_hooks": {}, "degraded_results": {}, "clock": FakeClock()}
    options.update(overrides)
    return RecoveryManager(list(policies), **options)


def always_fails():
    raise CodedError("NETWORK_TIMEOUT")


# RETRY


def test_retry_reruns_the_operation_until_it_succeeds():
    operation = Flaky(failures=2)
    manager = make_manager(RecoveryPolicy("api-retry", Strategy.RETRY, component="api", max_attempts=3))

    assert manager.execute(operation, 1, key="v", component="api") == "ok"
    assert operation.calls == [((1,), {"key": "v"})] * 3


def test_retry_gives_up_after_max_attempts_and_reraises_the_original_error_with_a_note():
    operation = Flaky(failures=10)
    manager = make_manager(RecoveryPolicy("api-retry", Strategy.RETRY, component="api", max_attempts=2))

    with pytest.raises(CodedError) as raised:
        manager.execute(operation, component="api")

    assert raised.value is operation.errors[0]
    assert len(operation.calls) == 3
    assert "recovery policy 'api-retry' (retry) gave up after 2 attempts" in raised.value.__notes__[0]
    assert "failure 3" in raised.value.__notes__[0]


def test_retry_goes_through_the_injected_retry_runner():
    runs: list[str] = []

    def runner(operation):
        runs.append("runner")
        for _ in range(5):
            try:
                return operation()
            except CodedError:
                continue
        raise RuntimeError("runner gave up")

    operation = Flaky(failures=2)
    manager = make_manager(RecoveryPolicy("r", Strategy.RETRY, max_attempts=3), retry_runner=runner)

    assert manager.execute(operation, component="api") == "ok"
    assert runs == ["runner"]
    assert len(operation.calls) == 3


def test_an_injected_retry_runner_cannot_rerun_more_than_max_attempts():
    def eager_runner(operation):
        last = None
        for _ in range(10):
            try:
                return operation()
            except CodedError as error:
                last = error
        raise last

    operation = Flaky(failures=100)
    manager = make_manager(RecoveryPolicy("r", Strategy.RETRY, max_attempts=2), retry_runner=eager_runner)

    with pytest.raises(CodedError) as raised:
        manager.execute(operation, component="api")

    assert len(operation.calls) == 1 + 2
    assert raised.value is operation.errors[0]


# FALLBACK


def test_fallback_returns_the_registered_fallback_called_with_the_same_arguments():
    fallbacks = FallbackRegistry({"cached-prices": lambda symbol: f"cached {symbol}"})
    manager = make_manager(
        RecoveryPolicy("prices", Strategy.FALLBACK, component="prices", fallback="cached-prices"), fallbacks=fallbacks
    )

    assert manager.execute(Flaky(failures=1), "BTC", component="prices") == "cached BTC"


def test_a_failing_fallback_reraises_the_original_error_noting_the_fallback_error():
    def broken_fallback():
        raise LookupError("cache empty")

    manager = make_manager(
        RecoveryPolicy("p", Strategy.FALLBACK, fallback="cache", max_attempts=2),
        fallbacks=FallbackRegistry({"cache": broken_fallback}),
    )
    original = CodedError("NETWORK_TIMEOUT")

    def fails():
        raise original

    with pytest.raises(CodedError) as raised:
        manager.execute(fails, component="api")

    assert raised.value is original
    assert "LookupError('cache empty')" in raised.value.__notes__[0]
    assert manager.stats()["policies"][0]["failed"] == 1


def test_a_policy_that_says_so_raises_the_recovery_error_chained_to_the_original():
    def broken_fallback():
        raise LookupError("cache empty")

    manager = make_manager(
        RecoveryPolicy("p", Strategy.FALLBACK, fallback="cache", max_attempts=1, raise_recovery_errors=True),
        fallbacks=FallbackRegistry({"cache": broken_fallback}),
    )

    with pytest.raises(LookupError) as raised:
        manager.execute(always_fails, component="api")

    assert isinstance(raised.value.__cause__, CodedError)


def test_a_policy_naming_an_unregistered_fallback_is_rejected_when_registered():
    policy = RecoveryPolicy("p", Strategy.FALLBACK, fallback="missing")

    with pytest.raises(ConfigError) as raised:
        make_manager(policy)

    assert raised.value.field == "fallback"
    assert "'missing'" in str(raised.value)


def test_a_fallback_removed_after_registration_makes_recovery_fail_with_the_original_error():
    fallbacks = {"cache": lambda: "cached"}
    manager = make_manager(RecoveryPolicy("p", Strategy.FALLBACK, fallback="cache"), fallbacks=fallbacks)
    del fallbacks["cache"]

    with pytest.raises(CodedError) as raised:
        manager.execute(always_fails, component="api")

    assert "no fallback is registered as 'cache'" in raised.value.__notes__[0]


def test_the_fallback_registry_rejects_what_is_not_callable():
    with pytest.raises(ConfigError) as raised:
        FallbackRegistry().register("cache", "not callable")

    assert raised.value.field == "fallback"


# DEGRADE


def test_degrade_returns_the_reduced_result_and_marks_the_component_degraded_for_the_configured_time():
    marker = FakeMarker()
    manager = make_manager(
        RecoveryPolicy("quotes", Strategy.DEGRADE, component="quotes", degraded_result="stale", degrade_seconds=30),
        degraded_results={"stale": lambda symbol: {"symbol": symbol, "stale": True}},
        degradation=marker,
    )

    assert manager.execute(Flaky(failures=1), "ETH", component="quotes") == {"symbol": "ETH", "stale": True}
    assert [(feature, duration) for feature, duration, _reason in marker.marks] == [("quotes", 30)]
    assert "NETWORK_TIMEOUT" in marker.marks[0][2]


def test_degrade_marks_the_named_feature_in_a_degradation_manager_until_the_time_runs_out():
    clock = FakeClock()
    degradation = DegradationManager(
        [Feature("live-quotes")], [], breaker_state=lambda name: "CLOSED", error_rate=lambda: 0.0, clock=clock
    )
    manager = make_manager(
        RecoveryPolicy(
            "q", Strategy.DEGRADE, degraded_result="stale", degrade_feature="live-quotes", degrade_seconds=5
        ),
        degraded_results={"stale": lambda: "stale"},
        degradation=degradation,
    )

    assert manager.execute(always_fails, component="quotes") == "stale"
    assert degradation.is_available("live-quotes") is False
    clock.now += 5
    assert degradation.is_available("live-quotes") is True


def test_degrade_still_serves_the_reduced_result_when_marking_fails():
    class BrokenMarker:
        def mark_degraded(self, feature, *, duration, reason):
            raise RuntimeError("marker down")

    manager = make_manager(
        RecoveryPolicy("q", Strategy.DEGRADE, degraded_result="stale"),
        degraded_results={"stale": lambda: "stale"},
        degradation=BrokenMarker(),
    )

    assert manager.execute(always_fails, component="quotes") == "stale"


# RESTART


def test_restart_calls_the_hook_then_reruns_the_operation_once():
    events: list[str] = []

    def operation():
        events.append("run")
        if events.count("run") == 1:
            raise CodedError("CONNECTION_LOST")
        return "reconnected"

    manager = make_manager(
        RecoveryPolicy("ws", Strategy.RESTART, restart_hook="reconnect", max_attempts=1),
        restart_hooks={"reconnect": lambda: events.append("restart")},
    )

    assert manager.execute(operation, component="websocket") == "reconnected"
    assert events == ["run", "restart", "run"]


def test_restart_gives_up_after_max_attempts_cycles():
    restarts: list[str] = []
    operation = Flaky(failures=10)
    manager = make_manager(
        RecoveryPolicy("ws", Strategy.RESTART, restart_hook="reconnect", max_attempts=2),
        restart_hooks={"reconnect": lambda: restarts.append("restart")},
    )

    with pytest.raises(CodedError) as raised:
        manager.execute(operation, component="websocket")

    assert raised.value is operation.errors[0]
    assert restarts == ["restart", "restart"]
    assert len(operation.calls) == 3


# IGNORE and ALERT


def test_ignore_swallows_the_error_and_returns_the_configured_default():
    manager = make_manager(RecoveryPolicy("quiet", Strategy.IGNORE, default={"items": []}))

    assert manager.execute(always_fails, component="feed") == {"items": []}


def test_alert_reports_with_the_severity_then_reraises_the_original_error():
    reports: list[tuple[str, dict]] = []
    manager = make_manager(
        RecoveryPolicy("auth", Strategy.ALERT, error_type="API_AUTH", severity=Severity.CRITICAL),
        reporter=lambda kind, payload: reports.append((kind, payload)),
    )
    original = CodedError("API_AUTH", "401")

    def fails():
        raise original

    with pytest.raises(CodedError) as raised:
        manager.execute(fails, component="broker")

    assert raised.value is original
    alerts = [payload for kind, payload in reports if kind == "recovery.alert"]
    assert alerts == [
        {
            "policy": "auth",
            "strategy": "alert",
            "component": "broker",
            "error_type": "API_AUTH",
            "error": repr(original),
            "severity": "critical",
        }
    ]


def test_a_failing_reporter_is_swallowed():
    def reporter(kind, payload):
        raise ConnectionError("console unreachable")

    ignoring = make_manager(RecoveryPolicy("quiet", Strategy.IGNORE, default=0), reporter=reporter)
    alerting = make_manager(RecoveryPolicy("loud", Strategy.ALERT), reporter=reporter)

    assert ignoring.execute(always_fails, component="feed") == 0
    with pytest.raises(CodedError):
        alerting.execute(always_fails, component="feed")


def test_every_recovery_outcome_is_reported():
    reports: list[tuple[str, dict]] = []
    manager = make_manager(
        RecoveryPolicy("r", Strategy.RETRY, max_attempts=1),
        reporter=lambda kind, payload: reports.append((kind, payload)),
    )

    manager.execute(Flaky(failures=1), component="api")
    with pytest.raises(CodedError):
        manager.execute(Flaky(failures=5), component="api")

    outcomes = [(kind, payload["outcome"]) for kind, payload in reports]
    assert outcomes == [("recovery.outcome", "recovered"), ("recovery.outcome", "failed")]
    assert "recovery_error" in reports[1][1]


# Matching


MATCHING_POLICIES = (
    RecoveryPolicy("exact", Strategy.IGNORE, component="api", error_type="NETWORK_TIMEOUT", default="exact"),
    RecoveryPolicy("component", Strategy.IGNORE, component="api", default="component"),
    RecoveryPolicy("error-type", Strategy.IGNORE, error_type="NETWORK_TIMEOUT", default="error-type"),
    RecoveryPolicy("default", Strategy.IGNORE, default="default"),
)


@pytest.mark.parametrize(
    ("component", "error_code", "expected"),
    [
        ("api", "NETWORK_TIMEOUT", "exact"),
        ("api", "API_AUTH", "component"),
        ("db", "NETWORK_TIMEOUT", "error-type"),
        ("db", "API_AUTH", "default"),
    ],
)
def test_policies_match_component_and_error_type_then_component_then_error_type_then_default(
    component, error_code, expected
):
    manager = make_manager(*MATCHING_POLICIES)

    def fails():
        raise CodedError(error_code)

    assert manager.execute(fails, component=component) == expected


def test_an_error_no_policy_matches_is_reraised_unchanged_and_counted():
    manager = make_manager(RecoveryPolicy("api-only", Strategy.IGNORE, component="api"))
    original = CodedError("X")

    def fails():
        raise original

    with pytest.raises(CodedError) as raised:
        manager.execute(fails, component="db")

    assert raised.value is original
    assert not getattr(original, "__notes__", [])
    assert manager.stats()["unmatched"] == 1


def test_the_error_type_given_to_execute_overrides_the_classifier():
    manager = make_manager(RecoveryPolicy("auth", Strategy.IGNORE, error_type="API_AUTH", default="ignored"))

    assert manager.execute(always_fails, component="api", error_type="API_AUTH") == "ignored"


def test_an_injected_classifier_names_the_error_type():
    manager = make_manager(
        RecoveryPolicy("keys", Strategy.IGNORE, error_type="MISSING_KEY", default="ignored"),
        classify=lambda error: "MISSING_KEY" if isinstance(error, KeyError) else "OTHER",
    )

    assert manager.execute({}.__getitem__, "absent", component="config") == "ignored"


def test_a_broken_classifier_falls_back_to_unexpected():
    def classify(error):
        raise RuntimeError("classifier bug")

    manager = make_manager(
        RecoveryPolicy("unexpected", Strategy.IGNORE, error_type="UNEXPECTED", default="handled"), classify=classify
    )

    assert manager.execute(always_fails, component="api") == "handled"


def test_the_default_classifier_reads_error_code_then_error_type_then_says_unexpected():
    class Typed(Exception):
        error_type = "DATA_EMPTY"

    assert default_classify(CodedError("API_RATE_LIMIT")) == "API_RATE_LIMIT"
    assert default_classify(Typed()) == "DATA_EMPTY"
    assert default_classify(ValueError()) == "UNEXPECTED"


def test_base_exceptions_are_not_recovered():
    manager = make_manager(RecoveryPolicy("everything", Strategy.IGNORE))

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        manager.execute(interrupted, component="api")
    assert manager.stats()["policies"] == []


# recover() and the decorator


def test_recover_applies_a_fallback_to_an_error_caught_elsewhere():
    manager = make_manager(
        RecoveryPolicy("p", Strategy.FALLBACK, fallback="cache"),
        fallbacks=FallbackRegistry({"cache": lambda: "cached"}),
    )

    assert manager.recover(CodedError("X"), component="api") == "cached"


def test_recover_cannot_retry_without_an_operation_and_reraises_the_error():
    manager = make_manager(RecoveryPolicy("r", Strategy.RETRY))
    error = CodedError("X")

    with pytest.raises(CodedError) as raised:
        manager.recover(error, component="api")

    assert raised.value is error
    assert "there is no operation to re-run" in error.__notes__[0]


def test_recover_with_decorates_a_function_with_its_component():
    manager = make_manager(RecoveryPolicy("feed", Strategy.IGNORE, component="feed", default="empty"))

    @manager.recover_with("feed")
    def fetch(symbol):
        """Fetch a symbol."""
        raise CodedError("X")

    assert fetch("BTC") == "empty"
    assert fetch.__doc__ == "Fetch a symbol."


# Stats and hot swap


def test_stats_count_outcomes_per_policy_and_strategy_with_totals_per_strategy():
    clock = FakeClock(500.0)
    manager = make_manager(
        RecoveryPolicy("api", Strategy.RETRY, component="api", max_attempts=1),
        RecoveryPolicy("db", Strategy.RETRY, component="db", max_attempts=1),
        RecoveryPolicy("feed", Strategy.IGNORE, component="feed"),
        clock=clock,
    )

    manager.execute(Flaky(failures=1), component="api")
    with pytest.raises(CodedError):
        manager.execute(Flaky(failures=2), component="db")
    manager.execute(always_fails, component="feed")

    stats = manager.stats()
    assert stats["policies"] == [
        {"policy": "api", "strategy": "retry", "attempted": 1, "recovered": 1, "failed": 0, "last_at": 500.0},
        {"policy": "db", "strategy": "retry", "attempted": 1, "recovered": 0, "failed": 1, "last_at": 500.0},
        {"policy": "feed", "strategy": "ignore", "attempted": 1, "recovered": 1, "failed": 0, "last_at": 500.0},
    ]
    assert stats["strategies"] == {
        "retry": {"attempted": 2, "recovered": 1, "failed": 1},
        "ignore": {"attempted": 1, "recovered": 1, "failed": 0},
    }


def test_stats_are_a_snapshot_not_live_state():
    manager = make_manager(RecoveryPolicy("feed", Strategy.IGNORE))
    manager.execute(always_fails, component="feed")
    snapshot = manager.stats()

    manager.execute(always_fails, component="feed")

    assert snapshot["policies"][0]["attempted"] == 1
    assert manager.stats()["policies"][0]["attempted"] == 2


def test_apply_policies_swaps_policies_and_keeps_the_stats():
    manager = make_manager(RecoveryPolicy("feed", Strategy.IGNORE, default="old"))
    manager.execute(always_fails, component="feed")

    manager.apply_policies([RecoveryPolicy("feed", Strategy.IGNORE, default="new")])

    assert manager.execute(always_fails, component="feed") == "new"
    assert manager.stats()["policies"][0]["attempted"] == 2


def test_an_invalid_policy_set_is_rejected_whole_and_the_old_one_stays():
    manager = make_manager(RecoveryPolicy("feed", Strategy.IGNORE, default="old"))

    with pytest.raises(ConfigError):
        manager.apply_policies(
            [
                RecoveryPolicy("feed", Strategy.IGNORE, default="new"),
                RecoveryPolicy("bad", Strategy.FALLBACK, fallback="x"),
            ]
        )

    assert manager.execute(always_fails, component="feed") == "old"


def test_two_policies_with_the_same_name_are_rejected():
    with pytest.raises(ConfigError) as raised:
        make_manager(RecoveryPolicy("p", Strategy.IGNORE, component="a"), RecoveryPolicy("p", Strategy.IGNORE))

    assert raised.value.field == "name"


def test_two_policies_matching_the_same_failures_are_rejected():
    with pytest.raises(ConfigError) as raised:
        make_manager(
            RecoveryPolicy("a", Strategy.IGNORE, component="x"), RecoveryPolicy("b", Strategy.IGNORE, component="x")
        )

    assert "'a' and 'b' match the same failures" in str(raised.value)


# Validation and serialisation


@pytest.mark.parametrize(
    ("changes", "field", "limit"),
    [
        ({"name": ""}, "name", "non-empty"),
        ({"name": "x" * 101}, "name", "at most 100"),
        ({"strategy": "retry"}, "strategy", "one of"),
        ({"component": " "}, "component", "non-empty"),
        ({"max_attempts": 0}, "max_attempts", "from 1 to 10"),
        ({"max_attempts": 11}, "max_attempts", "from 1 to 10"),
        ({"max_attempts": True}, "max_attempts", "from 1 to 10"),
        ({"degrade_seconds": 0}, "degrade_seconds", "more than 0"),
        ({"degrade_seconds": 86_401}, "degrade_seconds", "at most 86400"),
        ({"severity": "loud"}, "severity", "one of"),
        ({"default": object()}, "default", "JSON"),
        ({"strategy": Strategy.FALLBACK}, "fallback", "required by the fallback strategy"),
        ({"strategy": Strategy.DEGRADE}, "degraded_result", "required by the degrade strategy"),
        ({"strategy": Strategy.RESTART}, "restart_hook", "required by the restart strategy"),
    ],
)
def test_validate_names_the_invalid_field_and_its_limit(changes, field, limit):
    values = {"name": "p", "strategy": Strategy.RETRY, **changes}

    with pytest.raises(ConfigError) as raised:
        RecoveryPolicy(**values).validate()

    assert raised.value.field == field
    assert limit in raised.value.reason
    assert str(raised.value) == f"{field}: {raised.value.reason}"


def test_a_policy_survives_a_json_round_trip():
    policy = RecoveryPolicy(
        "quotes",
        Strategy.DEGRADE,
        component="quotes",
        error_type="NETWORK_TIMEOUT",
        max_attempts=2,
        degraded_result="stale",
        degrade_feature="live-quotes",
        degrade_seconds=12.5,
        default={"a": [1]},
        severity=Severity.WARNING,
        raise_recovery_errors=True,
    )

    data = json.loads(json.dumps(policy.to_dict()))

    assert data["strategy"] == "degrade"
    assert RecoveryPolicy.from_dict(data) == policy


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": "p", "strategy": "retry", "colour": "red"}, "colour"),
        ({"strategy": "retry"}, "name"),
        ({"name": "p", "strategy": "reboot"}, "strategy"),
        ({"name": "p", "strategy": "alert", "severity": "loud"}, "severity"),
        ({"name": "p", "strategy": "retry", "max_attempts": "3"}, "max_attempts"),
    ],
)
def test_from_dict_rejects_bad_input_naming_the_field(data, field):
    with pytest.raises(ConfigError) as raised:
        RecoveryPolicy.from_dict(data)

    assert raised.value.field == field


def test_concurrent_recoveries_are_all_counted():
    manager = make_manager(RecoveryPolicy("feed", Strategy.IGNORE, default="ignored"))

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: manager.execute(always_fails, component="feed"), range(400)))

    assert results == ["ignored"] * 400
    assert manager.stats()["strategies"]["ignore"] == {"attempted": 400, "recovered": 400, "failed": 0}
