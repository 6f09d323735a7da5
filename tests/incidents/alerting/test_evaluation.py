"""Alert rules evaluated from the rollups, the alert state machine, and notifications delivered to a receiver."""

from datetime import UTC, datetime, time, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from incidents import services, tasks
from incidents.alerting import delivery, evaluation
from incidents.alerting import services as alerting_services
from incidents.alerting.values import Rollups, measure
from incidents.ingest import pipeline
from incidents.ingest.normalize import normalize_native_event
from incidents.models import (
    Alert,
    AlertRule,
    ErrorEvent,
    Incident,
    Notification,
    NotificationChannel,
    Severity,
    Silence,
)
from resilience import process_runtime
from resilience.models import Breaker
from resilience.runtime.state import State
from tests.receivers import Reply
from tests.support import native_event

# Deliveries go through the console's breakers, which record their reports in the test's transaction.
pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("console_inline"),
]


@pytest.fixture(autouse=True)
def only_this_tests_rules():
    """The seeded rules would fire on these events too; each test states its own."""
    AlertRule.objects.all().delete()


def store(source, count: int, **fields) -> None:
    now = timezone.now()
    events = [
        normalize_native_event(native_event(message=f"timeout calling prices {i}", **fields), received_at=now)
        for i in range(count)
    ]
    pipeline.events_store(source=source, events=events, received_at=now)


def rule(channel=None, **fields) -> AlertRule:
    defaults = {"name": "errors", "window_minutes": 5, "comparator": "gt", "warning_threshold": 3, "cooldown": 3600}
    created = AlertRule.objects.create(**{**defaults, **fields})
    if channel is not None:
        created.channels.add(channel)
    return created


def digest_and_evaluate() -> None:
    """What the worker's digest task does: digest, then evaluate the rules the events touched, then deliver."""
    tasks.digest_events()


def test_a_count_rule_fires_once_the_digested_events_cross_it_and_notifies_the_receiver(
    source, receiver_channel, receiver
):
    errors = rule(receiver_channel, source=source)
    store(source, 3)
    digest_and_evaluate()
    assert not Alert.objects.filter(state="firing").exists()  # 3 is not > 3
    store(source, 2)
    digest_and_evaluate()
    alert = Alert.objects.get(rule=errors)
    assert (alert.state, alert.value, alert.severity) == ("firing", 5.0, Severity.MEDIUM)
    body = receiver.last.json()
    assert (body["event"], body["rule"], body["value"], body["dedup_key"]) == (
        "firing",
        "errors",
        5.0,
        f"alert-{alert.pk}",
    )
    assert Notification.objects.get().status == "sent"


def test_a_burst_is_evaluated_once_per_digest_and_notified_once(source, receiver_channel, receiver):
    rule(receiver_channel, source=source)
    store(source, 1000)
    digest_and_evaluate()
    digest_and_evaluate()  # nothing new: the cooldown holds the repeat
    assert len(receiver.requests) == 1
    assert Notification.objects.count() == 1


def test_critical_threshold_raises_the_severity(source, receiver_channel, receiver):
    rule(receiver_channel, source=source, critical_threshold=10)
    store(source, 12)
    digest_and_evaluate()
    assert Alert.objects.get().severity == Severity.CRITICAL
    assert receiver.last.json()["severity"] == "critical"


def test_pending_for_holds_the_alert_until_it_has_lasted(source, receiver_channel, receiver):
    errors = rule(receiver_channel, source=source, pending_for=60)
    store(source, 5)
    digest_and_evaluate()
    assert Alert.objects.get().state == "pending" and not receiver.requests
    evaluation.evaluate_rules([errors.pk], now=timezone.now() + timedelta(seconds=61))
    assert Alert.objects.get().state == "firing"


def test_hysteresis_keeps_it_firing_until_the_value_is_past_the_resolve_threshold(source, receiver_channel, receiver):
    errors = rule(receiver_channel, source=source, warning_threshold=10, resolve_threshold=5, value="count")
    store(source, 11)
    digest_and_evaluate()
    alert = Alert.objects.get()
    assert alert.state == "firing"
    later = timezone.now() + timedelta(minutes=4)
    # The same 11 events are still in the window, so build the value with a later, shorter window instead.
    AlertRule.objects.filter(pk=errors.pk).update(warning_threshold=12, resolve_threshold=5)
    delivery.deliver(evaluation.evaluate_rules([errors.pk], now=later))
    assert Alert.objects.get().state == "firing"  # 11 is under 12 but not back under 5
    AlertRule.objects.filter(pk=errors.pk).update(warning_threshold=12, resolve_threshold=12)
    delivery.deliver(evaluation.evaluate_rules([errors.pk], now=later))
    assert Alert.objects.get().state == "resolved"
    assert [r.json()["event"] for r in receiver.requests] == ["firing", "resolved"]


