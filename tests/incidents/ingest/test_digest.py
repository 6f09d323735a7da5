"""The digest: grouping stored events into incidents, counting them, and the incident lifecycle."""

from datetime import timedelta

import pytest
from django.db.models import Sum
from django.utils import timezone

from incidents import services
from incidents.ingest import pipeline, storage
from incidents.ingest.classification import classify_and_group
from incidents.ingest.normalize import normalize_native_event
from incidents.models import (
    ClassificationRule,
    ErrorEvent,
    ErrorType,
    EventReceipt,
    Incident,
    IncidentActivity,
    IncidentEnvironment,
    IncidentHour,
    IncidentMinute,
    Severity,
    Source,
    SourceHour,
    SourceMinute,
)
from tests.support import native_event

pytestmark = pytest.mark.django_db


def store(source, *raw_events):
    now = timezone.now()
    events = [normalize_native_event(raw, received_at=now) for raw in raw_events]
    pipeline.events_store(source=source, events=events, received_at=now)


def failure_at(function: str, value: str, **fields) -> dict:
    return native_event(
        exception={
            "type": "ValueError",
            "value": value,
            "stacktrace": {
                "frames": [{"filename": "app/orders.py", "module": "app.orders", "function": function, "lineno": 10}]
            },
        },
        **fields,
    )


def test_events_that_differ_only_by_ids_share_an_incident(source, digest):
    store(source, failure_at("validate", "order 1234 invalid"), failure_at("validate", "order 98765 invalid"))
    assert digest() == 2
    incident = Incident.objects.get()
    assert incident.event_count == 2
    assert incident.title.startswith("ValueError: order")
    assert set(ErrorEvent.objects.values_list("incident", flat=True)) == {incident.pk}


def test_different_call_sites_make_different_incidents(source, digest):
    store(source, failure_at("validate", "bad"), failure_at("save", "bad"))
    digest()
    assert Incident.objects.count() == 2


def test_rollups_add_up_to_the_events(source, digest):
    store(source, *[failure_at("validate", f"order {i}") for i in range(5)])
    digest()
    store(source, *[failure_at("validate", f"order {i}") for i in range(3)])
    digest()
    incident = Incident.objects.get()
    assert incident.event_count == 8
    assert IncidentMinute.objects.filter(incident=incident).aggregate(n=Sum("count"))["n"] == 8
    assert IncidentHour.objects.filter(incident=incident).aggregate(n=Sum("count"))["n"] == 8
    rows = SourceMinute.objects.filter(source=source)
    assert rows.aggregate(n=Sum("count"))["n"] == 8
    assert set(rows.values_list("environment", flat=True)) == {"production"}


def test_the_source_rollup_splits_by_severity(source, digest):
    store(source, failure_at("validate", "x"), failure_at("validate", "x", level="fatal"))
    digest()
    counts = dict(SourceMinute.objects.values_list("severity", "count"))
    assert counts[Severity.CRITICAL] == 1
    assert sum(counts.values()) == 2
    assert Incident.objects.get().severity == Severity.CRITICAL


def test_the_source_hour_rollup_adds_up_the_minute_rollup_of_each_hour(source, digest):
    now = timezone.now()
    at = [now - timedelta(hours=2, minutes=1), now - timedelta(hours=2), now - timedelta(minutes=1), now]
    store(
        source,
        failure_at("validate", "x", timestamp=at[0].isoformat()),
        failure_at("validate", "x", timestamp=at[1].isoformat(), level="fatal"),
        failure_at("validate", "x", timestamp=at[2].isoformat(), environment="staging"),
    )
    digest()
    # A second batch adds to the rows the first one made.
    store(source, *[failure_at("validate", "x", timestamp=moment.isoformat()) for moment in at])
    digest()
    keys = ("source_id", "error_type_id", "severity", "environment")
    expected: dict[tuple, int] = {}
    for row in SourceMinute.objects.values(*keys, "minute", "count"):
        key = (*(row[name] for name in keys), row["minute"].replace(minute=0))
        expected[key] = expected.get(key, 0) + row["count"]
    hours = {(*(row[name] for name in keys), row["hour"]): row["count"] for row in SourceHour.objects.values()}
    assert hours == expected
    assert sum(hours.values()) == 7
    assert {key[-1] for key in hours} == {moment.replace(minute=0, second=0, microsecond=0) for moment in at}


def test_distinct_users_are_counted_once_across_batches(source, digest):
    store(source, failure_at("validate", "x", user={"id": "u1"}), failure_at("validate", "x", user={"id": "u2"}))
    digest()
    store(source, failure_at("validate", "x", user={"id": "u1"}), failure_at("validate", "x", user={"id": "u3"}))
    digest()
    assert Incident.objects.get().user_count == 3


def test_environments_are_recorded_for_filtering(source, digest):
    store(source, failure_at("validate", "x", environment="staging"), failure_at("validate", "x"))
    digest()
    assert set(IncidentEnvironment.objects.values_list("environment", flat=True)) == {"staging", "production"}


def test_a_new_event_reopens_a_resolved_incident_as_regressed(source, digest):
    store(source, failure_at("validate", "x"))
    digest()
    incident = Incident.objects.get()
    services.incident_resolve(incident=incident, by="user:test")
    store(source, failure_at("validate", "x"))
    digest()
    incident.refresh_from_db()
    assert (incident.status, incident.regressed) == ("open", True)
    latest = incident.activities.first()
    assert (latest.kind, latest.actor) == ("regressed", "system:digest")


