"""Recovery policies: what to do when an operation fails, per component and per error type.

A `RecoveryManager` runs an operation and, when it raises, picks the policy that matches the
failure (component + error type, then component, then error type, then the default) and applies
its strategy: RETRY, FALLBACK, DEGRADE, RESTART, IGNORE or ALERT. Recovery never raises anything
new into the application: when it cannot recover, the original error is re-raised with a note
saying what was tried, unless the policy sets `raise_recovery_errors`.

Everything the manager needs from the rest of the runtime is injected as a small callable, so
this module imports nothing from Django or from the other runtime modules:

- retry runner ``Callable[[Callable[[], T]], T]`` (and an async one) to re-run operations;
- reporter ``report(kind: str, payload: dict) -> None`` that forwards to the console;
- degradation marker with ``mark_degraded(feature, *, duration, reason)`` (the DegradationManager);
- classifier ``Callable[[BaseException], str]`` that names the error type of an exception.

Policies are frozen dataclasses with `validate()`, `to_dict()` and `from_dict()` because the
console stores them in database rows and remote runtimes pull them as JSON.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import Any, NoReturn, Protocol, TypeVar

from resilience.exceptions import ConfigError

logger = logging.getLogger(__name__)

T = TypeVar("T")

MAX_NAME_LENGTH = 100
MAX_ATTEMPTS_LIMIT = 10
MAX_DEGRADE_SECONDS = 86_400.0
UNEXPECTED = "UNEXPECTED"

RetryRunner = Callable[[Callable[[], Any]], Any]
AsyncRetryRunner = Callable[[Callable[[], Awaitable[Any]]], Awaitable[Any]]
Reporter = Callable[[str, dict], None]
Classifier = Callable[[BaseException], str]


class Strategy(StrEnum):
    RETRY = "retry"
    FALLBACK = "fallback"
    DEGRADE = "degrade"
    RESTART = "restart"
    IGNORE = "ignore"
    ALERT = "alert"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


class DegradationMarker(Protocol):
    """What recovery needs from the degradation manager: mark a feature degraded for a while."""

    def mark_degraded(self, feature: str, *, duration: float, reason: str) -> None: ...


def default_classify(error: BaseException) -> str:
    """Name the error type from the exception's `error_code` or `error_type`, else UNEXPECTED."""
    for attribute in ("error_code", "error_type"):
        value = getattr(error, attribute, None)
        if isinstance(value, str) and value:
            return value
    return UNEXPECTED


def _check_name(field: str, value: object, *, optional: bool) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(field, "must be a non-empty string")
    if len(value) > MAX_NAME_LENGTH:
        raise ConfigError(field, f"must be at most {MAX_NAME_LENGTH} characters, got {len(value)}")


