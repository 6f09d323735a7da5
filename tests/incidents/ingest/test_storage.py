"""The ingest INSERT on a connection the database dropped (a restart while the pool held it) is sent again."""

import pytest
from django.db import connection
from django.utils import timezone

from incidents.ingest import storage
from incidents.ingest.classification import classify_and_group
from incidents.ingest.normalize import normalize_native_event
from incidents.models import ErrorEvent
from tests.support import database_url_for_processes, native_event


def _terminate_this_threads_session() -> None:
    """End the server side of this thread's connection, as a database restart does, and wait until it has."""
    import psycopg

    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    with psycopg.connect(database_url_for_processes(), autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s, 10000)", [pid]).fetchone()[0]


# Outside a transaction (the retry is only made there), with the seeded catalog restored after each test.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("the retry is of the PostgreSQL insert on a pooled connection")


def _classified_event() -> dict:
    return classify_and_group(normalize_native_event(native_event(), received_at=timezone.now()))


def test_an_event_stored_on_a_dropped_connection_is_stored_once_on_a_fresh_one(postgres_only, source):
    event = _classified_event()
    _terminate_this_threads_session()

    assert storage.store_writes([storage.EventWrite(source.pk, [event], timezone.now())]) == 1

    assert ErrorEvent.objects.filter(source=source, event_id=event["event_id"]).count() == 1
