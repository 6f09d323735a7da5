"""Every state change of alerts, silences and notification channels made by a person or a token.

The evaluation (evaluation.py) moves alerts by their values; admin actions and the API call these
functions to acknowledge, resolve or silence an alert, and to test or re-enable a channel.
"""

import logging
from datetime import timedelta
from uuid import uuid4

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from incidents.alerting.evaluation import notifications_create
from incidents.live import outbox
from incidents.models import Alert, Notification, NotificationChannel, Severity, Silence
from incidents.services import Actor, actor_name

logger = logging.getLogger(__name__)


class AlertTransitionError(ValueError):
    """The requested change does not apply to the alert in its current state."""


def _publish_alert(alert: Alert, change: str) -> None:
    """Tell the live stream an alert was acknowledged or resolved by hand."""
    outbox.publish(topic=f"alert.{change}", key=f"alert:{alert.pk}", payload=alert.live_payload())


def alert_acknowledge(*, alert: Alert, by: Actor) -> list[int]:
    """Stop a firing alert's repeat notifications; tell channels that got the firing one. Return those queued."""
    with transaction.atomic():
        locked = Alert.objects.select_for_update().select_related("rule").get(pk=alert.pk)
        if locked.state != Alert.State.FIRING:
            raise AlertTransitionError(f"only a firing alert can be acknowledged; this one is {locked.state}")
        if locked.acknowledged_at is not None:
            return []
        locked.acknowledged_at, locked.acknowledged_by = timezone.now(), actor_name(by)
        locked.save(update_fields=["acknowledged_at", "acknowledged_by"])
        _publish_alert(locked, "acknowledged")
        queued = (
            notifications_create(alert=locked, event="acknowledged", now=timezone.now()) if locked.was_notified else []
        )
    alert.refresh_from_db()
    return queued


def alert_resolve(*, alert: Alert, by: Actor) -> list[int]:
    """Resolve a pending or firing alert by hand; a sent firing notification is followed by a resolved one."""
    with transaction.atomic():
        locked = Alert.objects.select_for_update().select_related("rule").get(pk=alert.pk)
        if locked.state not in (Alert.State.PENDING, Alert.State.FIRING):
            raise AlertTransitionError(f"only a pending or firing alert can be resolved; this one is {locked.state}")
        notify = locked.state == Alert.State.FIRING and locked.rule.send_resolved and locked.was_notified
        now = timezone.now()
        locked.state, locked.resolved_at, locked.resolved_by = Alert.State.RESOLVED, now, actor_name(by)
        locked.save(update_fields=["state", "resolved_at", "resolved_by"])
        _publish_alert(locked, "resolved")
        queued = notifications_create(alert=locked, event="resolved", now=now) if notify else []
    alert.refresh_from_db()
    return queued


def alert_silence(*, alert: Alert, by: Actor, duration: timedelta, comment: str = "") -> Silence:
    """Hold notifications of this alert (its rule and labels) for `duration`."""
    now = timezone.now()
    return Silence.objects.create(
        rule=alert.rule,
        matchers={key: str(value) for key, value in (alert.labels or {}).items()},
        starts_at=now,
        ends_at=now + duration,
        comment=comment or f"silenced from alert {alert.pk}",
        created_by=actor_name(by),
    )


def channel_test(*, channel: NotificationChannel, by: Actor) -> Notification:
    """Queue a test message to `channel`; delivery sends it like any other."""
    message = {
        "event": "test",
        "dedup_key": f"test-{channel.pk}-{uuid4().hex[:12]}",
        "rule": "test notification",
        "severity": "info",
        "summary": f"Test notification from the incident console, sent by {actor_name(by)}",
        "runbook": "",
        "value": None,
        "threshold": None,
        "labels": {"channel": channel.name},
        "started_at": timezone.now().isoformat(),
        "ended_at": None,
        "url": settings.CONSOLE_URL,
    }
    return Notification.objects.create(channel=channel, event="test", severity=Severity.INFO, message=message)


def channel_enable(*, channel: NotificationChannel, by: Actor) -> NotificationChannel:
    """Turn a channel on again, clearing the permanent-failure count and the reason it was disabled."""
    NotificationChannel.objects.filter(pk=channel.pk).update(
        enabled=True, consecutive_permanent_failures=0, disabled_reason=""
    )
    logger.info("notification channel %s enabled again by %s", channel.name, actor_name(by))
    channel.refresh_from_db()
    return channel