@dataclass(frozen=True)
class RecoveryPolicy:
    """How to recover from failures of one component and/or error type.

    `component` and `error_type` left as None match anything; a policy with both None is the
    default. `max_attempts` bounds how often the strategy's action runs for one failure: re-runs
    for RETRY, restart-then-re-run cycles for RESTART, calls of the fallback or degraded-result
    provider for FALLBACK and DEGRADE. DEGRADE marks `degrade_feature` (default: the component)
    degraded for `degrade_seconds`. IGNORE returns `default`. ALERT reports with `severity`.
    """

    name: str
    strategy: Strategy
    component: str | None = None
    error_type: str | None = None
    max_attempts: int = 3
    fallback: str | None = None
    degraded_result: str | None = None
    degrade_feature: str | None = None
    degrade_seconds: float = 60.0
    restart_hook: str | None = None
    default: Any = None
    severity: Severity = Severity.ERROR
    raise_recovery_errors: bool = False

    @property
    def key(self) -> tuple[str | None, str | None]:
        """Return what the policy matches on: (component, error_type)."""
        return (self.component, self.error_type)

    def validate(self) -> RecoveryPolicy:
        """Raise ConfigError naming the first invalid field; return the policy when valid."""
        _check_name("name", self.name, optional=False)
        if not isinstance(self.strategy, Strategy):
            raise ConfigError("strategy", f"must be one of {', '.join(Strategy)}")
        for field in ("component", "error_type", "fallback", "degraded_result", "degrade_feature", "restart_hook"):
            _check_name(field, getattr(self, field), optional=True)
        self._validate_limits()
        self._validate_strategy_needs()
        return self

    def _validate_limits(self) -> None:
        attempts = self.max_attempts
        if isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= MAX_ATTEMPTS_LIMIT:
            raise ConfigError("max_attempts", f"must be an integer from 1 to {MAX_ATTEMPTS_LIMIT}, got {attempts!r}")
        seconds = self.degrade_seconds
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 < seconds <= MAX_DEGRADE_SECONDS:
            raise ConfigError("degrade_seconds", f"must be more than 0 and at most {MAX_DEGRADE_SECONDS:g}")
        if not isinstance(self.severity, Severity):
            raise ConfigError("severity", f"must be one of {', '.join(Severity)}")
        if not isinstance(self.raise_recovery_errors, bool):
            raise ConfigError("raise_recovery_errors", "must be true or false")
        try:
            json.dumps(self.default)
        except (TypeError, ValueError) as error:
            raise ConfigError("default", f"must be JSON-serialisable ({error})") from None

    def _validate_strategy_needs(self) -> None:
        needs = {Strategy.FALLBACK: "fallback", Strategy.DEGRADE: "degraded_result", Strategy.RESTART: "restart_hook"}
        needed = needs.get(self.strategy)
        if needed and getattr(self, needed) is None:
            raise ConfigError(needed, f"is required by the {self.strategy} strategy")

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict that `from_dict` turns back into an equal policy."""
        data = asdict(self)
        data["strategy"] = str(self.strategy)
        data["severity"] = str(self.severity)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RecoveryPolicy:
        """Build and validate a policy from `to_dict` output; unknown or missing keys are ConfigErrors."""
        known = {field.name for field in fields(cls)}
        for key in data:
            if key not in known:
                raise ConfigError(str(key), "is not a recovery policy field")
        for required in ("name", "strategy"):
            if required not in data:
                raise ConfigError(required, "is required")
        values = dict(data)
        values["strategy"] = _parse_enum(Strategy, "strategy", values["strategy"])
        if "severity" in values:
            values["severity"] = _parse_enum(Severity, "severity", values["severity"])
        return cls(**values).validate()


E = TypeVar("E", bound=StrEnum)


def _parse_enum(enum: type[E], field: str, value: object) -> E:
    try:
        return enum(value)
    except ValueError:
        raise ConfigError(field, f"must be one of {', '.join(enum)}, got {value!r}") from None


class FallbackRegistry(Mapping[str, Callable[..., Any]]):
    """Fallbacks by name; policies and features refer to them by name so the config stays JSON."""

    def __init__(self, fallbacks: Mapping[str, Callable[..., Any]] | None = None) -> None:
        self._fallbacks: dict[str, Callable[..., Any]] = {}
        self._lock = threading.Lock()
        for name, fallback in (fallbacks or {}).items():
            self.register(name, fallback)

    def register(self, name: str, fallback: Callable[..., Any]) -> Callable[..., Any]:
        """Register `fallback` under `name` and return it, so it also works as `register(name, fn)`."""
        _check_name("name", name, optional=False)
        if not callable(fallback):
            raise ConfigError("fallback", f"{name!r} must be callable")
        with self._lock:
            self._fallbacks[name] = fallback
        return fallback

    def __getitem__(self, name: str) -> Callable[..., Any]:
        return self._fallbacks[name]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._fallbacks))

    def __len__(self) -> int:
        return len(self._fallbacks)


@dataclass(frozen=True)
class _Failure:
    """One failed call: what failed, where, and how to run it again."""

    error: Exception
    component: str
    error_type: str
    operation: Callable[[], Any] | None
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] | None = None

    def call(self, target: Callable[..., Any]) -> Any:
        """Call a fallback or provider with the failed operation's own arguments."""
        return target(*self.args, **(self.kwargs or {}))


