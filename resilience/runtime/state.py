"""Shared breaker state: the part of a circuit breaker every process must agree on, and where it lives.

Sliding windows stay local to each process. Only the state machine goes through a store: transitions
(a compare-and-set guarded by a generation number), forced modes and half-open permits. The CLOSED
success path never touches the store, so a networked store (database, Redis) adds no round trip there.

Times in `SharedState` are milliseconds on the breakers' clock. Breakers sharing a store across
machines must therefore use a wall clock (`clock=time.time`): two processes' monotonic clocks are unrelated.
"""

import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Protocol


class State(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Mode(StrEnum):
    AUTO = "auto"
    FORCED_OPEN = "forced_open"
    FORCED_CLOSED = "forced_closed"
    METRICS_ONLY = "metrics_only"


@dataclass(frozen=True, slots=True)
class SharedState:
    """What every process sharing a breaker agrees on; replaced whole, never mutated."""

    state: State = State.CLOSED
    mode: Mode = Mode.AUTO
    generation: int = 0
    changed_at_ms: int = 0
    opened_at_ms: int = 0
    open_until_ms: int = 0
    attempt: int = 0
    half_open_permits_used: int = 0
    half_open_successes: int = 0
    last_reason: str = ""


StateCallback = Callable[[SharedState], None]


class BreakerStateStore(Protocol):
    """Where breakers keep their shared state; every method is atomic for the named breaker."""

    # True when methods do I/O (database, Redis): async callers then run them in a worker thread.
    blocking: bool

    def read(self, name: str) -> SharedState:
        """Return the current state, a fresh CLOSED one for a breaker never seen."""
        ...

    def compare_and_set(self, name: str, expected_generation: int, new: SharedState) -> bool:
        """Store `new` only if the stored generation is still `expected_generation`; say whether it was."""
        ...

    def acquire_half_open_permit(self, name: str, generation: int, limit: int) -> bool:
        """Take one probe permit if the breaker is HALF_OPEN at `generation` with fewer than `limit` in use."""
        ...

    def record_probe(self, name: str, generation: int, success: bool | None) -> SharedState:
        """Release a probe permit and count a success (`None`: an ignored outcome); return the state after."""
        ...

    def force_mode(self, name: str, mode: Mode, now_ms: int, reason: str) -> tuple[SharedState, SharedState]:
        """Switch the breaker's mode unconditionally; return the states before and after."""
        ...

    def subscribe(self, name: str, callback: StateCallback) -> None:
        """Call `callback` with the new state after every transition of `name`, made by any process."""
        ...


def state_for_mode(current: SharedState, mode: Mode, now_ms: int, reason: str) -> SharedState:
    """Return the state a breaker enters when an operator switches it to `mode`."""
    if mode is Mode.FORCED_OPEN:
        state = State.OPEN
    elif mode is Mode.FORCED_CLOSED:
        state = State.CLOSED
    elif mode is Mode.AUTO and current.mode is Mode.FORCED_OPEN:
        # Leaving a forced open probes before trusting the dependency again.
        state = State.HALF_OPEN
    else:
        state = current.state
    moved = state is not current.state
    return replace(
        current,
        state=state,
        mode=mode,
        generation=current.generation + 1,
        changed_at_ms=now_ms if moved else current.changed_at_ms,
        opened_at_ms=now_ms if moved and state is State.OPEN else current.opened_at_ms,
        attempt=0 if state is State.CLOSED else current.attempt,
        half_open_permits_used=0 if moved else current.half_open_permits_used,
        half_open_successes=0 if moved else current.half_open_successes,
        last_reason=reason,
    )


class InMemoryStateStore:
    """A store for breakers of one process; share one instance to make same-named breakers agree."""

    blocking = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, SharedState] = {}
        self._subscribers: dict[str, list[Callable[[], StateCallback | None]]] = {}

    def read(self, name: str) -> SharedState:
        return self._states.get(name) or SharedState()

    def compare_and_set(self, name: str, expected_generation: int, new: SharedState) -> bool:
        with self._lock:
            if self.read(name).generation != expected_generation:
                return False
            self._states[name] = new
        self._notify(name, new)
        return True

    def acquire_half_open_permit(self, name: str, generation: int, limit: int) -> bool:
        with self._lock:
            current = self.read(name)
            if (
                current.generation != generation
                or current.state is not State.HALF_OPEN
                or current.half_open_permits_used >= limit
            ):
                return False
            self._states[name] = replace(current, half_open_permits_used=current.half_open_permits_used + 1)
            return True

    def record_probe(self, name: str, generation: int, success: bool | None) -> SharedState:
        with self._lock:
            current = self.read(name)
            if current.generation != generation or current.state is not State.HALF_OPEN:
                return current
            updated = replace(
                current,
                half_open_permits_used=max(0, current.half_open_permits_used - 1),
                half_open_successes=current.half_open_successes + (1 if success else 0),
            )
            self._states[name] = updated
            return updated

    def force_mode(self, name: str, mode: Mode, now_ms: int, reason: str) -> tuple[SharedState, SharedState]:
        with self._lock:
            before = self.read(name)
            after = state_for_mode(before, mode, now_ms, reason)
            self._states[name] = after
        self._notify(name, after)
        return before, after

    def subscribe(self, name: str, callback: StateCallback) -> None:
        # Bound methods are held weakly so a store outliving its breakers does not keep them alive.
        reference = weakref.WeakMethod(callback) if hasattr(callback, "__self__") else (lambda: callback)
        with self._lock:
            self._subscribers.setdefault(name, []).append(reference)

    def _notify(self, name: str, new: SharedState) -> None:
        with self._lock:
            references = list(self._subscribers.get(name, ()))
        for reference in references:
            callback = reference()
            if callback is not None:
                callback(new)
