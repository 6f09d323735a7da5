"""/metrics on retention: table sizes and rows, the oldest event per source, and the last purge."""

import pytest
from django.db import connection
from prometheus_client.parser import text_string_to_metric_families

from incidents.models import ErrorEvent, PurgeRun
from incidents.retention import partitions, purge, sizes
from tests.support import store_received

# Storing an event of a day with no partition yet makes one on another connection, which on PostgreSQL
# waits for every transaction that touched the event table: these tests commit as they go.
pytestmark = [pytest.mark.django_db(transaction=True, serialized_rollback=True), pytest.mark.sqlite_too]

LAST_PURGE = (
    "console_last_purge_timestamp_seconds",
    "console_last_purge_duration_seconds",
    "console_last_purge_rows_removed",
    "console_last_purge_partitions_dropped",
)


def samples(api_as) -> dict[tuple, float]:
    """Every sample of a scrape, keyed by name and labels."""
    response = api_as("admin").get("/metrics")
    assert response.status_code == 200, response.content
    found = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            found[(sample.name, *sorted(sample.labels.items()))] = sample.value
    return found


def analyse_events() -> None:
    """Give the planner its row estimates, as vacuumdb --analyze does: the partitioned table and each
    partition (the total must not be counted twice)."""
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE incidents_errorevent")


def test_after_a_purge_the_metrics_show_sizes_the_oldest_event_and_the_last_purge(api_as, source):
    store_received(source, days_ago=40, count=3, fingerprint="old")
    store_received(source, days_ago=1, fingerprint="new")
    record = purge.run(trigger="command", pause=0)
    assert record.status == PurgeRun.Status.FINISHED
    if connection.vendor == "postgresql":
        analyse_events()
    sizes.forget()

    found = samples(api_as)
    events = ("table", "incidents_errorevent")
    assert found[("console_table_rows_estimate", events)] == 1
    assert found.get(("console_table_bytes", events)) == sizes.size_of(ErrorEvent).bytes
    if connection.vendor == "postgresql":
        assert found[("console_table_bytes", events)] > 0
    age = found[("console_oldest_event_age_seconds", ("source", source.slug))]
    assert 86_400 <= age < 86_400 + 600
    assert found[("console_last_purge_timestamp_seconds",)] == record.finished_at.timestamp()
    assert found[("console_last_purge_duration_seconds",)] == record.duration.total_seconds()
    assert found[("console_last_purge_rows_removed",)] == record.rows_removed >= 3
    assert found[("console_last_purge_partitions_dropped",)] == record.partitions_dropped
    assert record.partitions_dropped == (1 if partitions.enabled() else 0)


def test_before_any_purge_the_last_purge_has_no_samples_and_a_source_without_events_no_age(api_as, source):
    found = samples(api_as)
    assert [key for key in found if key[0] in LAST_PURGE] == []
    assert [key for key in found if key[0] == "console_oldest_event_age_seconds"] == []
