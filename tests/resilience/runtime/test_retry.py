"""Retrier (sync), RetryPolicy validation, RetryBudget and the seeded default policies.

Time is fake throughout: sleeps record the requested delay and advance a fake clock.
"""

import email.utils
import json
import logging
import random
from types import SimpleNamespace

import pytest

from resilience.exceptions import ConfigError, RateLimitError, RetryError
from resilience.runtime.retry import (
    Retrier,
    RetryBudget,
    RetryPolicy,
    RetryStats,
    backoff_delay,
    default_retry_policies,
    jittered_delay,
)
from tests.resilience.runtime.clocks import WALL_NOW, FakeTime


def make_retrier(policy: RetryPolicy, fake: FakeTime, **kwargs) -> Retrier:
    kwargs.setdefault("rng", random.Random(42))
    return Retrier(
        policy,
        clock=fake.clock,
        wall_clock=fake.wall_clock,
        sleep=fake.sleep,
        async_sleep=fake.async_sleep,
        **kwargs,
    )


class Failing:
    """A callable that raises the given errors in turn, then returns `result`."""

    def __init__(self, *errors: BaseException, result: object = "ok") -> None:
        self.errors = list(errors)
        self.result = result
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.result


def always(error_factory):
    def fail():
        raise error_factory()

    return fail


def http_error(status: int, headers: dict | None = None) -> Exception:
    error = Exception(f"HTTP {status}")
    error.response = SimpleNamespace(status_code=status, headers=headers or {})
    return error


# Strategies and caps.


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("fixed", [2.0, 2.0, 2.0, 2.0]),
        ("linear", [2.0, 4.0, 6.0, 8.0]),
        ("exponential", [2.0, 4.0, 8.0, 16.0]),
        ("fibonacci", [2.0, 2.0, 4.0, 6.0]),
    ],
)
def test_each_strategy_waits_its_exact_sequence(fake, strategy, expected):
    policy = RetryPolicy(strategy=strategy, base_delay=2.0, max_attempts=5, max_delay=100.0)
    with pytest.raises(ConnectionError):
        make_retrier(policy, fake).call(always(ConnectionError))
    assert fake.sleeps == expected


def test_exponential_uses_its_multiplier(fake):
    policy = RetryPolicy(strategy="exponential", base_delay=1.0, multiplier=3.0, max_attempts=4)
    with pytest.raises(TimeoutError):
        make_retrier(policy, fake).call(always(TimeoutError))
    assert fake.sleeps == [1.0, 3.0, 9.0]


def test_fibonacci_continues_the_sequence():
    policy = RetryPolicy(strategy="fibonacci", base_delay=1.0, max_delay=1000.0)
    assert [backoff_delay(policy, n) for n in range(1, 9)] == [1, 1, 2, 3, 5, 8, 13, 21]


def test_max_delay_caps_every_wait(fake):
    policy = RetryPolicy(strategy="exponential", base_delay=1.0, max_delay=5.0, max_attempts=7)
    with pytest.raises(ConnectionError):
        make_retrier(policy, fake).call(always(ConnectionError))
    assert fake.sleeps == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


@pytest.mark.parametrize("strategy", ["exponential", "fibonacci", "linear"])
def test_huge_retry_numbers_stay_at_the_cap_without_overflow(strategy):
    policy = RetryPolicy(strategy=strategy, base_delay=1.0, max_delay=30.0)
    assert backoff_delay(policy, 5000) == 30.0


def test_immediate_retry_never_waits(fake):
    policy = RetryPolicy(strategy="fixed", base_delay=0.0, max_attempts=3)
    fn = Failing(TimeoutError(), TimeoutError())
    assert make_retrier(policy, fake).call(fn) == "ok"
    assert fake.sleeps == [0.0, 0.0]
    assert fn.calls == 3


# Jitter.


def test_full_jitter_draws_between_zero_and_the_backoff():
    policy = RetryPolicy(strategy="exponential", base_delay=1.0, max_delay=100.0, jitter="full")
    rng = random.Random(1)
    draws = [jittered_delay(policy, 4, 0.0, rng) for _ in range(2000)]
    assert all(0.0 <= draw <= 8.0 for draw in draws)
    assert min(draws) < 0.5 and max(draws) > 7.5  # spread over the whole range, not a constant


