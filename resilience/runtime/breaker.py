"""Circuit breakers for threads and asyncio: config, the breaker itself, and a registry of named breakers.

A breaker counts outcomes in a local sliding window (see windows.py) and moves through
CLOSED -> OPEN -> HALF_OPEN -> CLOSED; the transitions, forced modes and half-open permits go
through a `BreakerStateStore` (see state.py) so processes sharing a store agree on them.

Design notes:

- No lock is ever held while the protected function runs. The breaker lock only guards window
  updates and the local copy of the shared state, for a few microseconds at most.
- The CLOSED success path reads one flag, calls the function and notes the success without the
  lock (one C call for a count window, a clock read more for a time window; see windows.py).
  It never touches the store, and reads the clock for a count window only when a slow-call
  threshold or a call timeout needs it. A success racing a window resize in `apply_config` may be lost.
- Trip conditions are evaluated when a failure or a slow call is recorded: a success can never
  raise a rate, so evaluating them on every success would only slow the common path down.
- Sync calls cannot be interrupted safely, so a sync call that outlasts `call_timeout` runs to its
  end, returns its result, and is counted as a failure. Async calls are cancelled at the timeout
  (`asyncio.timeout`), raise `TimeoutError` and are counted as failures.
- An exception that is neither ignored nor recorded (or that the failure predicate rejects)
  counts as a success, as in resilience4j; an ignored one counts as nothing. `BaseException`s that
  are not `Exception`s (cancellation, KeyboardInterrupt) are always ignored.
- The fallback, `fallback(error, *args, **kwargs)`, replaces the call when it is refused
  (`CallNotPermitted`) or raises an exception counted as a failure; its value is returned instead.
  A result judged a failure (status 503, result predicate) is still returned as it is.
- A probe in HALF_OPEN that fails or is slow reopens the breaker.
- Listeners hear the transitions this breaker made itself. A transition adopted from another
  process sharing the store is not announced again, so the console gets each transition once.
- `automatic_half_open` has no timer thread: the move happens when the state is next looked at
  (`state`, `metrics()`, `poll()`, or a call); `BreakerRegistry.poll()` is meant for a scheduler.
"""

import asyncio
import functools
import importlib
import inspect
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ParamSpec, TypeVar

from resilience.exceptions import ConfigError
from resilience.runtime.state import BreakerStateStore, InMemoryStateStore, Mode, SharedState, State
from resilience.runtime.windows import (
    FAILED,
    SLOW,
    SlidingWindow,
    WindowKind,
    make_window,
    resize_window,
)

__all__ = [
    "BreakerConfig",
    "BreakerMetrics",
    "BreakerRegistry",
    "CallNotPermitted",
    "CircuitBreaker",
    "ConfigError",
    "Mode",
    "State",
    "Transition",
    "WindowKind",
]

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")
ExceptionSpec = type[BaseException] | str
Listener = Callable[["Transition"], object]
Fallback = Callable[..., Any]

_RECORDING_MODES = (Mode.AUTO, Mode.METRICS_ONLY)
_MAX_RACES = 4  # admission retries after losing a transition race; more means heavy contention
_MAX_BACKOFF_EXPONENT = 64  # keeps wait_multiplier ** attempt finite


