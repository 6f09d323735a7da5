"""Every state change of sources, keys, events and incidents.

Views, admin actions, tasks and commands call these functions and nothing else
to change state; each incident change leaves a timeline entry naming its actor.
"""

import logging
import os
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import partial
from uuid import UUID, uuid4

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from incidents.ingest import storage
from incidents.ingest.classification import classify_and_group
from incidents.live import outbox
from incidents.models import (
    Alert,
    DigestRequest,
    Incident,
    IncidentActivity,
    IngestKey,
    Notification,
    NotificationChannel,
    Severity,
    Silence,
    Source,
)

Actor = AbstractBaseUser | str
"""Who changed something: a user, or a name such as "system:digest"."""

Status = Incident.Status
Kind = IncidentActivity.Kind


class IncidentTransitionError(ValueError):
    """The requested change does not apply to the incident in its current status."""


# Sources and keys


logger = logging.getLogger(__name__)


def source_create(
    *, name: str, slug: str = "", environments: Sequence[str] = (), rate_limit_per_minute: int | None = None
) -> tuple[Source, IngestKey]:
    """Create a source with its first ingest key."""
    source = Source(
        name=name,
        slug=slug or slugify(name),
        environments=list(environments),
        rate_limit_per_minute=rate_limit_per_minute,
    )
    source.full_clean()
    with transaction.atomic():
        source.save()
        key = IngestKey.objects.create(source=source, label="initial")
    return source, key


def ingest_key_create(*, source: Source, label: str = "") -> IngestKey:
    """Add an ingest key to a source."""
    return IngestKey.objects.create(source=source, label=label)


def ingest_key_rotate(*, key: IngestKey, grace: timedelta = timedelta(hours=24)) -> IngestKey:
    """Issue a replacement key; the old one keeps working for the grace period, then expires."""
    with transaction.atomic():
        old = IngestKey.objects.select_for_update().get(pk=key.pk)
        if not old.is_usable():
            raise ValueError("only a usable key can be rotated")
        old.expires_at = timezone.now() + grace
        old.save(update_fields=["expires_at"])
        return IngestKey.objects.create(source_id=old.source_id, label=f"rotated from {old.public_key[:8]}")


def ingest_key_revoke(*, key: IngestKey) -> None:
    """Stop a key from being accepted, at once."""
    IngestKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


# Events


def events_store(
    *, source: Source, events: Sequence[dict], received_at: datetime, error_type: str | None = None
) -> list[UUID]:
    """Classify and fingerprint canonical events, store them durably once per event_id, and ask for the digest.

    `error_type` classifies every event as that type, bypassing the rules (events the console makes).
    """
    classified = [classify_and_group(event, error_type=error_type) for event in events]
    classified_events_store(storage.EventWrite(source.pk, classified, received_at))
    return [event["event_id"] for event in events]


def classified_events_store(write: storage.EventWrite) -> None:
    """Store classified events on this thread's connection and ask for their digest once they are committed."""
    if storage.store_writes([write]):
        transaction.on_commit(digest_request)  # the digest must find them: after the caller's commit


def digest_request() -> None:
    """Ask for a digest of events just committed: one task is enqueued unless one is already waiting.

    The events are stored whatever happens here: at worst the once-a-minute schedule digests them.
    """
    if not settings.INGEST_WAKE_DIGEST:
        return
    try:
        if DigestRequest.ask():
            digest_enqueue()
    except Exception:
        logger.warning("could not ask for the digest; the schedule will run it", exc_info=True)


_process_broker: tuple[int, object] | None = None


def _broker():
    """This process's django-q broker, made once: `async_task` would build a new broker (a new Redis
    client and connection) for every wake-up, a third of an ingest request's time under load."""
    global _process_broker
    if _process_broker is None or _process_broker[0] != os.getpid():  # a forked worker makes its own
        from django_q.brokers import get_broker

        _process_broker = (os.getpid(), get_broker())
    return _process_broker[1]


def digest_enqueue() -> None:
    """Enqueue the digest task; if the broker cannot take it, the once-a-minute schedule digests instead.

    The events are already stored: a broker outage may delay their digest, never fail their ingest.
    """
    from django_q.tasks import async_task

    enqueue = partial(
        async_task, "incidents.tasks.digest_events", task_name="digest events", group="digest", broker=_broker()
    )
    try:
        from resilience.process_runtime import through_redis

        through_redis(enqueue)  # the Redis broker, when configured
    except Exception:
        logger.warning("could not enqueue the digest; the schedule will run it", exc_info=True)
        DigestRequest.take()  # no task is waiting after all: the next commit asks again


