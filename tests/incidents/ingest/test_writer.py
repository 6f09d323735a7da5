"""The ingest fast path's group-commit writer: many requests per commit, each answered once durable,
a refused row failing only its own request, and a digest asked for after every commit."""

import uuid
from concurrent.futures import wait

import pytest
from django.db import connection
from django.utils import timezone

from incidents.ingest.classification import classify_and_group
from incidents.ingest.normalize import normalize_native_event
from incidents.ingest.storage import EventWrite
from incidents.ingest.writer import EventWriter
from incidents.models import DigestRequest, ErrorEvent
from tests.support import wait_until

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def classified(message: str = "order failed", event_id: str | None = None) -> dict:
    raw = {"event_id": event_id or uuid.uuid4().hex, "message": message, "exception": {"type": "TimeoutError"}}
    return classify_and_group(normalize_native_event(raw, received_at=timezone.now()))


def write(source_id: int, *events: dict) -> EventWrite:
    return EventWrite(source_id, list(events), timezone.now())


def test_every_submitted_event_is_stored_before_its_future_resolves(source):
    writer = EventWriter()
    writes = [write(source.pk, classified(f"order {n}")) for n in range(200)]
    futures = [writer.submit(w) for w in writes]
    wait(futures, timeout=30)
    assert [f.exception() for f in futures] == [None] * 200
    assert ErrorEvent.objects.filter(source=source).count() == 200


def test_requests_that_queue_up_share_commits(source):
    if connection.vendor != "postgresql":
        pytest.skip("a row's transaction id (xmin) is PostgreSQL's")
    writer = EventWriter()
    futures = [writer.submit(write(source.pk, classified(f"order {n}"))) for n in range(300)]
    wait(futures, timeout=30)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(DISTINCT xmin::text) FROM incidents_errorevent WHERE source_id = %s", [source.pk])
        [transactions] = cursor.fetchone()
    assert transactions < 300 / 4  # queued behind one another, they were written many per transaction


def test_a_row_the_database_refuses_fails_only_its_own_request(source):
    writer = EventWriter()
    good = [write(source.pk, classified(f"order {n}")) for n in range(20)]
    bad = write(source.pk, {**classified("impossible status"), "http_status": -1})  # a check constraint refuses it
    futures = [writer.submit(w) for w in good[:10]] + [writer.submit(bad)] + [writer.submit(w) for w in good[10:]]
    wait(futures, timeout=30)
    failed = [index for index, future in enumerate(futures) if future.exception() is not None]
    assert failed == [10]
    assert ErrorEvent.objects.filter(source=source).count() == 20


def test_a_repeated_event_id_in_one_batch_is_stored_once(source):
    writer = EventWriter()
    event_id = uuid.uuid4().hex
    futures = [writer.submit(write(source.pk, classified("retry", event_id))) for _ in range(5)]
    wait(futures, timeout=30)
    assert [f.exception() for f in futures] == [None] * 5
    assert ErrorEvent.objects.filter(source=source, event_id=uuid.UUID(event_id)).count() == 1


def test_a_commit_asks_for_the_digest(source, settings):
    settings.INGEST_WAKE_DIGEST = True
    DigestRequest.take()
    EventWriter().submit(write(source.pk, classified())).result(timeout=30)
    assert wait_until(lambda: DigestRequest.objects.get(pk=1).requested_at is not None)


def test_a_request_that_stops_waiting_does_not_fail_the_others_of_its_batch(source):
    writer = EventWriter()
    futures = [writer.submit(write(source.pk, classified(f"order {n}"))) for n in range(20)]
    assert not futures[3].cancel()  # as asyncio does for a request whose client left
    wait(futures, timeout=30)
    assert [f.exception() for f in futures] == [None] * 20
    assert ErrorEvent.objects.filter(source=source).count() == 20
