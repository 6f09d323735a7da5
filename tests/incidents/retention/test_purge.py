"""The retention purge: what it removes, what it keeps, and that nothing it still needs is lost.

Run on PostgreSQL (partitions dropped whole) and, by `make test`'s second pass, on SQLite (rows
deleted in batches). Outside a transaction: on PostgreSQL a partition is detached concurrently,
which waits for every transaction that has touched the table, a test's own included.
"""

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from incidents.alerting.values import measure_rules
from incidents.ingest import pipeline
from incidents.ingest.digest import digest_pending
from incidents.ingest.normalize import normalize_native_event
from incidents.models import (
    ErrorEvent,
    EventReceipt,
    Incident,
    IncidentActivity,
    IncidentHour,
    IncidentMinute,
    Notification,
    PurgeRun,
    RetentionPolicy,
    SourceHour,
    SourceMinute,
)
from incidents.retention import partitions, purge
from incidents.retention.plan import Plan
from tests.factories import alert_rule, firing_alert, webhook_channel
from tests.support import native_event, store_received

pytestmark = [pytest.mark.django_db(transaction=True, serialized_rollback=True), pytest.mark.sqlite_too]

NOW = timezone.now()


def policy(**fields) -> RetentionPolicy:
    current = RetentionPolicy.current()
    for name, value in fields.items():
        setattr(current, name, value)
    current.full_clean()
    current.save()
    return current


def purge_now(**plan_fields) -> PurgeRun:
    record = purge.run(trigger="command", pause=0, plan=Plan(RetentionPolicy.current(), NOW, **plan_fields))
    assert record is not None and record.status == PurgeRun.Status.FINISHED, record and record.error
    return record


def stored_ids(source) -> set[str]:
    return {str(event_id) for event_id in ErrorEvent.objects.filter(source=source).values_list("event_id", flat=True)}


def test_events_past_retention_go_and_newer_ones_stay(source):
    old = store_received(source, days_ago=40, count=3)
    recent = store_received(source, days_ago=20, count=2)

    record = purge_now()

    assert stored_ids(source) == set(recent)
    assert not set(old) & {str(e) for e in EventReceipt.objects.values_list("event_id", flat=True)}
    removed = record.removed.get("event_partitions", 0) + record.removed.get("events", 0)
    assert removed == 3
    if connection.vendor == "postgresql":
        assert record.partitions_dropped >= 1  # the day 40 days ago, as a whole (and older, empty ones)
        assert partitions.name_for((NOW - timedelta(days=40)).date()) not in {p.name for p in partitions.attached()}


def test_a_source_kept_shorter_loses_its_old_events_while_another_keeps_them(source, shop):
    shop.event_retention_days = 7
    shop.full_clean()
    shop.save()
    kept = store_received(source, days_ago=10, count=2)
    shop_old = store_received(shop, days_ago=10, count=2)
    shop_new = store_received(shop, days_ago=3)

    purge_now()

    assert stored_ids(source) == set(kept)
    assert stored_ids(shop) == set(shop_new)
    assert not EventReceipt.objects.filter(source=shop, event_id__in=shop_old).exists()


def test_a_repeated_event_id_within_retention_is_stored_once_even_after_a_purge(source):
    event_id = uuid.uuid4().hex
    store_received(source, days_ago=40)
    store_received(source, days_ago=5, event_id=event_id)
    purge_now()

    store_received(source, days_ago=0, event_id=event_id)  # a client's retry, days later

    assert ErrorEvent.objects.filter(source=source, event_id=event_id).count() == 1
    assert Incident.objects.get(source=source).event_count == 2  # the expired one and the first of the two


def test_counts_charts_and_alert_values_do_not_change_when_old_detail_goes(source, api_as):
    store_received(source, days_ago=40, count=4)
    store_received(source, days_ago=20, count=3)
    store_received(source, days_ago=10, count=2)
    store_received(source, days_ago=0.01, count=5)
    # The longest window the policy allows with minute rollups kept 14 days.
    rule = alert_rule(webhook_channel(), window_minutes=13 * 1440, warning_threshold=1)
    incident = Incident.objects.get(source=source)
    viewer = api_as("viewer")
    before = (incident.event_count, _hour_total(), _value(rule), _figures(viewer))
    assert before[:3] == (14, 14, 7.0) and before[3]["month"] == 10

    purge_now()

    incident.refresh_from_db()
    assert (incident.event_count, _hour_total(), _value(rule), _figures(viewer)) == before
    assert not ErrorEvent.objects.filter(received_at__lt=NOW - timedelta(days=31)).exists()
    assert not IncidentMinute.objects.filter(minute__lt=NOW - timedelta(days=14)).exists()
    assert not SourceMinute.objects.filter(minute__lt=NOW - timedelta(days=14)).exists()