def test_a_quiet_window_resolves_after_keep_firing_for(source, receiver_channel, receiver):
    errors = rule(receiver_channel, source=source, window_minutes=1, keep_firing_for=300)
    store(source, 5)
    digest_and_evaluate()
    assert Alert.objects.get().state == "firing"
    evaluation.evaluate_rules([errors.pk], now=timezone.now() + timedelta(minutes=3))
    assert Alert.objects.get().state == "firing"  # quiet, but kept firing for 5 minutes
    delivery.deliver(evaluation.evaluate_rules([errors.pk], now=timezone.now() + timedelta(minutes=6)))
    assert Alert.objects.get().state == "resolved"
    assert receiver.last.json()["event"] == "resolved"


def test_the_cooldown_spaces_repeats_and_an_acknowledgement_stops_them(source, receiver_channel, receiver):
    errors = rule(receiver_channel, source=source, cooldown=600)
    store(source, 5)
    digest_and_evaluate()
    soon, later = timezone.now() + timedelta(minutes=5), timezone.now() + timedelta(minutes=11)
    AlertRule.objects.filter(pk=errors.pk).update(window_minutes=60)  # keep the events in the window
    delivery.deliver(evaluation.evaluate_rules([errors.pk], now=soon))
    assert len(receiver.requests) == 1
    delivery.deliver(evaluation.evaluate_rules([errors.pk], now=later))
    assert len(receiver.requests) == 2
    delivery.deliver(alerting_services.alert_acknowledge(alert=Alert.objects.get(), by="user:ops"))
    assert receiver.last.json()["event"] == "acknowledged"
    delivery.deliver(evaluation.evaluate_rules([errors.pk], now=later + timedelta(minutes=20)))
    assert len(receiver.requests) == 3


def test_a_silence_holds_the_firing_notification_and_its_end_releases_it(source, receiver_channel, receiver):
    errors = rule(receiver_channel, source=source, group_by=["source"])
    now = timezone.now()
    silence = Silence.objects.create(
        rule=errors,
        matchers={"source": str(source.pk)},
        ends_at=now + timedelta(hours=1),
        comment="deploy",
        created_by="ops",
    )
    store(source, 5)
    digest_and_evaluate()
    assert Alert.objects.get().state == "firing" and not receiver.requests  # evaluated, not notified
    Silence.objects.filter(pk=silence.pk).update(ends_at=now + timedelta(seconds=1))
    AlertRule.objects.filter(pk=errors.pk).update(window_minutes=60)
    delivery.deliver(evaluation.evaluate_rules([errors.pk], now=now + timedelta(minutes=2)))
    assert receiver.last.json()["event"] == "firing"


def test_a_resolved_notification_follows_a_sent_firing_one_even_when_silenced_meanwhile(
    source, receiver_channel, receiver
):
    errors = rule(receiver_channel, source=source, window_minutes=1)
    store(source, 5)
    digest_and_evaluate()
    now = timezone.now()
    Silence.objects.create(rule=errors, ends_at=now + timedelta(hours=2), comment="noise", created_by="ops")
    delivery.deliver(evaluation.evaluate_rules([errors.pk], now=now + timedelta(minutes=3)))
    assert [r.json()["event"] for r in receiver.requests] == ["firing", "resolved"]


def test_a_recurring_maintenance_window_applies_on_its_days_only(source):
    errors = rule(source=source)
    alert = Alert.objects.create(rule=errors, state="firing")
    monday_night = datetime(2026, 11, 23, 23, 30, tzinfo=UTC)  # a Monday
    window = Silence(
        rule=errors,
        starts_at=monday_night - timedelta(days=30),
        ends_at=monday_night + timedelta(days=30),
        weekdays=[1],
        daily_start=time(23, 0),
        daily_minutes=120,
        comment="weekly maintenance",
        created_by="ops",
    )
    assert window.applies_to(alert, monday_night)
    assert window.applies_to(alert, monday_night + timedelta(hours=1))  # past midnight, still in it
    assert not window.applies_to(alert, monday_night + timedelta(hours=2))
    assert not window.applies_to(alert, monday_night + timedelta(days=1))


