"""The reporting API for incidents, events, summary, stats and notifications, with real tokens and data."""

import json
import uuid

import pytest
from django.utils import timezone

from incidents.models import ErrorEvent, Incident, IncidentActivity, Severity
from tests.api_support import post_json
from tests.support import native_event

pytestmark = pytest.mark.django_db


def ingest(client, key, count: int = 1, **fields) -> None:
    for _ in range(count):
        event = native_event(event_id=uuid.uuid4().hex, **fields)
        response = client.post(
            "/api/v1/events/", json.dumps(event), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}"
        )
        assert response.status_code == 200, response.content


@pytest.fixture
def incidents(client, ingest_key, digest):
    """Two incidents of the source: 3 timeouts (NETWORK) and 2 permission errors (STORAGE: OSErrors)."""
    ingest(client, ingest_key.public_key, 3)
    denied = {"type": "PermissionError", "value": "403 Forbidden", "module": "builtins"}
    ingest(client, ingest_key.public_key, 2, exception=denied, message="forbidden")
    digest()
    return list(Incident.objects.order_by("event_count"))


def test_the_incident_list_pages_with_a_cursor_and_filters_by_name(api_as, incidents):
    viewer = api_as("viewer")
    first = viewer.get("/api/v1/incidents/?limit=1").json()
    assert len(first["results"]) == 1 and first["next"]
    second = viewer.get(first["next"]).json()
    assert {first["results"][0]["id"], second["results"][0]["id"]} == {i.pk for i in incidents}
    timeouts = viewer.get("/api/v1/incidents/?category=NETWORK").json()["results"]
    assert [row["event_count"] for row in timeouts] == [3]
    assert timeouts[0]["source"] == "checkout-service" and timeouts[0]["severity"] in ("high", "medium", "critical")


def test_the_incident_detail_carries_its_timeline(api_as, incidents):
    detail = api_as("viewer").get(f"/api/v1/incidents/{incidents[0].pk}/").json()
    assert detail["fingerprint"] == incidents[0].fingerprint
    assert [entry["kind"] for entry in detail["timeline"]] == ["created"]


def test_an_incident_whose_events_were_purged_says_so_and_keeps_its_counts(api_as, incidents):
    timeouts = incidents[1]
    viewer = api_as("viewer")
    assert viewer.get(f"/api/v1/incidents/{timeouts.pk}/").json()["events_expired"] is False

    ErrorEvent.objects.filter(incident=timeouts).delete()  # as the purge does once they are past retention

    detail = viewer.get(f"/api/v1/incidents/{timeouts.pk}/").json()
    assert (detail["events_expired"], detail["event_count"]) == (True, 3)


def test_a_triager_acknowledges_resolves_reopens_and_mutes_leaving_a_timeline(api_as, incidents):
    triager, incident = api_as("triager"), incidents[0]
    for action, status in (("acknowledge", "acknowledged"), ("resolve", "resolved"), ("reopen", "open")):
        response = triager.post(f"/api/v1/incidents/{incident.pk}/{action}/")
        assert (response.status_code, response.json()["status"]) == (200, status)
    muted = post_json(triager, f"/api/v1/incidents/{incident.pk}/mute/", {"until_events": 10, "within_minutes": 5})
    assert muted.json()["status"] == "muted" and muted.json()["unmute_after_events"] == 10
    actors = set(
        IncidentActivity.objects.filter(incident=incident).exclude(kind="created").values_list("actor", flat=True)
    )
    assert actors == {"user:triager-user"}


def test_a_transition_that_does_not_apply_is_a_conflict_naming_the_status(api_as, incidents):
    response = api_as("triager").post(f"/api/v1/incidents/{incidents[0].pk}/reopen/")
    assert response.status_code == 409 and response.json()["field"] == "status"


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "minutes"),
        ({"until_events": 5}, "within_minutes"),
        ({"minutes": 0}, "minutes"),
        ({"minutes": "soon"}, "minutes"),
    ],
)
def test_a_bad_mute_is_refused_naming_the_field_and_changes_nothing(api_as, incidents, body, field):
    response = post_json(api_as("triager"), f"/api/v1/incidents/{incidents[0].pk}/mute/", body)
    assert (response.status_code, response.json()["field"]) == (400, field)
    assert Incident.objects.get(pk=incidents[0].pk).status == "open"


def test_a_viewer_may_read_but_not_act_and_an_ingest_key_may_only_ingest(api_as, incidents, ingest_key, client):
    assert api_as("viewer").post(f"/api/v1/incidents/{incidents[0].pk}/acknowledge/").status_code == 403
    response = client.get("/api/v1/incidents/", HTTP_AUTHORIZATION=f"Bearer {ingest_key.public_key}")
    assert response.status_code == 401 and "ingest keys" in response.json()["error"]


