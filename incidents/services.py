"""Every state change of sources, keys and incidents.

Views, admin actions, tasks and commands call these functions and nothing else
to change state; each incident change leaves a timeline entry naming its actor.
Alerts, silences and channels change through incidents.alerting.services; events
are stored through incidents.ingest.pipeline.
"""

from collections.abc import Sequence
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from incidents.live import outbox
from incidents.models import Incident, IncidentActivity, IngestKey, Source

Actor = AbstractBaseUser | str
"""Who changed something: a user, or a name such as "system:digest"."""

Status = Incident.Status
Kind = IncidentActivity.Kind


class IncidentTransitionError(ValueError):
    """The requested change does not apply to the incident in its current status."""


def actor_name(by: Actor) -> str:
    """How the timeline and the live stream name an actor: user:<name>, or the name given."""
    return _actor_fields(by)["actor"]


def _actor_fields(by: Actor) -> dict:
    if isinstance(by, str):
        return {"actor": by, "user": None}
    return {"actor": f"user:{by.get_username()}", "user": by}


# Sources and keys


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


def source_heartbeat(*, source: Source) -> None:
    """Record that a source's job is alive (its heartbeat URL was called)."""
    Source.objects.filter(pk=source.pk).update(last_heartbeat_at=timezone.now())


# Incident lifecycle


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
            payload=locked.live_payload(change=kind, from_status=previous, actor=actor_name(by)),
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
