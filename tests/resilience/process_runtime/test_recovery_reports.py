"""Recovery outcomes of the console's runtime reach the live stream: at once on the "recovery"
topic, then as the incidents the digest groups them into (one per policy and outcome)."""

import pytest

from incidents.live.outbox import newest_id
from incidents.models import Incident, LiveMessage
from resilience.exceptions import ApiError

# The console's runtime records its reports in the test's transaction (console_inline), as it makes them.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("console_inline")]


def messages_about(incident: Incident, after: int) -> list[tuple[str, str, int]]:
    rows = LiveMessage.objects.filter(id__gt=after, incident=incident).order_by("id")
    return [(row.topic, row.key, row.payload["id"]) for row in rows]


def test_a_recovered_outcome_is_published_as_its_incident(console_inline, digest):
    runtime = console_inline.runtime()
    console_inline.apply_saved_config(runtime)  # the seeded data-feed-retry policy
    attempts = []

    def fetch_feed():
        attempts.append(1)
        if len(attempts) == 1:
            raise TimeoutError("feed")
        return "rows"

    before = newest_id()
    assert runtime.recovery.execute(fetch_feed, component="data_feed") == "rows"
    console_inline.flush_reports()
    digest()

    outcome = LiveMessage.objects.get(id__gt=before, topic="recovery.outcome")
    assert (outcome.key, outcome.payload["outcome"], outcome.payload["component"]) == (
        "recovery:data-feed-retry",
        "recovered",
        "data_feed",
    )
    incident = Incident.objects.get(source__slug="console", title__contains="data-feed-retry recovered")
    assert messages_about(incident, before) == [("incident.created", f"incident:{incident.pk}", incident.pk)]
    message = LiveMessage.objects.get(id__gt=before, incident=incident)
    assert (message.source_id, message.payload["title"]) == (incident.source_id, incident.title)


def test_a_recovery_alert_and_the_failure_after_it_are_published(console_inline, digest):
    runtime = console_inline.runtime()
    console_inline.apply_saved_config(runtime)  # the seeded auth-failure-alert policy

    def fetch_prices():
        raise ApiError("unauthorized", status_code=401)

    before = newest_id()
    with pytest.raises(ApiError):
        runtime.recovery.execute(fetch_prices, component="prices")
    console_inline.flush_reports()
    digest()

    published = LiveMessage.objects.filter(id__gt=before, topic__startswith="recovery.").order_by("id")
    assert [(row.topic, row.key, row.payload["outcome"]) for row in published] == [
        ("recovery.alert", "recovery:auth-failure-alert", "alert"),
        ("recovery.outcome", "recovery:auth-failure-alert", "failed"),
    ]
    alert = Incident.objects.get(source__slug="console", title__contains="auth-failure-alert alert")
    failed = Incident.objects.get(source__slug="console", title__contains="auth-failure-alert failed")
    for incident in (alert, failed):
        assert messages_about(incident, before) == [("incident.created", f"incident:{incident.pk}", incident.pk)]
    assert LiveMessage.objects.get(id__gt=before, incident=alert).payload["severity"] == 50  # critical, per policy