def test_the_event_list_filters_by_incident_and_the_detail_shows_the_exception(api_as, incidents):
    viewer = api_as("viewer")
    rows = viewer.get(f"/api/v1/events/?incident={incidents[0].pk}").json()["results"]
    assert len(rows) == incidents[0].event_count
    detail = viewer.get(f"/api/v1/events/{rows[0]['id']}/").json()
    assert detail["exception"] and detail["incident"] == incidents[0].pk


@pytest.mark.parametrize(
    "query, field",
    [
        ("colour=red", "colour"),
        ("cursor=not-a-cursor", "cursor"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=many", "limit"),
        ("ordering=message", "ordering"),
        ("min_severity=urgent", "min_severity"),
        ("received_after=yesterday", "received_after"),
        ("incident=abc", "incident"),
    ],
)
def test_bad_list_parameters_are_refused_naming_the_parameter(api_as, query, field):
    response = api_as("viewer").get(f"/api/v1/events/?{query}")
    assert (response.status_code, response.json()["field"]) == (400, field)


def test_the_summary_counts_from_the_rollups_in_the_seeds_shape(api_as, incidents):
    body = api_as("viewer").get("/api/v1/summary/").json()
    data = body["data"]
    assert body["status"] == "success" and data["total_errors"] == 5
    assert data["by_category"] == {"NETWORK": 3, "STORAGE": 2}
    assert sum(data["error_counts"].values()) == 5 and any(key.startswith("network_") for key in data["error_counts"])
    assert len(data["recent_errors"]) == 5 and {"error_id", "message", "category", "severity"} <= set(
        data["recent_errors"][0]
    )


def test_stats_give_a_series_per_minute_the_rate_and_the_tops(api_as, incidents, source):
    body = api_as("viewer").get(f"/api/v1/stats/?minutes=10&source={source.slug}").json()
    # The events fall in the last minute or, when the clock turned meanwhile, the one before it.
    assert len(body["series"]) == 10 and sum(point["count"] for point in body["series"][-2:]) == 5 == body["total"]
    assert body["error_rate_per_minute"] == 0.5
    assert [row["count"] for row in body["top_incidents"]] == [3, 2]
    assert body["top_error_types"][0]["count"] == 3
    hourly = api_as("viewer").get("/api/v1/stats/?interval=hour&minutes=1440&category=STORAGE").json()
    assert hourly["total"] == 2 and len(hourly["series"]) in (24, 25)


@pytest.mark.parametrize(
    "query, field",
    [("minutes=2000", "minutes"), ("interval=week", "interval"), ("source=nowhere", "source"), ("x=1", "x")],
)
def test_bad_stats_parameters_are_refused_naming_them(api_as, query, field):
    response = api_as("viewer").get(f"/api/v1/stats/?{query}")
    assert (response.status_code, response.json()["field"]) == (400, field)


def test_notifications_list_open_incidents_with_the_catalogs_action_and_acknowledge_by_id(api_as, incidents):
    high = [i for i in incidents if i.severity == Severity.HIGH]
    body = api_as("viewer").get("/api/v1/notifications/?limit=10").json()
    assert body["total"] == 2 and {n["id"] for n in body["notifications"]} == {str(i.pk) for i in incidents}
    assert all(n["action"]["message"] for n in body["notifications"])
    filtered = api_as("viewer").get("/api/v1/notifications/?severity=high").json()
    assert filtered["total"] == len(high)
    acknowledged = api_as("triager").post(f"/api/v1/acknowledge/{incidents[0].pk}/")
    assert acknowledged.json()["acknowledged"] is True
    assert api_as("viewer").get("/api/v1/notifications/").json()["total"] == 1
    assert api_as("triager").post("/api/v1/acknowledge/999999/").status_code == 404


def test_an_oversized_body_is_refused_naming_the_body(api_as, incidents, settings):
    settings.API_MAX_BODY_BYTES = 1024
    body = {"minutes": 5, "padding": "x" * 2000}
    response = post_json(api_as("triager"), f"/api/v1/incidents/{incidents[0].pk}/mute/", body)
    assert (response.status_code, response.json()["field"]) == (400, "body")


def test_the_schema_and_the_offline_swagger_ui_need_a_login(api_as, client, admin_client):
    assert client.get("/api/schema/").status_code in (401, 403)
    schema = api_as("viewer").get("/api/schema/?format=json")
    assert schema.status_code == 200 and "/api/v1/incidents/" in schema.json()["paths"]
    page = admin_client.get("/api/docs/").content.decode()
    assert "swagger-ui" in page and "cdn" not in page.lower()


def test_the_recent_errors_carry_the_seeds_timestamp(api_as, incidents):
    recent = api_as("viewer").get("/api/v1/summary/").json()["data"]["recent_errors"][0]
    assert abs((timezone.datetime.fromisoformat(recent["timestamp"]) - timezone.now()).total_seconds()) < 60


def test_a_body_nested_too_deeply_is_refused_naming_the_body(api_as, incidents):
    body = '{"minutes": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = api_as("triager").post(
        f"/api/v1/incidents/{incidents[0].pk}/mute/", body, content_type="application/json"
    )
    assert (response.status_code, response.json()["field"]) == (400, "body")