def test_equal_jitter_keeps_at_least_half_the_backoff():
    policy = RetryPolicy(strategy="exponential", base_delay=1.0, max_delay=100.0, jitter="equal")
    rng = random.Random(2)
    draws = [jittered_delay(policy, 4, 0.0, rng) for _ in range(2000)]
    assert all(4.0 <= draw <= 8.0 for draw in draws)
    assert min(draws) < 4.2 and max(draws) > 7.8


def test_jitter_respects_max_delay():
    policy = RetryPolicy(strategy="exponential", base_delay=1.0, max_delay=3.0, jitter="full")
    rng = random.Random(3)
    assert all(jittered_delay(policy, 10, 0.0, rng) <= 3.0 for _ in range(500))


def test_decorrelated_jitter_stays_between_base_and_three_times_the_previous_wait(fake):
    policy = RetryPolicy(base_delay=1.0, max_delay=50.0, jitter="decorrelated", max_attempts=200)
    with pytest.raises(ConnectionError):
        make_retrier(policy, fake, rng=random.Random(4)).call(always(ConnectionError))
    previous = 1.0
    for wait in fake.sleeps:
        assert 1.0 <= wait <= min(50.0, previous * 3)
        previous = wait
    assert max(fake.sleeps) > 40.0  # it does grow towards the cap


def test_the_same_seed_gives_the_same_jittered_waits():
    policy = RetryPolicy(base_delay=1.0, jitter="full", max_attempts=6)
    runs = []
    for _ in range(2):
        fake = FakeTime()
        with pytest.raises(ConnectionError):
            make_retrier(policy, fake, rng=random.Random(7)).call(always(ConnectionError))
        runs.append(fake.sleeps)
    assert runs[0] == runs[1]
    assert len(set(runs[0])) == 5


# Limits.


def test_it_gives_up_when_the_next_wait_would_pass_max_total_time(fake):
    policy = RetryPolicy(strategy="fixed", base_delay=10.0, max_attempts=10, max_total_time=25.0)
    fn = Failing(*[ConnectionError() for _ in range(10)])
    with pytest.raises(ConnectionError) as caught:
        make_retrier(policy, fake).call(fn)
    assert fake.sleeps == [10.0, 10.0]
    assert fn.calls == 3
    assert "max_total_time" in caught.value.__notes__[0]


def test_total_time_counts_the_time_spent_in_the_calls(fake):
    def slow_failure():
        fake.now += 8.0
        raise ConnectionError

    policy = RetryPolicy(strategy="fixed", base_delay=1.0, max_attempts=10, max_total_time=20.0)
    with pytest.raises(ConnectionError):
        make_retrier(policy, fake).call(slow_failure)
    assert fake.sleeps == [1.0, 1.0]  # 8+1+8+1+8 = 26: a third wait would end past 20


def test_it_stops_after_max_attempts_and_reraises_the_last_error_annotated(fake):
    policy = RetryPolicy(name="api", strategy="fixed", base_delay=1.0, max_attempts=3, on_give_up="ALERT")
    last = ConnectionError("third")
    fn = Failing(ConnectionError("first"), ConnectionError("second"), last)
    with pytest.raises(ConnectionError) as caught:
        make_retrier(policy, fake).call(fn)
    assert caught.value is last
    assert caught.value.retry_attempts == 3
    assert caught.value.retry_give_up_action == "ALERT"
    assert caught.value.__notes__ == ["Retry policy 'api' gave up after max_attempts (3): 3 attempt(s)."]


