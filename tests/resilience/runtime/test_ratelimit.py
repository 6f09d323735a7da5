"""RateLimitDetector, RateLimitPolicy and Retry-After parsing, on a fake clock."""

import email.utils
import threading
from types import SimpleNamespace

import pytest

from resilience.exceptions import ConfigError, RateLimitError
from resilience.runtime.ratelimit import (
    RateLimitDetector,
    RateLimitPolicy,
    parse_retry_after,
    retry_after_from,
)
from tests.resilience.runtime.clocks import WALL_NOW, FakeClock


def detector(clock: FakeClock, **policy) -> RateLimitDetector:
    policy = {"limit": 3, "window_seconds": 10.0} | policy
    return RateLimitDetector(RateLimitPolicy(**policy), clock=clock, wall_clock=clock.wall)


def test_a_key_is_limited_once_it_reaches_the_limit_within_the_window(clock):
    limits = detector(clock)
    results = []
    for _ in range(4):
        results.append(limits.record("user_123"))
        clock.now += 1.0
    assert results == [True, True, True, False]
    assert limits.is_limited("user_123")


def test_retry_after_is_when_the_oldest_counted_hit_leaves_the_window(clock):
    limits = detector(clock)
    for offset in (0.0, 2.0, 4.0):
        clock.now = 100.0 + offset
        limits.record("k")
    clock.now = 105.0
    assert limits.retry_after("k") == pytest.approx(5.0)  # the hit at 100 leaves at 110
    clock.now = 110.0
    assert not limits.is_limited("k")
    assert limits.retry_after("k") == 0.0


def test_the_window_slides_rather_than_resets(clock):
    limits = detector(clock, limit=2)
    limits.record("k")
    clock.now += 9.0
    limits.record("k")
    clock.now += 2.0  # the first hit left; the second is still in
    assert not limits.is_limited("k")
    assert limits.record("k")
    assert limits.is_limited("k")
    assert limits.retry_after("k") == pytest.approx(8.0)  # the hit at 109 leaves at 119


def test_keys_are_counted_separately(clock):
    limits = detector(clock, limit=1)
    limits.record("alice")
    assert limits.is_limited("alice")
    assert not limits.is_limited("bob")
    assert limits.retry_after("bob") == 0.0


def test_a_server_retry_after_in_seconds_limits_the_key_until_then(clock):
    limits = detector(clock, limit=100)
    limits.record("exchange", retry_after="30")
    clock.now += 29.0
    assert limits.is_limited("exchange")
    assert limits.retry_after("exchange") == pytest.approx(1.0)
    clock.now += 1.0
    assert not limits.is_limited("exchange")


def test_a_server_retry_after_http_date_limits_the_key_until_that_date(clock):
    limits = detector(clock, limit=100)
    limits.record("exchange", retry_after=email.utils.formatdate(clock.wall() + 120, usegmt=True))
    assert limits.retry_after("exchange") == pytest.approx(120.0)


def test_the_longer_of_window_and_server_block_wins(clock):
    limits = detector(clock, limit=1)
    limits.record("k", retry_after=2)
    assert limits.retry_after("k") == pytest.approx(10.0)
    limits.record("other", retry_after=60)
    assert limits.retry_after("other") == pytest.approx(60.0)


def test_a_later_shorter_retry_after_does_not_shorten_a_block(clock):
    limits = detector(clock, limit=100)
    limits.record("k", retry_after=60)
    limits.record("k", retry_after=5)
    assert limits.retry_after("k") == pytest.approx(60.0)


def test_memory_is_bounded_by_evicting_the_least_recently_used_key(clock):
    limits = detector(clock, limit=1, max_keys=2)
    limits.record("a")
    limits.record("b")
    limits.record("a")  # a is now more recent than b
    limits.record("c")
    assert len(limits) == 2
    assert limits.is_limited("a") and limits.is_limited("c")
    assert not limits.is_limited("b")


def test_reset_forgets_a_key(clock):
    limits = detector(clock, limit=1)
    limits.record("k", retry_after=60)
    limits.reset("k")
    assert not limits.is_limited("k")


def test_concurrent_records_are_all_counted(clock):
    limits = detector(clock, limit=4000)

    def hammer():
        for _ in range(999):
            limits.record("shared")

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not limits.is_limited("shared")  # 3996 of 4000
    for _ in range(4):
        limits.record("shared")
    assert limits.is_limited("shared")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1.5}, "limit"),
        ({"window_seconds": 0}, "window_seconds"),
        ({"window_seconds": -1}, "window_seconds"),
        ({"max_keys": 0}, "max_keys"),
    ],
)
def test_an_invalid_policy_names_the_field(kwargs, field, clock):
    with pytest.raises(ConfigError) as caught:
        RateLimitPolicy(**kwargs).validate()
    assert caught.value.field == field
    with pytest.raises(ConfigError):
        RateLimitDetector(RateLimitPolicy(**kwargs), clock=clock)


def test_a_policy_round_trips_and_rejects_unknown_fields():
    policy = RateLimitPolicy(limit=5, window_seconds=1.0, max_keys=50)
    assert RateLimitPolicy.from_dict(policy.to_dict()) == policy
    with pytest.raises(ConfigError) as caught:
        RateLimitPolicy.from_dict({"max_requests": 100})
    assert caught.value.field == "max_requests"
    with pytest.raises(ConfigError):
        RateLimitPolicy.from_dict({"limit": -3})


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (5, 5.0),
        (2.5, 2.5),
        ("120", 120.0),
        (" 7 ", 7.0),
        (-3, 0.0),
        (email.utils.formatdate(WALL_NOW + 45, usegmt=True), 45.0),
        (email.utils.formatdate(WALL_NOW - 45, usegmt=True), 0.0),
        ("soon", None),
        ("", None),
        (None, None),
        (True, None),
    ],
)
def test_retry_after_values_parse_as_seconds_or_http_dates(value, seconds):
    parsed = parse_retry_after(value, WALL_NOW)
    assert parsed == (pytest.approx(seconds) if seconds is not None else None)


def test_retry_after_is_found_on_exceptions_and_responses():
    assert retry_after_from(RateLimitError(retry_after=9), WALL_NOW) == 9.0
    response = SimpleNamespace(status_code=429, headers={"RETRY-AFTER": "11"})
    assert retry_after_from(response, WALL_NOW) == 11.0
    assert retry_after_from(SimpleNamespace(response=response), WALL_NOW) == 11.0
    assert retry_after_from(RateLimitError(), WALL_NOW) is None
    assert retry_after_from(ValueError(), WALL_NOW) is None
