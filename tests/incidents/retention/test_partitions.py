"""PostgreSQL's day partitions are made wherever an event needs one, inside a transaction too."""

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from incidents.ingest import pipeline
from incidents.ingest.normalize import normalize_native_event
from incidents.models import ErrorEvent
from incidents.retention import partitions
from tests.support import native_event

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("partitions are PostgreSQL's")


def test_an_event_for_a_day_without_a_partition_is_stored_inside_the_callers_transaction(source):
    # The test's transaction has written a source; the partition, made on another connection, does not
    # wait for it (with foreign key constraints, ATTACH would lock the sources table).
    at = timezone.now() - timedelta(days=100)
    assert partitions.name_for(at.date()) not in {p.name for p in partitions.attached()}

    pipeline.events_store(
        source=source, events=[normalize_native_event(native_event(), received_at=at)], received_at=at
    )

    assert ErrorEvent.objects.filter(source=source, received_at=at).count() == 1
    assert partitions.name_for(at.date()) in {p.name for p in partitions.attached()}


def test_a_partition_made_for_a_day_has_the_tables_indexes_and_no_foreign_key_constraint(source):
    day = (timezone.now() + timedelta(days=3000 + uuid.uuid4().int % 1000)).date()  # none a test made before

    assert partitions.ensure([day]) == [partitions.name_for(day)]

    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM pg_indexes WHERE tablename = %s", [partitions.name_for(day)])
        indexes = cursor.fetchone()[0]
        cursor.execute(
            "SELECT COUNT(*) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f'",
            [partitions.name_for(day)],
        )
        foreign_keys = cursor.fetchone()[0]
    partitions.drop(next(p for p in partitions.attached() if p.day == day))  # it was committed: not left behind
    assert (indexes, foreign_keys) == (5, 0)  # the key and four indexes; nothing for a drop to lock elsewhere
