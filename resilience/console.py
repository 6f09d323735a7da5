"""The resilience runtime inside the console's own processes, configured from admin.

`breaker("name")` returns the process-wide breaker of that name. The first call builds
the registry on the configured state store (the database, or Redis with
RESILIENCE_STATE_STORE=redis) and starts a ConfigWatcher, so a config saved in admin
reaches this process within a second, keeping each breaker's state and window counts.
Transitions this process makes are written to the BreakerTransition history, and become
events of the console's own source, by a background thread: a listener runs inside the
protected call's path, which must not wait for the database.
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
from resilience.runtime.breaker import BreakerRegistry, CircuitBreaker, Transition

logger = logging.getLogger(__name__)

PROCESS = f"{socket.gethostname()}:{os.getpid()}"

_lock = threading.Lock()
_registry: BreakerRegistry | None = None
_watcher: ConfigWatcher | None = None


def breaker(name: str) -> CircuitBreaker:
    """The breaker called `name`, with the config saved in admin (defaults until one is saved)."""
    return breakers().get(name)


def breakers() -> BreakerRegistry:
    """This process's registry, started on first use."""
    global _registry, _watcher
    if _registry is None:
        with _lock:
            if _registry is None:
                # A wall clock: state times are shared with other processes and machines.
                registry = BreakerRegistry(store=_make_store(), clock=time.time, listeners=[_recorder.record])
                _watcher = ConfigWatcher(lambda version: apply_saved_configs(registry)).start()
                _registry = registry
    return _registry


def shutdown() -> None:
    """Stop this process's watcher and forget its breakers (tests, and processes that fork)."""
    global _registry, _watcher
    with _lock:
        if _watcher is not None:
            _watcher.stop()
        if _registry is not None:
            store = _registry.store
            if hasattr(store, "close"):
                store.close()
        _registry = _watcher = None


def _make_store():
    if settings.RESILIENCE_STATE_STORE == "redis":
        from resilience.runtime.redis_store import RedisStateStore

        return RedisStateStore.from_url(settings.REDIS_URL)
    from resilience.stores import DatabaseStateStore

    return DatabaseStateStore()


def apply_saved_configs(registry: BreakerRegistry) -> dict:
    """Apply every saved breaker config to the registry; return the refused ones by name.

    A refused config (say, one naming an exception this process cannot import) leaves
    that breaker on its last good config.
    """
    from resilience.models import Breaker

    configs = {row.name: row.to_config() for row in Breaker.objects.all()}
    errors = registry.apply_configs(configs)
    for name, error in errors.items():
        logger.error("breaker %s keeps its last good config: %s", name, error)
    return errors


class _TransitionRecorder:
    """Writes transitions to the history from a background thread, in order."""

    def __init__(self, capacity: int = 10_000):
        self._queue: queue.Queue[Transition] = queue.Queue(capacity)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def record(self, transition: Transition) -> None:
        try:
            self._queue.put_nowait(transition)
        except queue.Full:
            logger.error("transition history is backed up; dropped %s", transition)
            return
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._write_forever, name="transition-recorder", daemon=True)
                    self._thread.start()

    def flush(self, timeout: float = 10) -> None:
        """Wait until every recorded transition is written (tests and shutdown)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            with self._queue.all_tasks_done:
                self._queue.all_tasks_done.wait(max(0.0, deadline - time.monotonic()))

    def _write_forever(self) -> None:
        from django.db import connection

        from resilience.reporting import console_source, transition_record

        while True:
            transition = self._queue.get()
            try:
                transition_record(
                    source=console_source(),
                    breaker_name=transition.breaker,
                    from_state=transition.from_state.value,
                    to_state=transition.to_state.value,
                    mode=transition.mode.value,
                    generation=transition.generation,
                    reason=transition.reason,
                    process=PROCESS,
                    at=datetime.fromtimestamp(transition.wall_time, tz=UTC),
                )
            except Exception:
                logger.exception("could not record breaker transition %s", transition)
            finally:
                connection.close()  # back to the pool until the next transition
                self._queue.task_done()


_recorder = _TransitionRecorder()


def flush_transitions(timeout: float = 10) -> None:
    _recorder.flush(timeout)
