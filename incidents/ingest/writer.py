"""Group commit for the ingest fast path: one transaction for the events of many concurrent requests.

A bare view that INSERTs one row per request pays a commit (a WAL flush on PostgreSQL, a
write-lock turn on SQLite) and a round trip per request, and on 2 cores the database's side of
that is half the machine. Here the requests of one process hand their events to one writer
thread (a few on PostgreSQL); it takes whatever has queued up while it wrote the previous batch,
stores it all in one transaction, and only then answers each request: every answer still means
"durable", but under load a commit serves tens of requests, and with one client it is the same
single statement as before. No library does this for Django; psycopg's pipeline mode batches round trips, not
commits.

Asking for the digest after a commit is a query of its own (and now and then a write and an
enqueue); a second thread does it, so that the writer goes straight on to the next batch. Commits
that land while it asks are covered by one more ask after it: asks never queue up.

A batch the database refuses (one request's row it cannot take) is retried request by request,
so only the sender of the bad row hears of it. A lost connection is retried once by the storage
layer; an unavailable database fails the whole batch, which the endpoints answer with 503.
"""

import logging
import os
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection

from incidents.ingest import pipeline, storage

logger = logging.getLogger(__name__)

# Rows per transaction at most: a burst is written in several commits rather than one huge one.
MAX_BATCH_ROWS = 2000
# A thread idle this long gives its database connection back to the pool (seconds).
IDLE_SECONDS = 0.2


@dataclass(frozen=True)
class _Pending:
    write: storage.EventWrite
    done: Future


class EventWriter:
    """The threads of a process storing the events that requests submit, many requests per commit."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._committed = threading.Event()  # set after a commit that stored new events
        self._lock = threading.Lock()
        self._pid: int | None = None

    def submit(self, write: storage.EventWrite) -> Future:
        """Queue the events; the future resolves once they are committed (or with the error that stopped them)."""
        self._ensure_thread()
        done: Future = Future()
        # Running from the start, so it cannot be cancelled: a client that leaves mid-request must not
        # turn the answer for the rest of its batch, whose events are committed alike, into an error.
        done.set_running_or_notify_cancel()
        self._queue.put(_Pending(write, done))
        return done

    def _ensure_thread(self) -> None:
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid != os.getpid():  # a forked server worker starts its own: threads do not survive fork
                self._queue, self._committed = queue.SimpleQueue(), threading.Event()
                for number in range(_writer_threads()):
                    threading.Thread(target=self._run, daemon=True, name=f"event-writer-{number}").start()
                threading.Thread(target=self._ask_for_digests, daemon=True, name="digest-asker").start()
                self._pid = os.getpid()

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            try:
                stored = self._write(batch)
            except Exception as error:  # never let the thread die: later requests would wait forever
                logger.exception("the event writer failed a batch")
                for pending in batch:
                    if not pending.done.done():  # answered 500: nothing may wait for ever
                        pending.done.set_exception(error)
                stored = 0
            if stored:
                self._committed.set()

    def _ask_for_digests(self) -> None:
        while True:
            if not self._committed.wait(IDLE_SECONDS):
                _release_connection()
                self._committed.wait()
            self._committed.clear()  # before asking: a commit from now on is asked for again
            pipeline.digest_request()

    def _next_batch(self) -> list[_Pending]:
        """Wait for one write, then take every write already queued behind it, up to MAX_BATCH_ROWS."""
        try:
            first = self._queue.get(timeout=IDLE_SECONDS)
        except queue.Empty:
            _release_connection()
            first = self._queue.get()
        batch = [first]
        rows = len(batch[0].write.events)
        while rows < MAX_BATCH_ROWS:
            try:
                pending = self._queue.get_nowait()
            except queue.Empty:
                break
            batch.append(pending)
            rows += len(pending.write.events)
        return batch

    def _write(self, batch: list[_Pending]) -> int:
        try:
            stored = storage.store_writes([pending.write for pending in batch])
        except (OperationalError, InterfaceError) as error:  # the database is unavailable
            self._discard_broken_connection()
            for pending in batch:
                pending.done.set_exception(error)
            return 0
        except Exception as error:  # a row the database refuses: find whose it is
            if len(batch) > 1:
                return self._write_one_by_one(batch)
            batch[0].done.set_exception(error)
            return 0
        for pending in batch:
            pending.done.set_result(None)
        return stored

    def _write_one_by_one(self, batch: list[_Pending]) -> int:
        stored = 0
        for pending in batch:
            stored += self._write([pending])
        return stored

    @staticmethod
    def _discard_broken_connection() -> None:
        if connection.connection is not None and not connection.is_usable():
            connection.close()  # back to the pool, which replaces it; the next batch gets a fresh one


def _writer_threads() -> int:
    """Writers committing side by side, so that a commit waiting for its WAL flush does not hold up the
    requests that arrive meanwhile (PostgreSQL flushes concurrent commits together); SQLite takes
    one writer at a time, and a second would only wait for the lock."""
    return settings.INGEST_WRITER_THREADS if connection.vendor == "postgresql" else 1


def _release_connection() -> None:
    """Idle: give a pooled PostgreSQL connection back (the pool checks it before the next use, and tests can
    drop their database).
    SQLite's is a file handle, kept: opening one again costs more than the write.
    """
    if connection.vendor == "postgresql":
        connection.close()


event_writer = EventWriter()
