"""The alerting API: rules validated as in the admin, alert actions through services, silences, channels, the log."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from incidents.alerting.transports.base import MASK
from incidents.models import Alert, AlertRule, Notification, NotificationChannel, Severity, Silence
from tests.api_support import patch_json, post_json
from tests.factories import firing_alert
from tests.support import assert_delivery_enqueued

pytestmark = pytest.mark.django_db

RULES = "/api/v1/alert-rules/"
ALERTS = "/api/v1/alerts/"
SILENCES = "/api/v1/silences/"
CHANNELS = "/api/v1/notification-channels/"
LOG = "/api/v1/notification-log/"


def results(response) -> list[dict]:
    assert response.status_code == 200, response.content
    return response.json()["results"]


def names(response) -> set[str]:
    return {row["name"] for row in results(response)}


RULE_BODY = {
    "name": "Payment errors",
    "target": "events",
    "value": "count",
    "window_minutes": 10,
    "comparator": "gte",
    "warning_threshold": 5,
    "critical_threshold": 20,
    "group_by": ["source"],
    "min_severity": "high",
    "summary_template": "{{ rule }} at {{ value }}",
}


# Rules


def test_an_admin_creates_reads_changes_and_deletes_a_rule(api_as, channel, source):
    admin = api_as("admin")
    created = post_json(admin, RULES, {**RULE_BODY, "source": source.slug, "channels": [channel.pk]})
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["source"] == source.slug
    assert body["channels"] == [channel.pk]
    assert body["min_severity"] == "high"
    assert body["alerts"] == {"firing": 0, "pending": 0, "severity": None}
    rule = AlertRule.objects.get(pk=body["id"])
    assert (rule.warning_threshold, rule.critical_threshold, rule.min_severity) == (5, 20, Severity.HIGH)

    url = f"{RULES}{rule.pk}/"
    assert admin.get(url).json()["name"] == "Payment errors"
    changed = patch_json(admin, url, {"critical_threshold": 50, "channels": [], "enabled": False})
    assert changed.status_code == 200, changed.content
    rule.refresh_from_db()
    assert rule.critical_threshold == 50
    assert not rule.enabled
    assert list(rule.channels.all()) == []

    assert admin.delete(url).status_code == 204
    assert not AlertRule.objects.filter(pk=rule.pk).exists()


def test_a_rule_shows_how_many_of_its_alerts_are_firing_and_pending(api_as, rule):
    firing_alert(rule, group_key="a", severity=Severity.CRITICAL)
    firing_alert(rule, group_key="b", severity=Severity.MEDIUM)
    Alert.objects.create(rule=rule, group_key="c", state=Alert.State.PENDING, severity=Severity.MEDIUM)
    Alert.objects.create(rule=rule, group_key="d", state=Alert.State.RESOLVED, severity=Severity.CRITICAL)

    listed = [row for row in results(api_as("viewer").get(RULES, {"limit": 500})) if row["id"] == rule.pk]
    detail = api_as("viewer").get(f"{RULES}{rule.pk}/").json()

    expected = {"firing": 2, "pending": 1, "severity": "critical"}
    assert listed[0]["alerts"] == expected
    assert detail["alerts"] == expected


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"critical_threshold": 1}, "critical_threshold"),  # below the warning threshold 3 of a rising rule
        ({"window_minutes": 0}, "window_minutes"),
        ({"window_minutes": 90 * 24 * 60 + 1}, "window_minutes"),
        ({"summary_template": "{% if %}"}, "summary_template"),
        ({"runbook_template": "{% include 'no/such/template.html' %}"}, "runbook_template"),
        ({"resolve_threshold": 10}, "resolve_threshold"),  # above the firing threshold of a rising rule
        ({"group_by": ["host"]}, "group_by"),
        ({"warning_threshold": None}, "warning_threshold"),  # an events rule needs a threshold
        ({"source": "no-such-source"}, "source"),
        ({"channels": [10**30]}, "channels"),
    ],
)
def test_a_patch_that_would_make_a_rule_invalid_is_refused_whole_naming_the_field(api_as, rule, change, field):
    response = patch_json(api_as("admin"), f"{RULES}{rule.pk}/", {"name": "Renamed", "enabled": False, **change})

    assert response.status_code == 400, response.content
    assert response.json()["field"] == field
    assert field in response.json()["errors"]
    rule.refresh_from_db()
    assert (rule.name, rule.enabled, rule.window_minutes, rule.critical_threshold) == ("Checkout errors", True, 5, None)


def test_a_rule_with_a_taken_name_is_refused_naming_the_name(api_as, rule):
    response = post_json(api_as("admin"), RULES, {**RULE_BODY, "name": rule.name})

    assert response.status_code == 400
    assert response.json()["field"] == "name"
    assert AlertRule.objects.filter(name=rule.name).count() == 1


def test_a_viewer_and_a_triager_read_rules_but_cannot_change_them(api_as, rule):
    for role in ("viewer", "triager"):
        client = api_as(role)
        assert client.get(f"{RULES}{rule.pk}/").status_code == 200
        assert post_json(client, RULES, RULE_BODY).status_code == 403
        assert patch_json(client, f"{RULES}{rule.pk}/", {"enabled": False}).status_code == 403
        assert client.delete(f"{RULES}{rule.pk}/").status_code == 403
    rule.refresh_from_db()
    assert rule.enabled
    assert not AlertRule.objects.filter(name=RULE_BODY["name"]).exists()


def test_a_client_without_a_role_is_refused_the_rules(api_as, rule):
    assert api_as("none").get(RULES).status_code == 403


def test_rules_filter_by_enabled_target_and_source(api_as, rule, source):
    AlertRule.objects.create(name="Checkout quiet", target="absence", source=source, window_minutes=30, enabled=False)
    viewer = api_as("viewer")

    assert names(viewer.get(RULES, {"source": source.slug})) == {"Checkout quiet"}
    assert "Checkout quiet" in names(viewer.get(RULES, {"enabled": "false", "target": "absence", "limit": 500}))
    assert "Checkout quiet" not in names(viewer.get(RULES, {"enabled": "true", "limit": 500}))
    assert "Checkout errors" not in names(viewer.get(RULES, {"target": "absence", "limit": 500}))


@pytest.mark.parametrize(
    ("url", "query", "field"),
    [
        (RULES, {"colour": "red"}, "colour"),
        (RULES, {"target": "weather"}, "target"),
        (ALERTS, {"state": "exploded"}, "state"),
        (ALERTS, {"severity": "apocalyptic"}, "severity"),
        (SILENCES, {"active": "sometimes"}, "active"),
        (ALERTS, {"flapping": "maybe"}, "flapping"),
        (ALERTS, {"rule": "first"}, "rule"),
        (LOG, {"event": "exploded"}, "event"),
        (SILENCES, {"ordering": "comment"}, "ordering"),
    ],
)
def test_an_unknown_filter_or_value_is_refused_naming_it(api_as, url, query, field):
    response = api_as("admin").get(url, query)

    assert response.status_code == 400
    assert response.json()["field"] == field


# Alerts


def test_alerts_filter_by_state_severity_rule_and_flapping(api_as, rule):
    other = AlertRule.objects.create(name="Other", window_minutes=5, warning_threshold=1)
    critical = firing_alert(rule, group_key="a", severity=Severity.CRITICAL)
    medium = firing_alert(rule, group_key="b", severity=Severity.MEDIUM)
    pending = Alert.objects.create(rule=other, state=Alert.State.PENDING, severity=Severity.MEDIUM, flapping=True)
    viewer = api_as("viewer")

    def ids(**query) -> set[int]:
        return {row["id"] for row in results(viewer.get(ALERTS, query))}

    assert ids(state="firing") == {critical.pk, medium.pk}
    assert ids(severity="critical") == {critical.pk}
    assert ids(rule=other.pk) == {pending.pk}
    assert ids(flapping="true") == {pending.pk}
    shown = viewer.get(f"{ALERTS}{critical.pk}/").json()
    assert (shown["rule_name"], shown["state"], shown["severity"]) == ("Checkout errors", "firing", "critical")


def test_acknowledging_a_notified_firing_alert_queues_an_acknowledged_notification_after_commit(
    api_as, rule, channel, settings, django_capture_on_commit_callbacks
):
    alert = firing_alert(rule)

    with django_capture_on_commit_callbacks() as callbacks:
        response = post_json(api_as("triager"), f"{ALERTS}{alert.pk}/acknowledge/", {})

    assert response.status_code == 200, response.content
    assert response.json()["acknowledged_by"] == "user:triager-user"
    queued = Notification.objects.get(alert=alert, event="acknowledged")
    assert (queued.channel, queued.status) == (channel, Notification.Status.QUEUED)
    assert_delivery_enqueued(callbacks, [queued.pk], settings)


def test_acknowledging_an_alert_that_is_not_firing_is_a_conflict_naming_the_state(api_as, rule):
    alert = Alert.objects.create(rule=rule, state=Alert.State.RESOLVED, severity=Severity.MEDIUM)

    response = post_json(api_as("triager"), f"{ALERTS}{alert.pk}/acknowledge/", {})

    assert response.status_code == 409
    assert response.json()["field"] == "state"
    assert "resolved" in response.json()["error"]
    alert.refresh_from_db()
    assert alert.acknowledged_at is None


def test_a_triager_resolves_a_firing_alert_and_its_channels_are_told(
    api_as, rule, settings, django_capture_on_commit_callbacks
):
    alert = firing_alert(rule)

    with django_capture_on_commit_callbacks() as callbacks:
        response = post_json(api_as("triager"), f"{ALERTS}{alert.pk}/resolve/", {})

    assert response.status_code == 200
    assert (response.json()["state"], response.json()["resolved_by"]) == ("resolved", "user:triager-user")
    queued = Notification.objects.get(alert=alert, event="resolved")
    assert_delivery_enqueued(callbacks, [queued.pk], settings)
    assert post_json(api_as("triager"), f"{ALERTS}{alert.pk}/resolve/", {}).status_code == 409


def test_a_viewer_reads_alerts_but_cannot_act_on_them(api_as, rule):
    alert = firing_alert(rule)
    viewer = api_as("viewer")

    assert viewer.get(f"{ALERTS}{alert.pk}/").status_code == 200
    for action in ("acknowledge", "resolve"):
        assert post_json(viewer, f"{ALERTS}{alert.pk}/{action}/", {}).status_code == 403
    assert post_json(viewer, f"{ALERTS}{alert.pk}/silence/", {"minutes": 60}).status_code == 403
    alert.refresh_from_db()
    assert (alert.state, alert.acknowledged_at) == (Alert.State.FIRING, None)
    assert not Silence.objects.exists()


def test_a_triager_silences_an_alert_by_its_rule_and_labels_for_some_minutes(api_as, rule):
    alert = firing_alert(rule, group_key="source=3", labels={"source": 3})

    response = post_json(api_as("triager"), f"{ALERTS}{alert.pk}/silence/", {"minutes": 90, "comment": "deploy"})

    assert response.status_code == 201, response.content
    silence = Silence.objects.get(pk=response.json()["id"])
    assert (silence.rule, silence.matchers, silence.comment) == (rule, {"source": "3"}, "deploy")
    assert silence.created_by == "user:triager-user"
    assert abs(silence.ends_at - (timezone.now() + timedelta(minutes=90))) < timedelta(minutes=1)
    assert response.json()["active"] is True


@pytest.mark.parametrize("body", [{"minutes": 0}, {"minutes": 43_201}, {"minutes": "soon"}, {}])
def test_a_silence_of_an_alert_needs_from_1_to_43200_minutes(api_as, rule, body):
    alert = firing_alert(rule)

    response = post_json(api_as("triager"), f"{ALERTS}{alert.pk}/silence/", body)

    assert response.status_code == 400
    assert response.json()["field"] == "minutes"
    assert not Silence.objects.exists()


# Silences


def silence_body(**fields) -> dict:
    now = timezone.now()
    return {
        "comment": "maintenance",
        "starts_at": now.isoformat(),
        "ends_at": (now + timedelta(hours=2)).isoformat(),
        **fields,
    }


def test_a_triager_creates_changes_and_deletes_a_silence_recorded_as_theirs(api_as, rule):
    triager = api_as("triager")
    body = silence_body(rule=rule.pk, matchers={"source": "3"}, weekdays=[5, 1, 1], daily_start="22:00")
    created = post_json(triager, SILENCES, {**body, "daily_minutes": 120, "created_by": "someone-else"})

    assert created.status_code == 201, created.content
    silence = Silence.objects.get(pk=created.json()["id"])
    assert silence.created_by == "user:triager-user"
    assert (silence.rule, silence.weekdays, silence.daily_minutes) == (rule, [1, 5], 120)

    url = f"{SILENCES}{silence.pk}/"
    assert api_as("viewer").get(url).json()["comment"] == "maintenance"
    changed = patch_json(triager, url, {"comment": "longer maintenance", "daily_minutes": 240})
    assert changed.status_code == 200, changed.content
    silence.refresh_from_db()
    assert (silence.comment, silence.daily_minutes, silence.created_by) == (
        "longer maintenance",
        240,
        "user:triager-user",
    )
    assert triager.delete(url).status_code == 204
    assert not Silence.objects.filter(pk=silence.pk).exists()


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"ends_at": "2000-01-01T00:00:00Z"}, "ends_at"),  # before the start
        ({"daily_start": "22:00"}, "daily_minutes"),  # a daily window needs its length
        ({"daily_start": "22:00", "daily_minutes": 1441}, "daily_minutes"),
        ({"weekdays": [1]}, "daily_start"),  # weekdays apply to a daily window
        ({"weekdays": [8]}, "weekdays.0"),
        ({"matchers": {"source": ["a", "b"]}}, "matchers"),
        ({"matchers": {"source": "a\x00b"}}, "matchers"),
        ({"matchers": ["source"]}, "matchers"),
        ({"rule": 10**30}, "rule"),
    ],
)
def test_an_invalid_silence_is_refused_naming_the_field(api_as, fields, field):
    response = post_json(api_as("triager"), SILENCES, silence_body(**fields))

    assert response.status_code == 400, response.content
    assert response.json()["field"] == field
    assert not Silence.objects.exists()


def test_a_patch_that_would_make_a_silence_invalid_changes_nothing(api_as):
    silence = Silence.objects.create(
        ends_at=timezone.now() + timedelta(hours=1), comment="deploy", created_by="user:someone"
    )

    response = patch_json(
        api_as("triager"), f"{SILENCES}{silence.pk}/", {"comment": "x", "ends_at": "2000-01-01T00:00Z"}
    )

    assert response.status_code == 400
    assert response.json()["field"] == "ends_at"
    silence.refresh_from_db()
    assert silence.comment == "deploy"


def test_a_viewer_reads_silences_but_cannot_create_or_change_them(api_as):
    silence = Silence.objects.create(ends_at=timezone.now() + timedelta(hours=1), comment="deploy", created_by="x")
    viewer = api_as("viewer")

    assert [row["id"] for row in results(viewer.get(SILENCES))] == [silence.pk]
    assert post_json(viewer, SILENCES, silence_body()).status_code == 403
    assert patch_json(viewer, f"{SILENCES}{silence.pk}/", {"comment": "x"}).status_code == 403
    assert Silence.objects.get().comment == "deploy"


def test_silences_filter_by_whether_they_are_in_force_now(api_as):
    now = timezone.now()
    current = Silence.objects.create(ends_at=now + timedelta(hours=1), comment="now", created_by="x")
    ended = Silence.objects.create(
        starts_at=now - timedelta(hours=2), ends_at=now - timedelta(hours=1), comment="ended", created_by="x"
    )
    future = Silence.objects.create(
        starts_at=now + timedelta(hours=1), ends_at=now + timedelta(hours=2), comment="later", created_by="x"
    )
    viewer = api_as("viewer")

    active = results(viewer.get(SILENCES, {"active": "true"}))
    assert [(row["id"], row["active"]) for row in active] == [(current.pk, True)]
    assert {row["id"] for row in results(viewer.get(SILENCES, {"active": "false"}))} == {ended.pk, future.pk}
    assert parse_datetime(active[0]["ends_at"]) == current.ends_at


# Notification channels


def test_an_admin_reads_channels_with_their_secrets_masked(api_as, channel):
    listed = results(api_as("admin").get(CHANNELS))

    assert [row["name"] for row in listed] == ["ops-hook"]
    config = listed[0]["config"]
    assert config == {"url": "https://hooks.example.com/ops", "secret": MASK, "headers": {"Authorization": MASK}}
    assert api_as("admin").get(f"{CHANNELS}{channel.pk}/").json()["config"]["secret"] == MASK


def test_only_admins_see_notification_channels(api_as, channel):
    assert api_as("triager").get(CHANNELS).status_code == 403
    assert api_as("viewer").get(f"{CHANNELS}{channel.pk}/").status_code == 404


# The notification log


def test_an_admin_reads_the_notification_log_newest_first_filtered_by_channel_alert_and_status(api_as, rule, channel):
    alert = firing_alert(rule)
    other = NotificationChannel.objects.create(name="other", kind="webhook", config={"url": "https://example.com/h"})
    failed = Notification.objects.create(
        alert=alert, channel=other, event="firing", severity=Severity.MEDIUM, message={}, status="failed", error="410"
    )
    sent = Notification.objects.get(alert=alert, channel=channel)
    admin = api_as("admin")

    assert [row["id"] for row in results(admin.get(LOG))] == [failed.pk, sent.pk]
    assert [row["id"] for row in results(admin.get(LOG, {"channel": channel.pk}))] == [sent.pk]
    assert [row["id"] for row in results(admin.get(LOG, {"status": "failed", "alert": alert.pk}))] == [failed.pk]
    shown = admin.get(f"{LOG}{sent.pk}/").json()
    assert (shown["channel_name"], shown["event"], shown["status"], shown["response_code"]) == (
        "ops-hook",
        "firing",
        "sent",
        200,
    )
    assert shown["message"]["rule"] == "Checkout errors"


def test_only_admins_read_the_notification_log(api_as, rule):
    firing_alert(rule)

    assert api_as("triager").get(LOG).status_code == 403
    assert api_as("viewer").get(f"{LOG}{Notification.objects.get().pk}/").status_code == 404