def test_flapping_holds_notifications_until_it_settles():
    assert evaluation.flap_percent("0" * 21) == 0
    assert evaluation.flap_percent("01" * 10 + "0") == 100
    # Recent changes weigh more than old ones.
    assert evaluation.flap_percent("0101" + "0" * 17) < evaluation.flap_percent("0" * 17 + "0101")


def test_an_alternating_condition_is_marked_flapping(source, receiver_channel, receiver):
    errors = rule(receiver_channel, source=source, window_minutes=60, cooldown=0)
    store(source, 5)
    digest_and_evaluate()
    now = timezone.now()
    for step in range(12):  # the threshold moves under and over the value: the condition flips each time
        AlertRule.objects.filter(pk=errors.pk).update(warning_threshold=3 if step % 2 else 30, resolve_threshold=None)
        delivery.deliver(evaluation.evaluate_rules([errors.pk], now=now + timedelta(minutes=step + 1)))
    alert = Alert.objects.get()
    assert alert.flapping
    sent_before = len(receiver.requests)
    AlertRule.objects.filter(pk=errors.pk).update(warning_threshold=3)
    delivery.deliver(evaluation.evaluate_rules([errors.pk], now=now + timedelta(minutes=20)))
    assert len(receiver.requests) == sent_before  # held while flapping


def test_distinct_users_and_incidents_come_from_the_rollups(source):
    users = rule(name="users", source=source, value="users", warning_threshold=1)
    incidents = rule(name="incidents", source=source, value="incidents", warning_threshold=1)
    now = timezone.now()
    events = [
        normalize_native_event(native_event(fingerprint=[msg], user={"id": uid}), received_at=now)
        for msg, uid in [
            ("payment declined", 1),
            ("payment declined", 2),
            ("inventory missing", 2),
            ("inventory missing", 3),
        ]
    ]
    pipeline.events_store(source=source, events=events, received_at=now)
    digest_and_evaluate()
    assert Incident.objects.count() == 2
    values = dict(Alert.objects.values_list("rule__name", "value"))
    assert values == {"users": 3.0, "incidents": 2.0}
    assert {users.pk, incidents.pk} == set(Alert.objects.values_list("rule_id", flat=True))


def test_a_ratio_rule_compares_a_selection_with_all_of_the_sources_events(source):
    rule(name="high share", source=source, value="ratio", min_severity=Severity.HIGH, warning_threshold=10)
    store(source, 9, level="warning")
    store(source, 1, level="fatal")
    digest_and_evaluate()
    [measured] = measure(AlertRule.objects.get(name="high share"), Rollups(timezone.now()))
    assert measured.value == pytest.approx(10.0)
    assert not Alert.objects.exists()  # 10 % is not above 10 %
    store(source, 1, level="fatal")
    digest_and_evaluate()
    assert Alert.objects.get().value == pytest.approx(100 * 2 / 11)


def test_a_quiet_source_fires_an_absence_rule(source):
    quiet = rule(name="quiet", target="absence", source=source, warning_threshold=10, value="count")
    evaluation.evaluate_rules([quiet.pk], now=timezone.now() + timedelta(minutes=11))
    assert Alert.objects.get(rule=quiet).state == "firing"
    services.source_heartbeat(source=source)
    heartbeat = rule(name="heartbeat", target="absence", heartbeat=True, source=source, warning_threshold=10)
    evaluation.evaluate_rules([heartbeat.pk])
    assert not Alert.objects.filter(rule=heartbeat, state="firing").exists()


def test_an_open_breaker_fires_a_breaker_rule(db):
    breakers = rule(name="breakers", target="breakers", comparator="gte", warning_threshold=None, critical_threshold=1)
    process_runtime.breaker("payments-api").force_open(reason="test")
    evaluation.evaluate_rules([breakers.pk])
    alert = Alert.objects.get(rule=breakers)
    assert (alert.state, alert.severity, alert.labels) == ("firing", Severity.CRITICAL, {"breaker": "payments-api"})


