"""Retrying calls: backoff strategies, jitter, limits, Retry-After, statistics and a shared retry budget.

A `RetryPolicy` is plain, frozen data (the console stores it as rows); a `Retrier` applies one to
sync calls (`call`, blocking `sleep`) and to coroutines (`call_async`, awaiting `async_sleep`, so the
event loop never blocks). Clock, sleeps and randomness are injectable, so tests never wait.

What is retried: exceptions the catalog calls transient (`retry_on_transient`), plus exceptions of
the listed classes, error-type codes, categories or HTTP statuses, plus "bad" results (a status in
`retry_on_statuses`, or the `retry_on_result` predicate). Only `Exception`s are caught: cancellation,
KeyboardInterrupt and SystemExit always go straight through.

Giving up on an exception re-raises that same exception, so callers' `except` clauses keep working;
it carries a note (PEP 678) and the attributes `retry_attempts` and `retry_give_up_action`. Giving up
on a bad result raises `RetryError` (with `last_result`), or returns the result if the policy says so.

Delays follow the AWS Architecture Blog's "Exponential Backoff And Jitter": full jitter is
uniform(0, backoff), equal jitter is backoff/2 + uniform(0, backoff/2), decorrelated jitter is
min(max_delay, uniform(base_delay, previous * 3)) and ignores the strategy.
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import importlib
import inspect
import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import Any, ParamSpec, TypeVar

from resilience.exceptions import ConfigError, RetryError
from resilience.runtime.catalog import DEFAULT_CATALOG, Catalog, Category, classify, status_of
from resilience.runtime.ratelimit import retry_after_from

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")
Clock = Callable[[], float]
ExceptionSpec = type[BaseException] | str
RetryHook = Callable[[int, float, Any], object]


class Strategy(StrEnum):
    """How the wait grows with each retry."""

    FIXED = "fixed"
    LINEAR = "linear"
    EXPONENTIAL = "exponential"
    FIBONACCI = "fibonacci"


class Jitter(StrEnum):
    """How a wait is randomised, so that clients failing together do not retry together."""

    NONE = "none"
    FULL = "full"
    EQUAL = "equal"
    DECORRELATED = "decorrelated"


class GiveUpAction(StrEnum):
    """What the console should do when a policy gives up (the "Action" column of the default retry table)."""

    NONE = "NONE"
    SKIP = "SKIP"
    ALERT = "ALERT"


_SEQUENCE_FIELDS = ("retry_on_exceptions", "retry_on_error_types", "retry_on_categories", "retry_on_statuses")


@dataclass(frozen=True)
class RetryPolicy:
    """How often, how long and on what to retry; validate() before use (Retrier does)."""

    name: str = "default"
    strategy: str = Strategy.EXPONENTIAL.value
    jitter: str = Jitter.NONE.value
    max_attempts: int = 3
    base_delay: float = 1.0
    multiplier: float = 2.0  # growth factor of the exponential strategy
    max_delay: float = 60.0  # cap on each single wait
    max_total_time: float | None = None  # give up when the next wait would end past this many seconds
    retry_on_transient: bool = True
    retry_on_exceptions: tuple[ExceptionSpec, ...] = ()  # classes, or dotted names resolved by import
    retry_on_error_types: tuple[str, ...] = ()  # catalog codes, e.g. NETWORK_TIMEOUT
    retry_on_categories: tuple[str, ...] = ()  # catalog categories, e.g. NETWORK, RATE_LIMIT
    retry_on_statuses: tuple[int, ...] = ()  # HTTP statuses of exceptions and of results
    honour_retry_after: bool = True
    cap_retry_after: bool = True  # a server's Retry-After is cut to max_delay unless this is off
    return_bad_result: bool = False  # on giving up on a bad result: return it instead of raising RetryError
    on_give_up: str = GiveUpAction.NONE.value
    budget_percent: float | None = None  # builds a per-retrier RetryBudget when no shared one is given
    budget_window_seconds: float = 10.0
    budget_min_per_second: float = 1.0

    def validate(self) -> None:
        """Raise ConfigError naming the first field outside its limits."""
        _require(isinstance(self.name, str) and bool(self.name.strip()), "name", "must be a non-empty string")
        _require_choice(self.strategy, Strategy, "strategy")
        _require_choice(self.jitter, Jitter, "jitter")
        _require_choice(self.on_give_up, GiveUpAction, "on_give_up")
        _require(
            _is_int(self.max_attempts) and self.max_attempts >= 1,
            "max_attempts",
            f"must be an integer >= 1, not {self.max_attempts!r}",
        )
        _require_number(self.base_delay, "base_delay", minimum=0)
        _require_number(self.max_delay, "max_delay", minimum=0)
        _require(
            self.max_delay >= self.base_delay,
            "max_delay",
            f"must be >= base_delay ({self.base_delay}), not {self.max_delay}",
        )
        _require_number(self.multiplier, "multiplier", minimum=1)
        if self.max_total_time is not None:
            _require_number(self.max_total_time, "max_total_time", minimum=0, strict=True)
        # Decorrelated jitter draws from [base_delay, previous * 3]: with no base it never waits.
        _require(
            self.jitter != Jitter.DECORRELATED or self.base_delay > 0,
            "base_delay",
            "must be > 0 with decorrelated jitter",
        )
        for name in ("retry_on_transient", "honour_retry_after", "cap_retry_after", "return_bad_result"):
            _require(isinstance(getattr(self, name), bool), name, "must be true or false")
        self._validate_filters()
        self._validate_budget()

    def _validate_filters(self) -> None:
        for name in _SEQUENCE_FIELDS:
            _require(isinstance(getattr(self, name), tuple | list), name, "must be a list")
        for spec in self.retry_on_exceptions:
            resolve_exception_type(spec)
        for code in self.retry_on_error_types:
            _require(isinstance(code, str) and bool(code), "retry_on_error_types", f"{code!r} is not a code")
        for category in self.retry_on_categories:
            _require_choice(category, Category, "retry_on_categories")
        for status in self.retry_on_statuses:
            _require(
                _is_int(status) and 100 <= status <= 599,
                "retry_on_statuses",
                f"{status!r} is not an HTTP status (100..599)",
            )

    def _validate_budget(self) -> None:
        if self.budget_percent is not None:
            _require_number(self.budget_percent, "budget_percent", minimum=0, maximum=100)
        _require_number(self.budget_window_seconds, "budget_window_seconds", minimum=0, strict=True)
        _require_number(self.budget_min_per_second, "budget_min_per_second", minimum=0)

    def to_dict(self) -> dict[str, Any]:
        """Return the policy as JSON-ready data: exception classes become dotted names, tuples lists."""
        data = asdict(self)
        data["retry_on_exceptions"] = [_dotted_name(spec) for spec in self.retry_on_exceptions]
        for name in _SEQUENCE_FIELDS:
            data[name] = list(data[name])
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RetryPolicy:
        """Build and validate a policy from plain data (as to_dict gives); unknown keys are errors."""
        known = {field.name for field in fields(cls)}
        for key in data:
            _require(key in known, key, "is not a retry policy field")
        values = dict(data)
        for name in _SEQUENCE_FIELDS:
            if isinstance(values.get(name), list):
                values[name] = tuple(values[name])
        policy = cls(**values)
        policy.validate()
        return policy


def _require(condition: bool, field: str, message: str) -> None:
    if not condition:
        raise ConfigError(field, message)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _require_number(
    value: object, field: str, *, minimum: float, maximum: float | None = None, strict: bool = False
) -> None:
    """Require a finite number >= minimum (> when strict) and <= maximum."""
    is_number = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    low = f"> {minimum}" if strict else f">= {minimum}"
    limits = f"{low} and <= {maximum}" if maximum is not None else low
    in_range = is_number and (value > minimum if strict else value >= minimum)
    in_range = in_range and (maximum is None or value <= maximum)
    _require(in_range, field, f"must be a number {limits}, not {value!r}")


def _require_choice(value: object, choices: type[StrEnum], field: str) -> None:
    allowed = [choice.value for choice in choices]
    _require(value in allowed, field, f"must be one of {', '.join(allowed)}, not {value!r}")


def _dotted_name(spec: ExceptionSpec) -> str:
    if isinstance(spec, str):
        return spec
    return spec.__qualname__ if spec.__module__ == "builtins" else f"{spec.__module__}.{spec.__qualname__}"


def resolve_exception_type(spec: ExceptionSpec) -> type[BaseException]:
    """Return the exception class a spec names: a class, a builtin name, or "package.module.Class"."""
    if isinstance(spec, type) and issubclass(spec, BaseException):
        return spec
    _require(isinstance(spec, str) and bool(spec.strip()), "retry_on_exceptions", f"{spec!r} is not an exception")
    found = _import_dotted(spec.strip())
    _require(
        isinstance(found, type) and issubclass(found, BaseException),
        "retry_on_exceptions",
        f"cannot import an exception class named {spec!r}",
    )
    return found


def _import_dotted(name: str) -> object:
    """Return the object a dotted name points at, importing the longest module prefix; None if none."""
    if "." not in name:
        return getattr(builtins, name, None)
    parts = name.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            found = getattr(found, attribute, None)
        return found
    return None


# Delays.


def _fibonacci(n: int) -> int:
    """Return the n-th Fibonacci number, 1-based: 1, 1, 2, 3, 5, ..."""
    current, following = 1, 1
    for _ in range(n - 1):
        current, following = following, current + following
    return current


def backoff_delay(policy: RetryPolicy, retry_number: int) -> float:
    """Return the un-jittered wait before retry `retry_number` (1-based), capped at max_delay."""
    strategy = Strategy(policy.strategy)
    try:
        if strategy is Strategy.FIXED:
            raw = policy.base_delay
        elif strategy is Strategy.LINEAR:
            raw = policy.base_delay * retry_number
        elif strategy is Strategy.EXPONENTIAL:
            raw = policy.base_delay * policy.multiplier ** (retry_number - 1)
        else:
            raw = policy.base_delay * _fibonacci(retry_number)
    except OverflowError:  # far past any cap after ~1000 retries
        raw = math.inf
    return min(policy.max_delay, raw)


def jittered_delay(policy: RetryPolicy, retry_number: int, previous: float, rng: random.Random) -> float:
    """Return the wait before retry `retry_number`; `previous` is the last wait (decorrelated jitter)."""
    jitter = Jitter(policy.jitter)
    if jitter is Jitter.DECORRELATED:
        return min(policy.max_delay, rng.uniform(policy.base_delay, max(policy.base_delay, previous * 3)))
    capped = backoff_delay(policy, retry_number)
    if jitter is Jitter.FULL:
        return rng.uniform(0, capped)
    if jitter is Jitter.EQUAL:
        return capped / 2 + rng.uniform(0, capped / 2)
    return capped


# Budget and statistics.


class RetryBudget:
    """Caps retries at `percent` of calls in a sliding window, plus `min_per_second` retries always allowed.

    Shared between retriers that call the same dependency, it keeps retries from multiplying the load
    during an outage (Finagle's RetryBudget). The window is kept in ten buckets: memory stays constant
    and a bucket's calls leave the window together.
    """

    _BUCKETS = 10

    def __init__(
        self, percent: float, window_seconds: float = 10.0, min_per_second: float = 1.0, clock: Clock = time.monotonic
    ) -> None:
        _require_number(percent, "percent", minimum=0, maximum=100)
        _require_number(window_seconds, "window_seconds", minimum=0, strict=True)
        _require_number(min_per_second, "min_per_second", minimum=0)
        self.percent = percent
        self.window_seconds = window_seconds
        self.min_per_second = min_per_second
        self._clock = clock
        self._bucket_width = window_seconds / self._BUCKETS
        self._buckets: deque[list[int]] = deque()  # [bucket index, calls, retries], oldest first
        self._lock = threading.Lock()

    def record_call(self) -> None:
        """Count one call (not a retry): each earns `percent`/100 of a retry."""
        with self._lock:
            self._current_bucket()[1] += 1

    def try_spend(self) -> bool:
        """Take one retry from the budget; return False, taking nothing, when it is spent."""
        with self._lock:
            bucket = self._current_bucket()
            if self._allowance() < 1:
                return False
            bucket[2] += 1
            return True

    def available(self) -> int:
        """Return how many retries the budget allows right now."""
        with self._lock:
            self._current_bucket()
            return max(0, math.floor(self._allowance()))

    def _allowance(self) -> float:
        calls = sum(bucket[1] for bucket in self._buckets)
        retries = sum(bucket[2] for bucket in self._buckets)
        return self.min_per_second * self.window_seconds + self.percent * calls / 100 - retries

    def _current_bucket(self) -> list[int]:
        """Return the bucket for now, dropping buckets that left the window."""
        index = int(self._clock() // self._bucket_width)
        while self._buckets and self._buckets[0][0] <= index - self._BUCKETS:
            self._buckets.popleft()
        if not self._buckets or self._buckets[-1][0] != index:
            self._buckets.append([index, 0, 0])
        return self._buckets[-1]


@dataclass(frozen=True)
class RetryStats:
    """A snapshot of a retrier's counters."""

    calls: int = 0
    attempts: int = 0
    retries: int = 0
    total_delay: float = 0.0  # seconds asked of the sleep functions
    successes: int = 0
    successes_after_retry: int = 0
    failures: int = 0  # calls that raised or gave up on a bad result
    give_ups: int = 0  # failures that were retriable but hit a limit: attempts, total time or budget
    budget_denied: int = 0  # give-ups because the retry budget was spent

    def to_dict(self) -> dict[str, Any]:
        """Return the counters as plain data."""
        return asdict(self)


class _Counters:
    """Thread-safe counters behind RetryStats."""

    def __init__(self) -> None:
        self._values: dict[str, float] = {field.name: field.default for field in fields(RetryStats)}
        self._lock = threading.Lock()

    def add(self, **increments: float) -> None:
        with self._lock:
            for name, amount in increments.items():
                self._values[name] += amount

    def snapshot(self) -> RetryStats:
        with self._lock:
            return RetryStats(**self._values)


# The retrier.


class _Call:
    """One call's progress through its attempts."""

    __slots__ = ("attempt", "give_up_reason", "previous_delay", "started")

    def __init__(self, started: float, base_delay: float) -> None:
        self.attempt = 0
        self.started = started
        self.previous_delay = base_delay
        self.give_up_reason = ""


class Retrier:
    """Applies a RetryPolicy to sync and async calls; safe to share between threads and tasks.

    `on_retry(attempt, delay, outcome)` runs before each wait, synchronously even in `call_async`;
    `retry_on_result(result)` returning true marks a result as bad. A shared `budget` takes precedence
    over the policy's budget fields. `wall_clock` only dates HTTP-date Retry-After values.
    """

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        catalog: Catalog | None = None,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        sleep: Callable[[float], object] = time.sleep,
        async_sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        rng: random.Random | None = None,
        budget: RetryBudget | None = None,
        on_retry: RetryHook | None = None,
        retry_on_result: Callable[[Any], bool] | None = None,
        reporter: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        policy.validate()
        self.policy = policy
        self._catalog = catalog if catalog is not None else DEFAULT_CATALOG
        self._clock = clock
        self._wall_clock = wall_clock  # HTTP-date Retry-After values are wall-clock times
        self._sleep = sleep
        self._async_sleep = async_sleep
        self._rng = rng if rng is not None else random.Random()
        self._on_retry = on_retry
        self._retry_on_result = retry_on_result
        self._reporter = reporter
        self._exception_types = tuple(resolve_exception_type(spec) for spec in policy.retry_on_exceptions)
        self._error_types = frozenset(policy.retry_on_error_types)
        self._categories = frozenset(policy.retry_on_categories)
        self._statuses = frozenset(policy.retry_on_statuses)
        if budget is None and policy.budget_percent is not None:
            budget = RetryBudget(
                policy.budget_percent, policy.budget_window_seconds, policy.budget_min_per_second, clock
            )
        self.budget = budget
        self._counters = _Counters()

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Call `fn`, retrying per the policy with blocking sleeps."""
        call = self._begin()
        while True:
            call.attempt += 1
            self._counters.add(attempts=1)
            try:
                result = fn(*args, **kwargs)
            except Exception as error:
                delay = self._retry_delay(call, error, retriable=self.should_retry(error))
                if delay is None:
                    raise
            else:
                if not self.is_bad_result(result):
                    return self._succeed(call, result)
                delay = self._retry_delay(call, result, retriable=True)
                if delay is None:
                    return self._give_up_on_result(call, result)
            self._sleep(delay)

    async def call_async(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Await `fn`, retrying per the policy with awaited sleeps; cancellation stops it at once."""
        call = self._begin()
        while True:
            call.attempt += 1
            self._counters.add(attempts=1)
            try:
                result = await fn(*args, **kwargs)
            except Exception as error:
                delay = self._retry_delay(call, error, retriable=self.should_retry(error))
                if delay is None:
                    raise
            else:
                if not self.is_bad_result(result):
                    return self._succeed(call, result)
                delay = self._retry_delay(call, result, retriable=True)
                if delay is None:
                    return self._give_up_on_result(call, result)
            await self._async_sleep(delay)

    def wrap(self, fn: Callable[P, T]) -> Callable[P, T]:
        """Decorate a function or coroutine function so every call goes through this retrier."""
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                return await self.call_async(fn, *args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            return self.call(fn, *args, **kwargs)

        return wrapper

    def stats(self) -> RetryStats:
        """Return a snapshot of the counters."""
        return self._counters.snapshot()

    def should_retry(self, error: BaseException) -> bool:
        """Return whether the policy retries this exception (limits aside)."""
        if isinstance(error, self._exception_types):
            return True
        if self._statuses and status_of(error) in self._statuses:
            return True
        code = classify(error)
        entry = self._catalog.entry(code)
        return (
            code in self._error_types
            or entry.category in self._categories
            or (self.policy.retry_on_transient and entry.transient)
        )

    def is_bad_result(self, result: object) -> bool:
        """Return whether a returned value should be retried: the predicate says so, or its status is listed."""
        if self._retry_on_result is not None and self._retry_on_result(result):
            return True
        return bool(self._statuses) and status_of(result) in self._statuses

    def _begin(self) -> _Call:
        self._counters.add(calls=1)
        if self.budget is not None:
            self.budget.record_call()
        return _Call(self._clock(), self.policy.base_delay)

    def _succeed(self, call: _Call, result: T) -> T:
        self._counters.add(successes=1, successes_after_retry=int(call.attempt > 1))
        return result

    def _retry_delay(self, call: _Call, outcome: object, *, retriable: bool) -> float | None:
        """Return the wait before the next attempt, or None to stop (counting and annotating why)."""
        if not retriable:
            self._counters.add(failures=1)
            return None
        if call.attempt >= self.policy.max_attempts:
            reason, delay = f"after max_attempts ({self.policy.max_attempts})", 0.0
        else:
            delay = self._plan_delay(call, outcome)
            reason = self._stop_reason(call, delay)
        if reason is not None:
            self._give_up(call, outcome, reason)
            return None
        call.previous_delay = delay
        self._counters.add(retries=1, total_delay=delay)
        self._notify(call.attempt, delay, outcome)
        return delay

    def _stop_reason(self, call: _Call, delay: float) -> str | None:
        """Return why no retry may follow `delay`, or None; spends the budget only if nothing else stops it."""
        if self.policy.max_total_time is not None:
            ends_at = self._clock() - call.started + delay
            if ends_at > self.policy.max_total_time:
                return (
                    f"as the next wait would end at {ends_at:.3f}s, past max_total_time ({self.policy.max_total_time})"
                )
        if self.budget is not None and not self.budget.try_spend():
            self._counters.add(budget_denied=1)
            return "as the retry budget is spent"
        return None

    def _plan_delay(self, call: _Call, outcome: object) -> float:
        """Return the server's Retry-After when honoured and present, else the strategy's jittered wait."""
        if self.policy.honour_retry_after:
            server_wait = retry_after_from(outcome, self._wall_clock())
            if server_wait is not None:
                return min(server_wait, self.policy.max_delay) if self.policy.cap_retry_after else server_wait
        return jittered_delay(self.policy, call.attempt, call.previous_delay, self._rng)

    def _give_up(self, call: _Call, outcome: object, reason: str) -> None:
        self._counters.add(failures=1, give_ups=1)
        call.give_up_reason = reason
        logger.info("Retry policy %r gave up %s: %d attempt(s)", self.policy.name, reason, call.attempt)
        if isinstance(outcome, BaseException):
            self._annotate(outcome, call)
        if self.policy.on_give_up == GiveUpAction.ALERT:
            self._report_alert(outcome, call)

    def _report_alert(self, outcome: object, call: _Call) -> None:
        """Tell the console (as recovery alerts are told) that this policy gave up on what it covers."""
        if self._reporter is None:
            return
        # A bad result is judged by its status, when it has one.
        error_type = classify(outcome) if isinstance(outcome, BaseException) else classify(status_of(outcome) or 0)
        payload = {
            "policy": self.policy.name,
            "strategy": "retry",
            "component": self.policy.name,
            "error_type": error_type,
            "error": f"{outcome!r} ({call.give_up_reason}, {call.attempt} attempt(s))"[:1000],
            "severity": "error",
        }
        try:
            self._reporter("recovery.alert", payload)
        except Exception:
            # Reporting to the console must never break the application it observes.
            logger.warning("retry reporter failed for policy %r", self.policy.name, exc_info=True)

    def _annotate(self, error: BaseException, call: _Call) -> None:
        error.add_note(f"Retry policy {self.policy.name!r} gave up {call.give_up_reason}: {call.attempt} attempt(s).")
        error.retry_attempts = call.attempt  # type: ignore[attr-defined]
        error.retry_give_up_action = self.policy.on_give_up  # type: ignore[attr-defined]

    def _give_up_on_result(self, call: _Call, result: T) -> T:
        if self.policy.return_bad_result:
            return result
        error = RetryError(
            f"Retry policy {self.policy.name!r} gave up on a bad result after {call.attempt} attempt(s)",
            last_result=result,
            policy=self.policy.name,
            attempts=call.attempt,
            status_code=status_of(result),
        )
        self._annotate(error, call)
        raise error

    def _notify(self, attempt: int, delay: float, outcome: object) -> None:
        """Call the on_retry hook; a failing hook is logged and never stops the retry."""
        if self._on_retry is None:
            return
        try:
            self._on_retry(attempt, delay, outcome)
        except Exception:
            logger.exception("on_retry hook of retry policy %r failed; retrying anyway", self.policy.name)


# Seeded defaults.

_SERVER_ERRORS = tuple(range(500, 600))


def default_retry_policies() -> dict[str, RetryPolicy]:
    """Return the default retry table as named policies, one per kind of failure.

    Each row retries only its own failures (retry_on_transient is off), so the console can choose a
    row by what failed. Rows with max_attempts=1 never retry: they only carry the give-up action.
    """
    policies = [
        # The server knows when its window resets: waiting less than it asks only earns another 429.
        RetryPolicy(
            name="rate_limited",
            strategy=Strategy.EXPONENTIAL.value,
            jitter=Jitter.FULL.value,
            max_attempts=5,
            retry_on_transient=False,
            retry_on_statuses=(429,),
            retry_on_error_types=("API_RATE_LIMIT",),
            honour_retry_after=True,
            cap_retry_after=False,
        ),
        RetryPolicy(
            name="server_error",
            strategy=Strategy.EXPONENTIAL.value,
            jitter=Jitter.FULL.value,
            max_attempts=4,  # the first try and at most 3 retries
            retry_on_transient=False,
            retry_on_statuses=_SERVER_ERRORS,
            retry_on_error_types=("API_SERVER_ERROR",),
        ),
        RetryPolicy(
            name="timeout",
            strategy=Strategy.FIXED.value,
            base_delay=0.0,
            max_attempts=3,
            retry_on_transient=False,
            retry_on_statuses=(408,),
            retry_on_error_types=("NETWORK_TIMEOUT",),
        ),
        RetryPolicy(
            name="connection_error",
            strategy=Strategy.EXPONENTIAL.value,
            jitter=Jitter.FULL.value,
            max_attempts=6,  # the first try and at most 5 retries
            retry_on_transient=False,
            retry_on_error_types=("NETWORK_CONNECTION",),
        ),
        _no_retry("bad_request", 400, GiveUpAction.SKIP),
        _no_retry("unauthorized", 401, GiveUpAction.ALERT),
        _no_retry("forbidden", 403, GiveUpAction.ALERT),
        _no_retry("not_found", 404, GiveUpAction.SKIP),
    ]
    return {policy.name: policy for policy in policies}


def _no_retry(name: str, status: int, action: GiveUpAction) -> RetryPolicy:
    return RetryPolicy(
        name=name,
        max_attempts=1,
        retry_on_transient=False,
        retry_on_statuses=(status,),
        on_give_up=action.value,
    )
