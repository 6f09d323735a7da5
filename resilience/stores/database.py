"""Breaker state shared through the console's database: the default store in its processes.

Every change is one conditional UPDATE whose row count decides: a transition only lands
if the generation is still the one the process saw, a half-open permit only if fewer than
the limit are taken. So N processes together never admit more probes than permitted, on
PostgreSQL and SQLite alike. Other processes' transitions are picked up by a poller
thread every RESILIENCE_STATE_POLL_SECONDS.
"""

import logging
import threading
from dataclasses import fields

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, F, Value, When

from resilience.models import BreakerState
from resilience.runtime.state import Mode, SharedState, State, StateCallback, state_for_mode
from resilience.stores.subscribers import Subscribers

logger = logging.getLogger(__name__)

_FIELDS = [field.name for field in fields(SharedState)]


def _shared(row: dict) -> SharedState:
    return SharedState(**{**row, "state": State(row["state"]), "mode": Mode(row["mode"])})


def _columns(state: SharedState) -> dict:
    return {name: str(getattr(state, name)) if name in ("state", "mode") else getattr(state, name) for name in _FIELDS}


class DatabaseStateStore:
    """BreakerStateStore on the BreakerState table."""

    blocking = True  # async breakers call it from a worker thread

    def __init__(self, *, poll_seconds: float | None = None):
        self.poll_seconds = settings.RESILIENCE_STATE_POLL_SECONDS if poll_seconds is None else poll_seconds
        self._lock = threading.Lock()
        self._subscribers = Subscribers()
        self._poller: threading.Thread | None = None
        self._stopped = threading.Event()

    def read(self, name: str) -> SharedState:
        row = BreakerState.objects.filter(name=name).values(*_FIELDS).first()
        return _shared(row) if row else SharedState()

    def compare_and_set(self, name: str, expected_generation: int, new: SharedState) -> bool:
        updated = BreakerState.objects.filter(name=name, generation=expected_generation).update(**_columns(new))
        if not updated and expected_generation == 0:
            updated = self._create(name, new)
        if updated:
            self._subscribers.notify(name, new)
        return bool(updated)

    @staticmethod
    def _create(name: str, new: SharedState) -> int:
        """Insert the first row of a breaker; a concurrent first insert wins instead."""
        try:
            with transaction.atomic():
                BreakerState.objects.create(name=name, **_columns(new))
        except IntegrityError:
            return 0
        return 1

    def acquire_half_open_permit(self, name: str, generation: int, limit: int) -> bool:
        return bool(
            BreakerState.objects.filter(
                name=name, generation=generation, state=State.HALF_OPEN, half_open_permits_used__lt=limit
            ).update(half_open_permits_used=F("half_open_permits_used") + 1)
        )

    def record_probe(self, name: str, generation: int, success: bool | None) -> SharedState:
        BreakerState.objects.filter(name=name, generation=generation, state=State.HALF_OPEN).update(
            half_open_permits_used=Case(
                When(half_open_permits_used__gt=0, then=F("half_open_permits_used") - 1), default=Value(0)
            ),
            half_open_successes=F("half_open_successes") + (1 if success else 0),
        )
        return self.read(name)

    def force_mode(self, name: str, mode: Mode, now_ms: int, reason: str) -> tuple[SharedState, SharedState]:
        with transaction.atomic():
            BreakerState.objects.get_or_create(name=name)
            row = BreakerState.objects.select_for_update().filter(name=name).values(*_FIELDS).get()
            before = _shared(row)
            after = state_for_mode(before, mode, now_ms, reason)
            BreakerState.objects.filter(name=name).update(**_columns(after))
        self._subscribers.notify(name, after)
        return before, after

    def subscribe(self, name: str, callback: StateCallback) -> None:
        self._subscribers.add(name, callback)
        with self._lock:
            if self._poller is None:
                self._poller = threading.Thread(target=self._poll, name="breaker-state-poller", daemon=True)
                self._poller.start()

    def close(self) -> None:
        """Stop the poller thread."""
        self._stopped.set()
        if self._poller is not None:
            self._poller.join(5)

    def _poll(self) -> None:
        while not self._stopped.wait(self.poll_seconds):
            names = self._subscribers.names()
            try:
                rows = list(BreakerState.objects.filter(name__in=names).values("name", *_FIELDS))
            except Exception:
                logger.warning("could not read shared breaker states", exc_info=True)
                continue
            finally:
                connection.close()  # back to the pool between polls
            for row in rows:
                name = row.pop("name")
                self._subscribers.notify(name, _shared(row))