def _figures(viewer) -> dict:
    """What the API says over 30 days and over a day: totals and the hourly series."""
    month = viewer.get("/api/v1/summary/?minutes=43200").json()
    series = viewer.get("/api/v1/stats/?interval=hour&minutes=43200").json()
    day = viewer.get("/api/v1/stats/?interval=hour&minutes=1440").json()
    return {
        "month": month["data"]["total_errors"],
        "month_series": [(p["time"], p["count"]) for p in series["series"] if p["count"]],
        "day": day["total"],
        "incident_chart": list(
            IncidentHour.objects.filter(hour__gte=NOW - timedelta(days=30)).values_list("hour", "count")
        ),
    }


def test_hour_totals_past_their_retention_fold_into_one_row_per_key(source):
    store_received(source, days_ago=500, count=2)
    store_received(source, days_ago=450, count=3)
    store_received(source, days_ago=1, count=1)

    purge_now()

    assert _hour_total() == 6
    folded = SourceHour.objects.filter(hour=SourceHour.FOLDED_HOUR)
    assert list(folded.values_list("count", flat=True)) == [5]
    assert not IncidentHour.objects.filter(hour__lt=NOW - timedelta(days=400)).exists()


def test_the_cap_keeps_an_incidents_first_and_newest_events_and_its_count(source):
    policy(events_per_incident=10, first_events_per_incident=2)
    first = store_received(source, days_ago=5, count=2)
    middle = store_received(source, days_ago=4, count=6)
    newest = store_received(source, days_ago=3, count=10)

    record = purge_now()

    assert stored_ids(source) == set(first) | set(newest)
    assert record.removed["events_over_cap"] == len(middle)
    assert Incident.objects.get(source=source).event_count == 18


def test_an_incident_whose_events_expired_stays_with_its_counts_unless_deletion_is_on(source):
    store_received(source, days_ago=60, count=3)
    incident = Incident.objects.get(source=source)
    Incident.objects.filter(pk=incident.pk).update(status=Incident.Status.RESOLVED)

    purge_now()
    incident.refresh_from_db()
    assert (incident.event_count, ErrorEvent.objects.filter(incident=incident).exists()) == (3, False)

    policy(delete_expired_incidents=True)
    record = purge_now()
    assert not Incident.objects.filter(pk=incident.pk).exists()
    assert not IncidentHour.objects.filter(incident_id=incident.pk).exists()
    assert record.removed["incidents"] == 1


def test_an_open_incident_is_never_deleted_with_its_expired_events(source):
    policy(delete_expired_incidents=True)
    store_received(source, days_ago=60, count=1)

    purge_now()

    assert Incident.objects.filter(source=source).exists()


def test_history_goes_after_its_own_period_and_waiting_notifications_stay(source, rule):
    store_received(source, days_ago=1)
    incident = Incident.objects.get(source=source)
    IncidentActivity.objects.create(
        incident=incident, kind="acknowledged", actor="user:a", created_at=NOW - timedelta(days=400)
    )
    alert = firing_alert(rule)
    old = NOW - timedelta(days=100)
    sent = Notification.objects.create(
        alert=alert, channel=rule.channels.get(), event="firing", severity=30, message={}, status="sent", created_at=old
    )
    queued = Notification.objects.create(
        alert=alert, channel=rule.channels.get(), event="firing", severity=30, message={}, created_at=old
    )

    record = purge_now()

    assert not Notification.objects.filter(pk=sent.pk).exists()
    assert Notification.objects.filter(pk=queued.pk).exists()
    assert list(IncidentActivity.objects.filter(incident=incident).values_list("kind", flat=True)) == ["created"]
    assert record.removed["notifications"] == 1


def test_a_dry_run_says_what_would_go_and_removes_nothing(source):
    store_received(source, days_ago=40, count=3)
    before = stored_ids(source)

    found = {step.key: removed for step, removed in purge.estimate(Plan(RetentionPolicy.current(), NOW))}

    assert found.get("event_partitions", purge.Removed()).rows + found["events"].rows == 3
    assert found["event_receipts"].rows == 3
    assert stored_ids(source) == before
    assert not PurgeRun.objects.exists()