def test_without_channels_a_rule_routes_by_severity(source, receiver):
    pager = NotificationChannel.objects.create(
        name="pager", kind="webhook", config={"url": receiver.url("/pager")}, default_for=["CRITICAL"]
    )
    NotificationChannel.objects.create(
        name="chat", kind="webhook", config={"url": receiver.url("/chat")}, default_for=["HIGH", "MEDIUM"]
    )
    assert evaluation.Routing().channels_for(rule(), Severity.CRITICAL) == [pager]
    assert [c.name for c in evaluation.Routing().channels_for(AlertRule(name="x"), Severity.MEDIUM)] == ["chat"]
    assert evaluation.Routing().channels_for(AlertRule(name="y"), Severity.LOW) == []


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"resolve_threshold": 20}, "resolve_threshold"),
        ({"window_minutes": 0}, "window_minutes"),
        ({"group_by": ["customer"]}, "group_by"),
        ({"summary_template": "{% if %}"}, "summary_template"),
        ({"runbook_template": "{{ value|nosuchfilter }}"}, "runbook_template"),
        ({"critical_threshold": 1}, "critical_threshold"),
        ({"warning_threshold": None}, "warning_threshold"),
    ],
)
def test_a_bad_rule_is_refused_naming_the_field(fields, field):
    bad = AlertRule(**{"name": "bad", "comparator": "gt", "warning_threshold": 10, **fields})
    with pytest.raises(ValidationError) as refused:
        bad.full_clean()
    assert field in refused.value.message_dict


def test_a_transient_failure_is_retried_with_backoff_and_every_attempt_logged(source, receiver_channel, receiver):
    receiver.reply = Reply(status=503, headers={"Retry-After": "30"})
    rule(receiver_channel, source=source)
    store(source, 5)
    digest_and_evaluate()
    first = Notification.objects.get(attempt=1)
    assert (first.status, first.response_code) == ("retried", 503)
    retry = Notification.objects.get(attempt=2)
    assert retry.status == "queued" and retry.next_attempt_at >= first.finished_at + timedelta(seconds=29)
    assert delivery.deliver_due() == 0  # not due yet: Retry-After is honoured
    receiver.reply = Reply(status=200)
    Notification.objects.filter(pk=retry.pk).update(next_attempt_at=timezone.now())  # 30 s later
    assert delivery.deliver_due() == 1
    assert Notification.objects.get(pk=retry.pk).status == "sent"
    assert all(n.duration_ms is not None for n in Notification.objects.exclude(status="queued"))


@pytest.mark.django_db(
    transaction=True, serialized_rollback=True
)  # the incident is reported once the disabling commits
def test_a_channel_failing_permanently_is_disabled_and_says_so_as_an_incident(
    source, receiver_channel, receiver, digest
):
    receiver.reply = Reply(status=404)
    for _ in range(delivery.DISABLE_AFTER):
        delivery.deliver([alerting_services.channel_test(channel=receiver_channel, by="user:ops").pk])
    receiver_channel.refresh_from_db()
    assert not receiver_channel.enabled and "404" in receiver_channel.last_error and receiver_channel.disabled_reason
    assert ErrorEvent.objects.filter(logger="incidents.delivery", tags__channel="ops-hook").exists()


def test_a_private_address_is_refused_unless_allow_listed(source, receiver, settings):
    settings.NOTIFICATION_ALLOWED_NETWORKS = []
    hook = NotificationChannel(name="internal", kind="webhook", config={"url": "http://10.0.0.5/hook"})
    with pytest.raises(ValidationError) as refused:
        hook.full_clean()
    assert "config" in refused.value.message_dict
    NotificationChannel.objects.create(name="sneaky", kind="webhook", config={"url": receiver.url()})
    notification = alerting_services.channel_test(channel=NotificationChannel.objects.get(name="sneaky"), by="user:ops")
    delivery.deliver([notification.pk])
    notification.refresh_from_db()
    assert notification.status == "failed" and not receiver.requests