# Incident lifecycle


def _actor_fields(by: Actor) -> dict:
    if isinstance(by, str):
        return {"actor": by, "user": None}
    return {"actor": f"user:{by.get_username()}", "user": by}


def _transition(
    incident: Incident,
    *,
    to: str,
    kind: str,
    by: Actor,
    allowed_from: Sequence[str],
    detail: dict | None = None,
    **fields,
) -> Incident:
    """Move a locked incident to a new status and write the timeline entry."""
    with transaction.atomic():
        locked = Incident.objects.select_for_update().get(pk=incident.pk)
        if locked.status not in allowed_from:
            raise IncidentTransitionError(f"cannot move an incident that is {locked.status} to {to} ({kind})")
        now = timezone.now()
        previous = locked.status
        locked.status = to
        locked.status_changed_at = now
        for name, value in fields.items():
            setattr(locked, name, value)
        locked.save(update_fields=["status", "status_changed_at", *fields])
        IncidentActivity.objects.create(
            incident=locked,
            created_at=now,
            kind=kind,
            from_status=previous,
            to_status=to,
            detail=detail or {},
            **_actor_fields(by),
        )
        outbox.publish(
            topic="incident.updated",
            key=f"incident:{locked.pk}",
            payload=outbox.incident_payload(locked, change=kind, from_status=previous, actor=_actor_name(by)),
            source_id=locked.source_id,
            incident_id=locked.pk,
        )
    incident.refresh_from_db()
    return incident


_NO_MUTE = {"muted_until": None, "unmute_after_events": None, "unmute_window_minutes": None}


def incident_acknowledge(*, incident: Incident, by: Actor) -> Incident:
    """Mark an open or muted incident as being handled."""
    return _transition(
        incident,
        to=Status.ACKNOWLEDGED,
        kind=Kind.ACKNOWLEDGED,
        by=by,
        allowed_from=[Status.OPEN, Status.MUTED],
        **_NO_MUTE,
    )


def incident_resolve(*, incident: Incident, by: Actor) -> Incident:
    """Resolve an incident; a later event reopens it as regressed."""
    return _transition(
        incident,
        to=Status.RESOLVED,
        kind=Kind.RESOLVED,
        by=by,
        allowed_from=[Status.OPEN, Status.ACKNOWLEDGED, Status.MUTED],
        resolved_at=timezone.now(),
        regressed=False,
        **_NO_MUTE,
    )


def incident_reopen(*, incident: Incident, by: Actor) -> Incident:
    """Return an acknowledged, resolved or muted incident to open."""
    return _transition(
        incident,
        to=Status.OPEN,
        kind=Kind.REOPENED,
        by=by,
        allowed_from=[Status.ACKNOWLEDGED, Status.RESOLVED, Status.MUTED],
        resolved_at=None,
        **_NO_MUTE,
    )


def incident_mute(
    *,
    incident: Incident,
    by: Actor,
    duration: timedelta | None = None,
    until_events: int | None = None,
    within_minutes: int | None = None,
) -> Incident:
    """Mute an incident for a duration, until N events arrive within M minutes, or both (first wins)."""
    if (until_events is None) != (within_minutes is None):
        raise ValueError("until_events and within_minutes go together")
    if until_events is not None and (until_events < 1 or within_minutes < 1):
        raise ValueError("until_events and within_minutes must be at least 1")
    if duration is not None and duration <= timedelta(0):
        raise ValueError("duration must be positive")
    muted_until = timezone.now() + duration if duration else None
    detail = {
        "muted_until": muted_until.isoformat() if muted_until else None,
        "until_events": until_events,
        "within_minutes": within_minutes,
    }
    return _transition(
        incident,
        to=Status.MUTED,
        kind=Kind.MUTED,
        by=by,
        allowed_from=[Status.OPEN, Status.ACKNOWLEDGED],
        detail=detail,
        muted_until=muted_until,
        unmute_after_events=until_events,
        unmute_window_minutes=within_minutes,
    )


