"""Sliding windows of call outcomes with running totals, so recording a call is O(1).

A count window remembers the last N outcomes in a ring; a time window keeps one bucket per second
over the last N seconds in a ring of buckets. Both keep totals of calls, failures and slow calls
that are adjusted as entries enter and leave, never recomputed.

Windows are not thread-safe on their own: the breaker updates them inside its short critical section,
except for `note_success`, which records a success without that lock in the common case.

An outcome is a set of bit flags: 0 is a fast success, FAILED and SLOW may be combined.
"""

import itertools
import threading
from collections.abc import Callable
from enum import StrEnum
from typing import Protocol

FAILED = 1
SLOW = 2
_EMPTY = 4  # a ring slot that has not held a call yet


class WindowKind(StrEnum):
    COUNT = "count"
    TIME = "time"


class SlidingWindow(Protocol):
    kind: WindowKind
    size: int
    calls: int
    failures: int
    slow_calls: int

    def note_success(self) -> object: ...

    def flush(self) -> int: ...

    def record(self, flags: int, now: float | None = None) -> None: ...

    def advance(self, now: float | None = None) -> None: ...

    def clear(self) -> None: ...

    def seed(self, calls: int, failures: int, slow_calls: int) -> None: ...


class CountWindow:
    """The outcomes of the last `size` calls.

    Successes can be noted without any lock: `note_success` is the `__next__` of an
    `itertools.count`, a single C call that is atomic under the GIL and internally locked on
    free-threaded builds. `flush()`, run under the breaker lock before every read or other
    update, folds the successes noted since the previous flush into the ring in call order
    relative to the outcome recorded next, so no success is lost or counted twice.
    """

    kind = WindowKind.COUNT

    def __init__(self, size: int) -> None:
        self.size = size
        self._noted = itertools.count()
        self.note_success: Callable[[], object] = self._noted.__next__
        self.clear()

    def clear(self) -> None:
        self._last_marker = next(self._noted)  # successes noted before now are dropped with the rest
        self._ring = [_EMPTY] * self.size
        self._cursor = 0
        self.calls = 0
        self.failures = 0
        self.slow_calls = 0

    def flush(self) -> int:
        """Fold the successes noted without the lock into the ring; return how many there were."""
        marker = next(self._noted)
        noted = marker - self._last_marker - 1
        self._last_marker = marker
        if noted >= self.size:
            # Only the newest `size` outcomes survive, and they are all successes.
            self._ring = [0] * self.size
            self._cursor = 0
            self.calls = self.size
            self.failures = 0
            self.slow_calls = 0
        else:
            for _ in range(noted):
                self.record_success()
        return noted

    def record_success(self) -> None:
        cursor = self._cursor
        evicted = self._ring[cursor]
        self._ring[cursor] = 0
        cursor += 1
        self._cursor = 0 if cursor == self.size else cursor
        # A full window of fast successes, the common case, ends here with no total to adjust.
        if evicted:
            self._forget(evicted)

    def record(self, flags: int, now: float | None = None) -> None:
        self.flush()
        cursor = self._cursor
        evicted = self._ring[cursor]
        self._ring[cursor] = flags
        cursor += 1
        self._cursor = 0 if cursor == self.size else cursor
        self._forget(evicted)
        self.failures += flags & FAILED
        self.slow_calls += (flags & SLOW) >> 1

    def _forget(self, evicted: int) -> None:
        if evicted == _EMPTY:
            self.calls += 1
        else:
            self.failures -= evicted & FAILED
            self.slow_calls -= (evicted & SLOW) >> 1

    def advance(self, now: float | None = None) -> None:
        """Bring the totals up to date; a count window does not age, so only noted successes matter."""
        self.flush()

    def outcomes(self) -> list[int]:
        """Return the remembered outcomes, oldest first."""
        self.flush()
        ordered = self._ring[self._cursor :] + self._ring[: self._cursor]
        return [flags for flags in ordered if flags != _EMPTY]

    def seed(self, calls: int, failures: int, slow_calls: int) -> None:
        """Record totals whose order is unknown, scaled down to fit while keeping the rates."""
        kept = min(calls, self.size)
        if kept == 0:
            return
        kept_failures = round(failures * kept / calls)
        kept_slow = round(slow_calls * kept / calls)
        for index in range(kept):
            self.record((FAILED if index < kept_failures else 0) | (SLOW if index < kept_slow else 0))


