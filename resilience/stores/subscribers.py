"""The breakers of one process watching a networked store: each is told every newer shared state once."""

import logging
import threading
import weakref

from resilience.runtime.state import SharedState, StateCallback

logger = logging.getLogger(__name__)


class Subscribers:
    """Callbacks per breaker name; a state is delivered only if its generation is newer than the last one.

    A process hears its own change twice (from its own write and back from the poll or the Redis message),
    and a poll may read a state already delivered: the generation keeps either from being told again.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._callbacks: dict[str, list] = {}
        self._seen_generation: dict[str, int] = {}

    def add(self, name: str, callback: StateCallback) -> None:
        """Watch `name`; bound methods are held weakly, so the store does not keep dropped breakers alive."""
        reference = weakref.WeakMethod(callback) if hasattr(callback, "__self__") else (lambda: callback)
        with self._lock:
            self._callbacks.setdefault(name, []).append(reference)

    def names(self) -> list[str]:
        """The breaker names somebody watches."""
        with self._lock:
            return list(self._callbacks)

    def __contains__(self, name: str) -> bool:
        return name in self._callbacks

    def notify(self, name: str, new: SharedState) -> None:
        """Tell the watchers of `name` about `new`, unless they were told this generation or a newer one."""
        with self._lock:
            if new.generation <= self._seen_generation.get(name, -1):
                return
            self._seen_generation[name] = new.generation
            references = list(self._callbacks.get(name, ()))
        for reference in references:
            callback = reference()
            if callback is not None:
                try:
                    callback(new)
                except Exception:
                    logger.exception("breaker state callback failed for %s", name)
