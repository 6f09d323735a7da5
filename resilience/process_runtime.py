"""The resilience runtime inside the console's own processes, configured from admin.

`runtime()` is this process's Runtime (also installed as the default the decorators use),
and `breaker("name")` one of its breakers. The first call builds it on the configured
state store (the database, or Redis with RESILIENCE_STATE_STORE=redis) and starts a
ConfigWatcher that applies the saved config snapshot whenever it changes, within a
second, keeping breaker state and window counts.

Breaker transitions, recovery outcomes, refused config, window figures and degradation level
changes are handed to the receivers of resilience.signals by a background thread (the
incidents app keeps them as transition history, events of the console's own source and live
messages). Reports arrive inside the protected call's path, which must not wait for the
database; tests may have them written at once instead (recording_inline()). A second thread makes
the time-driven moves (automatic half-open, the half-open time limit) when they are due,
and reports the breakers' window figures every RESILIENCE_WINDOW_REPORT_SECONDS for
admin, API and dashboard to add up across processes.

reset() forgets all of it (tests); a forked process forgets its parent's on its own.
"""

import contextlib
import logging
import os
import queue
import socket
import threading
import time
from datetime import UTC, datetime

from django.conf import settings
from django.db import connection, transaction

from resilience import signals
from resilience.config_snapshot import config_snapshot
from resilience.config_watcher import CHANNEL, ConfigWatcher
from resilience.runtime.breaker import BreakerRegistry, CircuitBreaker
from resilience.runtime.events import config_refused_event, window_reports
from resilience.runtime.runtime import Runtime, set_runtime
from resilience.stores.database import DatabaseStateStore
from resilience.stores.redis import RedisStateStore

logger = logging.getLogger(__name__)

PROCESS = f"{socket.gethostname()}:{os.getpid()}"

# The console's own dependencies, each behind a breaker seeded in admin.
REDIS_BREAKER = "redis"

_lock = threading.Lock()
_runtime: Runtime | None = None
_watcher: ConfigWatcher | None = None
_housekeeper: "_Housekeeper | None" = None


def runtime() -> Runtime:
    """This process's runtime, started on first use."""
    global _runtime, _watcher, _housekeeper
    if _runtime is None:
        with _lock:
            if _runtime is None:
                # A wall clock: state times are shared with other processes and machines.
                started = Runtime(store=_make_store(), clock=time.time, reporter=_record)
                started.degradation.add_listener(_report_level_change)
                set_runtime(started)
                _watcher = ConfigWatcher(lambda version: apply_saved_config(started)).apply_now().start()
                _housekeeper = _Housekeeper(started).start()
                _runtime = started
    return _runtime


def breaker(name: str) -> CircuitBreaker:
    """The breaker called `name`, with the config saved in admin (defaults until one is saved)."""
    return runtime().breaker(name)


def through_redis(fn, /, *args, **kwargs):
    """Call `fn` through the Redis breaker when the console uses Redis (it talks to Redis then), else directly."""
    if settings.REDIS_URL:
        return breaker(REDIS_BREAKER).call(fn, *args, **kwargs)
    return fn(*args, **kwargs)


def breakers() -> BreakerRegistry:
    return runtime().breakers


def apply_saved_config(target: Runtime) -> list:
    """Apply the saved config snapshot; return the entries refused, which keep their last good config."""
    errors = target.apply(config_snapshot())
    for error in errors:
        logger.error("resilience config refused, last good config kept: %s", error)
        if _first_report_of(error):
            _record("config.refused", config_refused_event(error))
    return errors


_reported_refusals: set[tuple[str, str]] = set()
# Not _lock: the first config is applied while runtime() holds that one.
_refusals_lock = threading.Lock()


def _first_report_of(error) -> bool:
    """Report each refusal once per process: every later config change would otherwise repeat it."""
    with _refusals_lock:
        key = (error.field, error.reason)
        if key in _reported_refusals:
            return False
        _reported_refusals.add(key)
        return True


def report_windows(target: Runtime) -> None:
    """Queue the window figures of every breaker `target` has for recording."""
    windows = window_reports(target.breakers)
    if windows:
        _record("breaker.windows", {"windows": windows, "wall_time": time.time()})


def _report_level_change(change) -> None:
    """Queue a degradation level change for the live stream (written by the recorder's thread)."""
    _record(
        "degradation.changed",
        {"level": change.level.name, "previous": change.previous.name, "reason": change.reason, "process": PROCESS},
    )


def announce_config_version(*, version: int, **_signal_arguments) -> None:
    """Tell other processes' config watchers of a new version through Redis once the saving transaction
    commits (a receiver of signals.config_changed, connected by the resilience app)."""
    transaction.on_commit(lambda: _publish_config_version(version))


def _publish_config_version(version: int) -> None:
    if not settings.REDIS_URL:
        return
    import redis

    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
        breaker(REDIS_BREAKER).call(client.publish, CHANNEL, str(version))
        client.close()
    except Exception:
        # Watchers still see the change at their next poll.
        logger.warning("could not publish resilience config version %s", version, exc_info=True)


def reset() -> None:
    """Forget this process's runtime: write the reports queued so far, stop its threads (watcher,
    housekeeper, recorder) and start again from nothing on next use (tests)."""
    global _recorder
    _recorder.stop()  # first: writing a report may use the runtime (the Redis breaker), starting one
    _recorder = _Recorder()
    shutdown()


