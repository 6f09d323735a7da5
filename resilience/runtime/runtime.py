"""One process-wide runtime holding every named resilience object, hot-reconfigured from config snapshots.

A `Runtime` owns the breakers, retriers, recovery manager, degradation manager, rate-limit detectors
and the error-type catalog of a process. `apply(snapshot)` swaps in a new config (the JSON the
console serves) without losing what the objects learned: breaker state and window counts, retry
statistics and budgets, recovery statistics and degraded marks all carry over.

Snapshot shape (every section optional; an absent section leaves that part of the runtime as it is):

    {"version": 7,
     "breakers": {"payments-api": breaker_config_to_dict(...)},
     "retry_policies": {"server_error": RetryPolicy.to_dict()},
     "recovery_policies": [RecoveryPolicy.to_dict(), ...],
     "degradation": {"features": [Feature.to_dict(), ...], "rules": [DegradationRule.to_dict(), ...]},
     "rate_limits": {"binance": RateLimitPolicy.to_dict()},
     "error_types": Catalog.to_data()}

Rules of a snapshot:

- A present section is the whole desired state of that section, entry by entry. Each invalid entry
  is refused on its own, reported as a ConfigError whose field starts with its path (for example
  "breakers.payments-api.failure_rate_threshold" or "recovery_policies.prices.fallback"), and the
  entry's previous good config stays in force; the other entries still apply.
- Retry, recovery and rate-limit policies, features, rules and error types missing from a present
  section are removed. Breakers missing from it keep running on their last config: code may hold
  them (decorators, `runtime.breaker(...)`), and dropping their state mid-incident would hide it.
- A rate-limit policy whose values change gets a fresh detector, so its windows start empty.
- Fallbacks, restart hooks and degraded-result providers are code; config names them, so register
  them before applying. Registering one re-applies the last snapshot if it had errors, so entries
  refused for naming something not yet registered apply as soon as it is.

`get_runtime()` / `set_runtime()` hold the process's default runtime, which the decorators use.
Pure Python: no Django, for threads and asyncio alike.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import fields, replace
from typing import Any, TypeVar

from resilience.exceptions import ConfigError
from resilience.runtime.breaker import BreakerConfig, BreakerRegistry, CircuitBreaker, Transition
from resilience.runtime.catalog import Catalog, ErrorTypeEntry, classify
from resilience.runtime.degradation import DEFAULT_RULES, DegradationManager, DegradationRule, Feature
from resilience.runtime.ratelimit import RateLimitDetector, RateLimitPolicy
from resilience.runtime.recovery import FallbackRegistry, RecoveryManager, RecoveryPolicy, Strategy
from resilience.runtime.retry import Retrier, RetryPolicy, default_retry_policies
from resilience.runtime.state import BreakerStateStore

__all__ = [
    "LiveRetrier",
    "Runtime",
    "breaker_config_from_dict",
    "breaker_config_to_dict",
    "get_runtime",
    "set_runtime",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")
Clock = Callable[[], float]
Reporter = Callable[[str, dict], None]
ErrorRate = Callable[[], float]

SECTIONS = ("version", "error_types", "breakers", "retry_policies", "rate_limits", "degradation", "recovery_policies")

# Breaker predicates are functions: only code can set them, so the JSON form leaves them out.
_CODE_ONLY_BREAKER_FIELDS = ("failure_predicate", "result_predicate")
_BREAKER_LIST_FIELDS = ("record_exceptions", "ignore_exceptions", "failure_statuses")
_BUDGET_FIELDS = ("budget_percent", "budget_window_seconds", "budget_min_per_second")


# Breaker configs as JSON data.


def breaker_config_from_dict(data: Mapping[str, Any]) -> BreakerConfig:
    """Build and validate a BreakerConfig from JSON data; unknown keys and bad values are ConfigErrors."""
    known = {field.name for field in fields(BreakerConfig)} - set(_CODE_ONLY_BREAKER_FIELDS)
    for key in data:
        if key not in known:
            raise ConfigError(str(key), "is not a breaker config field")
    values = dict(data)
    for name in _BREAKER_LIST_FIELDS:
        if name in values:
            if not isinstance(values[name], list | tuple):
                raise ConfigError(name, f"must be a list, not {values[name]!r}")
            values[name] = tuple(values[name])
    config = BreakerConfig(**values)
    config.validate()
    return config


def breaker_config_to_dict(config: BreakerConfig) -> dict[str, Any]:
    """Return the JSON data `breaker_config_from_dict` accepts; predicates are code-only and left out."""
    data: dict[str, Any] = {}
    for field in fields(BreakerConfig):
        if field.name not in _CODE_ONLY_BREAKER_FIELDS:
            data[field.name] = getattr(config, field.name)
    data["window_kind"] = str(config.window_kind)
    data["record_exceptions"] = [_dotted_name(spec) for spec in config.record_exceptions]
    data["ignore_exceptions"] = [_dotted_name(spec) for spec in config.ignore_exceptions]
    data["failure_statuses"] = list(config.failure_statuses)
    return data


def _dotted_name(spec: type[BaseException] | str) -> str:
    if isinstance(spec, str):
        return spec
    return spec.__qualname__ if spec.__module__ == "builtins" else f"{spec.__module__}.{spec.__qualname__}"


# A retrier whose policy can change.


class LiveRetrier(Retrier):
    """A Retrier whose policy and catalog can be swapped in place, keeping its statistics.

    The budget is kept while the policy's budget fields stay the same (a new policy with other
    budget settings gets a new budget). A call already retrying may see the old or the new policy
    for its remaining attempts; both are valid.
    """

    def apply_policy(self, policy: RetryPolicy) -> None:
        """Swap in `policy` (validated first: on ConfigError nothing changes)."""
        same_budget = all(getattr(policy, name) == getattr(self.policy, name) for name in _BUDGET_FIELDS)
        # A throwaway Retrier compiles the policy exactly as the constructor does; only its parts are taken.
        budget = self.budget if same_budget else None
        compiled = Retrier(policy, catalog=self._catalog, clock=self._clock, budget=budget)
        self._exception_types = compiled._exception_types
        self._error_types = compiled._error_types
        self._categories = compiled._categories
        self._statuses = compiled._statuses
        self.budget = compiled.budget
        self.policy = policy

    def use_catalog(self, catalog: Catalog) -> None:
        """Judge transient errors by `catalog` from the next attempt on."""
        self._catalog = catalog


# Parsing snapshot entries.


def _parse(path: str, parse: Callable[[Mapping[str, Any]], T], data: object, errors: list[ConfigError]) -> T | None:
    """Return `parse(data)`, or None after recording a ConfigError whose field starts with `path`."""
    if not isinstance(data, Mapping):
        errors.append(ConfigError(path, f"must be an object, not {type(data).__name__}"))
        return None
    try:
        return parse(data)
    except ConfigError as error:
        errors.append(ConfigError(f"{path}.{error.field}", error.reason))
    except (TypeError, ValueError) as error:
        # A value of the wrong type can fail inside a constructor before validation names the field.
        errors.append(ConfigError(path, f"is invalid: {error}"))
    return None


def _section_mapping(section: str, data: object, errors: list[ConfigError]) -> Mapping[str, Any] | None:
    if isinstance(data, Mapping):
        return data
    errors.append(ConfigError(section, f"must be an object of entries by name, not {type(data).__name__}"))
    return None


def _merge_named(
    section: str,
    data: object,
    parse: Callable[[Mapping[str, Any]], T],
    current: Mapping[str, T],
    errors: list[ConfigError],
    key: str = "name",
) -> list[T]:
    """Return the entries of a list section, keeping the current entry of the same name for each refused one."""
    if not isinstance(data, list):
        errors.append(ConfigError(section, f"must be a list, not {type(data).__name__}"))
        return list(current.values())
    merged: dict[str, T] = {}
    for index, entry in enumerate(data):
        name = entry.get(key) if isinstance(entry, Mapping) else None
        path = f"{section}.{name}" if isinstance(name, str) and name else f"{section}[{index}]"
        parsed = _parse(path, parse, entry, errors)
        if parsed is None:
            if name in current:
                merged.setdefault(name, current[name])
            continue
        if getattr(parsed, key) in merged:
            errors.append(ConfigError(f"{path}.{key}", f"{getattr(parsed, key)!r} is used twice"))
            continue
        merged[getattr(parsed, key)] = parsed
    return list(merged.values())


def _catalog_entry(row: Mapping[str, Any]) -> ErrorTypeEntry:
    try:
        (entry,) = Catalog.from_data([row])
    except ConfigError as error:
        # from_data names the row ("rows[0].code"); the snapshot path already does.
        raise ConfigError(error.field.removeprefix("rows[0]."), error.reason) from None
    return entry


def _retry_policy_from_dict(name: str, data: Mapping[str, Any]) -> RetryPolicy:
    if "name" in data and data["name"] != name:
        raise ConfigError("name", f"must match the entry's key {name!r}, not {data['name']!r}")
    return RetryPolicy.from_dict({**data, "name": name})


class Runtime:
    """A process's breakers, retry/recovery/rate-limit policies, degradation and catalog, hot-reconfigurable."""

    def __init__(
        self,
        *,
        store: BreakerStateStore | None = None,
        clock: Clock = time.time,
        catalog: Catalog | None = None,
        reporter: Reporter | None = None,
        error_rate: ErrorRate | None = None,
        sleep: Callable[[float], object] = time.sleep,
        async_sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        # A wall clock by default: breaker state times are shared with other processes and machines.
        self._clock = clock
        self._reporter = reporter
        self._sleep = sleep
        self._async_sleep = async_sleep
        self._rng = rng
        self._catalog = catalog if catalog is not None else Catalog.default()
        self.breakers = BreakerRegistry(store=store, clock=clock, listeners=[self._report_transition])
        self.fallbacks = FallbackRegistry()
        self.restart_hooks = FallbackRegistry()
        self.degraded_results = FallbackRegistry()
        self.degradation = DegradationManager(
            [],
            DEFAULT_RULES,
            breaker_state=self._breaker_state,
            error_rate=error_rate or self._breaker_error_rate,
            fallbacks=self.fallbacks,
            clock=clock,
            blocking_inputs=self.breakers.store.blocking,
        )
        self.recovery = RecoveryManager(
            [],
            fallbacks=self.fallbacks,
            restart_hooks=self.restart_hooks,
            degraded_results=self.degraded_results,
            reporter=reporter,
            degradation=self.degradation,
            classify=classify,
            clock=clock,
        )
        # The default retry table until a snapshot says otherwise, so @retry("server_error") works unconfigured.
        self._retriers: dict[str, LiveRetrier] = {
            name: self._new_retrier(policy) for name, policy in default_retry_policies().items()
        }
        self._rate_limiters: dict[str, RateLimitDetector] = {}
        self._apply_lock = threading.RLock()
        self._last_snapshot: Mapping[str, Any] | None = None
        self.version: int | None = None
        self.snapshot_errors: list[ConfigError] = []
        # Bumped on every change of what a name resolves to; decorators cache per generation.
        self.generation = 0

    # Lookups

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def catalog(self) -> Catalog:
        return self._catalog

    def breaker(self, name: str, config: BreakerConfig | None = None) -> CircuitBreaker:
        """Return the breaker called `name`, creating it with `config` (or the default config) if new."""
        return self.breakers.get(name, config)

    def retrier(self, name: str) -> Retrier:
        """Return the retrier of the policy called `name`; raise ConfigError naming it when there is none."""
        retrier = self._retriers.get(name)
        if retrier is None:
            known = ", ".join(sorted(self._retriers)) or "none"
            raise ConfigError(f"retry_policies.{name}", f"no retry policy is named {name!r} (known: {known})")
        return retrier

    def retry_policies(self) -> dict[str, RetryPolicy]:
        """Return the retry policies in effect by name."""
        return {name: retrier.policy for name, retrier in self._retriers.items()}

    def rate_limiter(self, name: str) -> RateLimitDetector:
        """Return the detector of the rate-limit policy called `name`; raise ConfigError when there is none."""
        detector = self._rate_limiters.get(name)
        if detector is None:
            raise ConfigError(f"rate_limits.{name}", f"no rate-limit policy is named {name!r}")
        return detector

    # Code-defined parts

    def register_fallback(self, name: str, fallback: Callable[..., Any]) -> Callable[..., Any]:
        """Register a fallback that config (recovery policies, features, @resilient) can name."""
        return self._register(self.fallbacks, name, fallback)

    def register_restart_hook(self, name: str, hook: Callable[[], Any]) -> Callable[[], Any]:
        """Register a restart hook that RESTART recovery policies can name."""
        return self._register(self.restart_hooks, name, hook)

    def register_degraded_result(self, name: str, provider: Callable[..., Any]) -> Callable[..., Any]:
        """Register a degraded-result provider that DEGRADE recovery policies can name."""
        return self._register(self.degraded_results, name, provider)

    def _register(self, registry: FallbackRegistry, name: str, target: Callable[..., Any]) -> Callable[..., Any]:
        with self._apply_lock:
            registry.register(name, target)
            self.generation += 1
            if self.snapshot_errors and self._last_snapshot is not None:
                self.apply(self._last_snapshot)
        return target

    # Applying snapshots

    def apply(self, snapshot: Mapping[str, Any]) -> list[ConfigError]:
        """Hot-apply a config snapshot, keeping all state; return the refused entries (also in snapshot_errors)."""
        errors: list[ConfigError] = []
        with self._apply_lock:
            if not isinstance(snapshot, Mapping):
                errors.append(ConfigError("snapshot", f"must be an object, not {type(snapshot).__name__}"))
            else:
                self._apply_sections(snapshot, errors)
                self._last_snapshot = snapshot
            self.snapshot_errors = errors
            self.generation += 1
        for error in errors:
            logger.warning("config snapshot entry refused: %s", error)
        return list(errors)

    def _apply_sections(self, snapshot: Mapping[str, Any], errors: list[ConfigError]) -> None:
        for key in snapshot:
            if key not in SECTIONS:
                errors.append(ConfigError(str(key), f"is not a config section (known: {', '.join(SECTIONS)})"))
        # The catalog first: retriers judge errors by it. Degradation before recovery, which marks features.
        appliers = (
            ("error_types", self._apply_error_types),
            ("breakers", self._apply_breakers),
            ("retry_policies", self._apply_retry_policies),
            ("rate_limits", self._apply_rate_limits),
            ("degradation", self._apply_degradation),
            ("recovery_policies", self._apply_recovery_policies),
        )
        for section, applier in appliers:
            if section in snapshot:
                applier(snapshot[section], errors)
        if "version" in snapshot:
            self._apply_version(snapshot["version"], errors)

    def _apply_version(self, version: object, errors: list[ConfigError]) -> None:
        if isinstance(version, bool) or not isinstance(version, int):
            errors.append(ConfigError("version", f"must be an integer, not {version!r}"))
            return
        self.version = version

    def _apply_error_types(self, data: object, errors: list[ConfigError]) -> None:
        current = {entry.code: entry for entry in self._catalog}
        entries = _merge_named("error_types", data, _catalog_entry, current, errors, key="code")
        catalog = Catalog(entries)
        self._catalog = catalog
        for retrier in self._retriers.values():
            retrier.use_catalog(catalog)

    def _apply_breakers(self, data: object, errors: list[ConfigError]) -> None:
        entries = _section_mapping("breakers", data, errors)
        if entries is None:
            return
        changed: dict[str, BreakerConfig] = {}
        for name, entry in entries.items():
            config = _parse(f"breakers.{name}", breaker_config_from_dict, entry, errors)
            if config is None:
                continue
            if name in self.breakers:
                current = self.breakers.get(name).config
                config = replace(
                    config, failure_predicate=current.failure_predicate, result_predicate=current.result_predicate
                )
                if config == current:
                    continue  # nothing to swap: spares the window resize
            changed[name] = config
        for name, error in self.breakers.apply_configs(changed).items():
            errors.append(ConfigError(f"breakers.{name}.{error.field}", error.reason))

    def _apply_retry_policies(self, data: object, errors: list[ConfigError]) -> None:
        entries = _section_mapping("retry_policies", data, errors)
        if entries is None:
            return
        retriers: dict[str, LiveRetrier] = {}
        for name, entry in entries.items():
            policy = _parse(f"retry_policies.{name}", lambda d, n=name: _retry_policy_from_dict(n, d), entry, errors)
            existing = self._retriers.get(name)
            if policy is None:
                if existing is not None:
                    retriers[name] = existing
            elif existing is None:
                retriers[name] = self._new_retrier(policy)
            else:
                if existing.policy != policy:
                    existing.apply_policy(policy)
                retriers[name] = existing
        self._retriers = retriers

    def _new_retrier(self, policy: RetryPolicy) -> LiveRetrier:
        return LiveRetrier(
            policy,
            catalog=self._catalog,
            clock=self._clock,
            wall_clock=self._clock,
            sleep=self._sleep,
            async_sleep=self._async_sleep,
            rng=self._rng,
            reporter=self._reporter,
        )

    def _apply_rate_limits(self, data: object, errors: list[ConfigError]) -> None:
        entries = _section_mapping("rate_limits", data, errors)
        if entries is None:
            return
        detectors: dict[str, RateLimitDetector] = {}
        for name, entry in entries.items():
            policy = _parse(f"rate_limits.{name}", RateLimitPolicy.from_dict, entry, errors)
            existing = self._rate_limiters.get(name)
            if policy is None or (existing is not None and existing.policy == policy):
                if existing is not None:
                    detectors[name] = existing
                continue
            detectors[name] = RateLimitDetector(policy, clock=self._clock, wall_clock=self._clock)
        self._rate_limiters = detectors

    def _apply_degradation(self, data: object, errors: list[ConfigError]) -> None:
        section = _section_mapping("degradation", data, errors)
        if section is None:
            return
        for key in section:
            if key not in ("features", "rules"):
                errors.append(ConfigError(f"degradation.{key}", "is not a degradation part (features, rules)"))
        manager = self.degradation
        features = manager.features
        rules: Iterable[DegradationRule] = manager.rules
        if "features" in section:
            current = {feature.name: feature for feature in features}
            features = _merge_named("degradation.features", section["features"], self._feature, current, errors)
        if "rules" in section:
            current_rules = {rule.name: rule for rule in rules}
            parse = DegradationRule.from_dict
            rules = _merge_named("degradation.rules", section["rules"], parse, current_rules, errors)
        manager.apply(features, rules)

    def _feature(self, data: Mapping[str, Any]) -> Feature:
        feature = Feature.from_dict(data)
        if feature.fallback is not None and feature.fallback not in self.fallbacks:
            raise ConfigError("fallback", f"nothing is registered as {feature.fallback!r}")
        return feature

    def _apply_recovery_policies(self, data: object, errors: list[ConfigError]) -> None:
        current = {policy.name: policy for policy in self.recovery.policies}
        merged = _merge_named("recovery_policies", data, self._recovery_policy, current, errors)
        by_key: dict[tuple[str | None, str | None], RecoveryPolicy] = {}
        for policy in merged:
            if policy.key in by_key:
                errors.append(
                    ConfigError(
                        f"recovery_policies.{policy.name}.component",
                        f"matches the same failures as {by_key[policy.key].name!r} (component and error_type)",
                    )
                )
                continue
            by_key[policy.key] = policy
        self.recovery.apply_policies(by_key.values())

    def _recovery_policy(self, data: Mapping[str, Any]) -> RecoveryPolicy:
        policy = RecoveryPolicy.from_dict(data)
        references = {
            Strategy.FALLBACK: ("fallback", policy.fallback, self.fallbacks),
            Strategy.DEGRADE: ("degraded_result", policy.degraded_result, self.degraded_results),
            Strategy.RESTART: ("restart_hook", policy.restart_hook, self.restart_hooks),
        }
        if policy.strategy in references:
            field, name, registry = references[policy.strategy]
            if name not in registry:
                raise ConfigError(field, f"nothing is registered as {name!r}")
        return policy

    # Inputs of the degradation manager, and reporting

    def _breaker_state(self, name: str) -> str:
        # Reading must not create: a feature may name a breaker no code has used yet, which is closed.
        return self.breakers.get(name).state.name if name in self.breakers else "CLOSED"

    def _breaker_error_rate(self) -> float:
        """Return failures over calls across every breaker's current window, as a fraction."""
        calls = failures = 0
        for breaker in self.breakers:
            metrics = breaker.metrics()
            calls += metrics.calls
            failures += metrics.failures
        return failures / calls if calls else 0.0

    def _report_transition(self, transition: Transition) -> None:
        # Runs in the protected call's path: the reporter must only enqueue. The breaker logs its errors.
        if self._reporter is None:
            return
        self._reporter(
            "breaker.transition",
            {
                "breaker": transition.breaker,
                "from_state": str(transition.from_state),
                "to_state": str(transition.to_state),
                "reason": transition.reason,
                "mode": str(transition.mode),
                "generation": transition.generation,
                "timestamp": transition.timestamp,
                "wall_time": transition.wall_time,
            },
        )


# The process's default runtime.

_default_lock = threading.Lock()
_default: Runtime | None = None


def get_runtime() -> Runtime:
    """Return the process's runtime, creating a default one on first use."""
    runtime = _default
    if runtime is not None:
        return runtime
    return _create_default()


def _create_default() -> Runtime:
    global _default
    with _default_lock:
        if _default is None:
            _default = Runtime()
        return _default


def set_runtime(runtime: Runtime | None) -> Runtime | None:
    """Make `runtime` the process's runtime (None: a fresh default on next use); return the previous one."""
    global _default
    with _default_lock:
        previous, _default = _default, runtime
    return previous