def test_keyboard_interrupt_is_never_retried(fake):
    fn = Failing(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        make_retrier(RetryPolicy(retry_on_exceptions=(BaseException,)), fake).call(fn)
    assert fn.calls == 1


# Retry-After.


def test_it_waits_the_retry_after_seconds_of_the_exception(fake):
    fn = Failing(RateLimitError(retry_after=7))
    assert make_retrier(RetryPolicy(base_delay=1.0), fake).call(fn) == "ok"
    assert fake.sleeps == [7.0]


def test_it_waits_until_an_http_date_retry_after_from_the_response_headers(fake):
    date = email.utils.formatdate(WALL_NOW + 30, usegmt=True)
    fn = Failing(http_error(503, {"retry-after": date}))
    make_retrier(RetryPolicy(base_delay=1.0), fake).call(fn)
    assert fake.sleeps == [30.0]


def test_retry_after_is_capped_by_max_delay_unless_configured_otherwise(fake):
    make_retrier(RetryPolicy(max_delay=10.0), fake).call(Failing(RateLimitError(retry_after="120")))
    make_retrier(RetryPolicy(max_delay=10.0, cap_retry_after=False), fake).call(
        Failing(RateLimitError(retry_after=120))
    )
    assert fake.sleeps == [10.0, 120.0]


def test_retry_after_can_be_ignored(fake):
    policy = RetryPolicy(strategy="fixed", base_delay=2.0, honour_retry_after=False)
    make_retrier(policy, fake).call(Failing(RateLimitError(retry_after=30)))
    assert fake.sleeps == [2.0]


# What is retried.


def test_by_default_it_retries_transient_errors_only(fake):
    retrier = make_retrier(RetryPolicy(base_delay=0.0), fake)
    assert retrier.call(Failing(ConnectionError(), http_error(503))) == "ok"
    permanent = Failing(ValueError("bad input"))
    with pytest.raises(ValueError):
        retrier.call(permanent)
    assert permanent.calls == 1
    not_found = Failing(http_error(404))
    with pytest.raises(Exception, match="HTTP 404"):
        retrier.call(not_found)
    assert not_found.calls == 1


@pytest.mark.parametrize("spec", [KeyError, "KeyError", "json.JSONDecodeError", "json.decoder.JSONDecodeError"])
def test_it_retries_listed_exception_types_given_as_classes_or_dotted_names(fake, spec):
    policy = RetryPolicy(base_delay=0.0, retry_on_transient=False, retry_on_exceptions=(spec,))
    error = KeyError("k") if spec in (KeyError, "KeyError") else json.JSONDecodeError("bad", "{", 0)
    fn = Failing(error)
    assert make_retrier(policy, fake).call(fn) == "ok"
    assert fn.calls == 2


def test_it_retries_listed_categories_and_nothing_else(fake):
    policy = RetryPolicy(base_delay=0.0, retry_on_transient=False, retry_on_categories=("RATE_LIMIT",))
    retrier = make_retrier(policy, fake)
    assert retrier.call(Failing(RateLimitError())) == "ok"
    connection = Failing(ConnectionError())
    with pytest.raises(ConnectionError):
        retrier.call(connection)
    assert connection.calls == 1


def test_it_retries_listed_error_type_codes(fake):
    policy = RetryPolicy(base_delay=0.0, retry_on_transient=False, retry_on_error_types=("DATA_VALIDATION",))
    fn = Failing(http_error(422))
    assert make_retrier(policy, fake).call(fn) == "ok"


def test_it_retries_listed_http_statuses_of_exceptions(fake):
    policy = RetryPolicy(base_delay=0.0, retry_on_transient=False, retry_on_statuses=(409,))
    retrier = make_retrier(policy, fake)
    conflict = Failing(http_error(409))
    assert retrier.call(conflict) == "ok"
    unavailable = Failing(http_error(503))
    with pytest.raises(Exception, match="HTTP 503"):
        retrier.call(unavailable)
    assert unavailable.calls == 1


def test_it_retries_a_result_the_predicate_calls_bad(fake):
    results = iter([None, None, "data"])
    retrier = make_retrier(RetryPolicy(base_delay=0.0), fake, retry_on_result=lambda result: result is None)
    assert retrier.call(lambda: next(results)) == "data"
    assert retrier.stats().retries == 2
    assert retrier.stats().successes_after_retry == 1


def test_it_retries_a_response_whose_status_is_listed(fake):
    responses = iter([SimpleNamespace(status_code=503), SimpleNamespace(status_code=200)])
    policy = RetryPolicy(base_delay=0.0, retry_on_statuses=(503,))
    assert make_retrier(policy, fake).call(lambda: next(responses)).status_code == 200


def test_a_bad_response_honours_its_retry_after_header(fake):
    responses = iter([SimpleNamespace(status_code=429, headers={"Retry-After": "4"}), SimpleNamespace(status_code=200)])
    policy = RetryPolicy(base_delay=1.0, retry_on_statuses=(429,))
    make_retrier(policy, fake).call(lambda: next(responses))
    assert fake.sleeps == [4.0]


def test_giving_up_on_a_bad_result_raises_retry_error_with_the_last_result(fake):
    bad = SimpleNamespace(status_code=503)
    policy = RetryPolicy(name="feed", base_delay=0.0, max_attempts=2, retry_on_statuses=(503,))
    retrier = make_retrier(policy, fake)
    with pytest.raises(RetryError) as caught:
        retrier.call(lambda: bad)
    assert caught.value.last_result is bad
    assert caught.value.attempts == 2
    assert caught.value.status_code == 503
    assert caught.value.context["policy"] == "feed"
    assert "max_attempts (2)" in caught.value.__notes__[0]
    assert retrier.stats().give_ups == 1


def test_giving_up_on_a_bad_result_can_return_it(fake):
    policy = RetryPolicy(base_delay=0.0, max_attempts=3, return_bad_result=True)
    retrier = make_retrier(policy, fake, retry_on_result=lambda result: result == [])
    assert retrier.call(list) == []
    assert retrier.stats().attempts == 3
    assert retrier.stats().failures == 1


# Hook and statistics.


def test_the_hook_gets_attempt_delay_and_outcome(fake):
    seen = []
    error = ConnectionError("down")
    policy = RetryPolicy(strategy="linear", base_delay=1.0)
    retrier = make_retrier(policy, fake, on_retry=lambda *args: seen.append(args), retry_on_result=lambda r: r == 0)
    results = iter([0, 1])

    def flaky():
        if not seen:
            raise error
        return next(results)

    assert retrier.call(flaky) == 1
    assert seen == [(1, 1.0, error), (2, 2.0, 0)]


def test_a_raising_hook_never_breaks_the_retry(fake, caplog):
    def broken_hook(attempt, delay, outcome):
        raise RuntimeError("hook bug")

    fn = Failing(ConnectionError(), ConnectionError())
    with caplog.at_level(logging.ERROR, logger="resilience.runtime.retry"):
        assert make_retrier(RetryPolicy(base_delay=0.0), fake, on_retry=broken_hook).call(fn) == "ok"
    assert fn.calls == 3
    assert "on_retry hook" in caplog.text


def test_stats_count_calls_attempts_retries_delays_and_outcomes(fake):
    policy = RetryPolicy(strategy="fixed", base_delay=1.5, max_attempts=2)
    retrier = make_retrier(policy, fake)
    retrier.call(Failing(ConnectionError()))  # success after one retry
    retrier.call(Failing())  # success at once
    with pytest.raises(ConnectionError):
        retrier.call(always(ConnectionError))  # gives up after 2 attempts
    with pytest.raises(ValueError):
        retrier.call(always(ValueError))  # permanent: no retry
    assert retrier.stats() == RetryStats(
        calls=4,
        attempts=6,
        retries=2,
        total_delay=3.0,
        successes=2,
        successes_after_retry=1,
        failures=2,
        give_ups=1,
        budget_denied=0,
    )
    assert retrier.stats().to_dict()["total_delay"] == 3.0


def test_wrap_retries_every_call_and_keeps_the_function(fake):
    retrier = make_retrier(RetryPolicy(base_delay=0.0), fake)
    attempts = []

    @retrier.wrap
    def fetch(symbol: str, *, interval: str) -> str:
        """Fetch one symbol."""
        attempts.append(symbol)
        if len(attempts) == 1:
            raise ConnectionError
        return f"{symbol}@{interval}"

    assert fetch("BTC", interval="1d") == "BTC@1d"
    assert attempts == ["BTC", "BTC"]
    assert fetch.__name__ == "fetch" and fetch.__doc__ == "Fetch one symbol."


# Retry budget.


def test_the_budget_caps_retries_during_an_outage(fake):
    budget = RetryBudget(20, window_seconds=10.0, min_per_second=0.0, clock=fake.clock)
    policy = RetryPolicy(strategy="fixed", base_delay=0.0, max_attempts=3)
    retrier = make_retrier(policy, fake, budget=budget)
    outage = Failing(*[ConnectionError() for _ in range(1000)])
    for _ in range(100):
        with pytest.raises(ConnectionError):
            retrier.call(outage)
    stats = retrier.stats()
    assert stats.retries == 20  # 20% of 100 calls; without the budget: 200
    assert outage.calls == 120
    assert stats.budget_denied == 100  # every call ended on a spent budget
    assert stats.give_ups == 100


def test_a_spent_budget_raises_at_once_with_a_note(fake):
    budget = RetryBudget(0, window_seconds=10.0, min_per_second=0.0, clock=fake.clock)
    fn = Failing(ConnectionError())
    with pytest.raises(ConnectionError) as caught:
        make_retrier(RetryPolicy(base_delay=0.0), fake, budget=budget).call(fn)
    assert fn.calls == 1
    assert "retry budget is spent" in caught.value.__notes__[0]


def test_the_budget_always_allows_its_minimum_per_second(fake):
    budget = RetryBudget(0, window_seconds=10.0, min_per_second=0.5, clock=fake.clock)
    spent = [budget.try_spend() for _ in range(8)]
    assert spent == [True] * 5 + [False] * 3


def test_the_budget_refills_as_its_window_slides(fake):
    budget = RetryBudget(50, window_seconds=10.0, min_per_second=0.0, clock=fake.clock)
    for _ in range(4):
        budget.record_call()
    assert budget.available() == 2
    assert budget.try_spend() and budget.try_spend() and not budget.try_spend()
    fake.now = 10.5  # the calls and retries have left the window
    for _ in range(2):
        budget.record_call()
    assert budget.available() == 1


def test_one_budget_is_shared_between_retriers(fake):
    budget = RetryBudget(10, window_seconds=10.0, min_per_second=0.0, clock=fake.clock)
    policy = RetryPolicy(base_delay=0.0, max_attempts=5)
    first, second = make_retrier(policy, fake, budget=budget), make_retrier(policy, fake, budget=budget)
    for _ in range(10):
        first.call(Failing())  # ten healthy calls earn one retry
    second.call(Failing(ConnectionError()))
    with pytest.raises(ConnectionError):
        first.call(Failing(ConnectionError(), ConnectionError()))
    assert second.stats().retries == 1
    assert first.stats().retries == 0 and first.stats().budget_denied == 1


def test_a_policy_with_a_budget_percent_gets_its_own_budget(fake):
    policy = RetryPolicy(base_delay=0.0, budget_percent=0.0, budget_min_per_second=0.0)
    retrier = make_retrier(policy, fake)
    with pytest.raises(ConnectionError):
        retrier.call(always(ConnectionError))
    assert retrier.budget is not None and retrier.stats().budget_denied == 1


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"percent": 101}, "percent"), ({"percent": -1}, "percent"), ({"window_seconds": 0}, "window_seconds")],
)
def test_an_invalid_budget_names_the_field(kwargs, field):
    arguments = {"percent": 20, "window_seconds": 10.0} | kwargs
    with pytest.raises(ConfigError) as caught:
        RetryBudget(**arguments)
    assert caught.value.field == field


