"""What the console makes of resilience activity: breaker transitions, window figures and
recovery outcomes turned into history rows, live messages and incident events.

A transition becomes an event of the source that reported it (the console's own source
for its own breakers), classified as the breaker's configured error type and grouped per
breaker and target state, so "payments-api opened" is one incident however often it
happens, with its count and timeline.

Reports are kept per source. A breaker is run by one source (Breaker.source); the console's
own (redis, notify:*) have none, and only the console's processes report them, directly,
under the console's source, never over the API. A breaker defined without a source is
unassigned: the first source to report it takes it (Breaker.claim), and from then on only
that source's key may. Names nobody has registered are kept under the source that reports them.
"""

import uuid
from datetime import UTC, datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from incidents import services
from incidents.ingest import pipeline
from incidents.ingest.normalize import normalize_native_event
from incidents.live import outbox
from incidents.models import Source
from resilience.config_watcher import config_version_bump
from resilience.models import CONSOLE_SOURCE_SLUG, Breaker, BreakerTransition, BreakerWindow, is_console_breaker_name
from resilience.runtime.events import recovery_event

# Event ids of transitions derive from what identifies the transition, so a resend is stored once.
_TRANSITION_EVENTS = uuid.UUID("5d0c1c9e-7c1e-4f57-9a59-3b0c2f1b8e11")

_LEVEL_BY_STATE = {"open": "error", "half_open": "warning", "closed": "info"}
# A process that stopped reporting windows is forgotten after a day.
WINDOW_REPORTS_KEPT = timedelta(days=1)
_WINDOW_FIELDS = ["reported_at", "state", "mode", "calls", "failures", "slow_calls", "not_permitted"]


def console_source() -> Source:
    """The source the console's own events belong to, created on first use."""
    source = Source.objects.filter(slug=CONSOLE_SOURCE_SLUG).first()
    if source is None:
        try:
            source, _key = services.source_create(name="Incident console", slug=CONSOLE_SOURCE_SLUG)
        except (IntegrityError, ValidationError):
            # Another console thread or process made it first (source_create rolled its own part back).
            source = Source.objects.get(slug=CONSOLE_SOURCE_SLUG)
    return source


def breakers_claim(*, source: Source, names: set[str]) -> dict[str, str]:
    """Give `source` the named breakers nobody runs yet; answer those it may not report, each with why.

    Call it in the transaction that records the report, so that a refused or failed report claims nothing.
    """
    if source.slug == CONSOLE_SOURCE_SLUG:
        return {name: "the console's own source is reported by console processes, not over the API" for name in names}
    refused = {
        name: "is the console's own: only console processes report it"
        for name in names
        if is_console_breaker_name(name)
    }
    claimed = False
    # Those it runs left out, the rest is others' or unassigned. In name order, so that two reports
    # claiming the same breakers lock their rows in the same order (no deadlock).
    for row in Breaker.objects.filter(name__in=names - refused.keys()).exclude(source=source).order_by("name"):
        if row.claim(source):
            claimed = True
        else:
            refused[row.name] = "is run by another source"
    if claimed:
        config_version_bump()  # other sources' services must drop the breaker from their config
    return refused


def transition_record(
    *,
    source: Source,
    breaker_name: str,
    from_state: str,
    to_state: str,
    mode: str,
    generation: int,
    reason: str,
    process: str,
    at: datetime,
) -> BreakerTransition:
    """Keep a transition in the breaker's history and report it as an event of `source`, which reported it."""
    breaker = Breaker.objects.filter(name=breaker_name).select_related("error_type").first()
    if breaker is not None and not breaker.keeps_history_from(source):
        breaker = None  # another's breaker of the same name: the transition is not part of its history
    with transaction.atomic():
        row, created = BreakerTransition.objects.get_or_create(
            source=source,
            breaker_name=breaker_name,
            process=process[:200],
            generation=generation,
            defaults={
                "breaker": breaker,
                "from_state": from_state,
                "to_state": to_state,
                "mode": mode,
                "reason": reason[:500],
                "at": at,
            },
        )
        if created:
            _publish_transition(row, source)
    if not created:
        return row  # a resent report: recorded, and reported as an event, the first time
    event = _transition_event(breaker_name, breaker, from_state, to_state, mode, reason, process, at)
    event["event_id"] = uuid.uuid5(_TRANSITION_EVENTS, f"{breaker_name}|{process}|{generation}")
    error_type = breaker.error_type.code if breaker and breaker.error_type else None
    pipeline.events_store(source=source, events=[event], received_at=timezone.now(), error_type=error_type)
    return row