def test_a_muted_incident_stays_muted_until_its_event_condition_is_met(source, digest):
    store(source, failure_at("validate", "x"))
    digest()
    incident = Incident.objects.get()
    services.incident_mute(incident=incident, by="user:test", until_events=3, within_minutes=5)
    store(source, failure_at("validate", "x"), failure_at("validate", "x"))
    digest()
    incident.refresh_from_db()
    assert incident.status == "muted"
    store(source, failure_at("validate", "x"))
    digest()
    incident.refresh_from_db()
    assert incident.status == "open"
    assert incident.activities.first().kind == "unmuted"


def test_a_muted_incident_whose_time_is_up_unmutes_on_its_next_event(source, digest):
    store(source, failure_at("validate", "x"))
    digest()
    incident = Incident.objects.get()
    services.incident_mute(incident=incident, by="user:test", duration=timedelta(hours=1))
    Incident.objects.filter(pk=incident.pk).update(muted_until=timezone.now() - timedelta(seconds=1))
    store(source, failure_at("validate", "x"))
    digest()
    incident.refresh_from_db()
    assert incident.status == "open"


def test_creation_is_on_the_timeline(source, digest):
    store(source, failure_at("validate", "x"))
    digest()
    assert list(Incident.objects.get().activities.values_list("kind", "actor")) == [("created", "system:digest")]


def test_a_rule_saved_in_this_process_applies_to_the_next_event(source, digest):
    store(source, failure_at("validate", "order 1"))
    digest()
    assert Incident.objects.get().error_type.code == "UNEXPECTED"
    ClassificationRule.objects.create(
        name="orders are data errors",
        position=1,
        component="billing",
        error_type=ErrorType.objects.get(code="DATA_INTEGRITY"),
    )
    store(source, failure_at("charge", "order 2", component="billing"))
    digest()
    assert ErrorEvent.objects.get(incident__culprit__contains="charge").error_type.code == "DATA_INTEGRITY"


def test_a_rule_changed_by_another_process_applies_within_a_second(source, digest, monkeypatch):
    from incidents.ingest import classification

    rule = ClassificationRule.objects.create(
        name="billing is data", position=1, component="billing", error_type=ErrorType.objects.get(code="DATA_INTEGRITY")
    )
    store(source, failure_at("charge", "order 1", component="billing"))
    # An update that sends no signal, as a save in another process does not reach this one.
    ClassificationRule.objects.filter(pk=rule.pk).update(error_type=ErrorType.objects.get(code="DATA_VALIDATION"))
    store(source, failure_at("charge", "order 2", component="billing"))
    later = classification.time.monotonic() + classification.RULES_CACHE_SECONDS
    monkeypatch.setattr(classification.time, "monotonic", lambda: later)
    store(source, failure_at("charge", "order 3", component="billing"))
    codes = [event.error_type.code for event in ErrorEvent.objects.order_by("id").select_related("error_type")]
    assert codes == ["DATA_INTEGRITY", "DATA_INTEGRITY", "DATA_VALIDATION"]


def test_small_batches_still_digest_everything(source):
    from incidents.ingest.digest import digest_pending

    store(source, *[failure_at("validate", f"x {i}") for i in range(7)])
    assert digest_pending(batch_size=3) == 7
    assert not ErrorEvent.objects.filter(incident__isnull=True).exists()


def test_rollup_times_can_be_looked_up_exactly(source, digest):
    moment = timezone.now().replace(second=30, microsecond=0)
    store(source, failure_at("validate", "x", timestamp=moment.isoformat()))
    digest()
    assert IncidentMinute.objects.filter(minute=moment.replace(second=0)).exists()
    assert IncidentHour.objects.filter(hour=moment.replace(minute=0, second=0)).exists()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_digests_running_at_once_count_every_event_once(source):
    import threading

    from django.db import connection

    from incidents.ingest.digest import digest_pending

    store(source, *[failure_at(f"step_{i % 5}", f"x {i}") for i in range(200)])
    start = threading.Barrier(2)
    digested: list[int] = []

    def run_digest():
        start.wait()
        try:
            digested.append(digest_pending(batch_size=30))
        finally:
            connection.close()  # each thread has its own connection

    threads = [threading.Thread(target=run_digest) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(digested) == 200
    assert Incident.objects.aggregate(total=Sum("event_count"))["total"] == 200
    assert not ErrorEvent.objects.filter(incident__isnull=True).exists()
    assert IncidentActivity.objects.filter(kind="created").count() == Incident.objects.count() == 5


def test_an_event_whose_source_was_deleted_meanwhile_is_dropped_and_the_rest_digested(source, shop, digest):
    store(source, failure_at("charge", "card declined"))
    store(shop, failure_at("ship", "no courier"))
    # The event table has no foreign key constraint: an event stored while its source is deleted stays.
    shop_id = shop.pk
    Source.objects.filter(pk=shop_id).delete()
    store_for_gone = storage.EventWrite(
        shop_id,
        [classify_and_group(normalize_native_event(failure_at("ship", "late"), received_at=timezone.now()))],
        timezone.now(),
    )
    storage.store_writes([store_for_gone])

    assert digest() == 2

    assert Incident.objects.get().source_id == source.pk
    assert not ErrorEvent.objects.filter(source_id=shop_id).exists()
    assert not EventReceipt.objects.filter(source_id=shop_id).exists()
