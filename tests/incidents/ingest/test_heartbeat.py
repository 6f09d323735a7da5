"""The heartbeat URL: a source's job posts with its ingest key; an absence rule notices when it stops."""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from incidents import services
from incidents.alerting import evaluation
from incidents.models import Alert, AlertRule

pytestmark = pytest.mark.django_db

URL = "/api/v1/heartbeat/"


@pytest.fixture
def api():
    """A client that enforces CSRF like a browser would: the heartbeat must not need a token."""
    return Client(enforce_csrf_checks=True)


def beat(api, key: str | None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key is not None else {}
    return api.post(URL, **headers)


def test_the_heartbeat_url_is_named():
    assert reverse("heartbeat") == URL


def test_a_heartbeat_with_the_sources_key_records_when_it_came(api, source, ingest_key):
    before = timezone.now()
    response = beat(api, ingest_key.public_key)
    assert (response.status_code, response.json()) == (200, {"ok": True})
    source.refresh_from_db()
    assert before <= source.last_heartbeat_at <= timezone.now()


@pytest.mark.parametrize(
    "authorization, error",
    [
        (None, "an ingest key is required"),
        ("", "an ingest key is required"),
        ("Bearer ", "an ingest key is required"),
        ("Basic dXNlcjpwYXNz", "an ingest key is required"),
        ("Bearer 0123456789abcdef0123456789abcdef", "unknown ingest key"),
    ],
)
def test_a_heartbeat_without_a_known_key_is_refused_with_401_naming_the_field(api, source, authorization, error):
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization is not None else {}
    response = api.post(URL, **headers)
    assert response.status_code == 401
    body = response.json()
    assert body["field"] == "sentry_key" and body["error"].startswith(error)
    source.refresh_from_db()
    assert source.last_heartbeat_at is None


def test_a_revoked_key_is_refused_with_403(api, source, ingest_key):
    services.ingest_key_revoke(key=ingest_key)
    response = beat(api, ingest_key.public_key)
    assert response.status_code == 403
    assert response.json()["field"] == "sentry_key"
    source.refresh_from_db()
    assert source.last_heartbeat_at is None


def test_a_heartbeat_must_be_posted(api, ingest_key):
    response = api.get(URL, HTTP_AUTHORIZATION=f"Bearer {ingest_key.public_key}")
    assert response.status_code == 405


def test_a_heartbeat_rule_fires_only_once_the_heartbeats_stop_for_longer_than_its_threshold(api, source, ingest_key):
    rule = AlertRule.objects.create(
        name="Nightly export alive",
        target=AlertRule.Target.ABSENCE,
        heartbeat=True,
        source=source,
        comparator="gt",
        warning_threshold=30,  # minutes without a heartbeat
    )
    beat(api, ingest_key.public_key)
    now = timezone.now()
    evaluation.evaluate_rules([rule.pk], now=now + timedelta(minutes=20))
    assert not Alert.objects.filter(rule=rule, state=Alert.State.FIRING).exists()
    evaluation.evaluate_rules([rule.pk], now=now + timedelta(minutes=45))
    alert = Alert.objects.get(rule=rule)
    assert alert.state == Alert.State.FIRING
    assert 44 < alert.value < 46
