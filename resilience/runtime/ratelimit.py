"""Rate-limit detection: a sliding window per key, plus the server's own Retry-After.

`RateLimitDetector` counts what callers `record()` for a key (requests sent, or rate-limit answers
received) over a sliding window and reports a key as limited once it reached the policy's limit, or
while a server-sent Retry-After has not passed. Memory stays bounded: each key keeps at most `limit`
timestamps, and the least recently used keys are evicted past `max_keys`.

Also here: parsing Retry-After (delta-seconds or HTTP-date) and finding it on an exception or response.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from resilience.exceptions import ConfigError

Clock = Callable[[], float]


def parse_retry_after(value: object, now: float) -> float | None:
    """Return the seconds a Retry-After value asks to wait, or None when it is unreadable.

    `value` is delta-seconds (number or numeric string) or an HTTP-date; `now` is the wall-clock
    time (seconds since the epoch) an HTTP-date is measured from. Past dates and negatives give 0.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return max(0.0, float(value))
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a zone-less one is read as such.
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, when.timestamp() - now)


def _header(headers: object, name: str) -> object:
    """Return a header's value from any mapping-like headers, ignoring case."""
    if not hasattr(headers, "items"):  # a Mapping, or httpx/requests/aiohttp headers
        return None
    wanted = name.lower()
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == wanted:
            return value
    return None


def retry_after_from(obj: object, now: float) -> float | None:
    """Return the Retry-After seconds an exception or response carries, or None.

    Looks at a `retry_after` attribute, then the Retry-After header of `obj.headers` and of
    `obj.response.headers` (httpx, requests, aiohttp responses and their HTTP errors).
    """
    candidates = (
        getattr(obj, "retry_after", None),
        _header(getattr(obj, "headers", None), "Retry-After"),
        _header(getattr(getattr(obj, "response", None), "headers", None), "Retry-After"),
    )
    for candidate in candidates:
        seconds = parse_retry_after(candidate, now) if candidate is not None else None
        if seconds is not None:
            return seconds
    return None


@dataclass(frozen=True)
class RateLimitPolicy:
    """At most `limit` records per key within `window_seconds`; `max_keys` bounds the keys remembered."""

    limit: int = 100
    window_seconds: float = 60.0
    max_keys: int = 10_000

    def validate(self) -> None:
        """Raise ConfigError naming the first field outside its limits."""
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1:
            raise ConfigError("limit", f"must be an integer >= 1, not {self.limit!r}")
        if not isinstance(self.window_seconds, int | float) or self.window_seconds <= 0:
            raise ConfigError("window_seconds", f"must be a number > 0, not {self.window_seconds!r}")
        if isinstance(self.max_keys, bool) or not isinstance(self.max_keys, int) or self.max_keys < 1:
            raise ConfigError("max_keys", f"must be an integer >= 1, not {self.max_keys!r}")

    def to_dict(self) -> dict[str, Any]:
        """Return the policy as plain data."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RateLimitPolicy:
        """Build and validate a policy from plain data; unknown keys are errors."""
        known = {field.name for field in fields(cls)}
        for key in data:
            if key not in known:
                raise ConfigError(key, f"is not a rate-limit policy field (known: {', '.join(sorted(known))})")
        policy = cls(**data)
        policy.validate()
        return policy


class _KeyState:
    """What one key remembers: its last `limit` record times and a server-imposed block."""

    __slots__ = ("blocked_until", "times")

    def __init__(self, limit: int) -> None:
        # Whether `limit` records fall within the window depends only on the `limit` most recent.
        self.times: deque[float] = deque(maxlen=limit)
        self.blocked_until = 0.0


class RateLimitDetector:
    """Thread-safe sliding-window rate-limit detection per key, honouring server-sent Retry-After."""

    def __init__(self, policy: RateLimitPolicy, *, clock: Clock = time.monotonic, wall_clock: Clock = time.time):
        policy.validate()
        self.policy = policy
        self._clock = clock
        self._wall_clock = wall_clock
        self._keys: OrderedDict[str, _KeyState] = OrderedDict()
        self._lock = threading.Lock()

    def record(self, key: str, retry_after: object = None) -> bool:
        """Record one hit for `key`; return whether it was within the limit (the key was not limited yet).

        `retry_after` is a server's Retry-After (seconds or HTTP-date): the key is limited until then.
        """
        now = self._clock()
        with self._lock:
            state = self._touch(key)
            within = self._wait(state, now) == 0.0
            state.times.append(now)
            if retry_after is not None:
                seconds = parse_retry_after(retry_after, self._wall_clock())
                if seconds is not None:
                    state.blocked_until = max(state.blocked_until, now + seconds)
            return within

    def is_limited(self, key: str) -> bool:
        """Return whether `key` must wait before its next request."""
        return self.retry_after(key) > 0.0

    def retry_after(self, key: str) -> float:
        """Return the seconds `key` must wait before its next request; 0.0 when it may go now."""
        now = self._clock()
        with self._lock:
            state = self._keys.get(key)
            return self._wait(state, now) if state is not None else 0.0

    def reset(self, key: str) -> None:
        """Forget everything about `key`."""
        with self._lock:
            self._keys.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._keys)

    def _touch(self, key: str) -> _KeyState:
        """Return the key's state as most recently used, evicting the least recently used past max_keys."""
        state = self._keys.get(key)
        if state is None:
            state = self._keys[key] = _KeyState(self.policy.limit)
            while len(self._keys) > self.policy.max_keys:
                self._keys.popitem(last=False)
        else:
            self._keys.move_to_end(key)
        return state

    def _in_window(self, state: _KeyState, now: float) -> list[float]:
        """Return the key's record times still inside the sliding window."""
        start = now - self.policy.window_seconds
        return [moment for moment in state.times if moment > start]

    def _wait(self, state: _KeyState, now: float) -> float:
        """Return how long the key must wait: until the server's block ends and a window slot frees up."""
        blocked = max(0.0, state.blocked_until - now)
        recent = self._in_window(state, now)
        if len(recent) < self.policy.limit:
            return blocked
        # The window is full: the next slot frees when the oldest of the last `limit` records ages out.
        return max(blocked, recent[-self.policy.limit] + self.policy.window_seconds - now)
