"""The ingest endpoints with real client payloads, each case through both ways in.

Every test runs twice: through Django's test client (the URLconf, as under ASGI) and
through the ASGI fast path that config.asgi serves (the web server's way in).
"""

import gzip
import json
import uuid
import zlib

import brotli
import pytest
from django.test import override_settings

from incidents import services
from incidents.models import ErrorEvent, Incident
from tests.incidents.ingest.sdk import raise_timeout
from tests.support import (
    FAST_PATH_PARAMS,
    FastPathClient,
    auth_header,
    envelope_bytes,
    json_item,
    native_event,
    sdk_envelopes,
    sentry_event,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(params=FAST_PATH_PARAMS)
def client(request, client):
    return client if request.param == "django" else FastPathClient()


def envelope_url(source) -> str:
    return f"/api/{source.pk}/envelope/"


def post_envelope(client, source, body: bytes, headers=None, encoding=None, url=None):
    extra = dict(headers or {})
    if encoding:
        extra["HTTP_CONTENT_ENCODING"] = encoding
    return client.post(url or envelope_url(source), data=body, content_type="application/x-sentry-envelope", **extra)


def post_native(client, key, payload, **extra):
    body = payload if isinstance(payload, bytes) else json.dumps(payload)
    return client.post(
        "/api/v1/events/", data=body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}", **extra
    )


class TestSentryEnvelope:
    def test_it_stores_an_envelope_from_the_real_sdk(self, client, source, ingest_key):
        [envelope] = sdk_envelopes(ingest_key.dsn, raise_timeout)
        response = post_envelope(client, source, envelope.serialize(), auth_header(ingest_key))
        assert response.status_code == 200
        event_id = envelope.get_event()["event_id"]
        assert response.json() == {"id": event_id}
        stored = ErrorEvent.objects.get(event_id=uuid.UUID(event_id))
        assert stored.source == source
        assert stored.exception[-1]["type"] == "TimeoutError"

    @pytest.mark.parametrize(
        "encoding, compress",
        [("gzip", gzip.compress), ("deflate", zlib.compress), ("br", brotli.compress)],
    )
    def test_it_accepts_compressed_bodies(self, client, source, ingest_key, encoding, compress):
        event = sentry_event("compressed")
        response = post_envelope(client, source, compress(envelope_bytes(event)), auth_header(ingest_key), encoding)
        assert response.status_code == 200, response.content
        assert ErrorEvent.objects.filter(event_id=uuid.UUID(event["event_id"])).exists()

    def test_it_takes_the_key_from_the_query_string(self, client, source, ingest_key):
        event = sentry_event()
        url = f"{envelope_url(source)}?sentry_key={ingest_key.public_key}&sentry_version=7"
        assert post_envelope(client, source, envelope_bytes(event), url=url).status_code == 200

    def test_it_takes_the_key_from_the_envelope_dsn_header(self, client, source, ingest_key):
        event = sentry_event()
        response = post_envelope(client, source, envelope_bytes(event, dsn=ingest_key.dsn))
        assert response.status_code == 200
        assert ErrorEvent.objects.filter(source=source).count() == 1

    def test_it_skips_unknown_item_types(self, client, source, ingest_key):
        event = sentry_event()
        body = envelope_bytes(
            event, extra_items=[json_item("client_report", {"discarded_events": []}), json_item("mystery", {})]
        )
        response = post_envelope(client, source, body, auth_header(ingest_key))
        assert response.status_code == 200
        assert response.json() == {"id": event["event_id"]}
        assert ErrorEvent.objects.count() == 1

    def test_it_counts_a_repeated_event_id_once(self, client, source, ingest_key, digest):
        body = envelope_bytes(sentry_event("again"))
        first = post_envelope(client, source, body, auth_header(ingest_key))
        second = post_envelope(client, source, body, auth_header(ingest_key))
        assert first.json() == second.json()
        digest()
        assert ErrorEvent.objects.count() == 1
        assert Incident.objects.get().event_count == 1

    def test_it_answers_400_for_a_malformed_envelope(self, client, source, ingest_key):
        response = post_envelope(client, source, b'{"event_id": "x"}\n{not json', auth_header(ingest_key))
        assert response.status_code == 400
        assert "envelope" in response.json()["field"]
        assert ErrorEvent.objects.count() == 0