# Policy validation and serialisation.


@pytest.mark.parametrize(
    ("kwargs", "field", "limit"),
    [
        ({"max_attempts": 0}, "max_attempts", ">= 1"),
        ({"max_attempts": 2.5}, "max_attempts", ">= 1"),
        ({"base_delay": -1}, "base_delay", ">= 0"),
        ({"max_delay": -1}, "max_delay", ">= 0"),
        ({"base_delay": 10, "max_delay": 5}, "max_delay", ">= base_delay (10)"),
        ({"multiplier": 0.5}, "multiplier", ">= 1"),
        ({"max_total_time": 0}, "max_total_time", "> 0"),
        ({"strategy": "random"}, "strategy", "fixed, linear, exponential, fibonacci"),
        ({"jitter": "lots"}, "jitter", "none, full, equal, decorrelated"),
        ({"jitter": "decorrelated", "base_delay": 0}, "base_delay", "> 0"),
        ({"on_give_up": "PANIC"}, "on_give_up", "NONE, SKIP, ALERT"),
        ({"retry_on_statuses": (99,)}, "retry_on_statuses", "100..599"),
        ({"retry_on_statuses": "503"}, "retry_on_statuses", "list"),
        ({"retry_on_categories": ("NETWORKING",)}, "retry_on_categories", "NETWORK"),
        ({"retry_on_exceptions": ("no_such_module.Boom",)}, "retry_on_exceptions", "no_such_module.Boom"),
        ({"retry_on_exceptions": ("json.dumps",)}, "retry_on_exceptions", "json.dumps"),
        ({"budget_percent": 150}, "budget_percent", "<= 100"),
        ({"budget_percent": -5}, "budget_percent", ">= 0"),
        ({"budget_window_seconds": 0}, "budget_window_seconds", "> 0"),
        ({"name": " "}, "name", "non-empty"),
        ({"cap_retry_after": "yes"}, "cap_retry_after", "true or false"),
    ],
)
def test_an_invalid_policy_names_the_field_and_the_limit(kwargs, field, limit):
    policy = RetryPolicy(**kwargs)
    with pytest.raises(ConfigError) as caught:
        policy.validate()
    assert caught.value.field == field
    assert limit in str(caught.value)
    with pytest.raises(ConfigError):
        Retrier(policy)


