"""The endpoints remote processes use: the config snapshot and transition reports."""

import json

import pytest

from incidents.models import ErrorEvent
from resilience.models import Breaker, BreakerTransition, BreakerWindow
from resilience.runtime.retry import RetryPolicy
from tests.incidents.fleet.payloads import CONFIG, TRANSITIONS, WINDOWS, transition, window

pytestmark = pytest.mark.django_db


def bearer(key) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {key.public_key}"}


def test_the_snapshot_holds_every_config_in_runtime_form(client, source, ingest_key):
    Breaker.objects.create(
        name="payments-api", source=source, failure_statuses="5xx, 429", record_exceptions="TimeoutError"
    )
    response = client.get(CONFIG, **bearer(ingest_key))
    assert response.status_code == 200
    snapshot = response.json()
    breaker = snapshot["breakers"]["payments-api"]
    assert (breaker["failure_statuses"], breaker["record_exceptions"]) == (["5xx", "429"], ["TimeoutError"])
    rate_limited = RetryPolicy.from_dict(snapshot["retry_policies"]["rate_limited"])
    assert rate_limited.retry_on_statuses == (429,)
    assert {policy["name"] for policy in snapshot["recovery_policies"]} >= {"auth-failure-alert", "data-feed-retry"}
    assert {"code": "NETWORK_TIMEOUT", "category": "NETWORK", "transient": True} in snapshot["error_types"]


def test_an_unchanged_config_answers_304_and_a_change_a_new_etag(client, source, ingest_key):
    etag = client.get(CONFIG, **bearer(ingest_key))["ETag"]
    assert client.get(CONFIG, HTTP_IF_NONE_MATCH=etag, **bearer(ingest_key)).status_code == 304
    Breaker.objects.create(name="payments-api", source=source)
    changed = client.get(CONFIG, HTTP_IF_NONE_MATCH=etag, **bearer(ingest_key))
    assert changed.status_code == 200 and changed["ETag"] != etag
    assert "payments-api" in changed.json()["breakers"]


@pytest.mark.parametrize("url", [CONFIG, TRANSITIONS])
def test_every_endpoint_needs_an_ingest_key(client, url):
    response = client.get(url) if url == CONFIG else client.post(url, "{}", content_type="application/json")
    assert response.status_code == 401
    assert response.json()["field"] == "sentry_key"


def post(client, key, payload):
    return client.post(TRANSITIONS, json.dumps(payload), content_type="application/json", **bearer(key))


def test_reported_transitions_join_the_history_and_become_events_of_the_keys_source(client, source, ingest_key):
    response = post(
        client,
        ingest_key,
        {"transitions": [transition(), transition(from_state="open", to_state="half_open", generation=4)]},
    )
    assert response.json() == {"recorded": 2}
    assert list(BreakerTransition.objects.order_by("id").values_list("to_state", "process")) == [
        ("open", "worker-1:4242"),
        ("half_open", "worker-1:4242"),
    ]
    event = ErrorEvent.objects.get(tags__to_state="open")
    assert (event.source, event.level, event.logger) == (source, "error", "resilience.breaker")
    assert "failure rate 62%" in event.message


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"transitions": []}, "transitions"),
        ({"transitions": [transition(), transition(to_state="ajar")]}, "transitions[1].to_state"),
        ({"transitions": [transition(at="yesterday")]}, "transitions[0].at"),
        ({"transitions": [transition(generation=-1)]}, "transitions[0].generation"),
        ({"transitions": [transition(breaker="")]}, "transitions[0].breaker"),
        ({"transitions": [transition()] * 101}, "transitions"),
    ],
)
def test_a_bad_report_is_refused_whole_naming_the_field(client, ingest_key, payload, field):
    response = post(client, ingest_key, payload)
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert not BreakerTransition.objects.exists() and not ErrorEvent.objects.exists()


def test_a_remote_runtime_applies_the_snapshot_whole(client, source, ingest_key):
    from resilience.models import DegradationFeature, DegradationRule, RateLimitPolicy
    from resilience.runtime.runtime import Runtime

    Breaker.objects.create(name="payments-api", source=source, failure_rate_threshold=25, failure_statuses="5xx")
    DegradationFeature.objects.create(name="checkout", breakers="payments-api", critical=True)
    DegradationRule.objects.create(name="checkout-down", condition="critical_breaker_open", level=2)
    RateLimitPolicy.objects.create(name="binance", limit=1200, window_seconds=60)
    snapshot = client.get(CONFIG, **bearer(ingest_key)).json()
    runtime = Runtime()
    assert runtime.apply(snapshot) == []
    assert runtime.version == snapshot["version"]
    assert runtime.breaker("payments-api").config.failure_rate_threshold == 25
    assert runtime.retrier("server_error").policy.max_attempts == 4
    assert runtime.rate_limiter("binance") is not None


def test_a_resent_report_is_recorded_once(client, ingest_key):
    payload = {"transitions": [transition()]}
    assert post(client, ingest_key, payload).json() == {"recorded": 1}
    assert post(client, ingest_key, payload).status_code == 200  # the client never heard the first answer
    assert BreakerTransition.objects.count() == 1
    assert ErrorEvent.objects.count() == 1


def post_windows(client, key, payload):
    return client.post(WINDOWS, json.dumps(payload), content_type="application/json", **bearer(key))


def test_a_clients_window_report_replaces_its_previous_one(client, ingest_key):
    assert post_windows(client, ingest_key, {"process": "shop-1:7", "windows": [window()]}).json() == {"recorded": 1}
    assert post_windows(client, ingest_key, {"process": "shop-1:7", "windows": [window(calls=12)]}).status_code == 200
    post_windows(client, ingest_key, {"process": "shop-2:9", "windows": [window(calls=3, failures=0)]})
    reports = BreakerWindow.objects.filter(process__startswith="shop-").order_by("process")
    assert list(reports.values_list("process", "calls", "failures")) == [("shop-1:7", 12, 4), ("shop-2:9", 3, 0)]


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"windows": [window()]}, "process"),
        ({"process": "p", "windows": []}, "windows"),
        ({"process": "p", "windows": [window(), window(calls=-1)]}, "windows[1].calls"),
        ({"process": "p", "windows": [window(failures=11)]}, "windows[0].failures"),
        ({"process": "p", "windows": [window(state="ajar")]}, "windows[0].state"),
        ({"process": "p", "windows": [window(calls="10")]}, "windows[0].calls"),
        ({"process": "p", "windows": [window(breaker="")]}, "windows[0].breaker"),
        ({"process": "p", "windows": [window()] * 1001}, "windows"),
    ],
)
def test_a_bad_window_report_is_refused_whole_naming_the_field(client, ingest_key, payload, field):
    reports_before = BreakerWindow.objects.count()
    response = post_windows(client, ingest_key, payload)
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert BreakerWindow.objects.count() == reports_before


def test_window_reports_need_an_ingest_key(client):
    response = client.post(
        WINDOWS, json.dumps({"process": "p", "windows": [window()]}), content_type="application/json"
    )
    assert response.status_code == 401