class TestSentryStore:
    def test_it_stores_a_legacy_store_event(self, client, source, ingest_key):
        event = sentry_event("stored the old way")
        response = client.post(
            f"/api/{source.pk}/store/",
            data=json.dumps(event),
            content_type="application/json",
            **auth_header(ingest_key),
        )
        assert response.status_code == 200
        assert response.json() == {"id": event["event_id"]}
        assert ErrorEvent.objects.get().message == "stored the old way"


class TestAuthentication:
    def test_it_refuses_an_envelope_without_a_key(self, client, source):
        response = post_envelope(client, source, envelope_bytes(sentry_event()))
        assert response.status_code == 401

    def test_it_refuses_an_unknown_key(self, client, source):
        headers = {"HTTP_X_SENTRY_AUTH": "Sentry sentry_key=" + "0" * 32}
        assert post_envelope(client, source, envelope_bytes(sentry_event()), headers).status_code == 401

    def test_it_refuses_a_revoked_key(self, client, source, ingest_key):
        services.ingest_key_revoke(key=ingest_key)
        response = post_envelope(client, source, envelope_bytes(sentry_event()), auth_header(ingest_key))
        assert response.status_code == 403
        assert "revoked" in response.json()["error"]

    def test_it_refuses_a_key_of_another_source(self, client, source, ingest_key):
        other, _ = services.source_create(name="Other")
        response = post_envelope(
            client, other, envelope_bytes(sentry_event()), auth_header(ingest_key), url=envelope_url(other)
        )
        assert response.status_code == 403
        assert ErrorEvent.objects.count() == 0

    def test_a_rotated_key_and_its_replacement_both_work_during_the_grace_period(self, client, source, ingest_key):
        replacement = services.ingest_key_rotate(key=ingest_key)
        for key in (ingest_key, replacement):
            response = post_envelope(client, source, envelope_bytes(sentry_event()), auth_header(key))
            assert response.status_code == 200

    def test_native_api_refuses_a_missing_bearer_key(self, client, source):
        response = client.post("/api/v1/events/", data="{}", content_type="application/json")
        assert response.status_code == 401


class TestLimits:
    @override_settings(INGEST_MAX_COMPRESSED_BYTES=2048)
    def test_it_refuses_a_body_over_the_compressed_limit(self, client, source, ingest_key):
        body = envelope_bytes(sentry_event("x" * 5000))
        response = post_envelope(client, source, body, auth_header(ingest_key))
        assert response.status_code == 413
        assert "2048" in response.json()["error"]

    def test_it_stops_a_gzip_bomb(self, client, source, ingest_key):
        bomb = gzip.compress(b"\n" * (30 * 1024 * 1024))
        response = post_envelope(client, source, bomb, auth_header(ingest_key), "gzip")
        assert response.status_code == 413
        assert ErrorEvent.objects.count() == 0

    def test_it_rate_limits_a_source_with_sentry_headers(self, client, source, ingest_key):
        source.rate_limit_per_minute = 2
        source.save()
        statuses = [
            post_envelope(client, source, envelope_bytes(sentry_event()), auth_header(ingest_key)) for _ in range(3)
        ]
        assert [r.status_code for r in statuses] == [200, 200, 429]
        limited = statuses[-1]
        assert 1 <= int(limited["Retry-After"]) <= 60
        assert limited["X-Sentry-Rate-Limits"].startswith(limited["Retry-After"] + ":")
        assert ErrorEvent.objects.count() == 2

    def test_it_refuses_an_environment_the_source_does_not_have(self, client, source, ingest_key):
        source.environments = ["production"]
        source.save()
        response = post_native(client, ingest_key.public_key, native_event(environment="qa"))
        assert response.status_code == 400
        assert response.json()["field"] == "environment"


