"""The alerting admin: rules and their errors, alert actions through services, silences, channels, the log, seeds."""

import importlib
import json
from datetime import timedelta

import pytest
from django.apps import apps
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from incidents.alerting.transports.base import MASK
from incidents.models import (
    Alert,
    AlertRule,
    ErrorType,
    Notification,
    NotificationChannel,
    Severity,
    Silence,
)
from tests.factories import firing_alert
from tests.support import assert_delivery_enqueued, delivery_tasks, message_texts

pytestmark = pytest.mark.django_db

ALERTS = reverse("admin:incidents_alert_changelist")
RULES = reverse("admin:incidents_alertrule_changelist")
CHANNELS = reverse("admin:incidents_notificationchannel_changelist")
SILENCES = reverse("admin:incidents_silence_changelist")
NOTIFICATIONS = reverse("admin:incidents_notification_changelist")


def form_errors(response) -> dict:
    return response.context["adminform"].form.errors


# Pages


@pytest.mark.parametrize(
    "url",
    [
        RULES,
        reverse("admin:incidents_alertrule_add"),
        ALERTS,
        SILENCES,
        reverse("admin:incidents_silence_add"),
        CHANNELS,
        reverse("admin:incidents_notificationchannel_add"),
        NOTIFICATIONS,
    ],
)
def test_every_alerting_list_and_add_form_loads_for_a_superuser(admin_client, rule, url):
    firing_alert(rule, labels={"source": 1})
    Silence.objects.create(rule=rule, ends_at=timezone.now() + timedelta(hours=1), comment="deploy", created_by="x")
    assert admin_client.get(url).status_code == 200


def test_the_pages_of_a_rule_an_alert_a_silence_a_channel_and_a_notification_load(admin_client, rule, channel):
    alert = firing_alert(rule)
    silence = Silence.objects.create(ends_at=timezone.now() + timedelta(hours=1), comment="deploy", created_by="x")
    for model, pk in (
        ("alertrule", rule.pk),
        ("alert", alert.pk),
        ("silence", silence.pk),
        ("notificationchannel", channel.pk),
        ("notification", alert.notifications.get().pk),
    ):
        assert admin_client.get(reverse(f"admin:incidents_{model}_change", args=[pk])).status_code == 200


# Rules


