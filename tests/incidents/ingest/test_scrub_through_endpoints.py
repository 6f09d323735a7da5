"""Secrets sent through the real ingest endpoints never reach the database or the API.

Every secret below carries a marker ("MRK…"), or is a card number; after ingest and the
digest, no row of the event or its incident and no API answer may hold any of them.
"""

import base64
import itertools
import json
import uuid

import pytest
from django.core.serializers.json import DjangoJSONEncoder

from incidents.models import ErrorEvent, Incident
from tests.support import auth_header, envelope_bytes

pytestmark = pytest.mark.django_db

CARDS = ("4111111111111111", "5555555555554444", "4012888888881881")
ENCODED: list[str] = []  # secrets whose marker does not show once encoded (Basic credentials)
_numbers = itertools.count(1)


def marker() -> str:
    return f"MRK{next(_numbers):03d}q9"


def jwt() -> str:
    return f"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ{marker()}.c2ln{marker()}"


def log_lines() -> str:
    basic = base64.b64encode(f"bob:{marker()}".encode()).decode()
    ENCODED.append(basic)
    return "\n".join(
        [
            f"login failed password: {marker()} for bob",
            f"refresh token: {marker()} rejected",
            f"    password = {marker()}",
            f"Authorization: Basic {basic}",
            f"upstream said Token 9944b0919{marker()}",
            f"body={json.dumps(json.dumps({'password': marker()}))}",
            f"callback https://app.example/cb?code={marker()}&state=ok&sig={marker()}",
            f"https://x.example/login?pass%77ord={marker()}&%70assword={marker()}",
            f"https://x.example/next?u=https%3A%2F%2Fy%2Fa%3Fpassword%3D{marker()}",
            f"ran mysql -u root -p {marker()} --password={marker()}",
            f"card {CARDS[0]} jwt {jwt()}",
        ]
    )


def secret_structures() -> dict:
    """Free-form values with secrets by key, by content, as keys and as numbers."""
    return {
        "pass": marker(),
        "pw": marker(),
        "pin": marker(),
        "jwt": marker(),
        "private": marker(),
        "otp": marker(),
        "x-authentication": marker(),
        "X-Amz-Signature": marker(),
        "X-Hub-Signature-256": f"sha256={marker()}",
        "X.Api.Key": marker(),
        "k" * 200 + "_password": marker(),
        f"Bearer {marker()}abc": "a key that is a token",
        jwt(): "a key that is a JWT",
        CARDS[1]: "a key that is a card",
        "order_card": int(CARDS[2]),
        "argv": ["mysql", "--password", marker(), "-p", marker()],
        "double_encoded": json.dumps(json.dumps({"api_key": marker()})),
        "log": log_lines(),
        "url": f"https://s3.example/o?X-Amz-Signature={marker()}&signature={marker()}&code={marker()}",
    }


def short(label: str) -> str:
    """A short field's value holding a secret, within the column's size."""
    return f"{label} token={marker()}"


def request_with_secrets() -> dict:
    return {
        "url": f"https://shop.example/oauth/callback?code={marker()}&state=s",
        "method": "POST",
        "query_string": f"code={marker()}&page=2",
        "headers": {"Authorization": f"Basic {marker()}", "X-Jwt": marker(), "Accept": "text/html"},
        "data": secret_structures(),
    }


def exception_with_secrets() -> dict:
    return {
        "type": f"LoginError token={marker()}",
        "value": log_lines(),
        "module": f"app.auth secret={marker()}",
        "mechanism": {"type": "generic", "data": secret_structures()},
        "stacktrace": {
            "frames": [
                {
                    "filename": f"app/auth.py?token={marker()}",
                    "module": f"app.auth pw={marker()}",
                    "function": f"login password: {marker()}",
                    "lineno": 7,
                    "in_app": True,
                    "context_line": f"    password = {marker()}",
                    "pre_context": [f"API_TOKEN = '{marker()}'"],
                    "vars": secret_structures(),
                }
            ]
        },
    }


def common_fields() -> dict:
    return {
        "event_id": uuid.uuid4().hex,
        "level": "error",
        "message": log_lines(),
        "logger": short("app"),
        "platform": f"py pw={marker()}",
        "server_name": short("web-1"),
        "release": short("shop@1.2"),
        "environment": f"prod token={marker()}",
        "transaction": f"/login?password={marker()}",
        "tags": {"region": "eu", "api_key": marker(), "note": f"token={marker()}"},
        "user": {"id": "42", "username": "bob", "password": marker(), "note": log_lines()},
        "request": request_with_secrets(),
        "contexts": {"app": secret_structures()},
        "fingerprint": [f"token={marker()}", "{{ default }}"],
        "sdk": {"name": f"sdk token={marker()}", "version": "1.0"},
    }


def sentry_event_with_secrets() -> dict:
    return {
        **common_fields(),
        "exception": {"values": [exception_with_secrets()]},
        "extra": secret_structures(),
        "culprit": f"login?password={marker()}",
        "breadcrumbs": {"values": [{"message": log_lines(), "data": secret_structures()}]},
    }


def native_event_with_secrets() -> dict:
    return {
        **common_fields(),
        "component": short("billing"),
        "exception": exception_with_secrets(),
        "context": secret_structures(),
    }


def assert_no_secret(text: str) -> None:
    assert "MRK" not in text
    for secret in (*CARDS, *ENCODED):
        assert secret not in text


def stored_rows() -> str:
    events = list(ErrorEvent.objects.values())
    incidents = list(Incident.objects.values())
    assert events and incidents
    return json.dumps([events, incidents], cls=DjangoJSONEncoder)


def api_answers(client) -> str:
    answers = [client.get("/api/v1/events/").json(), client.get("/api/v1/incidents/").json()]
    for event in ErrorEvent.objects.all():
        answers.append(client.get(f"/api/v1/events/{event.pk}/").json())
    for incident in Incident.objects.all():
        answers.append(client.get(f"/api/v1/incidents/{incident.pk}/").json())
    return json.dumps(answers)


def test_the_secrets_of_a_native_event_reach_neither_the_database_nor_the_api(client, ingest_key, digest, api_as):
    event = native_event_with_secrets()
    response = client.post(
        "/api/v1/events/",
        data=json.dumps(event),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {ingest_key.public_key}",
    )
    assert response.status_code in (200, 201, 202), response.content
    digest()
    assert ErrorEvent.objects.get().event_id == uuid.UUID(event["event_id"])
    assert_no_secret(stored_rows())
    assert_no_secret(api_answers(api_as("admin")))


def test_the_secrets_of_a_sentry_envelope_reach_neither_the_database_nor_the_api(
    client, source, ingest_key, digest, api_as
):
    event = sentry_event_with_secrets()
    response = client.post(
        f"/api/{source.pk}/envelope/",
        data=envelope_bytes(event),
        content_type="application/x-sentry-envelope",
        **auth_header(ingest_key),
    )
    assert response.status_code == 200, response.content
    digest()
    assert ErrorEvent.objects.get().event_id == uuid.UUID(event["event_id"])
    assert_no_secret(stored_rows())
    assert_no_secret(api_answers(api_as("admin")))


def test_what_is_not_secret_survives_the_trip(client, ingest_key, digest):
    event = native_event_with_secrets()
    client.post(
        "/api/v1/events/",
        data=json.dumps(event),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {ingest_key.public_key}",
    )
    stored = ErrorEvent.objects.get()
    assert stored.request["headers"]["Accept"] == "text/html"
    assert stored.tags["region"] == "eu"
    assert stored.user["username"] == "bob"
    assert stored.extra["argv"][0] == "mysql"
    assert "state=ok" in stored.message