class TestHostileInput:
    def test_it_stores_nul_bytes_and_long_strings_safely(self, client, source, ingest_key):
        event = sentry_event("nul\x00byte " + "y" * 20000)
        response = post_envelope(client, source, envelope_bytes(event), auth_header(ingest_key))
        assert response.status_code == 200
        message = ErrorEvent.objects.get().message
        assert "\x00" not in message
        assert "truncated" in message
        assert len(message) < 9000

    def test_it_stores_invalid_utf8_safely(self, client, source, ingest_key):
        body = b'{"event_id": "' + uuid.uuid4().hex.encode() + b'"}\n{"type": "event"}\n'
        body += b'{"message": "bad \xff\xfe bytes", "level": "error"}\n'
        response = post_envelope(client, source, body, auth_header(ingest_key))
        assert response.status_code in (200, 400)
        if response.status_code == 200:
            assert "bad" in ErrorEvent.objects.get().message

    def test_it_never_fails_on_deep_nesting(self, client, source, ingest_key):
        nested = '{"a": ' * 5000 + "{}" + "}" * 5000
        payload = json.dumps(native_event(context={}))[:-1] + ', "extra_nesting": ' + nested + "}"
        response = post_native(client, ingest_key.public_key, payload.encode())
        assert response.status_code in (200, 400)

    def test_it_never_fails_on_lone_surrogates(self, client, source, ingest_key):
        payload = '{"message": "half a pair \\ud83d here", "level": "error"}'
        response = post_native(client, ingest_key.public_key, payload.encode())
        assert response.status_code == 200
        assert "half a pair" in ErrorEvent.objects.get().message

    def test_it_scrubs_secrets_before_storing(self, client, source, ingest_key):
        event = native_event(
            message="charged 4111 1111 1111 1111 with Bearer abc.def.ghi",
            context={"password": "hunter2", "nested": {"api_key": "k-123"}},
            request={"headers": {"Authorization": "Basic Zm9vOmJhcg==", "Accept": "text/html"}},
            tags={"session": "s3cr3t"},
        )
        assert post_native(client, ingest_key.public_key, event).status_code == 200
        stored = ErrorEvent.objects.get()
        raw = json.dumps([stored.message, stored.extra, stored.request, stored.tags])
        for secret in ("4111 1111 1111 1111", "abc.def.ghi", "hunter2", "k-123", "Zm9vOmJhcg==", "s3cr3t"):
            assert secret not in raw
        assert stored.request["headers"]["Accept"] == "text/html"


class TestNativeApi:
    def test_it_accepts_one_event(self, client, source, ingest_key):
        event = native_event()
        response = post_native(client, ingest_key.public_key, event)
        assert response.status_code == 200
        assert response.json() == {"id": event["event_id"]}

    def test_it_accepts_a_batch(self, client, source, ingest_key):
        events = [native_event() for _ in range(3)]
        response = post_native(client, ingest_key.public_key, {"events": events})
        assert response.status_code == 200
        assert response.json()["ids"] == [event["event_id"] for event in events]
        assert ErrorEvent.objects.filter(source=source).count() == 3

    def test_it_refuses_a_whole_batch_naming_the_bad_field(self, client, source, ingest_key):
        events = [native_event(), native_event(level=7), native_event()]
        response = post_native(client, ingest_key.public_key, {"events": events})
        assert response.status_code == 400
        assert response.json()["field"] == "events[1].level"
        assert ErrorEvent.objects.count() == 0

    def test_it_answers_400_for_malformed_json(self, client, source, ingest_key):
        response = post_native(client, ingest_key.public_key, b'{"message": ')
        assert response.status_code == 400
        assert "JSON" in response.json()["error"]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # Django answers in a thread of its own
def test_the_fast_path_hands_every_other_request_to_django(source, ingest_key):
    response = FastPathClient().post("/api/v1/events/unknown/", data="{}", content_type="application/json")
    assert response.status_code == 404
    assert response.json() == {"error": "not found", "field": None}  # Django's 404 for /api/, not an ingest answer
