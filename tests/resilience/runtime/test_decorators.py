"""Decorators on sync functions and methods: names resolved per call, @resilient's order, fallbacks and timeouts."""

import pytest

from resilience.exceptions import ApiError, ConfigError
from resilience.runtime.breaker import CallNotPermitted, State
from resilience.runtime.catalog import classify
from resilience.runtime.decorators import breaker, critical, emergency_only, recover, resilient, retry
from resilience.runtime.degradation import Level
from resilience.runtime.recovery import RecoveryPolicy, Strategy
from resilience.runtime.runtime import Runtime, get_runtime, set_runtime
from tests.resilience.runtime.harness import Harness, retry_policy


class Flaky:
    """Raises the given errors in turn, then returns `result`; counts calls."""

    def __init__(self, *errors: Exception, result: object = "ok") -> None:
        self.errors = list(errors)
        self.result = result
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.result


def test_breaker_decorator_opens_the_named_breaker_and_refuses_calls(harness):
    harness.runtime.apply({"breakers": {"pay": {"consecutive_failures": 2}}})
    flaky = Flaky(ConnectionError("a"), ConnectionError("b"))
    charge = breaker("pay")(flaky)

    for _ in range(2):
        with pytest.raises(ConnectionError):
            charge()

    assert harness.runtime.breaker("pay").state is State.OPEN
    with pytest.raises(CallNotPermitted):
        charge()
    assert flaky.calls == 2


def test_an_unknown_breaker_name_creates_the_breaker_with_the_default_config(harness):
    @breaker("made-in-code")
    def ping() -> str:
        return "pong"

    assert ping() == "pong"
    assert harness.runtime.breaker("made-in-code").metrics().calls == 1
    assert harness.runtime.breaker("made-in-code").config.window_size == 100


def test_decorators_work_on_methods(harness):
    harness.runtime.apply({"retry_policies": {"net": retry_policy("net")}})

    class Client:
        def __init__(self) -> None:
            self.flaky = Flaky(ConnectionError("reset"), result="body")

        @retry("net")
        @breaker("api")
        def get(self, path: str) -> str:
            return f"{self.flaky()} of {path}"

    assert Client().get("/x") == "body of /x"
    assert harness.runtime.breaker("api").metrics().calls == 2
    assert harness.slept == [1.0]


def test_retry_decorator_retries_with_the_named_policy(harness):
    harness.runtime.apply({"retry_policies": {"net": retry_policy("net", max_attempts=3)}})
    flaky = Flaky(ConnectionError("1"), ConnectionError("2"))

    assert retry("net")(flaky)("arg") == "ok"

    assert flaky.calls == 3
    assert harness.slept == [1.0, 1.0]


def test_an_unknown_retry_policy_is_a_config_error_at_call_time_naming_it(harness):
    fetch = retry("nonexistent")(Flaky())  # decorating is fine: config may come later

    with pytest.raises(ConfigError) as refused:
        fetch()

    assert "nonexistent" in str(refused.value)
    assert refused.value.field == "retry_policies.nonexistent"


def test_a_config_applied_after_decoration_is_used_by_the_next_call(harness):
    flaky = Flaky(*[ConnectionError(str(n)) for n in range(10)])
    fetch = retry("net")(flaky)
    harness.runtime.apply({"retry_policies": {"net": retry_policy("net", max_attempts=2)}})
    with pytest.raises(ConnectionError):
        fetch()
    assert flaky.calls == 2

    harness.runtime.apply({"retry_policies": {"net": retry_policy("net", max_attempts=5)}})
    with pytest.raises(ConnectionError):
        fetch()

    assert flaky.calls == 2 + 5


def test_a_runtime_set_after_decoration_is_used_by_the_next_call(harness):
    @breaker("svc")
    def ping() -> str:
        return "pong"

    ping()
    other = Harness()
    set_runtime(other.runtime)
    ping()

    assert harness.runtime.breaker("svc").metrics().calls == 1
    assert other.runtime.breaker("svc").metrics().calls == 1


def test_resolved_objects_are_cached_until_the_runtime_changes(harness, monkeypatch):
    runtime = harness.runtime
    runtime.apply({"retry_policies": {"net": retry_policy("net")}})
    lookups = []
    original = runtime.retrier
    monkeypatch.setattr(runtime, "retrier", lambda name: lookups.append(name) or original(name))
    fetch = retry("net")(Flaky())

    fetch()
    fetch()
    assert lookups == ["net"]

    runtime.apply({"retry_policies": {"net": retry_policy("net")}})
    fetch()
    assert lookups == ["net", "net"]


# @resilient


def test_resilient_sends_every_retry_attempt_through_the_breaker_and_falls_back_on_refusal(harness):
    runtime = harness.runtime
    runtime.apply(
        {
            "breakers": {"pay": {"consecutive_failures": 2}},
            "retry_policies": {"net": retry_policy("net", max_attempts=5)},
        }
    )
    flaky = Flaky(*[ConnectionError(str(n)) for n in range(5)])
    seen = []

    @resilient(breaker="pay", retry="net", fallback=lambda amount: seen.append(amount) or "queued")
    def charge(amount: int) -> str:
        return flaky(amount)

    assert charge(42) == "queued"

    assert flaky.calls == 2  # the third attempt was refused by the open breaker, and a refusal is not retried
    assert runtime.breaker("pay").metrics().not_permitted == 1
    assert runtime.retrier("net").stats().attempts == 3
    assert seen == [42]


