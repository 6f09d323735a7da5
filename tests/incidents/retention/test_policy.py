"""The retention policy refuses periods that would lose what counts, charts or alert rules read."""

import pytest
from django.core.exceptions import ValidationError

from incidents.models import RetentionPolicy
from tests.factories import alert_rule

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite_too]


def errors_of(**fields) -> dict:
    policy = RetentionPolicy.current()
    for name, value in fields.items():
        setattr(policy, name, value)
    with pytest.raises(ValidationError) as raised:
        policy.full_clean()
    return raised.value.message_dict


def test_the_defaults_are_valid_and_stored_as_the_one_row():
    policy = RetentionPolicy.current()
    policy.full_clean()
    assert (policy.pk, policy.event_days, policy.minute_rollup_days, policy.hour_rollup_days) == (1, 30, 14, 400)


def test_a_period_outside_one_day_to_ten_years_is_refused_naming_the_field_and_the_limit():
    assert errors_of(event_days=0)["event_days"] == ["must be from 1 to 3650 days"]
    assert errors_of(timeline_days=4000)["timeline_days"] == ["must be from 1 to 3650 days"]


def test_minute_rollups_must_outlast_the_longest_enabled_rule_window():
    alert_rule(name="weekly", window_minutes=10 * 1440)

    assert errors_of(minute_rollup_days=7)["minute_rollup_days"] == [
        "must be at least 10 days: an alert rule's window covers 10 days"
    ]


def test_hour_rollups_must_cover_ninety_days_and_outlast_minute_rollups():
    assert errors_of(hour_rollup_days=30)["hour_rollup_days"] == [
        "must be at least 90 days: charts and summaries cover up to 90 days"
    ]
    assert errors_of(minute_rollup_days=120, hour_rollup_days=100)["hour_rollup_days"] == [
        "must be longer than the minute rollups' 120 days"
    ]


def test_the_cap_must_leave_room_for_the_newest_events_beside_the_first():
    assert errors_of(events_per_incident=5)["events_per_incident"] == ["must be at least 10 (or empty: no cap)"]
    assert errors_of(events_per_incident=20, first_events_per_incident=20)["first_events_per_incident"] == [
        "must be below the cap of 20 events"
    ]


def test_an_alert_rule_window_longer_than_the_minute_rollups_is_refused():
    rule = alert_rule(window_minutes=15 * 1440)

    with pytest.raises(ValidationError) as raised:
        rule.full_clean()

    assert raised.value.message_dict["window_minutes"] == [
        "must be at most 20160 minutes: minute rollups, which windows read, are kept 14 days (retention policy)"
    ]