class CallNotPermitted(Exception):
    """The breaker refused the call; `remaining_wait` is in seconds, None while forced open."""

    def __init__(self, breaker: str, remaining_wait: float | None) -> None:
        until = "until it is released" if remaining_wait is None else f"for another {remaining_wait:.3f}s"
        super().__init__(f"circuit breaker {breaker!r} does not permit calls {until}")
        self.breaker = breaker
        self.remaining_wait = remaining_wait


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """How a breaker counts outcomes, when it trips and how it recovers. Durations are in seconds."""

    window_kind: WindowKind = WindowKind.COUNT
    window_size: int = 100  # calls for a count window, seconds for a time window
    minimum_calls: int = 10
    failure_rate_threshold: float = 50.0  # percent
    slow_call_rate_threshold: float = 100.0  # percent
    slow_call_duration: float | None = None  # None: no slow-call detection
    consecutive_failures: int = 0  # 0: off
    wait_duration: float = 60.0
    wait_multiplier: float = 1.0  # growth of the wait across consecutive openings
    max_wait_duration: float | None = None
    automatic_half_open: bool = False
    max_half_open_duration: float | None = None
    permitted_calls_in_half_open: int = 1
    success_threshold: int = 1  # probe successes that close the breaker
    call_timeout: float | None = None
    record_exceptions: tuple[ExceptionSpec, ...] = (Exception,)
    ignore_exceptions: tuple[ExceptionSpec, ...] = ()
    failure_predicate: Callable[[BaseException], bool] | None = None
    result_predicate: Callable[[Any], bool] | None = None  # True: the result is a failure
    failure_statuses: tuple[int | str, ...] = ()  # e.g. ("5xx", 429)

    def __post_init__(self) -> None:
        # Configs loaded from JSON or the database name the kind as a plain string.
        if isinstance(self.window_kind, str) and self.window_kind in set(WindowKind):
            object.__setattr__(self, "window_kind", WindowKind(self.window_kind))

    def validate(self) -> None:
        """Raise ConfigError naming the first field outside its limits."""
        if not isinstance(self.window_kind, WindowKind):
            raise ConfigError("window_kind", f"must be one of {[kind.value for kind in WindowKind]}")
        _require_at_least("window_size", self.window_size, 1)
        _require_at_least("minimum_calls", self.minimum_calls, 1)
        if self.window_kind is WindowKind.COUNT and self.minimum_calls > self.window_size:
            raise ConfigError(
                "minimum_calls",
                f"must not exceed window_size ({self.window_size}) for a count window, got {self.minimum_calls}",
            )
        _require_rate("failure_rate_threshold", self.failure_rate_threshold)
        _require_rate("slow_call_rate_threshold", self.slow_call_rate_threshold)
        _require_positive("slow_call_duration", self.slow_call_duration, optional=True)
        _require_at_least("consecutive_failures", self.consecutive_failures, 0)
        _require_positive("wait_duration", self.wait_duration)
        _require_at_least("wait_multiplier", self.wait_multiplier, 1)
        _require_positive("max_wait_duration", self.max_wait_duration, optional=True)
        if self.max_wait_duration is not None and self.max_wait_duration < self.wait_duration:
            raise ConfigError("max_wait_duration", f"must be at least wait_duration ({self.wait_duration})")
        _require_positive("call_timeout", self.call_timeout, optional=True)
        _require_positive("max_half_open_duration", self.max_half_open_duration, optional=True)
        cap, timeout = self.max_half_open_duration, self.call_timeout
        if cap is not None and timeout is not None and cap < timeout:
            raise ConfigError("max_half_open_duration", f"must be at least call_timeout ({timeout}) for a probe")
        _require_at_least("permitted_calls_in_half_open", self.permitted_calls_in_half_open, 1)
        _require_at_least("success_threshold", self.success_threshold, 1)
        _require_callable("failure_predicate", self.failure_predicate)
        _require_callable("result_predicate", self.result_predicate)
        resolve_exceptions("record_exceptions", self.record_exceptions)
        resolve_exceptions("ignore_exceptions", self.ignore_exceptions)
        resolve_statuses("failure_statuses", self.failure_statuses)


def _require_at_least(name: str, value: float, minimum: float) -> None:
    if not isinstance(value, int | float) or value < minimum:
        raise ConfigError(name, f"must be at least {minimum}, got {value!r}")


def _require_positive(name: str, value: float | None, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, int | float) or value <= 0:
        raise ConfigError(name, f"must be greater than 0, got {value!r}")


def _require_rate(name: str, value: float) -> None:
    if not isinstance(value, int | float) or not 0 < value <= 100:
        raise ConfigError(name, f"must be a percentage in (0, 100], got {value!r}")


