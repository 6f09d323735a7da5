"""From canonical events to stored rows and a digest asked for: what every way in of events shares.

The HTTP endpoints (through the writer), the console's own reports and the demo data store
events here; the digest (digest.py) then groups them into incidents.
"""

import logging
import os
from collections.abc import Sequence
from datetime import datetime
from functools import partial
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django_q.brokers import get_broker
from django_q.tasks import async_task

from incidents.ingest import storage
from incidents.ingest.classification import classify_and_group
from incidents.models import DigestRequest, Source
from resilience.process_runtime import through_redis

logger = logging.getLogger(__name__)


def events_store(
    *, source: Source, events: Sequence[dict], received_at: datetime, error_type: str | None = None
) -> list[UUID]:
    """Classify and fingerprint canonical events, store them durably once per event_id, and ask for the digest.

    `error_type` classifies every event as that type, bypassing the rules (events the console makes).
    """
    classified = [classify_and_group(event, error_type=error_type) for event in events]
    classified_events_store(storage.EventWrite(source.pk, classified, received_at))
    return [event["event_id"] for event in events]


def classified_events_store(write: storage.EventWrite) -> None:
    """Store classified events on this thread's connection and ask for their digest once they are committed."""
    if storage.store_writes([write]):
        transaction.on_commit(digest_request)  # the digest must find them: after the caller's commit


def digest_request() -> None:
    """Ask for a digest of events just committed: one task is enqueued unless one is already waiting.

    The events are stored whatever happens here: at worst the once-a-minute schedule digests them.
    """
    if not settings.INGEST_WAKE_DIGEST:
        return
    try:
        if DigestRequest.ask():
            digest_enqueue()
    except Exception:
        logger.warning("could not ask for the digest; the schedule will run it", exc_info=True)


_process_broker: tuple[int, object] | None = None


def _broker():
    """This process's django-q broker, made once: `async_task` would build a new broker (a new Redis
    client and connection) for every wake-up, a third of an ingest request's time under load."""
    global _process_broker
    if _process_broker is None or _process_broker[0] != os.getpid():  # a forked worker makes its own
        _process_broker = (os.getpid(), get_broker())
    return _process_broker[1]


def digest_enqueue() -> None:
    """Enqueue the digest task; if the broker cannot take it, the once-a-minute schedule digests instead.

    The events are already stored: a broker outage may delay their digest, never fail their ingest.
    """
    enqueue = partial(
        async_task, "incidents.tasks.digest_events", task_name="digest events", group="digest", broker=_broker()
    )
    try:
        through_redis(enqueue)  # the Redis broker, when configured
    except Exception:
        logger.warning("could not enqueue the digest; the schedule will run it", exc_info=True)
        DigestRequest.take()  # no task is waiting after all: the next commit asks again