class TimeWindow:
    """The outcomes of the calls made in the last `size` seconds, in one bucket per second.

    Successes within the current second are noted without the lock through that second's
    `itertools.count`, as in CountWindow; only the first success of a new second takes `lock`
    (the breaker's) to roll the ring forward. A success noted by a thread that read the clock just
    before another thread rolled the second over lands on the retired counter and is lost.
    """

    kind = WindowKind.TIME

    def __init__(self, size: int, clock: Callable[[], float], lock: threading.Lock) -> None:
        self.size = size
        self._clock = clock
        self._lock = lock
        self.clear()

    def clear(self) -> None:
        self._bucket_calls = [0] * self.size
        self._bucket_failures = [0] * self.size
        self._bucket_slow = [0] * self.size
        self.calls = 0
        self.failures = 0
        self.slow_calls = 0
        self._start_second(int(self._clock()))

    def _start_second(self, second: int) -> None:
        self._second = second  # the newest second the ring covers
        self._noted = itertools.count()
        self._last_marker = next(self._noted)
        # The end of the second, not the second itself: comparing floats skips an int() per call,
        # and a clock that stepped back keeps noting into the newest bucket as advance() would.
        self._noting = (second + 1, self._noted.__next__)

    def note_success(self) -> None:
        second_ends, note = self._noting
        now = self._clock()
        if now >= second_ends:
            with self._lock:
                self.advance(now)
                self._noting[1]()
            return
        note()

    def flush(self) -> int:
        """Fold the successes noted without the lock into the current bucket; return how many."""
        marker = next(self._noted)
        noted = marker - self._last_marker - 1
        self._last_marker = marker
        if noted:
            self._add(self._second % self.size, noted, 0, 0)
        return noted

    def record(self, flags: int, now: float | None = None) -> None:
        self.advance(now)
        self._add(self._second % self.size, 1, flags & FAILED, (flags & SLOW) >> 1)

    def advance(self, now: float | None = None) -> None:
        """Drop the buckets that have aged out by `now`, so the totals describe the window ending then."""
        self.flush()
        second = int(self._clock() if now is None else now)
        # A clock that stepped back keeps filling the newest bucket.
        if second > self._second:
            self._move_to(second)

    def _move_to(self, second: int) -> None:
        if second - self._second >= self.size:
            self.clear()
            self._start_second(second)
            return
        # Only the buckets skipped over are cleared: at most `size`, and usually one.
        for skipped in range(self._second + 1, second + 1):
            index = skipped % self.size
            self._add(index, -self._bucket_calls[index], -self._bucket_failures[index], -self._bucket_slow[index])
        self._start_second(second)

    def _add(self, index: int, calls: int, failures: int, slow_calls: int) -> None:
        self._bucket_calls[index] += calls
        self._bucket_failures[index] += failures
        self._bucket_slow[index] += slow_calls
        self.calls += calls
        self.failures += failures
        self.slow_calls += slow_calls

    def buckets(self) -> list[tuple[int, int, int, int]]:
        """Return (second, calls, failures, slow calls) for every non-empty bucket."""
        self.flush()
        found = []
        for second in range(self._second - self.size + 1, self._second + 1):
            index = second % self.size
            calls = self._bucket_calls[index]
            if calls:
                found.append((second, calls, self._bucket_failures[index], self._bucket_slow[index]))
        return found

    def seed(self, calls: int, failures: int, slow_calls: int) -> None:
        """Record totals whose timing is unknown as if they happened in the current second."""
        self.advance()
        self._add(self._second % self.size, calls, failures, slow_calls)

    def seed_bucket(self, second: int, calls: int, failures: int, slow_calls: int) -> None:
        """Record one second's totals, if that second is still inside the window."""
        self.advance()
        if self._second - self.size < second <= self._second:
            self._add(second % self.size, calls, failures, slow_calls)


def make_window(kind: WindowKind, size: int, clock: Callable[[], float], lock: threading.Lock) -> SlidingWindow:
    """Return an empty window of `kind` holding `size` calls or seconds, guarded by `lock`."""
    return CountWindow(size) if kind is WindowKind.COUNT else TimeWindow(size, clock, lock)


def resize_window(
    old: SlidingWindow, kind: WindowKind, size: int, clock: Callable[[], float], lock: threading.Lock
) -> SlidingWindow:
    """Return a window of `kind` and `size` carrying over as much of `old` as it can hold.

    Count to count replays the newest outcomes in order, exactly. Time to time copies the buckets
    of the seconds the new window still covers, exactly. Between kinds only the totals survive: a
    count window takes them scaled to its size with the rates kept; a time window takes them as if
    they all happened in the current second, so they age out together after `size` seconds.
    """
    if old.kind is kind and old.size == size:
        return old
    new = make_window(kind, size, clock, lock)
    old.advance()
    if isinstance(old, CountWindow) and isinstance(new, CountWindow):
        for flags in old.outcomes()[-size:]:
            new.record(flags)
    elif isinstance(old, TimeWindow) and isinstance(new, TimeWindow):
        for second, calls, failures, slow_calls in old.buckets():
            new.seed_bucket(second, calls, failures, slow_calls)
    else:
        new.seed(old.calls, old.failures, old.slow_calls)
    return new