def _publish_transition(row: BreakerTransition, source: Source) -> None:
    payload = {
        "breaker": row.breaker_name,
        "from_state": row.from_state,
        "to_state": row.to_state,
        "mode": row.mode,
        "reason": row.reason,
        "process": row.process,
        "at": row.at.isoformat(),
    }
    outbox.publish(topic="breaker.transition", key=f"breaker:{row.breaker_name}", payload=payload, source_id=source.pk)


def _transition_event(breaker_name, breaker, from_state, to_state, mode, reason, process, at) -> dict:
    verb = {"open": "opened", "half_open": "is probing", "closed": "closed"}.get(to_state, to_state)
    message = f"circuit breaker {breaker_name} {verb}" + (f": {reason}" if reason else "")
    return normalize_native_event(
        {
            "message": message,
            "level": _LEVEL_BY_STATE.get(to_state, "warning"),
            "logger": "resilience.breaker",
            "component": (breaker.component if breaker else "") or breaker_name,
            "timestamp": at.astimezone(UTC).isoformat(),
            "server_name": process[:200],
            "tags": {"breaker": breaker_name, "from_state": from_state, "to_state": to_state, "mode": mode},
            "fingerprint": ["circuit-breaker", breaker_name, to_state],
        },
        received_at=timezone.now(),
    )


def recovery_record(*, source: Source, kind: str, payload: dict, process: str) -> None:
    """Report a recovery outcome or alert as an event of `source`, one incident per policy and outcome,
    and on the live stream at once (the incident's own message follows when the digest runs)."""
    recovered = payload.get("outcome") == "recovered"
    event = recovery_event(kind, payload)
    with transaction.atomic():
        event_record(
            source=source,
            event={**event, "server_name": process[:200]},
            error_type=None if recovered else payload.get("error_type"),
        )
        outbox.publish(
            topic=kind,  # recovery.outcome or recovery.alert
            key=f"recovery:{event['tags']['policy']}",
            payload={**event["tags"], "component": event.get("component"), "message": event["message"]},
            source_id=source.pk,
        )


def event_record(*, source: Source, event: dict, error_type: str | None = None) -> None:
    """Store one native runtime report as an event of `source`, classified as `error_type` when given."""
    received_at = timezone.now()
    pipeline.events_store(
        source=source,
        events=[normalize_native_event(event, received_at=received_at)],
        received_at=received_at,
        error_type=error_type,
    )


def windows_record(*, process: str, windows: list[dict], at: datetime, source: Source | None = None) -> None:
    """Keep each breaker's latest window figures from `process` of `source` (default: a console process),
    replacing that process's previous report."""
    source = source or console_source()
    rows = [
        BreakerWindow(
            source=source,
            breaker_name=window["breaker"],
            process=process[:200],
            reported_at=at,
            state=window["state"],
            mode=window["mode"],
            calls=window["calls"],
            failures=window["failures"],
            slow_calls=window["slow_calls"],
            not_permitted=window["not_permitted"],
        )
        for window in windows
    ]
    with transaction.atomic():
        BreakerWindow.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["source", "breaker_name", "process"],
            update_fields=_WINDOW_FIELDS,
        )
        BreakerWindow.objects.filter(reported_at__lt=at - WINDOW_REPORTS_KEPT).delete()
