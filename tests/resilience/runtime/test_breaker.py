"""The circuit breaker with sync calls: trips, waits, probes, modes, outcome rules, config and registry."""

import dataclasses
import threading

import pytest

from resilience.runtime.breaker import (
    BreakerConfig,
    BreakerRegistry,
    CallNotPermitted,
    CircuitBreaker,
    ConfigError,
    Mode,
    State,
    Transition,
    WindowKind,
)
from resilience.runtime.state import InMemoryStateStore
from tests.resilience.runtime.clocks import FakeClock


class Boom(Exception):
    pass


class Response:
    def __init__(self, status_code: int) -> None:
        self.status_code = status_code


def ok() -> str:
    return "ok"


def boom() -> None:
    raise Boom("down")


def fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(Boom):
            breaker.call(boom)


def succeed(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        assert breaker.call(ok) == "ok"


def make(clock: FakeClock | None = None, **overrides) -> tuple[CircuitBreaker, list[Transition]]:
    heard: list[Transition] = []
    settings = {"window_size": 10, "minimum_calls": 4, "failure_rate_threshold": 50.0, "wait_duration": 10.0}
    config = BreakerConfig(**(settings | overrides))
    breaker = CircuitBreaker("payments", config, clock=clock or FakeClock(), listeners=[heard.append])
    return breaker, heard


def test_it_stays_closed_below_the_minimum_number_of_calls():
    breaker, _ = make()
    fail(breaker, 3)
    assert breaker.state is State.CLOSED


def test_it_opens_when_the_failure_rate_reaches_the_threshold():
    breaker, heard = make()
    succeed(breaker, 2)
    fail(breaker, 1)
    assert breaker.state is State.CLOSED
    fail(breaker, 1)
    assert breaker.state is State.OPEN
    assert [(event.from_state, event.to_state) for event in heard] == [(State.CLOSED, State.OPEN)]
    assert "failure rate 50.0%" in heard[0].reason


def test_it_refuses_calls_while_open_and_says_how_long_to_wait():
    clock = FakeClock()
    breaker, _ = make(clock)
    fail(breaker, 4)
    clock.advance(4)
    with pytest.raises(CallNotPermitted) as refused:
        breaker.call(ok)
    assert refused.value.breaker == "payments"
    assert refused.value.remaining_wait == pytest.approx(6.0)
    assert breaker.metrics().not_permitted == 1


def test_it_opens_on_a_slow_call_rate():
    clock = FakeClock()
    breaker, heard = make(clock, slow_call_duration=2.0, slow_call_rate_threshold=75.0)

    def slow() -> str:
        clock.advance(2.5)
        return "late"

    succeed(breaker, 1)
    for _ in range(3):
        assert breaker.call(slow) == "late"
    assert breaker.state is State.OPEN
    assert "slow-call rate 75.0%" in heard[0].reason
    assert breaker.metrics().slow_calls == 3


def test_it_opens_after_consecutive_failures_which_a_success_resets():
    breaker, heard = make(window_size=100, minimum_calls=100, consecutive_failures=3)
    fail(breaker, 2)
    succeed(breaker, 1)
    fail(breaker, 2)
    assert breaker.state is State.CLOSED
    assert breaker.metrics().consecutive_failures == 2
    fail(breaker, 1)
    assert breaker.state is State.OPEN
    assert heard[0].reason == "3 consecutive failures"


def test_the_first_call_after_the_wait_is_a_probe_and_enough_successes_close_it():
    clock = FakeClock()
    breaker, heard = make(clock, success_threshold=2)
    fail(breaker, 4)
    clock.advance(10)
    assert breaker.state is State.OPEN  # nothing moves it before a call without automatic half-open
    succeed(breaker, 1)
    assert breaker.state is State.HALF_OPEN
    succeed(breaker, 1)
    assert breaker.state is State.CLOSED
    assert [event.to_state for event in heard] == [State.OPEN, State.HALF_OPEN, State.CLOSED]
    assert breaker.metrics().calls == 0  # the window starts afresh


def test_a_failed_probe_reopens_with_an_exponentially_longer_wait_up_to_the_maximum():
    clock = FakeClock()
    breaker, _ = make(clock, wait_multiplier=2.0, max_wait_duration=25.0)
    fail(breaker, 4)
    waits = []
    for _ in range(3):
        with pytest.raises(CallNotPermitted) as refused:
            breaker.call(ok)
        waits.append(refused.value.remaining_wait)
        clock.advance(refused.value.remaining_wait)
        fail(breaker, 1)  # the probe fails
    assert waits == [10.0, 20.0, 25.0]
    assert breaker.metrics().attempt == 4


def test_closing_resets_the_exponential_wait():
    clock = FakeClock()
    breaker, _ = make(clock, wait_multiplier=3.0)
    fail(breaker, 4)
    clock.advance(10)
    fail(breaker, 1)
    clock.advance(30)
    succeed(breaker, 1)
    assert breaker.state is State.CLOSED
    fail(breaker, 4)
    with pytest.raises(CallNotPermitted) as refused:
        breaker.call(ok)
    assert refused.value.remaining_wait == 10.0


def test_automatic_half_open_moves_when_the_wait_ends_without_a_call():
    clock = FakeClock()
    breaker, heard = make(clock, automatic_half_open=True)
    fail(breaker, 4)
    clock.advance(9.999)
    assert breaker.state is State.OPEN
    clock.advance(0.001)
    assert breaker.state is State.HALF_OPEN
    assert heard[-1].reason == "open wait elapsed"


def test_the_registry_poll_moves_automatic_breakers():
    clock = FakeClock()
    registry = BreakerRegistry(
        BreakerConfig(minimum_calls=1, wait_duration=5, automatic_half_open=True, window_size=5), clock=clock
    )
    breaker = registry.get("search")
    fail(breaker, 1)
    clock.advance(5)
    registry.poll()
    assert breaker.metrics().state is State.HALF_OPEN


def test_half_open_too_long_without_enough_results_goes_back_to_open():
    clock = FakeClock()
    breaker, heard = make(clock, success_threshold=3, max_half_open_duration=30.0)
    fail(breaker, 4)
    clock.advance(10)
    succeed(breaker, 1)
    clock.advance(29)
    assert breaker.state is State.HALF_OPEN
    clock.advance(1)
    assert breaker.state is State.OPEN
    assert heard[-1].reason == "half-open time limit reached"
    assert breaker.metrics().attempt == 2


def test_a_late_call_in_an_expired_half_open_is_refused():
    clock = FakeClock()
    breaker, _ = make(clock, success_threshold=3, max_half_open_duration=30.0)
    fail(breaker, 4)
    clock.advance(10)
    succeed(breaker, 1)
    clock.advance(30)
    with pytest.raises(CallNotPermitted):
        breaker.call(ok)


def test_half_open_admits_only_the_permitted_concurrent_probes():
    clock = FakeClock()
    breaker, _ = make(clock, permitted_calls_in_half_open=2, success_threshold=5)
    fail(breaker, 4)
    clock.advance(10)
    racers = 12
    start = threading.Barrier(racers)
    release = threading.Event()
    settled = threading.Semaphore(0)
    outcomes: list[str] = []

    def probe() -> str:
        settled.release()
        release.wait()
        return "probed"

    def race() -> None:
        start.wait()
        try:
            outcomes.append(breaker.call(probe))
        except CallNotPermitted:
            outcomes.append("refused")
            settled.release()

    threads = [threading.Thread(target=race) for _ in range(racers)]
    for thread in threads:
        thread.start()
    # Every racer is either inside a probe or refused before any probe ends and frees its permit.
    assert all(settled.acquire(timeout=10) for _ in range(racers))
    release.set()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["probed"] * 2 + ["refused"] * 10
    assert breaker.state is State.HALF_OPEN
    succeed(breaker, 3)  # released permits let the next probes in
    assert breaker.state is State.CLOSED


def test_no_lock_is_held_while_the_protected_function_runs():
    breaker, _ = make()
    entered = threading.Event()
    release = threading.Event()
    results: list[str] = []

    def blocking() -> str:
        entered.set()
        release.wait()
        return "finished"

    worker = threading.Thread(target=lambda: results.append(breaker.call(blocking)))
    worker.start()
    assert entered.wait(timeout=10)
    # Each of these would deadlock if the blocked call held the breaker's lock.
    succeed(breaker, 1)
    fail(breaker, 1)
    assert breaker.metrics().calls == 2
    release.set()
    worker.join()
    assert results == ["finished"]
    assert breaker.metrics().calls == 3


def test_forced_open_refuses_everything_until_released_into_half_open():
    breaker, heard = make()
    breaker.force_open()
    with pytest.raises(CallNotPermitted) as refused:
        breaker.call(ok)
    assert refused.value.remaining_wait is None
    assert (breaker.state, breaker.mode) == (State.OPEN, Mode.FORCED_OPEN)
    breaker.set_auto()
    assert breaker.state is State.HALF_OPEN
    succeed(breaker, 1)
    assert breaker.state is State.CLOSED
    assert [(event.to_state, event.mode) for event in heard[:2]] == [
        (State.OPEN, Mode.FORCED_OPEN),
        (State.HALF_OPEN, Mode.AUTO),
    ]


def test_forced_closed_lets_every_call_through_and_counts_nothing():
    breaker, heard = make()
    fail(breaker, 3)
    breaker.force_closed()
    fail(breaker, 10)
    assert breaker.state is State.CLOSED
    assert breaker.metrics().failures == 3
    assert [event.to_state for event in heard] == [State.CLOSED]


def test_metrics_only_reports_the_transitions_it_would_make_but_never_refuses():
    clock = FakeClock()
    breaker, heard = make(clock)
    breaker.set_metrics_only()
    fail(breaker, 4)
    assert breaker.state is State.OPEN
    assert breaker.call(ok) == "ok"
    assert breaker.metrics().not_permitted == 1
    clock.advance(10)
    succeed(breaker, 1)
    assert [event.to_state for event in heard[1:]] == [State.OPEN, State.HALF_OPEN, State.CLOSED]


def test_reset_closes_and_forgets_everything():
    clock = FakeClock()
    breaker, heard = make(clock, wait_multiplier=2.0)
    breaker.force_open()
    breaker.set_auto()
    fail(breaker, 1)
    breaker.reset()
    metrics = breaker.metrics()
    assert (metrics.state, metrics.mode, metrics.calls, metrics.attempt) == (State.CLOSED, Mode.AUTO, 0, 0)
    assert heard[-1].to_state is State.CLOSED


def test_ignored_exceptions_count_as_neither_success_nor_failure():
    breaker, _ = make(ignore_exceptions=(KeyError,), consecutive_failures=2)
    fail(breaker, 1)
    with pytest.raises(KeyError):
        breaker.call({}.__getitem__, "missing")
    assert breaker.metrics().calls == 1
    fail(breaker, 1)
    assert breaker.state is State.OPEN


def test_exceptions_outside_the_recorded_ones_count_as_successes():
    breaker, _ = make(record_exceptions=("builtins.LookupError",), consecutive_failures=2)
    with pytest.raises(KeyError):
        breaker.call({}.__getitem__, "missing")
    with pytest.raises(Boom):
        breaker.call(boom)
    metrics = breaker.metrics()
    assert (metrics.calls, metrics.failures, metrics.consecutive_failures) == (2, 1, 0)


def test_a_failure_predicate_decides_which_recorded_exceptions_are_failures():
    breaker, _ = make(failure_predicate=lambda error: "retryable" in str(error))

    def raise_message(message: str) -> None:
        raise ValueError(message)

    for message in ("retryable timeout", "bad input"):
        with pytest.raises(ValueError):
            breaker.call(raise_message, message)
    assert (breaker.metrics().calls, breaker.metrics().failures) == (2, 1)


def test_a_result_predicate_marks_results_as_failures_and_still_returns_them():
    breaker, _ = make(result_predicate=lambda result: result is None)
    assert breaker.call(lambda: None) is None
    assert breaker.call(ok) == "ok"
    assert breaker.metrics().failures == 1


def test_http_status_classes_count_as_failures():
    breaker, _ = make(window_size=20, minimum_calls=20, failure_statuses=("5xx", 429))

    class AiohttpStyle:
        status = 429

    for status in (503, 500, 404, 200):
        breaker.call(Response, status)
    breaker.call(AiohttpStyle)
    assert (breaker.metrics().calls, breaker.metrics().failures) == (5, 3)


def test_a_sync_call_past_the_timeout_returns_its_result_but_counts_as_a_failure():
    clock = FakeClock()
    breaker, _ = make(clock, call_timeout=1.0)

    def overrun() -> str:
        clock.advance(1.5)
        return "late"

    assert breaker.call(overrun) == "late"
    succeed(breaker, 1)
    assert (breaker.metrics().calls, breaker.metrics().failures) == (2, 1)


def test_the_fallback_replaces_refused_and_failed_calls_but_not_ignored_ones():
    seen: list[tuple[type, tuple]] = []

    def fallback(error: BaseException, *args: object) -> str:
        seen.append((type(error), args))
        return "cached"

    clock = FakeClock()
    config = BreakerConfig(minimum_calls=1, window_size=5, ignore_exceptions=(KeyError,))
    breaker = CircuitBreaker("quotes", config, clock=clock, fallback=fallback)
    with pytest.raises(KeyError):
        breaker.call({}.__getitem__, "x")
    assert breaker.call(lambda symbol: 1 / 0, "EUR") == "cached"
    assert breaker.call(ok) == "cached"
    assert seen == [(ZeroDivisionError, ("EUR",)), (CallNotPermitted, ())]


def test_protect_takes_a_fallback_for_one_function():
    breaker, _ = make(minimum_calls=1)

    @breaker.protect(fallback=lambda error, amount: f"queued {amount}")
    def charge(amount: int) -> str:
        raise Boom(amount)

    @breaker.protect
    def refund(amount: int) -> str:
        return f"refunded {amount}"

    assert charge(5) == "queued 5"
    assert charge.__name__ == "charge"
    with pytest.raises(CallNotPermitted):
        refund(3)


def test_a_raising_listener_neither_breaks_calls_nor_silences_other_listeners():
    heard: list[Transition] = []

    def broken(event: Transition) -> None:
        raise RuntimeError("listener bug")

    clock = FakeClock()
    config = BreakerConfig(minimum_calls=1, window_size=5)
    breaker = CircuitBreaker("mail", config, clock=clock, listeners=[broken, heard.append])
    fail(breaker, 1)
    event = heard[0]
    assert (event.breaker, event.from_state, event.to_state, event.timestamp) == (
        "mail",
        State.CLOSED,
        State.OPEN,
        1000.0,
    )
    assert event.wall_time > 0


def test_a_hot_config_swap_keeps_state_and_counts():
    breaker, _ = make(window_size=10, minimum_calls=10)
    succeed(breaker, 3)
    fail(breaker, 3)
    breaker.apply_config(dataclasses.replace(breaker.config, minimum_calls=7, failure_rate_threshold=40.0))
    assert breaker.metrics().calls == 6
    fail(breaker, 1)
    assert breaker.state is State.OPEN


def test_a_hot_swap_to_a_smaller_window_keeps_the_newest_calls():
    breaker, _ = make(window_size=10, minimum_calls=4)
    fail(breaker, 1)
    succeed(breaker, 5)
    breaker.apply_config(dataclasses.replace(breaker.config, window_size=4))
    assert (breaker.metrics().calls, breaker.metrics().failures, breaker.metrics().window_size) == (4, 0, 4)


def test_a_hot_swap_to_a_time_window_carries_the_totals():
    clock = FakeClock()
    breaker, _ = make(clock, window_size=10, minimum_calls=4)
    succeed(breaker, 2)
    fail(breaker, 1)
    breaker.apply_config(dataclasses.replace(breaker.config, window_kind=WindowKind.TIME, window_size=30))
    metrics = breaker.metrics()
    assert (metrics.window_kind, metrics.calls, metrics.failures) == (WindowKind.TIME, 3, 1)
    fail(breaker, 1)
    assert breaker.state is State.OPEN


def test_a_hot_swap_keeps_an_open_breaker_open():
    breaker, _ = make()
    fail(breaker, 4)
    breaker.apply_config(dataclasses.replace(breaker.config, failure_rate_threshold=90.0))
    assert breaker.state is State.OPEN


def test_an_invalid_hot_config_is_refused_and_the_old_one_kept():
    breaker, _ = make()
    old = breaker.config
    with pytest.raises(ConfigError) as refused:
        breaker.apply_config(dataclasses.replace(old, failure_rate_threshold=0))
    assert refused.value.field == "failure_rate_threshold"
    assert breaker.config is old


@pytest.mark.parametrize(
    ("overrides", "field", "limit"),
    [
        ({"window_size": 0}, "window_size", "at least 1"),
        ({"window_kind": "sideways"}, "window_kind", "count"),
        ({"minimum_calls": 0}, "minimum_calls", "at least 1"),
        ({"window_size": 5, "minimum_calls": 6}, "minimum_calls", "window_size (5)"),
        ({"failure_rate_threshold": 0}, "failure_rate_threshold", "(0, 100]"),
        ({"failure_rate_threshold": 100.5}, "failure_rate_threshold", "(0, 100]"),
        ({"slow_call_rate_threshold": -1}, "slow_call_rate_threshold", "(0, 100]"),
        ({"slow_call_duration": 0}, "slow_call_duration", "greater than 0"),
        ({"consecutive_failures": -1}, "consecutive_failures", "at least 0"),
        ({"wait_duration": 0}, "wait_duration", "greater than 0"),
        ({"wait_multiplier": 0.5}, "wait_multiplier", "at least 1"),
        ({"max_wait_duration": 5, "wait_duration": 10}, "max_wait_duration", "wait_duration (10)"),
        ({"permitted_calls_in_half_open": 0}, "permitted_calls_in_half_open", "at least 1"),
        ({"success_threshold": 0}, "success_threshold", "at least 1"),
        ({"call_timeout": -2}, "call_timeout", "greater than 0"),
        ({"call_timeout": 5, "max_half_open_duration": 2}, "max_half_open_duration", "call_timeout (5)"),
        ({"record_exceptions": ("no_such_module.Error",)}, "record_exceptions", "unknown exception"),
        ({"ignore_exceptions": ("builtins.NoSuchError",)}, "ignore_exceptions", "unknown exception"),
        ({"record_exceptions": ("builtins.len",)}, "record_exceptions", "not an exception class"),
        ({"failure_statuses": ("6xx",)}, "failure_statuses", "100..599"),
        ({"result_predicate": "yes"}, "result_predicate", "callable"),
    ],
)
def test_an_invalid_config_names_the_field_and_the_limit(overrides, field, limit):
    with pytest.raises(ConfigError) as refused:
        BreakerConfig(**overrides).validate()
    assert refused.value.field == field
    assert limit in str(refused.value)


def test_exceptions_named_by_dotted_path_are_resolved_by_import():
    breaker, _ = make(minimum_calls=1, record_exceptions=("json.JSONDecodeError",))
    with pytest.raises(ValueError):
        breaker.call(int, "not a number")
    assert breaker.state is State.CLOSED
    import json

    with pytest.raises(json.JSONDecodeError):
        breaker.call(json.loads, "{")
    assert breaker.state is State.OPEN


def test_breakers_sharing_a_store_agree_on_transitions():
    store = InMemoryStateStore()
    clock = FakeClock()
    config = BreakerConfig(minimum_calls=2, window_size=2, wait_duration=10)
    here = CircuitBreaker("ledger", config, store=store, clock=clock)
    there_heard: list[Transition] = []
    there = CircuitBreaker("ledger", config, store=store, clock=clock, listeners=[there_heard.append])
    fail(here, 2)
    assert there.state is State.OPEN
    with pytest.raises(CallNotPermitted):
        there.call(ok)
    assert there_heard == []  # only the process that made a transition announces it
    there.force_closed()
    fail(here, 3)
    assert (here.state, here.mode) == (State.CLOSED, Mode.FORCED_CLOSED)


def test_a_process_that_loses_a_transition_race_adopts_the_winners_state():
    store = InMemoryStateStore()
    clock = FakeClock()
    config = BreakerConfig(minimum_calls=1, window_size=1, wait_duration=10, success_threshold=2)
    winner = CircuitBreaker("ledger", config, store=store, clock=clock)
    fail(winner, 1)
    clock.advance(10)
    loser_heard: list[Transition] = []
    loser = CircuitBreaker("ledger", config, store=store, clock=clock, listeners=[loser_heard.append])
    stale = store.read("ledger")
    succeed(winner, 1)  # winner moves OPEN -> HALF_OPEN at generation 2
    loser._shared = stale  # as if the notification had not arrived yet
    succeed(loser, 1)  # its OPEN -> HALF_OPEN loses; it adopts HALF_OPEN and probes
    assert winner.state is State.CLOSED
    assert [(event.from_state, event.to_state) for event in loser_heard] == [(State.HALF_OPEN, State.CLOSED)]


def test_the_store_hands_out_permits_only_for_the_current_generation():
    store = InMemoryStateStore()
    breaker = CircuitBreaker("ledger", BreakerConfig(minimum_calls=1, window_size=1), store=store, clock=FakeClock())
    breaker.force_open()
    breaker.set_auto()
    generation = store.read("ledger").generation
    assert store.acquire_half_open_permit("ledger", generation, 1)
    assert not store.acquire_half_open_permit("ledger", generation, 1)
    assert not store.acquire_half_open_permit("ledger", generation - 1, 5)
    after = store.record_probe("ledger", generation, success=True)
    assert (after.half_open_permits_used, after.half_open_successes) == (0, 1)


def test_the_registry_creates_each_breaker_once_and_iterates_them():
    registry = BreakerRegistry(BreakerConfig(window_size=20))
    first = registry.get("a")
    assert registry.get("a") is first
    registry.get("b", BreakerConfig(window_size=7, minimum_calls=7))
    assert sorted(breaker.name for breaker in registry) == ["a", "b"]
    assert "b" in registry and len(registry) == 2
    assert registry.get("b").config.window_size == 7


def test_the_registry_applies_configs_and_reports_the_refused_ones():
    registry = BreakerRegistry()
    registry.get("a")
    good = BreakerConfig(window_size=50)
    bad = BreakerConfig(window_size=0)
    errors = registry.apply_configs({"a": good, "b": bad, "c": good})
    assert list(errors) == ["b"] and errors["b"].field == "window_size"
    assert registry.get("a").config is good
    assert registry.get("c").config is good
    errors = registry.apply_configs({"a": bad})
    assert registry.get("a").config is good and errors["a"].field == "window_size"


def test_protect_decorates_methods():
    breaker, _ = make()

    class Client:
        def __init__(self) -> None:
            self.base = "https://api"

        @breaker.protect
        def url(self, path: str) -> str:
            return self.base + path

    assert Client().url("/x") == "https://api/x"
    assert breaker.metrics().calls == 1
