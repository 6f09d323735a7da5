"""The resilience runtime inside the console's own processes, configured from admin.

`runtime()` is this process's Runtime (also installed as the default the decorators use),
and `breaker("name")` one of its breakers. The first call builds it on the configured
state store (the database, or Redis with RESILIENCE_STATE_STORE=redis) and starts a
ConfigWatcher that applies the saved config snapshot whenever it changes, within a
second, keeping breaker state and window counts.

Breaker transitions and recovery outcomes are recorded by a background thread: in the
transition history, and as events of the console's own source. Reports arrive inside
the protected call's path, which must not wait for the database.
"""

import logging
import os
import queue
import socket
import threading
import time
from datetime import UTC, datetime

from django.conf import settings

from resilience.live import ConfigWatcher
from resilience.runtime.breaker import BreakerRegistry, CircuitBreaker
from resilience.runtime.runtime import Runtime, set_runtime

logger = logging.getLogger(__name__)

PROCESS = f"{socket.gethostname()}:{os.getpid()}"

# The console's own dependencies, each behind a breaker seeded in admin.
REDIS_BREAKER = "redis"

_lock = threading.Lock()
_runtime: Runtime | None = None
_watcher: ConfigWatcher | None = None


def runtime() -> Runtime:
    """This process's runtime, started on first use."""
    global _runtime, _watcher
    if _runtime is None:
        with _lock:
            if _runtime is None:
                # A wall clock: state times are shared with other processes and machines.
                started = Runtime(store=_make_store(), clock=time.time, reporter=_recorder.record)
                set_runtime(started)
                _watcher = ConfigWatcher(lambda version: apply_saved_config(started)).start()
                _runtime = started
    return _runtime


def breaker(name: str) -> CircuitBreaker:
    """The breaker called `name`, with the config saved in admin (defaults until one is saved)."""
    return runtime().breaker(name)


def breakers() -> BreakerRegistry:
    return runtime().breakers


def apply_saved_config(target: Runtime) -> list:
    """Apply the saved config snapshot; return the entries refused, which keep their last good config."""
    from resilience.reporting import config_snapshot

    errors = target.apply(config_snapshot())
    for error in errors:
        logger.error("resilience config refused, last good config kept: %s", error)
    return errors


def shutdown() -> None:
    """Stop this process's watcher and forget its runtime (tests, and processes that fork)."""
    global _runtime, _watcher
    with _lock:
        if _watcher is not None:
            _watcher.stop()
        if _runtime is not None:
            store = _runtime.breakers.store
            if hasattr(store, "close"):
                store.close()
            set_runtime(None)
        _runtime = _watcher = None


def _make_store():
    if settings.RESILIENCE_STATE_STORE == "redis":
        from resilience.runtime.redis_store import RedisStateStore

        return RedisStateStore.from_url(settings.REDIS_URL)
    from resilience.stores import DatabaseStateStore

    return DatabaseStateStore()


class _Recorder:
    """Writes runtime reports to the database from a background thread, in order."""

    def __init__(self, capacity: int = 10_000):
        self._queue: queue.Queue[tuple[str, dict]] = queue.Queue(capacity)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def record(self, kind: str, payload: dict) -> None:
        try:
            self._queue.put_nowait((kind, payload))
        except queue.Full:
            logger.error("resilience reports are backed up; dropped %s %s", kind, payload)
            return
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._write_forever, name="resilience-recorder", daemon=True)
                    self._thread.start()

    def flush(self, timeout: float = 10) -> None:
        """Wait until every report so far is written (tests and shutdown)."""
        deadline = time.monotonic() + timeout
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks and time.monotonic() < deadline:
                self._queue.all_tasks_done.wait(max(0.0, deadline - time.monotonic()))

    def _write_forever(self) -> None:
        from django.db import connection

        while True:
            kind, payload = self._queue.get()
            try:
                _write(kind, payload)
            except Exception:
                logger.exception("could not record %s %s", kind, payload)
            finally:
                connection.close()  # back to the pool until the next report
                self._queue.task_done()


def _write(kind: str, payload: dict) -> None:
    from resilience.reporting import console_source, recovery_record, transition_record

    if kind == "breaker.transition":
        transition_record(
            source=console_source(),
            breaker_name=payload["breaker"],
            from_state=payload["from_state"],
            to_state=payload["to_state"],
            mode=payload["mode"],
            generation=payload["generation"],
            reason=payload["reason"],
            process=PROCESS,
            at=datetime.fromtimestamp(payload["wall_time"], tz=UTC),
        )
    elif kind.startswith("recovery."):
        recovery_record(source=console_source(), kind=kind, payload=payload, process=PROCESS)


_recorder = _Recorder()


def flush_reports(timeout: float = 10) -> None:
    _recorder.flush(timeout)