def shutdown() -> None:
    """Stop this process's watcher and housekeeper threads and forget its runtime (the recorder goes on)."""
    global _runtime, _watcher, _housekeeper
    with _lock:
        if _watcher is not None:
            _watcher.stop()
        if _housekeeper is not None:
            _housekeeper.stop()
        if _runtime is not None:
            store = _runtime.breakers.store
            if hasattr(store, "close"):
                store.close()
            set_runtime(None)
        _reported_refusals.clear()
        _runtime = _watcher = _housekeeper = None


def _make_store():
    if settings.RESILIENCE_STATE_STORE == "redis":
        return RedisStateStore.from_url(settings.REDIS_URL)
    return DatabaseStateStore()


class _Housekeeper:
    """Makes the runtime's time-driven breaker moves and reports its windows, from a daemon thread."""

    def __init__(self, target: Runtime):
        self._target = target
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="resilience-housekeeper", daemon=True)

    def start(self) -> "_Housekeeper":
        self._thread.start()
        return self

    def stop(self, timeout: float = 5) -> None:
        self._stopped.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        next_report = time.monotonic() + settings.RESILIENCE_WINDOW_REPORT_SECONDS
        while not self._stopped.wait(settings.RESILIENCE_STATE_POLL_SECONDS):
            try:
                self._target.breakers.poll()
                self._target.degradation.evaluate()  # a level change reaches the live stream without a caller
                if time.monotonic() >= next_report:
                    next_report = time.monotonic() + settings.RESILIENCE_WINDOW_REPORT_SECONDS
                    report_windows(self._target)
            except Exception:
                logger.exception("resilience housekeeping failed")
            finally:
                connection.close()  # a due transition went through the database store


# Threads inside recording_inline(): their reports are written at once, where they are made.
_inline = threading.local()


@contextlib.contextmanager
def recording_inline():
    """Within the block, the reports this thread makes are written at once, on this thread, in its
    database connection and transaction, instead of by the recorder thread (tests: what a call
    reported is in the test's transaction when the call returns). A report that fails is logged
    and rolled back alone, as the recorder thread does. Other threads' reports are queued as always."""
    _inline.depth = getattr(_inline, "depth", 0) + 1
    try:
        yield
    finally:
        _inline.depth -= 1


def _records_inline() -> bool:
    return getattr(_inline, "depth", 0) > 0


def _write_here(kind: str, payload: dict) -> None:
    try:
        with transaction.atomic():  # a savepoint: a failed report leaves the caller's transaction usable
            _write(kind, payload)
    except Exception:
        logger.exception("could not record %s %s", kind, payload)


_STOP = ("", {})  # queued by _Recorder.stop(): the thread ends once it reaches it


class _Recorder:
    """Writes runtime reports to the database from a background thread, in order."""

    def __init__(self, capacity: int = 10_000):
        self._queue: queue.Queue[tuple[str, dict]] = queue.Queue(capacity)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def record(self, kind: str, payload: dict) -> None:
        if _records_inline():
            _write_here(kind, payload)
            return
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

    def stop(self, timeout: float = 10) -> None:
        """Write every report queued so far, then end the thread."""
        with self._start_lock:
            thread = self._thread
        if thread is not None:
            self._queue.put(_STOP)
            thread.join(timeout)
            self._thread = None

    def _write_forever(self) -> None:
        while True:
            kind, payload = self._queue.get()
            if (kind, payload) == _STOP:
                self._queue.task_done()
                return
            try:
                _write(kind, payload)
            except Exception:
                logger.exception("could not record %s %s", kind, payload)
            finally:
                connection.close()  # back to the pool until the next report
                self._queue.task_done()


def _write(kind: str, payload: dict) -> None:
    """Hand one report to the receivers of its signal (resilience.signals)."""
    if kind == "breaker.transition":
        signals.breaker_transitioned.send(
            sender=None,
            breaker_name=payload["breaker"],
            from_state=payload["from_state"],
            to_state=payload["to_state"],
            mode=payload["mode"],
            generation=payload["generation"],
            reason=payload["reason"],
            process=PROCESS,
            at=datetime.fromtimestamp(payload["wall_time"], tz=UTC),
        )
    elif kind == "breaker.windows":
        signals.breaker_windows_reported.send(
            sender=None,
            process=PROCESS,
            windows=payload["windows"],
            at=datetime.fromtimestamp(payload["wall_time"], UTC),
        )
    elif kind == "config.refused":
        signals.config_refused.send(sender=None, event={**payload, "server_name": PROCESS})
    elif kind.startswith("recovery."):
        signals.recovery_reported.send(sender=None, kind=kind, payload=payload, process=PROCESS)
    elif kind == "degradation.changed":
        signals.degradation_changed.send(sender=None, payload=payload)


_recorder = _Recorder()


def _record(kind: str, payload: dict) -> None:
    """Hand a report to this process's recorder (the one of now: reset() and a fork replace it)."""
    _recorder.record(kind, payload)


def _forget_parent_runtime() -> None:
    """A forked process starts its own runtime: the parent's threads did not come along."""
    global _runtime, _watcher, _housekeeper, _recorder, _lock, _refusals_lock
    _lock, _refusals_lock = threading.Lock(), threading.Lock()  # another thread may have held them at the fork
    _runtime = _watcher = _housekeeper = None
    _recorder = _Recorder()
    _reported_refusals.clear()
    set_runtime(None)


os.register_at_fork(after_in_child=_forget_parent_runtime)


def flush_reports(timeout: float = 10) -> None:
    _recorder.flush(timeout)