def test_a_policy_round_trips_through_plain_data():
    policy = RetryPolicy(
        name="feeds",
        strategy="fibonacci",
        retry_on_exceptions=(ConnectionError, json.JSONDecodeError, "socket.gaierror"),
        retry_on_statuses=(502, 503),
        max_total_time=30.0,
    )
    data = json.loads(json.dumps(policy.to_dict()))
    assert data["retry_on_exceptions"] == ["ConnectionError", "json.decoder.JSONDecodeError", "socket.gaierror"]
    restored = RetryPolicy.from_dict(data)
    assert restored.retry_on_statuses == (502, 503)
    assert restored.to_dict() == policy.to_dict()


def test_from_dict_rejects_unknown_fields_and_invalid_values():
    with pytest.raises(ConfigError) as unknown:
        RetryPolicy.from_dict({"max_retries": 3})
    assert unknown.value.field == "max_retries"
    with pytest.raises(ConfigError) as invalid:
        RetryPolicy.from_dict({"max_attempts": 0})
    assert invalid.value.field == "max_attempts"


# Seeded defaults (seed 003's table).


def test_the_default_table_has_one_policy_per_seeded_row():
    assert set(default_retry_policies()) == {
        "rate_limited",
        "server_error",
        "timeout",
        "connection_error",
        "bad_request",
        "unauthorized",
        "forbidden",
        "not_found",
    }
    for policy in default_retry_policies().values():
        assert RetryPolicy.from_dict(policy.to_dict()) == policy


