"""Summaries and charts over windows longer than a day: read from the hour rollups, so they keep their
totals when the minute rollups older than their retention are purged."""

from datetime import timedelta

import pytest
from django.utils import timezone

from incidents.ingest import pipeline
from incidents.ingest.normalize import normalize_native_event
from incidents.models import MAX_WINDOW_MINUTES, ErrorType, Severity, SourceHour, SourceMinute
from tests.support import native_event

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite_too]

THIRTY_DAYS = 30 * 1440
DENIED = {"type": "PermissionError", "value": "403 Forbidden", "module": "builtins"}


def store_at(source, *events: tuple[timedelta, dict]) -> None:
    """Store events that happened the given time ago, as ingest does."""
    now = timezone.now()
    normalized = [
        normalize_native_event(native_event(timestamp=(now - ago).isoformat(), **fields), received_at=now)
        for ago, fields in events
    ]
    pipeline.events_store(source=source, events=normalized, received_at=now)


@pytest.fixture
def month_of_events(source, digest) -> int:
    """Nine events over the last 20 days, of two categories, severities and environments; return how many."""
    store_at(
        source,
        (timedelta(days=20), {}),
        (timedelta(days=20, minutes=7), {"level": "fatal"}),
        (timedelta(days=16), {"exception": DENIED, "environment": "staging"}),
        (timedelta(days=15, hours=3), {}),
        (timedelta(days=10), {"exception": DENIED}),
        (timedelta(days=3), {"level": "fatal", "environment": "staging"}),
        (timedelta(hours=30), {}),
        (timedelta(minutes=5), {"exception": DENIED}),
        (timedelta(0), {}),
    )
    return digest()


def purge_minutes_older_than(days: int) -> int:
    """Delete minute rollups as the retention purge does; return how many rows went."""
    deleted, _ = SourceMinute.objects.filter(minute__lt=timezone.now() - timedelta(days=days)).delete()
    return deleted


def summary(api_as, minutes: int, **filters) -> dict:
    query = "&".join(f"{name}={value}" for name, value in {"minutes": minutes, **filters}.items())
    response = api_as("viewer").get(f"/api/v1/summary/?{query}")
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    return {key: data[key] for key in ("total_errors", "error_counts", "by_category", "by_severity")}


def hourly_stats(api_as, minutes: int, **filters) -> dict:
    query = "&".join(f"{name}={value}" for name, value in {"interval": "hour", "minutes": minutes, **filters}.items())
    response = api_as("viewer").get(f"/api/v1/stats/?{query}")
    assert response.status_code == 200, response.content
    body = response.json()
    # Only the buckets with events: the window's first and last hour move on if the clock turns an hour.
    return {
        "series": {point["time"]: point["count"] for point in body["series"] if point["count"]},
        "total": body["total"],
        "top_error_types": body["top_error_types"],
        "top_incidents": body["top_incidents"],
    }


def test_a_thirty_day_summary_counts_every_event_and_keeps_its_totals_when_old_minute_rollups_go(
    api_as, month_of_events
):
    before = summary(api_as, THIRTY_DAYS)
    assert before["total_errors"] == month_of_events == 9
    assert before["by_category"] == {"NETWORK": 6, "STORAGE": 3}
    assert before["by_severity"]["critical"] == 2
    staging = summary(api_as, THIRTY_DAYS, environment="staging")
    assert staging["total_errors"] == 2

    assert purge_minutes_older_than(14) == 4

    assert summary(api_as, THIRTY_DAYS) == before
    assert summary(api_as, THIRTY_DAYS, environment="staging") == staging


def test_a_thirty_day_hourly_chart_and_its_tops_are_the_same_after_old_minute_rollups_go(api_as, month_of_events):
    before = hourly_stats(api_as, THIRTY_DAYS)
    assert before["total"] == 9 and sum(before["series"].values()) == 9
    assert [row["count"] for row in before["top_error_types"]] == [6, 3]
    storage = hourly_stats(api_as, THIRTY_DAYS, category="STORAGE")
    assert storage["total"] == 3

    assert purge_minutes_older_than(14) == 4

    assert hourly_stats(api_as, THIRTY_DAYS) == before
    assert hourly_stats(api_as, THIRTY_DAYS, category="STORAGE") == storage


def test_an_hourly_chart_of_a_day_counts_the_minute_rollups_from_its_first_minute(api_as, month_of_events):
    # A day's chart is exact: its buckets add up to its total (hour rollups would count from the hour's start).
    before = hourly_stats(api_as, 1440)
    assert before["total"] == 2 == sum(before["series"].values())

    SourceMinute.objects.all().delete()

    assert hourly_stats(api_as, 1440)["series"] == {}


def test_windows_of_a_day_or_less_still_count_the_minute_rollups(api_as, month_of_events):
    # The minute rollups are the precise figures for short windows: without them nothing is counted.
    assert summary(api_as, 60)["total_errors"] == 2
    SourceMinute.objects.all().delete()
    assert summary(api_as, 60)["total_errors"] == 0
    assert summary(api_as, 1440)["total_errors"] == 0


def test_rows_folded_at_the_folded_hour_are_left_out_of_the_longest_window(api_as, month_of_events, source):
    before_summary, before_chart = summary(api_as, MAX_WINDOW_MINUTES), hourly_stats(api_as, MAX_WINDOW_MINUTES)
    SourceHour.objects.create(
        source=source,
        error_type=ErrorType.objects.get(code=before_chart["top_error_types"][0]["code"]),
        severity=Severity.HIGH,
        environment="production",
        hour=SourceHour.FOLDED_HOUR,
        count=1000,
    )
    assert summary(api_as, MAX_WINDOW_MINUTES) == before_summary
    assert hourly_stats(api_as, MAX_WINDOW_MINUTES) == before_chart
