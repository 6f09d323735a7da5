"""GET and PATCH /api/v1/retention/, a source's event retention through the sources API, and system health's
retention section."""

import pytest
from rest_framework.test import APIClient

from incidents.models import ErrorEvent, PurgeRun, RetentionPolicy
from incidents.retention import partitions, purge
from tests.api_support import patch_json, token_client
from tests.support import PURGING, store_received

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite_too]

URL = "/api/v1/retention/"


@pytest.fixture
def callers(api_as, ingest_key, django_user_model) -> dict[str, APIClient]:
    superuser = django_user_model.objects.create_superuser("retention-superuser", password="unused-password")
    ingest = APIClient()
    ingest.credentials(HTTP_AUTHORIZATION=f"Bearer {ingest_key.public_key}")
    return {
        "anonymous": APIClient(),
        "ingest key": ingest,
        "no role": api_as("none"),
        "viewer": api_as("viewer"),
        "triager": api_as("triager"),
        "admin": api_as("admin"),
        "superuser": token_client(superuser),
    }


def test_each_role_reads_the_policy_and_only_admins_change_it(callers):
    expected_read = {"anonymous": 401, "ingest key": 401, "no role": 403}
    expected_write = {**expected_read, "viewer": 403, "triager": 403}
    for caller, client in callers.items():
        read = client.get(URL)
        assert read.status_code == expected_read.get(caller, 200), (caller, read.content)
        if read.status_code == 200:
            assert read.json()["event_days"] == 30 and read.json()["purge_running"] is False
        days = 10 + len(caller)
        written = patch_json(client, URL, {"timeline_days": days})
        assert written.status_code == expected_write.get(caller, 200), (caller, written.content)
        if written.status_code == 200:
            assert RetentionPolicy.current().timeline_days == days == written.json()["timeline_days"]
        else:
            assert RetentionPolicy.current().timeline_days != days


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"event_days": 0}, "event_days", "must be from 1 to 3650 days"),
        ({"event_days": 4000}, "event_days", "must be from 1 to 3650 days"),
        ({"hour_rollup_days": 30}, "hour_rollup_days", "must be at least 90 days"),
        ({"minute_rollup_days": 500}, "hour_rollup_days", "must be longer than the minute rollups' 500 days"),
        ({"events_per_incident": 9}, "events_per_incident", "must be at least 10"),
        ({"first_events_per_incident": 200}, "first_events_per_incident", "must be from 0 to 100"),
        ({"event_days": "soon"}, "event_days", "A valid integer is required."),
        ({"tables": []}, "tables", "is not a policy field that can be changed"),
    ],
)
def test_an_invalid_value_is_refused_naming_the_field_and_nothing_is_written(api_as, body, field, message):
    before = RetentionPolicy.current()
    response = patch_json(api_as("admin"), URL, {**body, "timeline_days": 99})
    assert response.status_code == 400
    answer = response.json()
    assert answer["field"] == field and message in answer["error"], answer
    after = RetentionPolicy.current()
    assert after.timeline_days == before.timeline_days and after.updated_at == before.updated_at


@PURGING
def test_a_valid_patch_takes_effect_for_the_next_purge_estimate(api_as, source):
    store_received(source, days_ago=10)
    assert expiring_events() == 0  # kept 30 days by default
    response = patch_json(api_as("admin"), URL, {"event_days": 7, "events_per_incident": None})
    assert response.status_code == 200, response.content
    assert (response.json()["event_days"], response.json()["events_per_incident"]) == (7, None)
    policy = RetentionPolicy.current()
    assert (policy.event_days, policy.events_per_incident) == (7, None)
    assert expiring_events() > 0


def expiring_events() -> int:
    """Events (or whole event partitions) the next purge would remove, by its estimate."""
    found = {step.key: removed for step, removed in purge.estimate()}
    return sum(found[key].rows + found[key].partitions for key in ("event_partitions", "events") if key in found)


def test_a_sources_event_retention_is_changed_through_the_sources_api_and_checked_there(api_as, source):
    url = f"/api/v1/sources/{source.pk}/"
    for value in (0, 3651, "long"):
        refused = patch_json(api_as("admin"), url, {"event_retention_days": value})
        assert refused.status_code == 400 and refused.json()["field"] == "event_retention_days", refused.content
    assert patch_json(api_as("viewer"), url, {"event_retention_days": 7}).status_code == 404
    changed = patch_json(api_as("admin"), url, {"event_retention_days": 7})
    assert changed.status_code == 200 and changed.json()["event_retention_days"] == 7
    source.refresh_from_db()
    assert RetentionPolicy.current().event_days_for(source) == 7
    assert patch_json(api_as("admin"), url, {"event_retention_days": None}).status_code == 200
    source.refresh_from_db()
    assert RetentionPolicy.current().event_days_for(source) == 30
    oldest = api_as("viewer").get(URL).json()["oldest_events"]
    assert oldest == [
        {
            "source": source.slug,
            "received_at": None,
            "age_seconds": None,
            "retention_days": 30,
            "past_retention": False,
        }
    ]


@PURGING
def test_after_a_purge_the_api_and_system_health_show_sizes_oldest_events_and_the_last_purge(api_as, source):
    store_received(source, days_ago=40, count=3, fingerprint="old")
    store_received(source, days_ago=1, fingerprint="new")
    record = purge.run(trigger="command", pause=0)
    assert record.status == PurgeRun.Status.FINISHED
    oldest = ErrorEvent.objects.get().received_at

    answer = api_as("viewer").get(URL).json()
    tables = {table["table"]: table for table in answer["tables"]}
    assert tables["incidents_errorevent"]["label"] == "events"
    last = answer["last_purge"]
    assert (last["status"], last["trigger"], last["rows_removed"]) == ("finished", "command", record.rows_removed)
    assert last["removed"] == record.removed and last["partitions_dropped"] == record.partitions_dropped
    assert last["duration_seconds"] == record.duration.total_seconds() and record.rows_removed >= 3
    (source_oldest,) = answer["oldest_events"]
    assert source_oldest["source"] == source.slug and source_oldest["past_retention"] is False
    assert 86_400 <= source_oldest["age_seconds"] < 86_400 + 600
    assert source_oldest["received_at"].startswith(f"{oldest:%Y-%m-%dT%H:%M}")

    health = api_as("viewer").get("/api/v1/system-health/")
    assert health.status_code == 200
    retention = health.json()["retention"]
    assert retention["total_bytes"] == sum(table["bytes"] or 0 for table in answer["tables"])
    assert retention["events_bytes"] == tables["incidents_errorevent"]["bytes"]
    assert retention["events_rows_estimate"] == tables["incidents_errorevent"]["rows"]
    assert retention["purge_running"] is False
    assert retention["last_purge"] == {
        "finished_at": last["finished_at"],
        "status": "finished",
        "duration_seconds": last["duration_seconds"],
        "rows_removed": record.rows_removed,
        "partitions_dropped": record.partitions_dropped,
    }
    assert retention["oldest_events"][0]["source"] == source.slug
    assert 86_400 <= retention["oldest_events"][0]["age_seconds"] < 86_400 + 600
    if not partitions.enabled():
        assert retention["events_rows_estimate"] == 1  # exact on SQLite


def test_system_health_says_no_purge_has_run_yet(api_as):
    retention = api_as("viewer").get("/api/v1/system-health/").json()["retention"]
    assert retention["last_purge"] is None and retention["purge_running"] is False