def test_rate_limited_backs_off_exponentially_and_honours_a_long_retry_after(fake):
    policy = default_retry_policies()["rate_limited"]
    assert (policy.strategy, policy.honour_retry_after, policy.cap_retry_after) == ("exponential", True, False)
    retrier = make_retrier(policy, fake)
    retrier.call(Failing(RateLimitError(retry_after=90), http_error(429)))
    assert fake.sleeps[0] == 90.0
    assert 0.0 <= fake.sleeps[1] <= 2.0  # second retry: full jitter over base * 2
    unavailable = Failing(http_error(503))
    with pytest.raises(Exception, match="HTTP 503"):
        retrier.call(unavailable)
    assert unavailable.calls == 1


def test_server_error_retries_5xx_exponentially_at_most_three_times(fake):
    policy = default_retry_policies()["server_error"]
    assert policy.strategy == "exponential"
    fn = Failing(*[http_error(status) for status in (500, 502, 503, 504, 500)])
    with pytest.raises(Exception, match="HTTP 504"):
        make_retrier(policy, fake).call(fn)
    assert fn.calls == 4
    assert all(0.0 <= wait <= 2.0**index for index, wait in enumerate(fake.sleeps))


def test_timeout_retries_immediately_at_most_three_attempts(fake):
    policy = default_retry_policies()["timeout"]
    fn = Failing(TimeoutError(), http_error(408), TimeoutError(), TimeoutError())
    with pytest.raises(TimeoutError):
        make_retrier(policy, fake).call(fn)
    assert fn.calls == 3
    assert fake.sleeps == [0.0, 0.0]


def test_connection_error_backs_off_exponentially_at_most_five_retries(fake):
    policy = default_retry_policies()["connection_error"]
    fn = Failing(*[ConnectionRefusedError() for _ in range(10)])
    with pytest.raises(ConnectionRefusedError):
        make_retrier(policy, fake).call(fn)
    assert fn.calls == 6
    assert all(0.0 <= wait <= 2.0**index for index, wait in enumerate(fake.sleeps))


@pytest.mark.parametrize(
    ("name", "status", "action"),
    [
        ("bad_request", 400, "SKIP"),
        ("unauthorized", 401, "ALERT"),
        ("forbidden", 403, "ALERT"),
        ("not_found", 404, "SKIP"),
    ],
)
def test_permanent_rows_never_retry_and_mark_their_action(fake, name, status, action):
    policy = default_retry_policies()[name]
    assert policy.on_give_up == action
    fn = Failing(http_error(status))
    with pytest.raises(Exception, match=f"HTTP {status}") as caught:
        make_retrier(policy, fake).call(fn)
    assert fn.calls == 1
    assert fake.sleeps == []
    assert caught.value.retry_give_up_action == action