def _require_callable(name: str, value: object) -> None:
    if value is not None and not callable(value):
        raise ConfigError(name, f"must be callable or None, got {value!r}")


def resolve_exceptions(name: str, specs: tuple[ExceptionSpec, ...]) -> tuple[type[BaseException], ...]:
    """Return the exception classes named by `specs`, importing dotted paths like "requests.Timeout"."""
    return tuple(_resolve_exception(name, spec) for spec in specs)


def _resolve_exception(name: str, spec: ExceptionSpec) -> type[BaseException]:
    if isinstance(spec, str):
        module_path, _, attribute = spec.rpartition(".")
        try:
            found = getattr(importlib.import_module(module_path or "builtins"), attribute)
        except (ImportError, AttributeError, ValueError):
            raise ConfigError(name, f"unknown exception {spec!r}") from None
    else:
        found = spec
    if not (isinstance(found, type) and issubclass(found, BaseException)):
        raise ConfigError(name, f"{spec!r} is not an exception class")
    return found


def resolve_statuses(name: str, specs: tuple[int | str, ...]) -> frozenset[int]:
    """Return the HTTP status codes named by `specs`: codes (429, "429") and classes ("5xx")."""
    codes: set[int] = set()
    for spec in specs:
        text = str(spec).strip().lower()
        if len(text) == 3 and text[0] in "12345" and text[1:] == "xx":
            first = int(text[0]) * 100
            codes.update(range(first, first + 100))
        elif text.isdigit() and 100 <= int(text) <= 599:
            codes.add(int(text))
        else:
            raise ConfigError(name, f"{spec!r} is neither a status code in 100..599 nor a class like '5xx'")
    return frozenset(codes)


class _OutcomeRules:
    """A validated config compiled into what judging one outcome needs."""

    __slots__ = (
        "checks_results",
        "failure_predicate",
        "failure_statuses",
        "ignore",
        "record",
        "result_predicate",
        "slow_after",
        "timed",
        "timeout",
    )

    def __init__(self, config: BreakerConfig) -> None:
        self.record = resolve_exceptions("record_exceptions", config.record_exceptions)
        self.ignore = resolve_exceptions("ignore_exceptions", config.ignore_exceptions)
        self.failure_predicate = config.failure_predicate
        self.result_predicate = config.result_predicate
        self.failure_statuses = resolve_statuses("failure_statuses", config.failure_statuses)
        self.slow_after = config.slow_call_duration
        self.timeout = config.call_timeout
        self.timed = self.slow_after is not None or self.timeout is not None
        self.checks_results = self.result_predicate is not None or bool(self.failure_statuses)

    def error_flags(self, error: BaseException) -> int | None:
        """Return the outcome flags of a raised error, None when it counts as nothing."""
        if not isinstance(error, Exception) or isinstance(error, self.ignore):
            return None
        if isinstance(error, self.record) and (self.failure_predicate is None or self.failure_predicate(error)):
            return FAILED
        return 0

    def result_flags(self, result: object) -> int:
        if self.result_predicate is not None and self.result_predicate(result):
            return FAILED
        if self.failure_statuses:
            status = getattr(result, "status_code", None)
            if status is None:
                status = getattr(result, "status", None)
            if isinstance(status, int) and status in self.failure_statuses:
                return FAILED
        return 0

    def duration_flags(self, duration: float) -> int:
        flags = 0
        if self.slow_after is not None and duration >= self.slow_after:
            flags |= SLOW
        if self.timeout is not None and duration >= self.timeout:
            flags |= FAILED
        return flags


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of state or mode, as told to listeners. `timestamp` is on the breaker's clock."""

    breaker: str
    from_state: State
    to_state: State
    reason: str
    timestamp: float
    wall_time: float
    mode: Mode
    generation: int