class _RecoveryFailed(Exception):
    """Internal: the strategy gave up; `cause` is the last error its action raised, if any."""

    def __init__(self, reason: str, cause: Exception | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.cause = cause


_OUTCOMES = ("attempted", "recovered", "failed")


class RecoveryManager:
    """Run operations and recover from their failures according to hot-swappable policies."""

    def __init__(
        self,
        policies: Iterable[RecoveryPolicy],
        *,
        fallbacks: Mapping[str, Callable[..., Any]],
        restart_hooks: Mapping[str, Callable[[], Any]],
        degraded_results: Mapping[str, Callable[..., Any]],
        retry_runner: RetryRunner | None = None,
        async_retry_runner: AsyncRetryRunner | None = None,
        reporter: Reporter | None = None,
        degradation: DegradationMarker | None = None,
        classify: Classifier = default_classify,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fallbacks = fallbacks
        self._restart_hooks = restart_hooks
        self._degraded_results = degraded_results
        self._retry_runner = retry_runner
        self._async_retry_runner = async_retry_runner
        self._reporter = reporter
        self._degradation = degradation
        self._classify = classify
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], dict[str, int]] = {}
        self._last_at: dict[tuple[str, str], float] = {}
        self._unmatched = 0
        self._policies: dict[tuple[str | None, str | None], RecoveryPolicy] = {}
        self.apply_policies(policies)

    # Configuration

    def apply_policies(self, policies: Iterable[RecoveryPolicy]) -> None:
        """Validate and swap in a new policy set atomically; counters survive the swap."""
        by_key: dict[tuple[str | None, str | None], RecoveryPolicy] = {}
        names: set[str] = set()
        for policy in policies:
            self._check_policy(policy)
            if policy.name in names:
                raise ConfigError("name", f"policy name {policy.name!r} is used twice")
            if policy.key in by_key:
                raise ConfigError(
                    "component", f"policies {by_key[policy.key].name!r} and {policy.name!r} match the same failures"
                )
            names.add(policy.name)
            by_key[policy.key] = policy
        with self._lock:
            self._policies = by_key

    def _check_policy(self, policy: RecoveryPolicy) -> None:
        policy.validate()
        references = (
            ("fallback", policy.fallback, self._fallbacks, Strategy.FALLBACK),
            ("degraded_result", policy.degraded_result, self._degraded_results, Strategy.DEGRADE),
            ("restart_hook", policy.restart_hook, self._restart_hooks, Strategy.RESTART),
        )
        for field, name, registry, strategy in references:
            if policy.strategy is strategy and name not in registry:
                raise ConfigError(field, f"policy {policy.name!r}: nothing is registered as {name!r}")

    @property
    def policies(self) -> list[RecoveryPolicy]:
        """Return the policies in effect."""
        return list(self._policies.values())

    def policy_for(self, component: str, error_type: str) -> RecoveryPolicy | None:
        """Return the policy for a failure: component + error type, component, error type, default."""
        policies = self._policies
        for key in ((component, error_type), (component, None), (None, error_type), (None, None)):
            if key in policies:
                return policies[key]
        return None

    # Running operations

    def execute(
        self, fn: Callable[..., T], *args: Any, component: str, error_type: str | None = None, **kwargs: Any
    ) -> T:
        """Run `fn(*args, **kwargs)`; on an exception recover by policy or re-raise the original.

        `component` and `error_type` are consumed here and never passed to `fn`; `error_type`
        overrides what the classifier would say.
        """
        try:
            return fn(*args, **kwargs)
        except Exception as error:
            failure = self._failure(error, component, error_type, functools.partial(fn, *args, **kwargs), args, kwargs)
        return self._recover(failure)

    async def execute_async(
        self,
        fn: Callable[..., Awaitable[T]],
        *args: Any,
        component: str,
        error_type: str | None = None,
        **kwargs: Any,
    ) -> T:
        """Await `fn(*args, **kwargs)`; on an exception recover by policy without blocking the loop."""
        operation = functools.partial(fn, *args, **kwargs)
        try:
            return await _resolve(operation())
        except Exception as error:
            failure = self._failure(error, component, error_type, operation, args, kwargs)
        return await self._recover_async(failure)

    def recover(self, error: Exception, *, component: str, error_type: str | None = None) -> Any:
        """Recover from an error caught elsewhere; RETRY and RESTART have nothing to re-run here."""
        return self._recover(self._failure(error, component, error_type, None, (), {}))

    async def recover_async(self, error: Exception, *, component: str, error_type: str | None = None) -> Any:
        """Recover from an error caught elsewhere, awaiting async fallbacks and providers."""
        return await self._recover_async(self._failure(error, component, error_type, None, (), {}))

    def recover_with(
        self, component: str, *, error_type: str | None = None
    ) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorate a sync or async function so its failures go through `execute`/`execute_async`."""

        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            if inspect.iscoroutinefunction(fn):

                @functools.wraps(fn)
                async def run_async(*args: Any, **kwargs: Any) -> Any:
                    return await self.execute_async(fn, *args, component=component, error_type=error_type, **kwargs)

                return run_async

            @functools.wraps(fn)
            def run(*args: Any, **kwargs: Any) -> Any:
                return self.execute(fn, *args, component=component, error_type=error_type, **kwargs)

            return run

        return decorate

    def _failure(
        self,
        error: Exception,
        component: str,
        error_type: str | None,
        operation: Callable[[], Any] | None,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
    ) -> _Failure:
        return _Failure(error, component, error_type or self._safe_classify(error), operation, args, kwargs)

    def _safe_classify(self, error: Exception) -> str:
        # A broken classifier must not turn a recoverable failure into a new crash.
        try:
            return self._classify(error) or UNEXPECTED
        except Exception:
            logger.warning("error classifier failed; treating the error as %s", UNEXPECTED, exc_info=True)
            return UNEXPECTED

    # Recovery, sync

    def _recover(self, failure: _Failure) -> Any:
        policy = self._start(failure)
        try:
            result = self._run_strategy(policy, failure)
        except _RecoveryFailed as failed:
            gave_up = failed
        else:
            self._finish_recovered(policy, failure)
            return result
        # Raised outside the except block so the original error is not chained to internals.
        self._raise_after_failure(policy, failure, gave_up)

    def _run_strategy(self, policy: RecoveryPolicy, failure: _Failure) -> Any:
        strategy = policy.strategy
        if strategy is Strategy.IGNORE:
            return policy.default
        if strategy is Strategy.ALERT:
            self._alert(policy, failure)
            raise _RecoveryFailed("alerted; the error is re-raised by design")
        if strategy is Strategy.FALLBACK:
            fallback = self._registered(self._fallbacks, policy.fallback, "fallback")
            return self._attempts(policy, lambda: failure.call(fallback))
        if strategy is Strategy.DEGRADE:
            provider = self._registered(self._degraded_results, policy.degraded_result, "degraded-result provider")
            self._mark_degraded(policy, failure)
            return self._attempts(policy, lambda: failure.call(provider))
        operation = self._operation(failure)
        if strategy is Strategy.RESTART:
            hook = self._registered(self._restart_hooks, policy.restart_hook, "restart hook")
            return self._attempts(policy, lambda: _restart_then_run(hook, operation))
        return self._retry(policy, operation)

    def _retry(self, policy: RecoveryPolicy, operation: Callable[[], Any]) -> Any:
        if self._retry_runner is None:
            return self._attempts(policy, operation)
        budgeted = _Budget(policy.max_attempts, operation)
        try:
            return self._retry_runner(budgeted.run)
        except Exception as error:
            raise _RecoveryFailed(f"retry runner gave up after {budgeted.runs} re-runs", error) from None

    @staticmethod
    def _attempts(policy: RecoveryPolicy, action: Callable[[], Any]) -> Any:
        last: Exception | None = None
        for _ in range(policy.max_attempts):
            try:
                return action()
            except Exception as error:
                last = error
        raise _RecoveryFailed(f"gave up after {policy.max_attempts} attempts", last)

    # Recovery, async

    async def _recover_async(self, failure: _Failure) -> Any:
        policy = self._start(failure)
        try:
            result = await self._run_strategy_async(policy, failure)
        except _RecoveryFailed as failed:
            gave_up = failed
        else:
            self._finish_recovered(policy, failure)
            return result
        self._raise_after_failure(policy, failure, gave_up)

    async def _run_strategy_async(self, policy: RecoveryPolicy, failure: _Failure) -> Any:
        strategy = policy.strategy
        if strategy is Strategy.IGNORE:
            return policy.default
        if strategy is Strategy.ALERT:
            self._alert(policy, failure)
            raise _RecoveryFailed("alerted; the error is re-raised by design")
        if strategy is Strategy.FALLBACK:
            fallback = self._registered(self._fallbacks, policy.fallback, "fallback")
            return await self._attempts_async(policy, lambda: failure.call(fallback))
        if strategy is Strategy.DEGRADE:
            provider = self._registered(self._degraded_results, policy.degraded_result, "degraded-result provider")
            self._mark_degraded(policy, failure)
            return await self._attempts_async(policy, lambda: failure.call(provider))
        operation = self._operation(failure)
        if strategy is Strategy.RESTART:
            hook = self._registered(self._restart_hooks, policy.restart_hook, "restart hook")
            return await self._attempts_async(policy, lambda: _restart_then_run_async(hook, operation))
        return await self._retry_async(policy, operation)

    async def _retry_async(self, policy: RecoveryPolicy, operation: Callable[[], Any]) -> Any:
        if self._async_retry_runner is None:
            return await self._attempts_async(policy, operation)
        budgeted = _Budget(policy.max_attempts, operation)
        try:
            return await self._async_retry_runner(budgeted.run_async)
        except Exception as error:
            raise _RecoveryFailed(f"retry runner gave up after {budgeted.runs} re-runs", error) from None

    @staticmethod
    async def _attempts_async(policy: RecoveryPolicy, action: Callable[[], Any]) -> Any:
        last: Exception | None = None
        for _ in range(policy.max_attempts):
            try:
                return await _resolve(action())
            except Exception as error:
                last = error
        raise _RecoveryFailed(f"gave up after {policy.max_attempts} attempts", last)

    # Shared steps

    def _start(self, failure: _Failure) -> RecoveryPolicy:
        policy = self.policy_for(failure.component, failure.error_type)
        if policy is None:
            with self._lock:
                self._unmatched += 1
            raise failure.error
        self._count(policy, "attempted")
        return policy

    @staticmethod
    def _registered(registry: Mapping[str, Callable[..., Any]], name: str | None, what: str) -> Callable[..., Any]:
        # Registries are mutable; a name validated at apply time may have been removed since.
        target = registry.get(name) if name is not None else None
        if target is None:
            raise _RecoveryFailed(f"no {what} is registered as {name!r}")
        return target

    @staticmethod
    def _operation(failure: _Failure) -> Callable[[], Any]:
        if failure.operation is None:
            raise _RecoveryFailed("there is no operation to re-run")
        return failure.operation

    def _alert(self, policy: RecoveryPolicy, failure: _Failure) -> None:
        self._report("recovery.alert", {**self._describe(policy, failure), "severity": str(policy.severity)})

    def _mark_degraded(self, policy: RecoveryPolicy, failure: _Failure) -> None:
        if self._degradation is None:
            return
        feature = policy.degrade_feature or failure.component
        try:
            self._degradation.mark_degraded(
                feature,
                duration=policy.degrade_seconds,
                reason=f"recovery policy {policy.name!r}: {failure.error_type}",
            )
        except Exception:
            # Marking is bookkeeping; the degraded result can still be served without it.
            logger.warning("could not mark feature %r degraded", feature, exc_info=True)

    def _finish_recovered(self, policy: RecoveryPolicy, failure: _Failure) -> None:
        self._count(policy, "recovered")
        self._report("recovery.outcome", {**self._describe(policy, failure), "outcome": "recovered"})

    def _raise_after_failure(self, policy: RecoveryPolicy, failure: _Failure, failed: _RecoveryFailed) -> NoReturn:
        self._count(policy, "failed")
        payload = {**self._describe(policy, failure), "outcome": "failed", "reason": failed.reason}
        if failed.cause is not None:
            payload["recovery_error"] = repr(failed.cause)
        self._report("recovery.outcome", payload)
        if policy.raise_recovery_errors and failed.cause is not None:
            raise failed.cause from failure.error
        detail = f": {failed.cause!r}" if failed.cause is not None else ""
        failure.error.add_note(f"recovery policy {policy.name!r} ({policy.strategy}) {failed.reason}{detail}")
        raise failure.error

    @staticmethod
    def _describe(policy: RecoveryPolicy, failure: _Failure) -> dict[str, Any]:
        return {
            "policy": policy.name,
            "strategy": str(policy.strategy),
            "component": failure.component,
            "error_type": failure.error_type,
            "error": repr(failure.error),
        }

    def _report(self, kind: str, payload: dict[str, Any]) -> None:
        if self._reporter is None:
            return
        try:
            self._reporter(kind, payload)
        except Exception:
            # Reporting to the console must never break the application it observes.
            logger.warning("recovery reporter failed for %s", kind, exc_info=True)

    # Statistics

    def _count(self, policy: RecoveryPolicy, outcome: str) -> None:
        key = (policy.name, str(policy.strategy))
        with self._lock:
            counts = self._counts.setdefault(key, dict.fromkeys(_OUTCOMES, 0))
            counts[outcome] += 1
            self._last_at[key] = self._clock()

    def stats(self) -> dict[str, Any]:
        """Return a snapshot of outcomes per policy and strategy, totals per strategy, and unmatched errors."""
        with self._lock:
            rows = [
                {"policy": name, "strategy": strategy, **counts, "last_at": self._last_at[(name, strategy)]}
                for (name, strategy), counts in sorted(self._counts.items())
            ]
            unmatched = self._unmatched
        totals: dict[str, dict[str, int]] = {}
        for row in rows:
            total = totals.setdefault(row["strategy"], dict.fromkeys(_OUTCOMES, 0))
            for outcome in _OUTCOMES:
                total[outcome] += row[outcome]
        return {"policies": rows, "strategies": totals, "unmatched": unmatched}


class _Budget:
    """Wrap an operation so an injected retry runner cannot re-run it more than the policy allows.

    Once the budget is spent the wrapper re-raises the last error without running the operation,
    so the runner sees the same failure and stops by its own rules.
    """

    def __init__(self, limit: int, operation: Callable[[], Any]) -> None:
        self._limit = limit
        self._operation = operation
        self._last: Exception | None = None
        self.runs = 0

    def run(self) -> Any:
        self._spend()
        try:
            return self._operation()
        except Exception as error:
            self._last = error
            raise

    async def run_async(self) -> Any:
        self._spend()
        try:
            return await _resolve(self._operation())
        except Exception as error:
            self._last = error
            raise

    def _spend(self) -> None:
        if self.runs >= self._limit and self._last is not None:
            raise self._last
        self.runs += 1


def _restart_then_run(hook: Callable[[], Any], operation: Callable[[], Any]) -> Any:
    hook()
    return operation()


async def _restart_then_run_async(hook: Callable[[], Any], operation: Callable[[], Any]) -> Any:
    await _resolve(hook())
    return await _resolve(operation())


async def _resolve(value: Any) -> Any:
    """Await `value` if it is awaitable, so async paths accept sync callables too."""
    if inspect.isawaitable(value):
        return await value
    return value