def incident_unmute(*, incident: Incident, by: Actor, reason: str) -> Incident:
    """Return a muted incident to open because its unmute condition was met."""
    return _transition(
        incident,
        to=Status.OPEN,
        kind=Kind.UNMUTED,
        by=by,
        allowed_from=[Status.MUTED],
        detail={"reason": reason},
        **_NO_MUTE,
    )


def incident_regress(*, incident: Incident, by: Actor) -> Incident:
    """Reopen a resolved incident that received a new event, flagging it as regressed."""
    return _transition(
        incident,
        to=Status.OPEN,
        kind=Kind.REGRESSED,
        by=by,
        allowed_from=[Status.RESOLVED],
        regressed=True,
        resolved_at=None,
    )


# Alerts


class AlertTransitionError(ValueError):
    """The requested change does not apply to the alert in its current state."""


def _actor_name(by: Actor) -> str:
    return _actor_fields(by)["actor"]


def publish_alert(alert: Alert, change: str) -> None:
    """Tell the live stream an alert was acknowledged or resolved by hand."""
    outbox.publish(topic=f"alert.{change}", key=f"alert:{alert.pk}", payload=outbox.alert_payload(alert))


def alert_acknowledge(*, alert: Alert, by: Actor) -> list[int]:
    """Stop a firing alert's repeat notifications; tell channels that got the firing one. Return those queued."""
    from incidents.alerting.evaluation import notifications_create, was_notified

    with transaction.atomic():
        locked = Alert.objects.select_for_update().select_related("rule").get(pk=alert.pk)
        if locked.state != Alert.State.FIRING:
            raise AlertTransitionError(f"only a firing alert can be acknowledged; this one is {locked.state}")
        if locked.acknowledged_at is not None:
            return []
        locked.acknowledged_at, locked.acknowledged_by = timezone.now(), _actor_name(by)
        locked.save(update_fields=["acknowledged_at", "acknowledged_by"])
        publish_alert(locked, "acknowledged")
        queued = (
            notifications_create(alert=locked, event="acknowledged", now=timezone.now()) if was_notified(locked) else []
        )
    alert.refresh_from_db()
    return queued


def alert_resolve(*, alert: Alert, by: Actor) -> list[int]:
    """Resolve a pending or firing alert by hand; a sent firing notification is followed by a resolved one."""
    from incidents.alerting.evaluation import notifications_create, was_notified

    with transaction.atomic():
        locked = Alert.objects.select_for_update().select_related("rule").get(pk=alert.pk)
        if locked.state not in (Alert.State.PENDING, Alert.State.FIRING):
            raise AlertTransitionError(f"only a pending or firing alert can be resolved; this one is {locked.state}")
        notify = locked.state == Alert.State.FIRING and locked.rule.send_resolved and was_notified(locked)
        now = timezone.now()
        locked.state, locked.resolved_at, locked.resolved_by = Alert.State.RESOLVED, now, _actor_name(by)
        locked.save(update_fields=["state", "resolved_at", "resolved_by"])
        publish_alert(locked, "resolved")
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
        created_by=_actor_name(by),
    )


def channel_test(*, channel: NotificationChannel, by: Actor) -> Notification:
    """Queue a test message to `channel`; delivery sends it like any other."""
    message = {
        "event": "test",
        "dedup_key": f"test-{channel.pk}-{uuid4().hex[:12]}",
        "rule": "test notification",
        "severity": "info",
        "summary": f"Test notification from the incident console, sent by {_actor_name(by)}",
        "runbook": "",
        "value": None,
        "threshold": None,
        "labels": {"channel": channel.name},
        "started_at": timezone.now().isoformat(),
        "ended_at": None,
        "url": settings.CONSOLE_URL,
    }
    return Notification.objects.create(channel=channel, event="test", severity=Severity.INFO, message=message)


def source_heartbeat(*, source: Source) -> None:
    """Record that a source's job is alive (its heartbeat URL was called)."""
    Source.objects.filter(pk=source.pk).update(last_heartbeat_at=timezone.now())


def channel_enable(*, channel: NotificationChannel, by: Actor) -> NotificationChannel:
    """Turn a channel on again, clearing the permanent-failure count and the reason it was disabled."""
    NotificationChannel.objects.filter(pk=channel.pk).update(
        enabled=True, consecutive_permanent_failures=0, disabled_reason=""
    )
    logger.info("notification channel %s enabled again by %s", channel.name, _actor_name(by))
    channel.refresh_from_db()
    return channel