@dataclass(frozen=True, slots=True)
class BreakerMetrics:
    """A snapshot of a breaker's window and state; rates are percentages."""

    name: str
    state: State
    mode: Mode
    calls: int
    failures: int
    slow_calls: int
    failure_rate: float
    slow_call_rate: float
    consecutive_failures: int
    not_permitted: int  # refused calls, or calls METRICS_ONLY would have refused
    attempt: int
    generation: int
    window_kind: WindowKind
    window_size: int


@dataclass(frozen=True, slots=True)
class _Admission:
    kind: str  # "plain": counted in the window; "probe": a half-open probe; "unrecorded": forced closed
    generation: int = field(default=-1)


_PLAIN = _Admission("plain")
_UNRECORDED = _Admission("unrecorded")


class CircuitBreaker:
    """A named circuit breaker protecting sync and async calls."""

    def __init__(
        self,
        name: str,
        config: BreakerConfig,
        *,
        store: BreakerStateStore | None = None,
        clock: Callable[[], float] = time.monotonic,
        listeners: tuple[Listener, ...] | list[Listener] = (),
        fallback: Fallback | None = None,
    ) -> None:
        config.validate()
        self.name = name
        self._config = config
        self._rules = _OutcomeRules(config)
        self._clock = clock
        self._store: BreakerStateStore = store if store is not None else InMemoryStateStore()
        self._listeners = list(listeners)
        self._fallback = fallback
        self._lock = threading.Lock()
        self._bind_window(make_window(config.window_kind, config.window_size, clock, self._lock))
        self._consecutive_failures = 0
        self._not_permitted = 0
        self._shared = self._store.read(name)
        self._refresh_fast_paths()
        self._store.subscribe(name, self._install)

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.name!r} {self._shared.state.value} {self._shared.mode.value}>"

    @property
    def config(self) -> BreakerConfig:
        return self._config

    @property
    def state(self) -> State:
        """Return the current state, after any time-driven move that is due."""
        return self.poll()

    @property
    def mode(self) -> Mode:
        return self._shared.mode

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    # Calls

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call `fn` through the breaker; raise CallNotPermitted when refused and there is no fallback."""
        if self._plain_fast:
            try:
                result = fn(*args, **kwargs)
            except BaseException as error:
                return self._after_error(error, _PLAIN, None, args, kwargs, self._fallback)
            self._note_success()
            return result
        return self._call_guarded(fn, args, kwargs, self._fallback)

    async def call_async(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Await `fn` through the breaker, cancelling it at `call_timeout`."""
        return await self._call_async(fn, args, kwargs, self._fallback)

    def protect(self, fn: Callable[P, R] | None = None, *, fallback: Fallback | None = None) -> Any:
        """Decorate a sync or async function so every call goes through the breaker.

        Use bare (`@breaker.protect`) or with a fallback for this function only
        (`@breaker.protect(fallback=cached_prices)`).
        """
        if fn is None:
            return functools.partial(self.protect, fallback=fallback)
        chosen = fallback

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def guarded_async(*args: Any, **kwargs: Any) -> Any:
                return await self._call_async(fn, args, kwargs, chosen or self._fallback)

            return guarded_async

        # A def, not a partial: it must bind `self` when it decorates a method. It repeats
        # call()'s fast path inline because going through call() costs a frame per call.
        @functools.wraps(fn)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if self._plain_fast:
                try:
                    result = fn(*args, **kwargs)
                except BaseException as error:
                    return self._after_error(error, _PLAIN, None, args, kwargs, chosen or self._fallback)
                self._note_success()
                return result
            return self._call_guarded(fn, args, kwargs, chosen or self._fallback)

        return guarded

    def _call_guarded(self, fn: Callable[..., R], args: tuple, kwargs: dict, fallback: Fallback | None) -> R:
        try:
            admission = _PLAIN if self._closed_fast else self._admit()
        except CallNotPermitted as refusal:
            if fallback is None:
                raise
            return fallback(refusal, *args, **kwargs)
        started = self._clock() if self._rules.timed else None
        try:
            result = fn(*args, **kwargs)
        except BaseException as error:
            return self._after_error(error, admission, started, args, kwargs, fallback)
        self._settle_result(result, admission, started)
        return result

    def _after_error(
        self,
        error: BaseException,
        admission: _Admission,
        started: float | None,
        args: tuple,
        kwargs: dict,
        fallback: Fallback | None,
    ) -> Any:
        if self._settle_error(error, admission, started, False) and fallback is not None:
            return fallback(error, *args, **kwargs)
        raise error

    async def _call_async(
        self, fn: Callable[..., Awaitable[R]], args: tuple, kwargs: dict, fallback: Fallback | None
    ) -> R:
        if self._plain_fast:
            try:
                result = await fn(*args, **kwargs)
            except BaseException as error:
                return await self._after_error_async(error, _PLAIN, None, False, args, kwargs, fallback)
            self._note_success()
            return result
        try:
            admission = _PLAIN if self._closed_fast else await self._off_loop(self._admit)
        except CallNotPermitted as refusal:
            if fallback is None:
                raise
            return await _resolved(fallback(refusal, *args, **kwargs))
        started = self._clock() if self._rules.timed else None
        timeout = self._rules.timeout
        scope = None
        try:
            if timeout is None:
                result = await fn(*args, **kwargs)
            else:
                async with asyncio.timeout(timeout) as scope:
                    result = await fn(*args, **kwargs)
        except BaseException as error:
            timed_out = scope is not None and scope.expired()
            return await self._after_error_async(error, admission, started, timed_out, args, kwargs, fallback)
        await self._off_loop(self._settle_result, result, admission, started)
        return result

    async def _after_error_async(
        self,
        error: BaseException,
        admission: _Admission,
        started: float | None,
        timed_out: bool,
        args: tuple,
        kwargs: dict,
        fallback: Fallback | None,
    ) -> Any:
        failed = await self._off_loop(self._settle_error, error, admission, started, timed_out)
        if failed and fallback is not None:
            return await _resolved(fallback(error, *args, **kwargs))
        raise error

    async def _off_loop(self, fn: Callable[..., R], *args: Any) -> R:
        # A store doing network I/O must not block the event loop; the in-memory one never does.
        if self._store.blocking:
            return await asyncio.to_thread(fn, *args)
        return fn(*args)

    # Admission

    def _admit(self) -> _Admission:
        for _race in range(_MAX_RACES):
            shared = self._shared
            if shared.mode is Mode.FORCED_CLOSED:
                return _UNRECORDED
            if shared.mode is Mode.FORCED_OPEN:
                return self._refuse(None)
            if shared.state is State.CLOSED:
                return _PLAIN
            now_ms = self._now_ms()
            if shared.state is State.OPEN:
                if now_ms < shared.open_until_ms:
                    return self._refuse((shared.open_until_ms - now_ms) / 1000)
                self._transition(shared, State.HALF_OPEN, "open wait elapsed", now_ms)
                continue
            if self._half_open_expired(shared, now_ms):
                self._transition(shared, State.OPEN, "half-open time limit reached", now_ms)
                continue
            if self._store.acquire_half_open_permit(
                self.name, shared.generation, self._config.permitted_calls_in_half_open
            ):
                return _Admission("probe", shared.generation)
            latest = self._store.read(self.name)
            if latest.generation == shared.generation:
                return self._refuse(0.0)
            self._install(latest)
        return self._refuse(0.0)

    def _refuse(self, remaining_wait: float | None) -> _Admission:
        with self._lock:
            self._not_permitted += 1
        if self._shared.mode is Mode.METRICS_ONLY:
            return _PLAIN
        raise CallNotPermitted(self.name, remaining_wait)

    def _half_open_expired(self, shared: SharedState, now_ms: int) -> bool:
        cap = self._config.max_half_open_duration
        return cap is not None and now_ms - shared.changed_at_ms >= cap * 1000

    # Outcomes

    def _settle_error(
        self, error: BaseException, admission: _Admission, started: float | None, timed_out: bool
    ) -> bool:
        """Count a raised error; say whether it counted as a failure."""
        flags = FAILED if timed_out else self._rules.error_flags(error)
        now = None
        if started is not None and flags is not None:
            now = self._clock()
            flags |= self._rules.duration_flags(now - started)
        self._settle(admission, flags, now)
        return flags is not None and bool(flags & FAILED)

    def _settle_result(self, result: object, admission: _Admission, started: float | None) -> None:
        flags = self._rules.result_flags(result)
        now = None
        if started is not None:
            now = self._clock()
            flags |= self._rules.duration_flags(now - started)
        self._settle(admission, flags, now)

    def _settle(self, admission: _Admission, flags: int | None, now: float | None) -> None:
        if admission.kind == "probe":
            self._settle_probe(admission.generation, flags)
        elif admission.kind == "plain" and flags is not None:
            self._record(flags, now)

    def _record(self, flags: int, now: float | None) -> None:
        with self._lock:
            self._fold_noted_successes()
            self._window.record(flags, now)
            self._consecutive_failures = self._consecutive_failures + 1 if flags & FAILED else 0
            shared = self._shared
            trippable = flags and shared.state is State.CLOSED and shared.mode in _RECORDING_MODES
            reason = self._trip_reason() if trippable else None
        if reason is not None:
            self._transition(shared, State.OPEN, reason, self._now_ms())

    def _trip_reason(self) -> str | None:
        config = self._config
        if config.consecutive_failures and self._consecutive_failures >= config.consecutive_failures:
            return f"{self._consecutive_failures} consecutive failures"
        window = self._window
        if window.calls < config.minimum_calls:
            return None
        failure_rate = 100 * window.failures / window.calls
        if failure_rate >= config.failure_rate_threshold:
            return f"failure rate {failure_rate:.1f}% >= {config.failure_rate_threshold}% over {window.calls} calls"
        slow_rate = 100 * window.slow_calls / window.calls
        if config.slow_call_duration is not None and slow_rate >= config.slow_call_rate_threshold:
            return f"slow-call rate {slow_rate:.1f}% >= {config.slow_call_rate_threshold}% over {window.calls} calls"
        return None

    def _settle_probe(self, generation: int, flags: int | None) -> None:
        success = None if flags is None else flags == 0
        shared = self._store.record_probe(self.name, generation, success)
        self._install(shared)
        if shared.generation != generation or shared.state is not State.HALF_OPEN:
            return
        now_ms = self._now_ms()
        if success is False:
            self._transition(shared, State.OPEN, "half-open probe failed", now_ms)
        elif shared.half_open_successes >= self._config.success_threshold:
            self._transition(shared, State.CLOSED, f"{shared.half_open_successes} half-open probes succeeded", now_ms)
        elif self._half_open_expired(shared, now_ms):
            self._transition(shared, State.OPEN, "half-open time limit reached", now_ms)

    # State changes

    def _transition(self, seen: SharedState, to: State, reason: str, now_ms: int) -> SharedState:
        """Move from `seen` to `to` through the store; a loser of the race adopts the winner's state."""
        attempt = seen.attempt + 1 if to is State.OPEN else 0 if to is State.CLOSED else seen.attempt
        new = replace(
            seen,
            state=to,
            generation=seen.generation + 1,
            changed_at_ms=now_ms,
            opened_at_ms=now_ms if to is State.OPEN else seen.opened_at_ms,
            open_until_ms=now_ms + self._open_wait_ms(attempt) if to is State.OPEN else seen.open_until_ms,
            attempt=attempt,
            half_open_permits_used=0,
            half_open_successes=0,
            last_reason=reason,
        )
        if not self._store.compare_and_set(self.name, seen.generation, new):
            winner = self._store.read(self.name)
            self._install(winner)
            return winner
        self._install(new)
        self._announce(seen, new, now_ms)
        return new

    def _open_wait_ms(self, attempt: int) -> int:
        config = self._config
        growth = config.wait_multiplier ** min(attempt - 1, _MAX_BACKOFF_EXPONENT)
        wait = config.wait_duration * growth
        if config.max_wait_duration is not None:
            wait = min(wait, config.max_wait_duration)
        return round(wait * 1000)

    def _install(self, shared: SharedState) -> None:
        """Adopt `shared` as the local copy unless a newer one is already here."""
        with self._lock:
            current = self._shared
            if shared.generation < current.generation:
                return
            self._shared = shared
            if shared.state is State.CLOSED and current.state is not State.CLOSED:
                # Failures from before the opening must not trip the breaker again right away.
                self._window.clear()
                self._consecutive_failures = 0
            self._refresh_fast_paths()

    def _fold_noted_successes(self) -> None:
        """Bring lock-free successes into the window; call with the lock held."""
        if self._window.flush():
            self._consecutive_failures = 0

    def _bind_window(self, window: SlidingWindow) -> None:
        self._window = window
        self._note_success = window.note_success

    def _refresh_fast_paths(self) -> None:
        shared = self._shared
        self._closed_fast = shared.state is State.CLOSED and shared.mode in _RECORDING_MODES
        self._plain_fast = self._closed_fast and not self._rules.timed and not self._rules.checks_results

    def _announce(self, before: SharedState, after: SharedState, now_ms: int) -> None:
        event = Transition(
            breaker=self.name,
            from_state=before.state,
            to_state=after.state,
            reason=after.last_reason,
            timestamp=now_ms / 1000,
            wall_time=time.time(),
            mode=after.mode,
            generation=after.generation,
        )
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                logger.exception("circuit breaker %r: listener %r failed", self.name, listener)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    # Operations

    def poll(self) -> State:
        """Make any time-driven move that is due (automatic half-open, half-open limit); return the state."""
        shared = self._shared
        if shared.mode in _RECORDING_MODES and shared.state is not State.CLOSED:
            now_ms = self._now_ms()
            if shared.state is State.OPEN and self._config.automatic_half_open and now_ms >= shared.open_until_ms:
                shared = self._transition(shared, State.HALF_OPEN, "open wait elapsed", now_ms)
            elif shared.state is State.HALF_OPEN and self._half_open_expired(shared, now_ms):
                shared = self._transition(shared, State.OPEN, "half-open time limit reached", now_ms)
        return shared.state

    def metrics(self) -> BreakerMetrics:
        self.poll()
        with self._lock:
            self._fold_noted_successes()
            window = self._window
            window.advance()
            calls = window.calls
            shared = self._shared
            return BreakerMetrics(
                name=self.name,
                state=shared.state,
                mode=shared.mode,
                calls=calls,
                failures=window.failures,
                slow_calls=window.slow_calls,
                failure_rate=100 * window.failures / calls if calls else 0.0,
                slow_call_rate=100 * window.slow_calls / calls if calls else 0.0,
                consecutive_failures=self._consecutive_failures,
                not_permitted=self._not_permitted,
                attempt=shared.attempt,
                generation=shared.generation,
                window_kind=window.kind,
                window_size=window.size,
            )

    def force_open(self, reason: str = "forced open") -> None:
        self._set_mode(Mode.FORCED_OPEN, reason)

    def force_closed(self, reason: str = "forced closed") -> None:
        """Disable the breaker: every call passes and nothing is counted."""
        self._set_mode(Mode.FORCED_CLOSED, reason)

    def set_metrics_only(self, reason: str = "metrics only") -> None:
        """Count and report transitions as usual but never refuse a call."""
        self._set_mode(Mode.METRICS_ONLY, reason)

    def set_auto(self, reason: str = "automatic") -> None:
        """Return to normal operation; leaving a forced open goes through HALF_OPEN."""
        self._set_mode(Mode.AUTO, reason)

    def _set_mode(self, mode: Mode, reason: str) -> None:
        now_ms = self._now_ms()
        before, after = self._store.force_mode(self.name, mode, now_ms, reason)
        self._install(after)
        if before.state is not after.state or before.mode is not after.mode:
            self._announce(before, after, now_ms)

    def reset(self, reason: str = "reset") -> None:
        """Return to CLOSED in AUTO mode with an empty window and no opening history."""
        now_ms = self._now_ms()
        seen = self._store.read(self.name)
        fresh = SharedState(generation=seen.generation + 1, changed_at_ms=now_ms, last_reason=reason)
        while not self._store.compare_and_set(self.name, seen.generation, fresh):
            seen = self._store.read(self.name)
            fresh = replace(fresh, generation=seen.generation + 1)
        self._install(fresh)
        with self._lock:
            self._window.clear()
            self._consecutive_failures = 0
            self._not_permitted = 0
        self._announce(seen, fresh, now_ms)

    def apply_config(self, config: BreakerConfig) -> None:
        """Swap in `config` keeping state and window counts; raise ConfigError and keep the old one if invalid.

        A new window kind or size carries the counts over as `resize_window` describes. An OPEN
        breaker keeps the wait it was given; the new wait applies from the next opening.
        """
        config.validate()
        rules = _OutcomeRules(config)
        with self._lock:
            self._fold_noted_successes()
            resized = resize_window(self._window, config.window_kind, config.window_size, self._clock, self._lock)
            self._bind_window(resized)
            self._config = config
            self._rules = rules
            self._refresh_fast_paths()