def test_resilient_retries_a_refusal_only_when_the_policy_lists_it(harness):
    runtime = harness.runtime
    refused = "resilience.runtime.breaker.CallNotPermitted"
    runtime.apply(
        {
            "retry_policies": {
                "plain": retry_policy("plain"),
                "patient": retry_policy("patient", retry_on_exceptions=["ConnectionError", refused]),
            }
        }
    )
    runtime.breaker("pay").force_open()
    flaky = Flaky()
    plain = resilient(breaker="pay", retry="plain")(flaky)
    patient = resilient(breaker="pay", retry="patient")(flaky)

    with pytest.raises(CallNotPermitted):
        plain()
    with pytest.raises(CallNotPermitted):
        patient()

    assert runtime.retrier("plain").stats().attempts == 1
    assert runtime.retrier("patient").stats().attempts == 3
    assert flaky.calls == 0


def test_resilient_counts_a_timed_out_sync_call_as_a_breaker_failure_and_retries_it(harness):
    runtime = harness.runtime
    runtime.apply(
        {
            "breakers": {"slow": {"minimum_calls": 2, "window_size": 2}},
            "retry_policies": {"t": retry_policy("t", retry_on_exceptions=["TimeoutError"])},
        }
    )
    durations = [5.0, 0.5]

    @resilient(breaker="slow", retry="t", timeout=2.0)
    def fetch() -> str:
        harness.clock.advance(durations.pop(0))
        return "late or not"

    assert fetch() == "late or not"

    metrics = runtime.breaker("slow").metrics()
    assert (metrics.calls, metrics.failures) == (2, 1)


def test_resilient_uses_a_registered_fallback_by_name_and_raises_without_one(harness):
    runtime = harness.runtime
    runtime.register_fallback("stale", lambda symbol: f"stale {symbol}")

    with_name = resilient(fallback="stale")(Flaky(ValueError("bad")))
    without = resilient()(Flaky(ValueError("bad")))
    unknown = resilient(fallback="nowhere")(Flaky(ValueError("bad")))

    assert with_name("EUR") == "stale EUR"
    with pytest.raises(ValueError, match="bad"):
        without("EUR")
    with pytest.raises(ConfigError, match="nowhere") as refused:
        unknown("EUR")
    assert isinstance(refused.value.__cause__, ValueError)


def test_resilient_returns_the_result_when_nothing_fails(harness):
    fallback_calls = []

    @resilient(breaker="b", retry="server_error", fallback=lambda: fallback_calls.append(1), timeout=1.0)
    def ok() -> str:
        return "fine"

    assert ok() == "fine"
    assert fallback_calls == []


@pytest.mark.parametrize("timeout", [0, -1, "1", True])
def test_resilient_refuses_a_bad_timeout_when_decorating(timeout):
    with pytest.raises(ConfigError) as refused:
        resilient(timeout=timeout)
    assert refused.value.field == "timeout"


# @recover


def test_recover_runs_the_components_recovery_policy(harness):
    runtime = harness.runtime
    runtime.register_fallback("cached", lambda symbol: f"cached {symbol}")
    policy = RecoveryPolicy(name="quotes", strategy=Strategy.FALLBACK, component="quotes", fallback="cached")
    runtime.apply({"recovery_policies": [policy.to_dict()]})

    @recover("quotes")
    def quote(symbol: str) -> str:
        raise ConnectionError("down")

    assert quote("EUR") == "cached EUR"
    assert runtime.recovery.stats()["policies"][0]["recovered"] == 1


def test_recover_reraises_when_no_policy_matches(harness):
    @recover("unconfigured")
    def work() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        work()
    assert get_runtime().recovery.stats()["unmatched"] == 1


def test_emergency_only_and_critical_follow_the_runtime_installed_after_decoration():
    @emergency_only
    def safe_shutdown() -> str:
        return "shut down"

    @critical
    def close_positions() -> str:
        return "closed"

    calm, failing = Runtime(error_rate=lambda: 0.0), Runtime(error_rate=lambda: 0.99)
    previous = set_runtime(calm)
    try:
        assert safe_shutdown() is None
        set_runtime(failing)  # installed after decoration, as configure() does
        assert failing.degradation.level is Level.EMERGENCY
        assert safe_shutdown() == "shut down"
        assert close_positions() == "closed" and close_positions.__degradation__ == "critical"
    finally:
        set_runtime(previous)


def test_a_retry_policy_that_alerts_on_giving_up_reports_to_the_console(harness):
    @retry("unauthorized")  # seed 003: 401, no retry, alert
    def fetch_prices():
        raise ApiError("token expired", status_code=401)

    @retry("not_found")  # 404, no retry, skip: nothing to report
    def fetch_symbol():
        raise ApiError("no such symbol", status_code=404)

    with pytest.raises(ApiError):
        fetch_prices()
    with pytest.raises(ApiError):
        fetch_symbol()
    assert [(kind, payload["policy"], payload["error_type"]) for kind, payload in harness.reports] == [
        ("recovery.alert", "unauthorized", classify(401))
    ]
