"""Incident lifecycle and ingest keys, through the service functions."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from incidents import services
from incidents.models import ErrorType, Incident, IncidentActivity

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(db):
    return get_user_model().objects.create_user("alice", password="x")


@pytest.fixture
def incident(source):
    now = timezone.now()
    return Incident.objects.create(
        source=source,
        fingerprint="f" * 64,
        title="TimeoutError: read timed out",
        error_type=ErrorType.objects.get(code="NETWORK_TIMEOUT"),
        category="NETWORK",
        severity=30,
        first_seen=now,
        last_seen=now,
    )


def test_acknowledging_records_who_did_it(incident, operator):
    services.incident_acknowledge(incident=incident, by=operator)
    assert incident.status == "acknowledged"
    entry = incident.activities.get()
    assert (entry.kind, entry.actor, entry.user, entry.from_status, entry.to_status) == (
        "acknowledged",
        "user:alice",
        operator,
        "open",
        "acknowledged",
    )


def test_resolving_then_reopening_leaves_two_timeline_entries(incident, operator):
    services.incident_resolve(incident=incident, by=operator)
    assert incident.resolved_at is not None
    services.incident_reopen(incident=incident, by="token:ci")
    assert incident.status == "open"
    assert incident.resolved_at is None
    assert list(incident.activities.order_by("id").values_list("kind", "actor")) == [
        ("resolved", "user:alice"),
        ("reopened", "token:ci"),
    ]


def test_a_resolved_incident_cannot_be_acknowledged(incident, operator):
    services.incident_resolve(incident=incident, by=operator)
    with pytest.raises(services.IncidentTransitionError, match="resolved"):
        services.incident_acknowledge(incident=incident, by=operator)
    assert incident.activities.count() == 1


def test_muting_for_a_duration_sets_the_end(incident, operator):
    before = timezone.now()
    services.incident_mute(incident=incident, by=operator, duration=timedelta(hours=1))
    assert incident.status == "muted"
    assert before + timedelta(minutes=59) < incident.muted_until < timezone.now() + timedelta(hours=1, seconds=1)


def test_muting_until_n_events_needs_both_numbers(incident, operator):
    with pytest.raises(ValueError, match="together"):
        services.incident_mute(incident=incident, by=operator, until_events=5)
    services.incident_mute(incident=incident, by=operator, until_events=5, within_minutes=10)
    assert (incident.unmute_after_events, incident.unmute_window_minutes) == (5, 10)


def test_acknowledging_a_muted_incident_clears_its_mute(incident, operator):
    services.incident_mute(incident=incident, by=operator, duration=timedelta(hours=1))
    services.incident_acknowledge(incident=incident, by=operator)
    assert incident.muted_until is None


def test_regress_applies_only_to_resolved_incidents(incident):
    with pytest.raises(services.IncidentTransitionError):
        services.incident_regress(incident=incident, by="system:digest")
    assert not IncidentActivity.objects.exists()


def test_rotating_a_key_keeps_the_old_one_until_the_grace_ends(ingest_key):
    replacement = services.ingest_key_rotate(key=ingest_key, grace=timedelta(hours=2))
    ingest_key.refresh_from_db()
    assert replacement.public_key != ingest_key.public_key
    assert ingest_key.is_usable()
    assert not ingest_key.is_usable(now=timezone.now() + timedelta(hours=3))
    assert replacement.is_usable(now=timezone.now() + timedelta(days=365))


def test_revoking_a_key_stops_it_at_once(ingest_key):
    services.ingest_key_revoke(key=ingest_key)
    ingest_key.refresh_from_db()
    assert not ingest_key.is_usable()


def test_a_source_gets_a_dsn_built_from_the_console_url(settings, db):
    settings.CONSOLE_URL = "https://errors.example.com/console"
    source, key = services.source_create(name="Billing")
    assert key.dsn == f"https://{key.public_key}@errors.example.com/console/{source.pk}"
