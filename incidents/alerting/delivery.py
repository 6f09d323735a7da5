"""Notification delivery: claim a queued attempt, send it through its channel's breaker, record the outcome.

Every attempt is a Notification row. A worker claims one with a conditional UPDATE (queued
and due, or sending with an expired lease), so two workers or two clusters never send the
same attempt, and an attempt whose worker died mid-send (kill -9) is claimed again once its
lease runs out. A transient failure (429, 5xx, network, breaker open) closes the attempt as
"retried" and queues the next one after an exponential backoff with full jitter, or after
Retry-After; short waits are slept in the same task, longer ones are left to the sweep. A
permanent failure closes it as "failed"; a channel that keeps failing permanently is
disabled with its last error, and the console reports that as an incident.
"""

import logging
import os
import random
import socket
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django_q.tasks import async_task

from incidents.alerting.transports.base import Message, TransportError
from incidents.fleet.reports import console_source, event_record
from incidents.models import Notification, NotificationChannel

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
BASE_DELAY = 1.0
MAX_DELAY = 600.0
# Waits up to this long are slept inside the delivering task; longer ones go back to the sweep.
INLINE_WAIT_SECONDS = 5.0
# A channel is disabled after this many permanent failures in a row.
DISABLE_AFTER = 3


def deliver(notification_ids: list[int]) -> int:
    """Deliver the given attempts (and their retries while the waits are short); return how many were sent."""
    sent = 0
    for notification_id in notification_ids:
        next_id: int | None = notification_id
        while next_id is not None:
            next_id, was_sent = _deliver_one(next_id)
            sent += was_sent
    return sent


def deliver_due(limit: int = 500) -> int:
    """Deliver every attempt that is due or whose claim expired (the sweep)."""
    now = timezone.now()
    due = Notification.objects.filter(_claimable(now)).order_by("next_attempt_at").values_list("id", flat=True)
    return deliver(list(due[:limit]))


def _claimable(now: datetime) -> Q:
    return Q(status=Notification.Status.QUEUED, next_attempt_at__lte=now) | Q(
        status=Notification.Status.SENDING, lease_until__lt=now
    )


def claim(notification_id: int) -> bool:
    """Take an attempt for this worker; the row count decides between racing workers."""
    now = timezone.now()
    lease = now + timedelta(seconds=settings.NOTIFICATION_LEASE_SECONDS)
    return bool(
        Notification.objects.filter(_claimable(now), pk=notification_id).update(
            # Read at claim time: a worker forked from a cluster's parent has its own pid.
            status=Notification.Status.SENDING,
            lease_until=lease,
            claimed_by=f"{socket.gethostname()}:{os.getpid()}",
        )
    )


def _deliver_one(notification_id: int) -> tuple[int | None, bool]:
    """Claim and send one attempt; return the next attempt to deliver now (if any) and whether it was sent."""
    if not claim(notification_id):
        return None, False
    notification = Notification.objects.select_related("channel", "alert").get(pk=notification_id)
    if _held(notification):
        _finish(notification, Notification.Status.HELD, error="acknowledged before it was sent")
        return None, False
    started = time.monotonic()
    try:
        delivery = _send(notification)
    except TransportError as error:
        return _failed(notification, error, started), False
    _finish(
        notification,
        Notification.Status.SENT,
        response_code=delivery.status_code,
        response=delivery.response,
        duration_ms=_elapsed_ms(started),
    )
    NotificationChannel.objects.filter(pk=notification.channel_id).update(consecutive_permanent_failures=0)
    return None, True


def _held(notification: Notification) -> bool:
    """A repeat firing notification of an alert acknowledged since it was queued is not sent."""
    alert = notification.alert
    return notification.event == "firing" and alert is not None and alert.acknowledged_at is not None


def _send(notification: Notification):
    return notification.channel.notify(_message(notification.message))


def _message(stored: dict) -> Message:
    """The Message a notification row stored (evaluation.message_for), datetimes parsed back."""
    times = {key: parse_datetime(stored[key]) if stored.get(key) else None for key in ("started_at", "ended_at")}
    return Message(**{**stored, **times})


def _failed(notification: Notification, error: TransportError, started: float) -> int | None:
    """Close a failed attempt; queue the next unless it failed for good. Return the next to deliver now."""
    last = notification.attempt >= MAX_ATTEMPTS
    status = Notification.Status.FAILED if error.permanent or last else Notification.Status.RETRIED
    with transaction.atomic():
        _finish(
            notification,
            status,
            response_code=error.status_code,
            error=str(error),
            duration_ms=_elapsed_ms(started),
        )
        _note_channel_failure(notification.channel, error)
        if status == Notification.Status.FAILED:
            return None
        wait = retry_delay(notification.attempt, error.retry_after)
        retry = Notification.objects.create(
            alert=notification.alert,
            channel=notification.channel,
            event=notification.event,
            severity=notification.severity,
            message=notification.message,
            attempt=notification.attempt + 1,
            next_attempt_at=timezone.now() + timedelta(seconds=wait),
        )
    if wait > INLINE_WAIT_SECONDS:
        return None
    time.sleep(wait)  # the backoff itself, not synchronisation: the retry is claimed like any other
    return retry.pk


def retry_delay(attempt: int, retry_after: float | None) -> float:
    """Seconds before the next attempt: what the receiver asked for, else exponential backoff with full jitter."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), MAX_DELAY)
    return random.uniform(0, min(MAX_DELAY, BASE_DELAY * 2 ** (attempt - 1)))


def _finish(notification: Notification, status: str, **fields) -> None:
    Notification.objects.filter(pk=notification.pk).update(
        status=status, finished_at=timezone.now(), lease_until=None, **_clip(fields)
    )


def _clip(fields: dict) -> dict:
    return {key: value[:1000] if isinstance(value, str) else value for key, value in fields.items()}


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _note_channel_failure(channel: NotificationChannel, error: TransportError) -> None:
    now = timezone.now()
    updates = {"last_error": str(error)[:1000], "last_error_at": now}
    if not error.permanent:
        NotificationChannel.objects.filter(pk=channel.pk).update(**updates)
        return
    NotificationChannel.objects.filter(pk=channel.pk).update(
        consecutive_permanent_failures=F("consecutive_permanent_failures") + 1, **updates
    )
    disabled = NotificationChannel.objects.filter(
        pk=channel.pk, enabled=True, consecutive_permanent_failures__gte=DISABLE_AFTER
    ).update(enabled=False, disabled_reason=f"failed {DISABLE_AFTER} times in a row: {error}"[:500])
    if disabled:
        transaction.on_commit(lambda: _report_disabled(channel.name, str(error)))


def _report_disabled(channel_name: str, error: str) -> None:
    """Make the disabled channel an incident of the console's own source, so someone sees it."""
    event = {
        "message": f"notification channel {channel_name} disabled after repeated permanent failures: {error}",
        "level": "error",
        "logger": "incidents.delivery",
        "tags": {"channel": channel_name},
        "fingerprint": ["notification-channel-disabled", channel_name],
    }
    event_record(source=console_source(), event=event)


def deliver_after_commit(notification_ids: list[int]) -> None:
    """Hand queued notifications to a worker once the transaction that queued them commits."""
    if not notification_ids:
        return
    ids = list(notification_ids)
    # robust: the change is committed either way, and the minute sweep delivers whatever a
    # broker outage left queued, so a failed enqueue must not turn the admin page into a 500.
    transaction.on_commit(lambda: async_task("incidents.tasks.deliver_notifications", ids), robust=True)