def rule_form(**overrides) -> dict:
    """What the add form posts for a valid count rule; an override of None leaves the field out."""
    data = {
        "name": "Timeouts",
        "enabled": "on",
        "description": "",
        "target": "events",
        "source": "",
        "error_type": "",
        "category": "",
        "min_severity": "",
        "environment": "",
        "breaker": "",
        "value": "count",
        "window_minutes": "5",
        "comparator": "gt",
        "warning_threshold": "3",
        "critical_threshold": "",
        "resolve_threshold": "",
        "pending_for": "0",
        "keep_firing_for": "0",
        "cooldown": "3600",
        "group_by": "[]",
        "send_resolved": "on",
        "summary_template": "{{ rule }}: {{ value }} (threshold {{ threshold }})",
        "runbook_template": "",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def test_a_valid_rule_posted_to_the_add_form_is_saved_with_its_channels(admin_client, channel):
    timeouts = ErrorType.objects.get(code="NETWORK_TIMEOUT")
    response = admin_client.post(
        reverse("admin:incidents_alertrule_add"),
        rule_form(error_type=timeouts.pk, group_by='["source"]', channels=[channel.pk], resolve_threshold="1"),
    )
    assert response.status_code == 302
    saved = AlertRule.objects.get(name="Timeouts")
    assert (saved.error_type, saved.group_by, saved.resolve_threshold) == (timeouts, ["source"], 1.0)
    assert list(saved.channels.all()) == [channel]


@pytest.mark.parametrize(
    "overrides, field, expected",
    [
        ({"group_by": "not json"}, "group_by", "Enter a valid JSON."),
        ({"group_by": '["team"]'}, "group_by", "unknown group keys ['team']"),
        ({"group_by": "5"}, "group_by", "group_by must be a JSON list of names"),
        ({"group_by": '{"source": 1}'}, "group_by", "group_by must be a JSON list of names"),
        ({"resolve_threshold": "20"}, "resolve_threshold", "must be at or below the firing threshold 3.0"),
        (
            {"comparator": "lt", "warning_threshold": "10", "resolve_threshold": "5"},
            "resolve_threshold",
            "must be at or above the firing threshold 10.0",
        ),
        ({"window_minutes": "0"}, "window_minutes", "must be from 1 to 129600 minutes (90 days)"),
        ({"window_minutes": "129601"}, "window_minutes", "must be from 1 to 129600 minutes (90 days)"),
        ({"value": "ratio", "group_by": '["incident"]'}, "group_by", "group it by source or error type"),
        ({"cooldown": "-5"}, "cooldown", "greater than or equal to 0"),
        ({"summary_template": "{% if %}"}, "summary_template", "template error"),
        ({"runbook_template": "{{ value|no_such_filter }}"}, "runbook_template", "template error"),
        (
            {"runbook_template": "{% include 'missing.txt' %}"},
            "runbook_template",
            "Invalid block tag on line 1: 'include'",
        ),
        ({"warning_threshold": ""}, "warning_threshold", "set a warning or a critical threshold"),
        ({"critical_threshold": "2"}, "critical_threshold", "must be at or above the warning threshold"),
        ({"value": "ratio", "warning_threshold": "150"}, "warning_threshold", "a ratio is a percentage"),
    ],
)
def test_the_rule_form_shows_each_error_on_the_field_at_fault(admin_client, overrides, field, expected):
    response = admin_client.post(reverse("admin:incidents_alertrule_add"), rule_form(**overrides))
    assert response.status_code == 200
    errors = form_errors(response)
    assert any(expected in message for message in errors.get(field, [])), errors
    assert not AlertRule.objects.filter(name="Timeouts").exists()


def test_a_heartbeat_rule_without_a_source_is_refused_on_the_source_field(admin_client):
    response = admin_client.post(
        reverse("admin:incidents_alertrule_add"),
        rule_form(target="absence", heartbeat="on", warning_threshold="30"),
    )
    assert "choose the source" in form_errors(response)["source"][0]


def test_the_rule_form_explains_its_fields(admin_client):
    content = admin_client.get(reverse("admin:incidents_alertrule_add")).content.decode()
    for text in ("Value and window", "Thresholds", "Timing", "Routing", "hysteresis", "default for", "labels.source"):
        assert text in content


def test_the_rule_list_shows_each_rules_firing_and_pending_alerts_and_worst_severity(admin_client, rule):
    firing_alert(rule, group_key="source=1", severity=Severity.MEDIUM)
    firing_alert(rule, group_key="source=2", severity=Severity.CRITICAL)
    Alert.objects.create(rule=rule, group_key="source=3", state=Alert.State.PENDING, severity=Severity.HIGH)
    Alert.objects.create(rule=rule, group_key="source=4", state=Alert.State.RESOLVED, severity=Severity.CRITICAL)
    quiet = AlertRule.objects.create(name="Quiet rule", warning_threshold=1)
    content = admin_client.get(RULES, {"q": "Checkout"}).content.decode()
    assert "2 firing, 1 pending" in content
    assert 'class="sev-badge sev-critical"' in content
    assert f"?rule__id__exact={rule.pk}" in content
    content = admin_client.get(RULES, {"q": quiet.name}).content.decode()
    assert "firing" not in content and "sev-badge" not in content


def test_the_rule_list_runs_the_same_queries_for_1_and_for_10_rules_with_alerts(admin_client, channel):
    def queries_for_the_list() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(RULES, {"enabled__exact": "1"}).status_code == 200
        return len(captured)

    for index in range(10):
        made = AlertRule.objects.create(name=f"rule {index}", warning_threshold=1)
        made.channels.add(channel)
        firing_alert(made)
        if index == 0:
            one = queries_for_the_list()
    assert queries_for_the_list() == one


# Alert actions


def run_action(admin_client, capture, action: str, *alerts):
    with capture(execute=False) as callbacks:
        response = admin_client.post(
            ALERTS, {"action": action, "_selected_action": [alert.pk for alert in alerts]}, follow=True
        )
    return response, callbacks


def test_acknowledging_a_firing_alert_queues_an_acknowledged_notification_delivered_after_commit(
    admin_client, django_capture_on_commit_callbacks, rule, channel, settings
):
    alert = firing_alert(rule)
    response, callbacks = run_action(admin_client, django_capture_on_commit_callbacks, "acknowledge", alert)
    alert.refresh_from_db()
    assert alert.acknowledged_at is not None and alert.acknowledged_by == "user:admin"
    queued = Notification.objects.get(alert=alert, event="acknowledged")
    assert (queued.channel, queued.status) == (channel, Notification.Status.QUEUED)
    assert "Acknowledged: 1 alert, 1 notification queued." in message_texts(response)
    assert_delivery_enqueued(callbacks, [queued.pk], settings)


def test_an_alert_action_reports_each_alert_it_could_not_change(admin_client, django_capture_on_commit_callbacks, rule):
    firing = firing_alert(rule, group_key="source=1")
    resolved = Alert.objects.create(rule=rule, group_key="source=2", state=Alert.State.RESOLVED)
    inactive = Alert.objects.create(rule=rule, group_key="source=3", state=Alert.State.INACTIVE)
    response, _ = run_action(
        admin_client, django_capture_on_commit_callbacks, "acknowledge", firing, resolved, inactive
    )
    texts = message_texts(response)
    assert texts[0] == "Acknowledged: 1 alert, 1 notification queued."
    assert (
        f"(alert {resolved.pk}) not changed: only a firing alert can be acknowledged; this one is resolved"
        in (texts[1])
    )
    assert (
        f"(alert {inactive.pk}) not changed: only a firing alert can be acknowledged; this one is inactive"
        in (texts[2])
    )
    resolved.refresh_from_db()
    assert resolved.acknowledged_at is None


def test_resolving_a_notified_alert_queues_a_resolved_notification(
    admin_client, django_capture_on_commit_callbacks, rule, settings
):
    alert = firing_alert(rule)
    _, callbacks = run_action(admin_client, django_capture_on_commit_callbacks, "resolve", alert)
    alert.refresh_from_db()
    assert alert.state == Alert.State.RESOLVED and alert.resolved_at is not None
    assert (alert.resolved_by, alert.acknowledged_by) == ("user:admin", "")
    queued = Notification.objects.get(alert=alert, event="resolved")
    assert queued.message["event"] == "resolved"
    assert_delivery_enqueued(callbacks, [queued.pk], settings)


def test_resolving_a_pending_alert_queues_nothing_and_enqueues_no_delivery(
    admin_client, django_capture_on_commit_callbacks, rule
):
    pending = Alert.objects.create(rule=rule, state=Alert.State.PENDING, active_at=timezone.now())
    response, callbacks = run_action(admin_client, django_capture_on_commit_callbacks, "resolve", pending)
    pending.refresh_from_db()
    assert pending.state == Alert.State.RESOLVED
    assert not pending.notifications.exists()
    for callback in callbacks:
        callback()
    assert delivery_tasks() == []
    assert message_texts(response) == ["Resolved: 1 alert."]


def test_silencing_for_an_hour_holds_the_alerts_rule_and_labels(admin_client, django_capture_on_commit_callbacks, rule):
    alert = firing_alert(rule, group_key="source=7", labels={"source": 7})
    before = timezone.now()
    run_action(admin_client, django_capture_on_commit_callbacks, "silence_1h", alert)
    silence = Silence.objects.get()
    assert (silence.rule, silence.matchers, silence.created_by) == (rule, {"source": "7"}, "user:admin")
    assert before + timedelta(minutes=59) < silence.ends_at <= timezone.now() + timedelta(hours=1)
    assert silence.applies_to(alert, timezone.now())


def test_alerts_cannot_be_added_edited_or_deleted_by_hand(admin_client, rule):
    alert = firing_alert(rule)
    change = reverse("admin:incidents_alert_change", args=[alert.pk])
    assert admin_client.get(reverse("admin:incidents_alert_add")).status_code == 403
    assert admin_client.post(change, {"state": "resolved"}).status_code == 403
    assert admin_client.post(reverse("admin:incidents_alert_delete", args=[alert.pk]), {"post": "yes"}).status_code == (
        403
    )
    alert.refresh_from_db()
    assert alert.state == Alert.State.FIRING


def test_a_user_who_may_only_view_alerts_is_offered_no_actions(client, django_user_model, rule):
    from django.contrib.auth.models import Permission

    viewer = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_alert"))
    client.force_login(viewer)
    firing_alert(rule)
    response = client.get(ALERTS)
    assert response.status_code == 200
    assert "action_checkbox" not in response.content.decode()


def test_the_alert_list_names_sources_and_types_in_its_groups(admin_client, rule, source):
    timeouts = ErrorType.objects.get(code="NETWORK_TIMEOUT")
    firing_alert(rule, group_key="x", labels={"source": source.pk, "error_type": timeouts.pk})
    content = admin_client.get(ALERTS).content.decode()
    assert f"source={source.name}, error_type=NETWORK_TIMEOUT" in content


def test_the_alert_page_shows_only_its_newest_notifications(admin_client, rule, channel):
    alert = firing_alert(rule)
    start = timezone.now() - timedelta(days=1)
    for minute in range(55):
        Notification.objects.create(
            alert=alert,
            channel=channel,
            event="firing",
            severity=Severity.MEDIUM,
            message={},
            status=Notification.Status.SENT,
            created_at=start + timedelta(minutes=minute),
            error=f"attempt at minute {minute}",
        )
    response = admin_client.get(reverse("admin:incidents_alert_change", args=[alert.pk]))
    shown = list(response.context["inline_admin_formsets"][0].formset.get_queryset())
    assert len(shown) == 50
    assert shown[0].event == "firing" and shown[0].error == ""  # the original notification, sent 9 minutes ago
    content = response.content.decode()
    assert "attempt at minute 6</p>" in content and "attempt at minute 54</p>" in content
    assert "attempt at minute 5</p>" not in content


# Silences


def silence_form(**overrides) -> dict:
    data = {
        "comment": "database upgrade",
        "rule": "",
        "matchers": '{"source": "3"}',
        "starts_at_0": "2030-01-01",
        "starts_at_1": "10:00:00",
        "ends_at_0": "2030-01-01",
        "ends_at_1": "12:00:00",
        "weekdays": "[]",
        "daily_start": "",
        "daily_minutes": "",
    }
    data.update(overrides)
    return data


def test_a_silence_added_in_the_admin_is_signed_by_whoever_added_it(admin_client, rule):
    response = admin_client.post(reverse("admin:incidents_silence_add"), silence_form(rule=rule.pk))
    assert response.status_code == 302
    silence = Silence.objects.get()
    assert (silence.created_by, silence.rule, silence.matchers) == ("user:admin", rule, {"source": "3"})


@pytest.mark.parametrize(
    "overrides, field, expected",
    [
        ({"ends_at_1": "09:00:00"}, "ends_at", "must be after the start"),
        ({"daily_start": "22:00"}, "daily_minutes", "needs both its start and its length"),
        ({"daily_start": "22:00", "daily_minutes": "2000"}, "daily_minutes", "from 1 to 1440"),
        ({"weekdays": "[8]"}, "weekdays", "ISO weekdays from 1 (Monday) to 7 (Sunday)"),
        ({"weekdays": "[1, 2]"}, "daily_start", "weekdays apply to a daily window"),
        ({"matchers": '["source"]'}, "matchers", "JSON object of label names to values"),
    ],
)
def test_the_silence_form_names_the_field_at_fault(admin_client, overrides, field, expected):
    response = admin_client.post(reverse("admin:incidents_silence_add"), silence_form(**overrides))
    errors = form_errors(response)
    assert any(expected in message for message in errors.get(field, [])), errors
    assert not Silence.objects.exists()


def test_the_silence_list_marks_the_silences_active_now(admin_client):
    now = timezone.now()
    Silence.objects.create(starts_at=now - timedelta(hours=1), ends_at=now + timedelta(hours=1), comment="now on")
    Silence.objects.create(starts_at=now - timedelta(hours=3), ends_at=now - timedelta(hours=2), comment="over")
    outside = (now + timedelta(hours=6)).time()  # a daily window that starts six hours from now, for an hour
    Silence.objects.create(
        starts_at=now - timedelta(days=1),
        ends_at=now + timedelta(days=7),
        daily_start=outside,
        daily_minutes=60,
        comment="nightly",
    )
    response = admin_client.get(SILENCES)
    active = {
        row.comment: response.context["cl"].model_admin.active_now(row) for row in response.context["cl"].result_list
    }
    assert active == {"now on": True, "over": False, "nightly": False}
    assert f"{outside:%H:%M} UTC for 60 min" in response.content.decode()


# Channels


def channel_form(**overrides) -> dict:
    data = {
        "name": "pager",
        "kind": "pagerduty",
        "enabled": "on",
        "config": '{"routing_key": "' + "r" * 32 + '"}',
        "min_severity": str(Severity.HIGH),
        "default_for": '["CRITICAL"]',
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def test_the_channel_form_lists_the_config_keys_of_every_kind(admin_client, channel):
    content = admin_client.get(reverse("admin:incidents_notificationchannel_add")).content.decode()
    for key in ("<code>url</code> (required)", "<code>routing_key</code> (required)", "<code>receiver</code>"):
        assert key in content
    for key in ("<code>to</code> (required)", "<code>secret</code>", "<code>headers</code>"):
        assert key in content
    page = admin_client.get(reverse("admin:incidents_notificationchannel_change", args=[channel.pk])).content.decode()
    assert '<li class="selected"><strong>Webhook (JSON)</strong><ul><li><code>url</code> (required)' in page


def test_a_valid_channel_is_saved(admin_client):
    response = admin_client.post(reverse("admin:incidents_notificationchannel_add"), channel_form())
    assert response.status_code == 302
    saved = NotificationChannel.objects.get(name="pager")
    assert (saved.kind, saved.default_for, saved.min_severity) == ("pagerduty", ["CRITICAL"], Severity.HIGH)


@pytest.mark.parametrize(
    "overrides, field, expected",
    [
        ({"config": "{}"}, "config", "routing_key: is required"),
        ({"config": '{"routing_key": "short"}'}, "config", "routing_key"),
        ({"kind": "slack", "config": '{"url": "ftp://hooks.example.com/x"}'}, "config", "url"),
        ({"config": '{"routing_key": "' + "r" * 32 + '", "colour": "red"}'}, "config", "colour: is not a pagerduty"),
        ({"config": "[1]"}, "config", "must be a mapping"),
        ({"default_for": '["URGENT"]'}, "default_for", "unknown severities ['URGENT']"),
        ({"default_for": "5"}, "default_for", "default_for must be a JSON list of names"),
    ],
)
def test_the_channel_form_shows_each_error_on_the_field_at_fault(admin_client, overrides, field, expected):
    response = admin_client.post(reverse("admin:incidents_notificationchannel_add"), channel_form(**overrides))
    assert response.status_code == 200
    errors = form_errors(response)
    assert any(expected in message for message in errors.get(field, [])), errors
    assert not NotificationChannel.objects.filter(name="pager").exists()


def test_sending_a_test_notification_queues_one_delivered_after_commit(
    admin_client, django_capture_on_commit_callbacks, channel, settings
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = admin_client.post(CHANNELS, {"action": "send_test", "_selected_action": [channel.pk]}, follow=True)
    queued = Notification.objects.get(channel=channel)
    assert (queued.event, queued.status, queued.alert) == ("test", Notification.Status.QUEUED, None)
    assert "user:admin" in queued.message["summary"]
    assert message_texts(response) == ["Test notification queued for 1 channel."]
    assert_delivery_enqueued(callbacks, [queued.pk], settings)


def test_a_disabled_channel_is_not_sent_a_test(admin_client, django_capture_on_commit_callbacks, channel):
    NotificationChannel.objects.filter(pk=channel.pk).update(enabled=False, disabled_reason="failed 3 times")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = admin_client.post(CHANNELS, {"action": "send_test", "_selected_action": [channel.pk]}, follow=True)
    assert not Notification.objects.exists() and callbacks == []
    assert message_texts(response) == ["Not sent to disabled channels (ops-hook): enable them again first."]


def test_enabling_a_channel_again_clears_its_failures_and_reason(admin_client, channel):
    NotificationChannel.objects.filter(pk=channel.pk).update(
        enabled=False, consecutive_permanent_failures=3, disabled_reason="failed 3 times in a row: 410 Gone"
    )
    admin_client.post(CHANNELS, {"action": "enable_again", "_selected_action": [channel.pk]})
    channel.refresh_from_db()
    assert (channel.enabled, channel.consecutive_permanent_failures, channel.disabled_reason) == (True, 0, "")


def test_ticking_enabled_on_the_form_clears_the_failures_too_and_saving_keeps_delivery_fields(admin_client, channel):
    NotificationChannel.objects.filter(pk=channel.pk).update(
        enabled=False, consecutive_permanent_failures=3, disabled_reason="failed", last_error="410 Gone"
    )
    form = channel_form(name="ops-hook", kind="webhook", config='{"url": "https://hooks.example.com/ops"}')
    response = admin_client.post(reverse("admin:incidents_notificationchannel_change", args=[channel.pk]), form)
    assert response.status_code == 302
    channel.refresh_from_db()
    assert (channel.enabled, channel.consecutive_permanent_failures, channel.disabled_reason) == (True, 0, "")
    assert (channel.last_error, channel.default_for) == ("410 Gone", ["CRITICAL"])


def test_the_channel_page_never_shows_a_secret_and_saving_the_masked_form_keeps_every_secret(admin_client):
    secret, token = "s" * 24, "Bearer t0ken-123"
    config = {"url": "https://hooks.example.com/ops", "secret": secret, "headers": {"Authorization": token}}
    hook = NotificationChannel.objects.create(name="signed", kind="webhook", config=config)
    change = reverse("admin:incidents_notificationchannel_change", args=[hook.pk])
    page = admin_client.get(change).content.decode()
    assert secret not in page and "t0ken-123" not in page
    assert "https://hooks.example.com/ops" in page  # where it goes stays visible
    shown = response_form_config(admin_client, change)
    assert shown == {"url": config["url"], "secret": MASK, "headers": {"Authorization": MASK}}
    form = channel_form(name="signed", kind="webhook", config=json.dumps(shown))
    assert admin_client.post(change, form).status_code == 302
    hook.refresh_from_db()
    assert hook.config == config


def test_a_secret_typed_over_its_mask_replaces_the_stored_one(admin_client):
    pager = NotificationChannel.objects.create(name="pager", kind="pagerduty", config={"routing_key": "a" * 32})
    change = reverse("admin:incidents_notificationchannel_change", args=[pager.pk])
    assert response_form_config(admin_client, change) == {"routing_key": MASK}
    assert admin_client.post(change, channel_form(config='{"routing_key": "' + "b" * 32 + '"}')).status_code == 302
    pager.refresh_from_db()
    assert pager.config == {"routing_key": "b" * 32}


def response_form_config(admin_client, url: str) -> dict:
    return json.loads(admin_client.get(url).context["adminform"].form["config"].value())


# The notification log


def test_the_notification_log_lists_attempts_and_refuses_add_change_and_delete(admin_client, rule):
    alert = firing_alert(rule)
    notification = alert.notifications.get()
    response = admin_client.get(NOTIFICATIONS, {"status__exact": "sent"})
    content = response.content.decode()
    assert 'class="status-badge status-sent"' in content and "ops-hook" in content
    assert "delete_selected" not in content
    change = reverse("admin:incidents_notification_change", args=[notification.pk])
    assert admin_client.get(reverse("admin:incidents_notification_add")).status_code == 403
    assert admin_client.post(change, {"status": "failed"}).status_code == 403
    delete = reverse("admin:incidents_notification_delete", args=[notification.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    notification.refresh_from_db()
    assert notification.status == Notification.Status.SENT


# Seeded rules


@pytest.mark.parametrize(
    "code, window, figure",
    [
        ("DATA_EMPTY", 1, 10),
        ("DATA_EMPTY", 60, 100),
        ("DATA_EMPTY", 1440, 1000),
        ("API_RATE_LIMIT", 1, 5),
        ("API_RATE_LIMIT", 60, 20),
        ("API_RATE_LIMIT", 1440, 50),
        ("NETWORK_TIMEOUT", 1, 3),
        ("NETWORK_TIMEOUT", 60, 10),
        ("NETWORK_TIMEOUT", 1440, 30),
    ],
)
def test_each_error_type_has_a_seeded_rule_per_window_with_the_seeds_figure(code, window, figure):
    seeded = AlertRule.objects.get(error_type__code=code, window_minutes=window)
    assert (seeded.enabled, seeded.target, seeded.value, seeded.comparator) == (True, "events", "count", "gte")
    assert (seeded.warning_threshold, seeded.critical_threshold) == (figure, None)
    assert seeded.cooldown == (300 if window == 1 else 3600)
    assert "default_for" in seeded.description


@pytest.mark.parametrize(
    "name, fields",
    [
        (
            "More than 10 errors per minute",
            {"value": "count", "window_minutes": 1, "comparator": "gt", "warning_threshold": 10, "cooldown": 300},
        ),
        (
            "Any CRITICAL event",
            {"min_severity": Severity.CRITICAL, "value": "count", "comparator": "gte", "critical_threshold": 1},
        ),
        ("Any circuit breaker open", {"target": "breakers", "comparator": "gte", "critical_threshold": 1}),
        (
            "Failures above 10 % of a source's events",
            {
                "value": "ratio",
                "min_severity": Severity.HIGH,
                "group_by": ["source"],
                "window_minutes": 5,
                "comparator": "gt",
                "warning_threshold": 10,
            },
        ),
    ],
)
def test_the_seeds_other_alerts_are_seeded_rules(name, fields):
    seeded = AlertRule.objects.get(name=name)
    assert {field: getattr(seeded, field) for field in fields} == fields
    assert not seeded.channels.exists()


def test_every_seeded_rule_passes_its_own_validation_and_renders_its_summary():
    seeded = list(AlertRule.objects.all())
    assert len(seeded) == 13
    for each in seeded:
        each.full_clean()
        assert AlertRule.template_error(each.summary_template) is None


def test_the_seed_migration_removes_its_rules_by_name_and_puts_them_back():
    migration = importlib.import_module("incidents.migrations.0009_seed_alerting")
    mine = AlertRule.objects.create(name="My own rule", warning_threshold=1)
    migration.unseed(apps, None)
    assert list(AlertRule.objects.all()) == [mine]
    migration.seed(apps, None)
    assert AlertRule.objects.count() == 14
