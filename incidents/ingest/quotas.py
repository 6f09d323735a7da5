"""Per-source ingest quotas: a fixed one-minute window counted in Redis, or in memory.

Redis is shared by every web process; the in-memory counter serves the embedded
default, which runs on one machine. Each web process takes its share from Redis in leases of
LEASE_FRACTION of the limit (one event for small limits, so these stay exact) and counts them
down itself: one Redis round trip per lease instead of one per request, which on the event loop
of an ASGI worker would hold up every request the worker serves. A process may so hold up to a
lease it has not used when another reaches the limit; leases end with their minute.

Redis calls go through the "redis" circuit breaker (configured in admin): when Redis is slow or
down, each process counts on its own instead, so ingest keeps accepting events with approximate
quotas rather than failing or waiting on a dead connection.
"""

import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import SynchronousOnlyOperation

from resilience.process_runtime import REDIS_BREAKER, breaker

WINDOW_SECONDS = 60


LEASE_FRACTION = 0.01


def _lease_size(limit: int, amount: int) -> int:
    return max(amount, int(limit * LEASE_FRACTION), 1)


class _MemoryCounter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._window = 0

    def add(self, key: str, amount: int, window: int) -> int:
        with self._lock:
            if window != self._window:
                self._counts.clear()  # a new minute: every old window is over
                self._window = window
            self._counts[key] = self._counts.get(key, 0) + amount
            return self._counts[key]

    def take(self, key: str, amount: int, window: int, limit: int) -> bool:
        return self.add(key, amount, window) <= limit


class _RedisCounter:
    def __init__(self, url: str) -> None:
        import redis

        self._client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._local = _MemoryCounter()
        self._lock = threading.Lock()
        self._leases: dict[str, int] = {}  # key -> events this process may still accept in the lease window
        self._lease_window = 0

    def take(self, key: str, amount: int, window: int, limit: int) -> bool:
        """Accept `amount` events from this process's lease, taking a new lease from Redis when it runs out."""
        with self._lock:
            if window != self._lease_window:
                self._leases.clear()
                self._lease_window = window
            left = self._leases.get(key, 0)
            if left < amount:
                size = _lease_size(limit, amount)
                total = self.add(key, size, window)
                left += max(0, min(size, limit - (total - size)))  # what of the lease is still within the limit
            if left < amount:
                self._leases[key] = left
                return False
            self._leases[key] = left - amount
            return True

    def add(self, key: str, amount: int, window: int) -> int:
        try:
            return breaker(REDIS_BREAKER).call(self._add_shared, key, amount, window)
        except SynchronousOnlyOperation:
            raise  # on the event loop, the breaker needed the database: the caller retries in a thread
        except Exception:  # Redis down, or the breaker open: its transition is the incident to look at
            return self._local.add(key, amount, window)

    def _add_shared(self, key: str, amount: int, window: int) -> int:
        redis_key = f"quota:{key}:{window}"
        pipe = self._client.pipeline(transaction=False)
        pipe.incrby(redis_key, amount)
        pipe.expire(redis_key, WINDOW_SECONDS * 2)
        count, _ = pipe.execute()
        return int(count)


_counter: _MemoryCounter | _RedisCounter | None = None
_clock: Callable[[], float] = time.time  # seconds since the epoch: which minute a count goes into


def reset(*, clock: Callable[[], float] = time.time) -> None:
    """Forget this process's counter and leases (the next call makes a counter from the settings), and
    read the time from `clock` from now on: tests start from nothing, on a clock they control."""
    global _counter, _clock
    _counter = None
    _clock = clock


def _get_counter() -> _MemoryCounter | _RedisCounter:
    global _counter
    if _counter is None:
        _counter = _RedisCounter(settings.REDIS_URL) if settings.REDIS_URL else _MemoryCounter()
    return _counter


def quota_consume(*, source_id: int, limit_per_minute: int, amount: int = 1) -> int | None:
    """Count `amount` events against the source; return seconds to wait when over the limit, else None."""
    if limit_per_minute == 0:
        return None
    now = _clock()
    window = int(now // WINDOW_SECONDS)
    if _get_counter().take(str(source_id), amount, window, limit_per_minute):
        return None
    return max(1, int((window + 1) * WINDOW_SECONDS - now + 0.999))


def quota_usage(*, source_id: int, limit_per_minute: int) -> tuple[int, int | None]:
    """Events counted against the source this minute, and seconds until its quota renews when used up."""
    if limit_per_minute == 0:
        return 0, None  # unlimited sources are not counted
    now = _clock()
    window = int(now // WINDOW_SECONDS)
    used = _get_counter().add(str(source_id), 0, window)  # adding nothing reads the shared count
    if used < limit_per_minute:
        return used, None
    return used, max(1, int((window + 1) * WINDOW_SECONDS - now + 0.999))
