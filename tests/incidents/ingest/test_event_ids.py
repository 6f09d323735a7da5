"""Event ids on every ingest endpoint: a UUID is kept, anything else is a 400 naming event_id, as in the native API.

Every test runs through Django's test client (the URLconf) and through the ASGI fast path the web server takes.
"""

import json
import uuid

import pytest

from incidents.models import ErrorEvent
from tests.support import FAST_PATH_PARAMS, FastPathClient, auth_header, envelope_bytes, native_event, sentry_event

pytestmark = pytest.mark.django_db

NOT_UUIDS = ["not-a-uuid", "0123456789abcdef", 42]


@pytest.fixture(params=FAST_PATH_PARAMS)
def client(request, client):
    return client if request.param == "django" else FastPathClient()


def post(client, url: str, body: bytes, **headers):
    return client.post(url, data=body, content_type="application/json", **headers)


def envelope(event: dict, header_id) -> bytes:
    header = json.dumps({"event_id": header_id}).encode()
    return header + b"\n" + envelope_bytes(event).partition(b"\n")[2]


@pytest.mark.parametrize("bad", NOT_UUIDS)
def test_the_native_api_and_both_sentry_endpoints_refuse_the_same_bad_id(client, source, ingest_key, bad):
    native = post(
        client, "/api/v1/events/", json.dumps(native_event(event_id=bad)).encode(),
        HTTP_AUTHORIZATION=f"Bearer {ingest_key.public_key}",
    )  # fmt: skip
    store = post(
        client, f"/api/{source.pk}/store/", json.dumps(sentry_event(event_id=bad)).encode(), **auth_header(ingest_key)
    )
    in_payload = post(
        client, f"/api/{source.pk}/envelope/", envelope(sentry_event(event_id=bad), None), **auth_header(ingest_key)
    )
    in_header = post(client, f"/api/{source.pk}/envelope/", envelope(sentry_event(), bad), **auth_header(ingest_key))
    answers = {
        name: (response.status_code, response.json()["field"])
        for name, response in {"native": native, "store": store, "payload": in_payload, "header": in_header}.items()
    }
    assert answers == {
        "native": (400, "event_id"),
        "store": (400, "event_id"),
        "payload": (400, "envelope item 1 payload.event_id"),
        "header": (400, "envelope header.event_id"),
    }
    assert ErrorEvent.objects.count() == 0


@pytest.mark.parametrize("form", [lambda value: value.hex, str])
def test_the_hex_and_dashed_ids_sentry_sdk_sends_are_stored_as_sent(client, source, ingest_key, form):
    event_id = uuid.uuid4()
    event = sentry_event(event_id=form(event_id))
    response = post(client, f"/api/{source.pk}/envelope/", envelope(event, form(event_id)), **auth_header(ingest_key))
    assert (response.status_code, response.json()) == (200, {"id": event_id.hex})
    assert ErrorEvent.objects.filter(event_id=event_id).exists()