def test_a_claimed_attempt_is_not_claimed_twice_and_an_expired_claim_is_taken_again(receiver_channel, settings):
    notification = alerting_services.channel_test(channel=receiver_channel, by="user:ops")
    assert delivery.claim(notification.pk)
    assert not delivery.claim(notification.pk)  # another worker loses the race
    settings.NOTIFICATION_LEASE_SECONDS = 0.1
    Notification.objects.filter(pk=notification.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    assert delivery.claim(notification.pk)  # its worker died mid-send: the next one takes it


def test_a_rule_grouped_by_incident_fires_once_per_incident(source, receiver_channel, receiver):
    rule(receiver_channel, source=source, comparator="gte", warning_threshold=1, group_by=["incident"])
    now = timezone.now()
    for name in ("payment declined", "inventory missing"):
        event = normalize_native_event(native_event(fingerprint=[name]), received_at=now)
        pipeline.events_store(source=source, events=[event], received_at=now)
        digest_and_evaluate()
    assert Alert.objects.filter(state="firing").count() == 2
    assert len({r.json()["dedup_key"] for r in receiver.requests}) == 2


def test_a_breaker_saved_in_admin_for_a_channel_governs_its_deliveries(receiver_channel, receiver):
    saved = Breaker(name=receiver_channel.breaker_name, window_size=1, minimum_calls=1, failure_rate_threshold=100)
    saved.full_clean()  # "notify:ops-hook" is a name the admin form accepts
    saved.save()
    process_runtime.apply_saved_config(process_runtime.runtime())
    receiver.reply = Reply(status=503)
    delivery.deliver([alerting_services.channel_test(channel=receiver_channel, by="user:ops").pk])
    # One failed call opens it, as saved: the default needs ten calls in its window first.
    assert process_runtime.breaker(receiver_channel.breaker_name).state == State.OPEN


def test_deliveries_go_through_the_channels_breaker(receiver_channel, receiver):
    process_runtime.breaker(receiver_channel.breaker_name).force_open(reason="receiver down for maintenance")
    notification = alerting_services.channel_test(channel=receiver_channel, by="user:ops")
    delivery.deliver([notification.pk])
    notification.refresh_from_db()
    assert notification.status == "retried" and "circuit breaker notify:ops-hook is open" in notification.error
    assert not receiver.requests
    # Each retry meets the open breaker too: none reaches the receiver, none is lost.
    assert all("is open" in n.error for n in Notification.objects.exclude(status="queued"))
    assert Notification.objects.count() > 1 and not Notification.objects.filter(status="sent").exists()


# Templates, bounded

# 125,000 iterations (the full language would render them all; ten such loops nested in 500 characters are 10^12).
NESTED_LOOPS = "".join(f'{{% for c{i} in "{"x" * 50}" %}}' for i in range(3)) + "." + "{% endfor %}" * 3


@pytest.mark.parametrize(
    ("template", "words"),
    [
        (NESTED_LOOPS, ["too costly", "at most 1000 iterations"]),
        ('{{ rule|ljust:"1000000" }}', ["'ljust'", "the filters"]),
        ('{{ value|floatformat:"100000" }}', ["at most 20 decimal places"]),
        ("{% debug %}", ["'debug'", "the tags"]),
        ("{% load static %}{% get_static_prefix %}", ["'load'"]),
    ],
)
def test_a_template_that_could_run_or_grow_without_bound_is_refused_on_save_naming_the_field(template, words):
    for field in AlertRule.TEMPLATE_FIELDS:
        bad = AlertRule(name="bad", comparator="gt", warning_threshold=10, **{field: template})
        with pytest.raises(ValidationError) as refused:
            bad.full_clean()
        message = " ".join(refused.value.message_dict[field])
        assert all(word in message for word in words), message


def test_the_api_refuses_a_costly_template_naming_the_field(api_as):
    body = {"name": "loops", "window_minutes": 5, "comparator": "gt", "warning_threshold": 3}
    response = api_as("admin").post(
        "/api/v1/alert-rules/", {**body, "runbook_template": NESTED_LOOPS}, content_type="application/json"
    )
    assert response.status_code == 400, response.content
    assert response.json()["field"] == "runbook_template"
    assert "too costly" in str(response.json()["errors"]["runbook_template"])
    assert not AlertRule.objects.filter(name="loops").exists()


def test_a_template_stored_around_validation_is_sent_in_the_default_wording_and_logged(
    source, receiver_channel, receiver, caplog
):
    errors = rule(receiver_channel, source=source)
    AlertRule.objects.filter(pk=errors.pk).update(summary_template=NESTED_LOOPS, runbook_template="{% debug %}")
    store(source, 5)
    with caplog.at_level("WARNING", logger="incidents.alerting.evaluation"):
        digest_and_evaluate()
    body = receiver.last.json()
    assert (body["summary"], body["runbook"]) == ("errors: 5.0 (threshold 3.0)", "")
    assert "summary_template" in caplog.text and "runbook_template" in caplog.text


def test_a_template_cannot_change_the_alerts_labels(source, receiver_channel, receiver):
    rule(
        receiver_channel,
        source=source,
        group_by=["source"],
        summary_template="{{ labels.clear }}{{ labels.source }} is noisy",
    )
    store(source, 5)
    digest_and_evaluate()
    body = receiver.last.json()
    assert body["labels"] == {"source": str(source.pk)}
    assert body["summary"] == f"{source.pk} is noisy"
