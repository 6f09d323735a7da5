"""Degradation levels: how much of the system still runs, computed from rules over live inputs.

The system level is FULL, DEGRADED, MINIMAL or EMERGENCY: the worst level any rule imposes.
Rules look at three injected inputs, so this module imports nothing from Django or from the
breaker and window modules:

- ``breaker_state(name) -> "CLOSED" | "OPEN" | "HALF_OPEN"`` for the breakers features depend on;
- ``error_rate() -> float``, the recent error rate as a fraction from 0 to 1;
- features marked degraded by recovery (`mark_degraded`, called by the RecoveryManager's DEGRADE).

A feature is available while the level is no worse than its `min_level`, none of its breakers is
OPEN and recovery has not marked it degraded; `call()` runs its fallback otherwise. Features and
rules are frozen dataclasses with `validate()`, `to_dict()` and `from_dict()` so the console can
store them and runtimes can pull them as JSON, and `apply()` swaps them at run time.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from enum import IntEnum, StrEnum
from typing import Any, TypeVar

from resilience.runtime.recovery import ConfigError

logger = logging.getLogger(__name__)

T = TypeVar("T")

MAX_NAME_LENGTH = 100
MAX_BREAKERS_PER_FEATURE = 20
MAX_HISTORY = 10_000
OPEN = "OPEN"

BreakerState = Callable[[str], str]
ErrorRate = Callable[[], float]


class Level(IntEnum):
    """System service levels, ordered from best to worst so `max()` picks the most severe."""

    FULL = 0
    DEGRADED = 1
    MINIMAL = 2
    EMERGENCY = 3


class Condition(StrEnum):
    """What a rule looks at; `threshold` means a feature count or an error-rate percentage."""

    CRITICAL_BREAKER_OPEN = "critical_breaker_open"
    ANY_BREAKER_OPEN = "any_breaker_open"
    FEATURES_DEGRADED = "features_degraded"
    ERROR_RATE_ABOVE = "error_rate_above"


class FeatureUnavailable(RuntimeError):
    """A feature is unavailable at the current level and declares no fallback."""

    def __init__(self, feature: str, level: Level) -> None:
        super().__init__(f"feature {feature!r} is unavailable at level {level.name} and has no fallback")
        self.feature = feature
        self.level = level


def _check_name(field: str, value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(field, "must be a non-empty string")
    if len(value) > MAX_NAME_LENGTH:
        raise ConfigError(field, f"must be at most {MAX_NAME_LENGTH} characters, got {len(value)}")


def _parse_level(field: str, value: object) -> Level:
    if isinstance(value, Level):
        return value
    try:
        return Level[str(value)]
    except KeyError:
        raise ConfigError(field, f"must be one of {', '.join(level.name for level in Level)}, got {value!r}") from None


def _check_keys(cls: type, data: Mapping[str, Any], required: tuple[str, ...]) -> None:
    known = {field.name for field in fields(cls)}
    for key in data:
        if key not in known:
            raise ConfigError(str(key), f"is not a {cls.__name__} field")
    for key in required:
        if key not in data:
            raise ConfigError(key, "is required")


@dataclass(frozen=True)
class Feature:
    """A part of the application that can be switched off or served by a fallback.

    `min_level` is the worst system level at which the feature still runs: DEGRADED means it runs
    at FULL and DEGRADED and falls back at MINIMAL and EMERGENCY. `critical` features make the
    CRITICAL_BREAKER_OPEN rule fire when one of their breakers opens.
    """

    name: str
    breakers: tuple[str, ...] = ()
    fallback: str | None = None
    critical: bool = False
    min_level: Level = Level.DEGRADED

    def validate(self) -> Feature:
        """Raise ConfigError naming the first invalid field; return the feature when valid."""
        _check_name("name", self.name)
        if not isinstance(self.breakers, tuple):
            raise ConfigError("breakers", "must be a tuple of breaker names")
        if len(self.breakers) > MAX_BREAKERS_PER_FEATURE:
            raise ConfigError("breakers", f"must name at most {MAX_BREAKERS_PER_FEATURE} breakers")
        for breaker in self.breakers:
            _check_name("breakers", breaker)
        if self.fallback is not None:
            _check_name("fallback", self.fallback)
        if not isinstance(self.critical, bool):
            raise ConfigError("critical", "must be true or false")
        if not isinstance(self.min_level, Level):
            raise ConfigError("min_level", f"must be one of {', '.join(level.name for level in Level)}")
        return self

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict that `from_dict` turns back into an equal feature."""
        return {
            "name": self.name,
            "breakers": list(self.breakers),
            "fallback": self.fallback,
            "critical": self.critical,
            "min_level": self.min_level.name,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Feature:
        """Build and validate a feature from `to_dict` output."""
        _check_keys(cls, data, ("name",))
        values = dict(data)
        if "breakers" in values:
            if not isinstance(values["breakers"], list | tuple):
                raise ConfigError("breakers", "must be a list of breaker names")
            values["breakers"] = tuple(values["breakers"])
        if "min_level" in values:
            values["min_level"] = _parse_level("min_level", values["min_level"])
        return cls(**values).validate()


@dataclass(frozen=True)
class DegradationRule:
    """When `condition` holds, the system is at least at `level`.

    `threshold` is the number of degraded features for FEATURES_DEGRADED (fires at or above it)
    and a percentage for ERROR_RATE_ABOVE (fires strictly above it); other conditions ignore it.
    """

    name: str
    condition: Condition
    level: Level
    threshold: float = 0

    def validate(self) -> DegradationRule:
        """Raise ConfigError naming the first invalid field; return the rule when valid."""
        _check_name("name", self.name)
        if not isinstance(self.condition, Condition):
            raise ConfigError("condition", f"must be one of {', '.join(Condition)}")
        if not isinstance(self.level, Level) or self.level is Level.FULL:
            raise ConfigError("level", "must be DEGRADED, MINIMAL or EMERGENCY")
        threshold = self.threshold
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            raise ConfigError("threshold", "must be a number")
        if self.condition is Condition.FEATURES_DEGRADED and (threshold < 1 or threshold != int(threshold)):
            raise ConfigError("threshold", f"must be a whole number of features, at least 1, got {threshold!r}")
        if self.condition is Condition.ERROR_RATE_ABOVE and not 0 <= threshold < 100:
            raise ConfigError("threshold", f"must be a percentage from 0 to below 100, got {threshold!r}")
        return self

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict that `from_dict` turns back into an equal rule."""
        return {
            "name": self.name,
            "condition": str(self.condition),
            "level": self.level.name,
            "threshold": self.threshold,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DegradationRule:
        """Build and validate a rule from `to_dict` output."""
        _check_keys(cls, data, ("name", "condition", "level"))
        values = dict(data)
        try:
            values["condition"] = Condition(values["condition"])
        except ValueError:
            raise ConfigError("condition", f"must be one of {', '.join(Condition)}") from None
        values["level"] = _parse_level("level", values["level"])
        return cls(**values).validate()


DEFAULT_RULES: tuple[DegradationRule, ...] = (
    DegradationRule("critical-breaker-open", Condition.CRITICAL_BREAKER_OPEN, Level.MINIMAL),
    DegradationRule("two-features-degraded", Condition.FEATURES_DEGRADED, Level.DEGRADED, threshold=2),
    DegradationRule("error-rate-over-50", Condition.ERROR_RATE_ABOVE, Level.EMERGENCY, threshold=50),
)


@dataclass(frozen=True)
class LevelChange:
    """One entry of the level history."""

    level: Level
    previous: Level
    at: float
    reason: str


LevelListener = Callable[[LevelChange], None]


@dataclass(frozen=True)
class _Inputs:
    """What the rules are evaluated against, gathered once per evaluation."""

    features: tuple[Feature, ...]
    rules: tuple[DegradationRule, ...]
    open_breakers: frozenset[str]
    degraded: frozenset[str]
    error_rate: float


class DegradationManager:
    """Compute the system level from rules and gate features, fallbacks and emergency paths by it.

    The level is re-evaluated lazily when it is older than `refresh_seconds` (by the injected
    clock), whenever recovery marks a feature degraded, and on every `evaluate()` call.
    """

    def __init__(
        self,
        features: Iterable[Feature],
        rules: Iterable[DegradationRule] = DEFAULT_RULES,
        *,
        breaker_state: BreakerState,
        error_rate: ErrorRate,
        fallbacks: Mapping[str, Callable[..., Any]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        history_limit: int = 100,
        refresh_seconds: float = 1.0,
        blocking_inputs: bool = False,
    ) -> None:
        """`blocking_inputs`: `breaker_state` may do network I/O (a database or Redis state store),
        so async callers gather the inputs in a worker thread rather than on the event loop."""
        if (
            isinstance(history_limit, bool)
            or not isinstance(history_limit, int)
            or not 1 <= history_limit <= MAX_HISTORY
        ):
            raise ConfigError("history_limit", f"must be an integer from 1 to {MAX_HISTORY}, got {history_limit!r}")
        if not 0 <= refresh_seconds <= 3600:
            raise ConfigError("refresh_seconds", f"must be from 0 to 3600, got {refresh_seconds!r}")
        self._breaker_state = breaker_state
        self._error_rate = error_rate
        self._blocking_inputs = blocking_inputs
        self._fallbacks: Mapping[str, Callable[..., Any]] = fallbacks if fallbacks is not None else {}
        self._clock = clock
        self._refresh_seconds = refresh_seconds
        self._lock = threading.Lock()
        self._history: deque[LevelChange] = deque(maxlen=history_limit)
        self._listeners: list[LevelListener] = []
        self._degraded_until: dict[str, float] = {}
        self._level = Level.FULL
        self._evaluated_at: float | None = None
        self._features: dict[str, Feature] = {}
        self._rules: tuple[DegradationRule, ...] = ()
        self.apply(features, rules)

    # Configuration

    def apply(self, features: Iterable[Feature], rules: Iterable[DegradationRule]) -> Level:
        """Validate and swap in features and rules atomically, then re-evaluate the level."""
        by_name = self._validated_features(features)
        checked_rules = self._validated_rules(rules)
        with self._lock:
            self._features = by_name
            self._rules = checked_rules
        return self.evaluate()

    def _validated_features(self, features: Iterable[Feature]) -> dict[str, Feature]:
        by_name: dict[str, Feature] = {}
        for feature in features:
            feature.validate()
            if feature.name in by_name:
                raise ConfigError("name", f"feature name {feature.name!r} is used twice")
            if feature.fallback is not None and feature.fallback not in self._fallbacks:
                raise ConfigError(
                    "fallback", f"feature {feature.name!r}: no fallback is registered as {feature.fallback!r}"
                )
            by_name[feature.name] = feature
        return by_name

    @staticmethod
    def _validated_rules(rules: Iterable[DegradationRule]) -> tuple[DegradationRule, ...]:
        checked = tuple(rule.validate() for rule in rules)
        names = [rule.name for rule in checked]
        for name in names:
            if names.count(name) > 1:
                raise ConfigError("name", f"rule name {name!r} is used twice")
        return checked

    @property
    def features(self) -> list[Feature]:
        """Return the declared features."""
        return list(self._features.values())

    @property
    def rules(self) -> tuple[DegradationRule, ...]:
        """Return the rules in effect."""
        return self._rules

    # Inputs from recovery

    def mark_degraded(self, feature: str, *, duration: float, reason: str) -> None:
        """Treat `feature` as degraded for `duration` seconds (called by recovery's DEGRADE)."""
        if not 0 < duration <= 86_400:
            raise ConfigError("duration", f"must be more than 0 and at most 86400 seconds, got {duration!r}")
        with self._lock:
            until = self._clock() + duration
            self._degraded_until[feature] = max(until, self._degraded_until.get(feature, until))
        self.evaluate(reason=f"{feature} degraded: {reason}")

    def clear_degraded(self, feature: str) -> None:
        """Forget a degraded mark before it expires, e.g. after a successful restart."""
        with self._lock:
            self._degraded_until.pop(feature, None)
        self.evaluate()

    def degraded_features(self) -> list[str]:
        """Return the declared features that are unavailable because of open breakers or recovery."""
        inputs = self._gather_inputs()
        return sorted(feature.name for feature in inputs.features if self._is_impaired(feature, inputs))

    # Level

    @property
    def level(self) -> Level:
        """Return the current level, re-evaluating it when older than `refresh_seconds`."""
        evaluated_at = self._evaluated_at
        if evaluated_at is None or self._clock() - evaluated_at >= self._refresh_seconds:
            return self.evaluate()
        return self._level

    def evaluate(self, reason: str | None = None) -> Level:
        """Recompute the level from the rules, record a change in history and notify listeners."""
        inputs = self._gather_inputs()
        fired = [rule for rule in inputs.rules if self._holds(rule, inputs)]
        new_level = max((rule.level for rule in fired), default=Level.FULL)
        explanation = ", ".join(rule.name for rule in fired if rule.level == new_level) or "no rule fires"
        with self._lock:
            now = self._clock()
            self._evaluated_at = now
            previous, self._level = self._level, new_level
            if previous == new_level:
                return new_level
            change = LevelChange(new_level, previous, now, f"{reason}; {explanation}" if reason else explanation)
            self._history.append(change)
            listeners = list(self._listeners)
        self._notify(listeners, change)
        return new_level

    def history(self) -> list[LevelChange]:
        """Return level changes, oldest first, at most `history_limit` of them."""
        with self._lock:
            return list(self._history)

    def add_listener(self, listener: LevelListener) -> Callable[[], None]:
        """Call `listener` on every level change; return a function that removes it."""
        with self._lock:
            self._listeners.append(listener)

        def remove() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return remove

    @staticmethod
    def _notify(listeners: list[LevelListener], change: LevelChange) -> None:
        for listener in listeners:
            try:
                listener(change)
            except Exception:
                # A broken listener (e.g. a failing console push) must not stop the level change.
                logger.warning("degradation listener %r failed", listener, exc_info=True)

    def _gather_inputs(self) -> _Inputs:
        with self._lock:
            now = self._clock()
            for name in [name for name, until in self._degraded_until.items() if until <= now]:
                del self._degraded_until[name]
            degraded = frozenset(self._degraded_until)
            features = tuple(self._features.values())
            rules = self._rules
        breakers = {breaker for feature in features for breaker in feature.breakers}
        return _Inputs(
            features=features,
            rules=rules,
            open_breakers=frozenset(name for name in breakers if self._safe_breaker_state(name) == OPEN),
            degraded=degraded,
            error_rate=self._safe_error_rate(),
        )

    def _safe_breaker_state(self, name: str) -> str:
        # An unreadable breaker counts as closed: guessing OPEN could take the whole system down.
        try:
            return self._breaker_state(name)
        except Exception:
            logger.warning("could not read breaker %r; treating it as closed", name, exc_info=True)
            return "CLOSED"

    def _safe_error_rate(self) -> float:
        try:
            return float(self._error_rate())
        except Exception:
            logger.warning("could not read the error rate; treating it as 0", exc_info=True)
            return 0.0

    @staticmethod
    def _is_impaired(feature: Feature, inputs: _Inputs) -> bool:
        return feature.name in inputs.degraded or any(breaker in inputs.open_breakers for breaker in feature.breakers)

    @classmethod
    def _holds(cls, rule: DegradationRule, inputs: _Inputs) -> bool:
        features = inputs.features
        if rule.condition is Condition.CRITICAL_BREAKER_OPEN:
            return any(feature.critical and set(feature.breakers) & inputs.open_breakers for feature in features)
        if rule.condition is Condition.ANY_BREAKER_OPEN:
            return bool(inputs.open_breakers)
        if rule.condition is Condition.FEATURES_DEGRADED:
            return sum(cls._is_impaired(feature, inputs) for feature in features) >= rule.threshold
        return inputs.error_rate * 100 > rule.threshold

    # Gating

    def is_available(self, feature: str) -> bool:
        """Say whether `feature` runs now: level within its `min_level`, no open breaker, not degraded."""
        declared = self._feature(feature)
        if self.level > declared.min_level:
            return False
        return not self._is_impaired(declared, self._gather_inputs())

    def call(self, feature: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn`, or the feature's fallback with the same arguments when the feature is unavailable."""
        if self.is_available(feature):
            return fn(*args, **kwargs)
        return self._fallback_for(feature)(*args, **kwargs)

    async def call_async(self, feature: str, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Await `fn`, or the feature's fallback (sync or async) when the feature is unavailable."""
        target = fn if await self._off_loop(self.is_available, feature) else self._fallback_for(feature)
        result = target(*args, **kwargs)
        return await result if inspect.isawaitable(result) else result

    def guard(self, feature: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorate a sync or async function so it runs through `call`/`call_async` for `feature`."""
        self._feature(feature)

        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            if inspect.iscoroutinefunction(fn):

                @functools.wraps(fn)
                async def run_async(*args: Any, **kwargs: Any) -> Any:
                    return await self.call_async(feature, fn, *args, **kwargs)

                return run_async

            @functools.wraps(fn)
            def run(*args: Any, **kwargs: Any) -> Any:
                return self.call(feature, fn, *args, **kwargs)

            return run

        return decorate

    async def level_async(self) -> Level:
        """`level`, for async callers: a re-evaluation that reads a blocking store runs off the loop."""
        return await self._off_loop(lambda: self.level)

    async def _off_loop(self, fn: Callable[..., T], *args: Any) -> T:
        if self._blocking_inputs:
            return await asyncio.to_thread(fn, *args)
        return fn(*args)

    def critical(self, fn: Callable[..., T]) -> Callable[..., T]:
        """Mark `fn` as critical: it always runs, at every level including EMERGENCY (see mark_critical)."""
        return mark_critical(fn)

    def emergency_only(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Run `fn` only while this manager's level is EMERGENCY; elsewhere skip it and return None."""
        return run_in_emergency_only(fn, lambda: self)

    def _feature(self, name: str) -> Feature:
        try:
            return self._features[name]
        except KeyError:
            raise KeyError(f"no feature is declared as {name!r}") from None

    def _fallback_for(self, feature: str) -> Callable[..., Any]:
        declared = self._feature(feature)
        fallback = self._fallbacks.get(declared.fallback) if declared.fallback is not None else None
        if fallback is None:
            raise FeatureUnavailable(feature, self._level)
        return fallback

    def status(self) -> dict[str, Any]:
        """Return a JSON-ready snapshot: level, each feature's availability, and the history."""
        level = self.level
        return {
            "level": level.name,
            "degraded_features": self.degraded_features(),
            "features": [
                {"name": name, "available": self.is_available(name), "fallback": feature.fallback}
                for name, feature in self._features.items()
            ],
            "history": [
                {"level": change.level.name, "previous": change.previous.name, "at": change.at, "reason": change.reason}
                for change in self.history()
            ],
        }


def mark_critical(fn: Callable[..., T]) -> Callable[..., T]:
    """Mark `fn` as critical: it is never gated, so the mark (`__degradation__ == "critical"`) only
    makes the intent explicit next to `guard` and `emergency_only`."""
    fn.__degradation__ = "critical"  # type: ignore[attr-defined]
    return fn


def run_in_emergency_only(fn: Callable[..., Any], manager: Callable[[], DegradationManager]) -> Callable[..., Any]:
    """Wrap `fn` to run only while `manager()`'s level is EMERGENCY (a safe-shutdown path, say); else return None."""
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            if await manager().level_async() is Level.EMERGENCY:
                return await fn(*args, **kwargs)
            return None

        run_async.__degradation__ = "emergency_only"  # type: ignore[attr-defined]
        return run_async

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        if manager().level is Level.EMERGENCY:
            return fn(*args, **kwargs)
        return None

    run.__degradation__ = "emergency_only"  # type: ignore[attr-defined]
    return run
