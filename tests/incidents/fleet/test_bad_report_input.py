"""The report endpoints answer odd input with a JSON 4xx naming the field and the limit, never a 500."""

import json

import pytest

from incidents.models import ErrorEvent
from resilience.models import Breaker, BreakerTransition, BreakerWindow
from tests.incidents.fleet.payloads import TRANSITIONS, WINDOWS, transition, window

pytestmark = pytest.mark.django_db


@pytest.fixture
def payments(source):
    return Breaker.objects.create(name="payments-api", source=source)


def post(client, key, url, body: str | bytes, **headers):
    return client.post(
        url, body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key.public_key}", **headers
    )


def assert_refused(response, status: int, field: str) -> None:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    assert response.json()["field"] == field
    assert not BreakerTransition.objects.exists() and not BreakerWindow.objects.exists()
    assert not ErrorEvent.objects.exists()


# Raw JSON values: the escapes decode to a NUL and to a lone surrogate, which PostgreSQL cannot store.
NUL, SURROGATE = r'"pay\u0000ments"', r'"pay\ud800ments"'
PLACEHOLDER = "<raw>"


def raw_json(payload: dict, raw: str) -> str:
    """The payload as JSON, with its one PLACEHOLDER value replaced by the raw JSON text `raw`."""
    return json.dumps(payload).replace(json.dumps(PLACEHOLDER), raw)


@pytest.mark.parametrize(
    "field, raw",
    [
        ("breaker", NUL),
        ("breaker", SURROGATE),
        ("breaker", '"payments/api"'),
        ("process", NUL),
        ("process", SURROGATE),
        ("reason", NUL),
        ("reason", SURROGATE),
        ("generation", str(2**63)),
        ("generation", str(10**30)),
        ("to_state", '["open"]'),
        ("mode", '{"auto": 1}'),
    ],
)
def test_a_transition_with_unstorable_text_or_numbers_is_refused_naming_the_field(
    client, ingest_key, payments, field, raw
):
    body = raw_json({"transitions": [transition(**{field: PLACEHOLDER})]}, raw)
    assert_refused(post(client, ingest_key, TRANSITIONS, body), 400, f"transitions[0].{field}")


@pytest.mark.parametrize(
    "field, raw",
    [
        ("breaker", NUL),
        ("breaker", SURROGATE),
        ("state", '["closed"]'),
        ("mode", '{"auto": 1}'),
    ],
)
def test_a_window_with_unstorable_text_or_numbers_is_refused_naming_the_field(client, ingest_key, payments, field, raw):
    body = raw_json({"process": "shop-1:7", "windows": [window(**{field: PLACEHOLDER})]}, raw)
    assert_refused(post(client, ingest_key, WINDOWS, body), 400, f"windows[0].{field}")


@pytest.mark.parametrize("raw", [NUL, SURROGATE])
def test_a_window_report_from_an_unstorable_process_name_is_refused(client, ingest_key, payments, raw):
    body = raw_json({"process": PLACEHOLDER, "windows": [window()]}, raw)
    assert_refused(post(client, ingest_key, WINDOWS, body), 400, "process")


def test_a_window_report_naming_one_breaker_twice_is_refused(client, ingest_key, payments):
    body = json.dumps({"process": "shop-1:7", "windows": [window(), window(calls=11)]})
    assert_refused(post(client, ingest_key, WINDOWS, body), 400, "windows[1].breaker")


@pytest.mark.parametrize("url", [TRANSITIONS, WINDOWS])
def test_a_body_over_the_limit_gets_a_json_413_naming_the_limit(client, ingest_key, payments, url):
    padding = "x" * (3 * 1024 * 1024)
    body = json.dumps({"process": "p", "transitions": [transition(reason=padding)], "windows": [window()]})
    response = post(client, ingest_key, url, body)
    assert_refused(response, 413, "body")
    assert "262144 bytes" in response.json()["error"]