def test_only_one_purge_runs_at_a_time_and_a_dead_one_is_taken_over(source):
    running = PurgeRun.objects.create(trigger="schedule")

    assert purge.run(trigger="command", pause=0) is None

    PurgeRun.objects.filter(pk=running.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=10))
    record = purge.run(trigger="command", pause=0)
    running.refresh_from_db()
    assert record is not None and record.status == PurgeRun.Status.FINISHED
    assert running.status == PurgeRun.Status.INTERRUPTED


def test_a_run_out_of_time_stops_after_a_batch_and_the_next_goes_on(source):
    store_received(source, days_ago=40, count=5)
    policy(event_days=7)
    store_received(
        source, days_ago=10, count=5
    )  # rows on every database: the newer day is not past the longest retention

    first = purge.run(
        trigger="schedule", pause=0, time_budget=0.000001, plan=Plan(RetentionPolicy.current(), NOW, batch_rows=2)
    )
    assert first.status == PurgeRun.Status.PARTIAL and 0 < first.rows_removed < 20

    purge_now(batch_rows=2)
    assert not ErrorEvent.objects.filter(source=source).exists()


def test_an_event_ingested_and_digested_while_a_purge_runs_is_never_lost(source):
    for days in range(31, 41):
        store_received(source, days_ago=days, count=20)
    Incident.objects.update(status=Incident.Status.RESOLVED)  # expired and quiet: the purge may delete it
    policy(delete_expired_incidents=True)
    accepted: list[tuple[datetime, str]] = []
    writing, stop = threading.Event(), threading.Event()

    def ingest() -> None:
        # Events of the same incident, digested as they come: the digest reopens the incident the
        # purge is about to delete, or makes a new one after it did.
        try:
            while not stop.is_set():
                at = timezone.now()
                event = normalize_native_event(native_event(fingerprint=["timeouts"]), received_at=at)
                accepted.extend(
                    (at, str(e)) for e in pipeline.events_store(source=source, events=[event], received_at=at)
                )
                digest_pending()
                writing.set()
        finally:
            connection.close()

    writer = threading.Thread(target=ingest)
    writer.start()
    try:
        assert writing.wait(timeout=60)
        record = purge.run(trigger="command", pause=0, plan=Plan(RetentionPolicy.current(), NOW, batch_rows=7))
    finally:
        stop.set()
        writer.join()
    digest_pending()

    assert record.status == PurgeRun.Status.FINISHED
    assert any(record.started_at <= at <= record.finished_at for at, _ in accepted)  # some came in meanwhile
    assert {event_id for _, event_id in accepted} == stored_ids(source)
    assert record.removed.get("event_partitions", 0) + record.removed.get("events", 0) == 200
    incidents = set(Incident.objects.values_list("pk", flat=True))
    assert set(ErrorEvent.objects.values_list("incident_id", flat=True)) <= incidents  # none left pointing nowhere


def test_a_lowered_cap_trims_incidents_that_saw_no_event_since(source):
    store_received(source, days_ago=3, count=15)
    purge_now()  # within the cap of 10,000: nothing to trim
    assert len(stored_ids(source)) == 15

    policy(events_per_incident=10, first_events_per_incident=1)
    record = purge_now()

    assert record.removed["events_over_cap"] == 4
    assert ErrorEvent.objects.filter(source=source).count() == 11


def test_partitions_are_made_ahead_and_the_event_key_includes_the_day():
    if connection.vendor != "postgresql":
        pytest.skip("partitions are PostgreSQL's")
    today = datetime.now(UTC).date()

    partitions.ensure_ahead()

    names = {p.name for p in partitions.attached()}
    assert {partitions.name_for(today + timedelta(days=n)) for n in range(partitions.DAYS_AHEAD + 1)} <= names
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'p'",
            [partitions.PARENT],
        )
        assert cursor.fetchone()[0] == "PRIMARY KEY (id, received_at)"


def _hour_total() -> int:
    return sum(SourceHour.objects.values_list("count", flat=True))


def _value(rule) -> float:
    measured = measure_rules([rule], timezone.now())[rule.pk]
    return measured[0].value if measured else 0.0