async def _resolved(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class BreakerRegistry:
    """Named breakers sharing one store, clock and listeners; created on first use."""

    def __init__(
        self,
        default_config: BreakerConfig | None = None,
        *,
        store: BreakerStateStore | None = None,
        clock: Callable[[], float] = time.monotonic,
        listeners: tuple[Listener, ...] | list[Listener] = (),
    ) -> None:
        self._default_config = default_config or BreakerConfig()
        self._default_config.validate()
        self._store: BreakerStateStore = store if store is not None else InMemoryStateStore()
        self._clock = clock
        self._listeners = tuple(listeners)
        self._breakers: dict[str, CircuitBreaker] = {}
        self._lock = threading.Lock()

    @property
    def store(self) -> BreakerStateStore:
        return self._store

    def get(self, name: str, config: BreakerConfig | None = None) -> CircuitBreaker:
        """Return the breaker called `name`, creating it with `config` (or the default) if new."""
        breaker = self._breakers.get(name)
        if breaker is not None:
            return breaker
        with self._lock:
            breaker = self._breakers.get(name)
            if breaker is None:
                breaker = CircuitBreaker(
                    name,
                    config or self._default_config,
                    store=self._store,
                    clock=self._clock,
                    listeners=self._listeners,
                )
                self._breakers[name] = breaker
        return breaker

    def apply_configs(self, configs: Mapping[str, BreakerConfig]) -> dict[str, ConfigError]:
        """Apply each config to its breaker, creating missing ones; return the refused ones by name.

        A refused config leaves that breaker on its last good config and does not stop the others.
        """
        errors: dict[str, ConfigError] = {}
        for name, config in configs.items():
            try:
                breaker = self.get(name, config)
                if breaker.config is not config:
                    breaker.apply_config(config)
            except ConfigError as error:
                errors[name] = error
        return errors

    def poll(self) -> None:
        """Make every time-driven move that is due; call it from a scheduler for timely automatic half-open."""
        for breaker in self:
            breaker.poll()

    def __iter__(self) -> Iterator[CircuitBreaker]:
        return iter(list(self._breakers.values()))

    def __len__(self) -> int:
        return len(self._breakers)

    def __contains__(self, name: object) -> bool:
        return name in self._breakers
