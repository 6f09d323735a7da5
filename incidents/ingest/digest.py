"""The digest: group and count stored events in batches.

Ingest classifies, fingerprints and stores an event; the digest turns pending events
(those with no incident yet) into incidents, counters and rollups per minute and per hour. It
reads only the narrow columns it needs, never the stored exception or contexts, and batching
keeps the per-event cost to a few microseconds of SQL.
"""

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from incidents import services
from incidents.live import outbox
from incidents.models import (
    ErrorEvent,
    ErrorType,
    EventReceipt,
    Incident,
    IncidentActivity,
    IncidentEnvironment,
    IncidentHour,
    IncidentMinute,
    IncidentUser,
    LiveMessage,
    Source,
    SourceHour,
    SourceMinute,
)

DIGEST_ACTOR = "system:digest"
_EVENT_FIELDS = [
    "id",
    "source_id",
    "received_at",
    "timestamp",
    "environment",
    "user",
    "fingerprint",
    "title",
    "culprit",
    "error_type_id",
    "severity",
]


@dataclass
class _Group:
    """What one batch contributes to one incident."""

    source_id: int
    fingerprint: str
    title: str
    culprit: str
    error_type_id: int
    category: str
    severity: int
    first_seen: datetime
    last_seen: datetime
    event_ids: list[int] = field(default_factory=list)
    user_hashes: set[str] = field(default_factory=set)
    # (environment, severity, minute) -> events
    counts: dict[tuple[str, int, datetime], int] = field(default_factory=dict)

    def add(self, event: ErrorEvent, severity: int) -> None:
        self.event_ids.append(event.pk)
        self.severity = max(self.severity, severity)
        self.first_seen = min(self.first_seen, event.timestamp)
        self.last_seen = max(self.last_seen, event.timestamp)
        user_hash = _user_hash(event.user)
        if user_hash:
            self.user_hashes.add(user_hash)
        key = (event.environment, severity, event.timestamp.replace(second=0, microsecond=0))
        self.counts[key] = self.counts.get(key, 0) + 1

    @property
    def event_count(self) -> int:
        return sum(self.counts.values())

    @property
    def environments(self) -> set[str]:
        return {env for env, _, _ in self.counts if env}

    def per_minute(self) -> dict[datetime, int]:
        minutes: dict[datetime, int] = {}
        for (_, _, minute), count in self.counts.items():
            minutes[minute] = minutes.get(minute, 0) + count
        return minutes


def _user_hash(user: dict) -> str:
    """Identify the affected user by the first identifier the SDK sent, hashed."""
    if not isinstance(user, dict):
        return ""
    for key in ("id", "email", "username", "ip_address"):
        value = user.get(key)
        if value not in (None, ""):
            return hashlib.sha1(f"{key}:{value}".encode(), usedforsecurity=False).hexdigest()
    return ""


def digest_pending(*, batch_size: int = 1000, touched: set[tuple[int, int]] | None = None) -> int:
    """Digest every pending event, batch by batch; return how many were digested.

    `touched` collects the (source id, error type id) pairs digested, for alert evaluation.
    """
    categories = dict(ErrorType.objects.values_list("id", "category"))
    total = 0
    while True:
        done = _digest_batch(categories, batch_size, touched if touched is not None else set())
        total += done
        if done < batch_size:
            return total


def _digest_batch(categories: dict[int, str], batch_size: int, touched: set[tuple[int, int]]) -> int:
    with transaction.atomic():
        _take_digest_lock()
        taken = list(ErrorEvent.objects.filter(incident__isnull=True).order_by("id").only(*_EVENT_FIELDS)[:batch_size])
        events = _without_orphans(taken)
        if not events:
            return len(taken)
        groups = _group_events(events, categories)
        incidents = _upsert_incidents(groups)
        new_users = _record_users(groups, incidents)
        _record_environments(groups, incidents)
        _write_rollups(groups, incidents)
        _update_incidents(groups, incidents, new_users)
        _update_sources(groups)
        _attach_events(groups, incidents, received_since=min(event.received_at for event in events))
        _apply_lifecycle(groups, incidents)
        _publish_live(incidents)
    touched.update((g.source_id, g.error_type_id) for g in groups.values())
    return len(taken)


def _without_orphans(events: list[ErrorEvent]) -> list[ErrorEvent]:
    """The events whose source still exists; the others are deleted, as the source's deletion would have.

    The event table has no foreign key constraints (see ErrorEvent), so an event stored while its
    source was being deleted can outlive it; left pending, it would fail every digest batch it is in.
    """
    sources = {event.source_id for event in events}
    gone = sources - set(Source.objects.filter(pk__in=sources).values_list("pk", flat=True))
    if not gone:
        return events
    ErrorEvent.objects.filter(source_id__in=gone).delete()
    EventReceipt.objects.filter(source_id__in=gone).delete()
    return [event for event in events if event.source_id not in gone]


# Digests take turns: a second one waits for the first to commit, then sees what is left.
# A transaction-scoped advisory lock costs one call, where locking each event row would
# write every row a second time; SQLite serialises writing transactions by itself.
_DIGEST_LOCK_KEY = 0x6469676573  # "diges"


def _take_digest_lock() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_DIGEST_LOCK_KEY])


def _group_events(events, categories: dict[int, str]) -> dict[tuple[int, str], _Group]:
    groups: dict[tuple[int, str], _Group] = {}
    for event in events:
        key = (event.source_id, event.fingerprint)
        entry = groups.get(key)
        if entry is None:
            entry = groups[key] = _Group(
                source_id=event.source_id,
                fingerprint=event.fingerprint,
                title=event.title,
                culprit=event.culprit,
                error_type_id=event.error_type_id,
                category=categories[event.error_type_id],
                severity=event.severity,
                first_seen=event.timestamp,
                last_seen=event.timestamp,
            )
        else:
            entry.title, entry.culprit = event.title, event.culprit  # the latest event names the incident
        entry.add(event, event.severity)
    return groups


def _upsert_incidents(groups: dict[tuple[int, str], _Group]) -> dict[tuple[int, str], Incident]:
    """Create incidents for new fingerprints, then lock every touched incident in id order."""
    fingerprints = {fp for _, fp in groups}
    source_ids = {source_id for source_id, _ in groups}

    def touched():
        rows = Incident.objects.filter(source_id__in=source_ids, fingerprint__in=fingerprints)
        return {(row.source_id, row.fingerprint): row for row in rows if (row.source_id, row.fingerprint) in groups}

    existing = touched()
    missing = [g for key, g in groups.items() if key not in existing]
    if missing:
        # Another digest may create the same incident meanwhile; the unique constraint decides.
        Incident.objects.bulk_create(
            [
                Incident(
                    source_id=g.source_id,
                    fingerprint=g.fingerprint,
                    title=g.title,
                    culprit=g.culprit,
                    error_type_id=g.error_type_id,
                    category=g.category,
                    severity=g.severity,
                    first_seen=g.first_seen,
                    last_seen=g.first_seen,
                    status_changed_at=timezone.now(),
                )
                for g in missing
            ],
            ignore_conflicts=True,
        )
        existing = touched()
    ids = [row.pk for row in existing.values()]
    locked = Incident.objects.select_for_update().filter(pk__in=sorted(ids)).order_by("pk")
    incidents = {(row.source_id, row.fingerprint): row for row in locked}
    # Read under the lock, an event count of zero means no digest has counted this incident yet:
    # exactly one digest records its creation even when two created it at once.
    IncidentActivity.objects.bulk_create(
        [
            IncidentActivity(incident=row, kind=IncidentActivity.Kind.CREATED, actor=DIGEST_ACTOR, to_status="open")
            for row in incidents.values()
            if row.event_count == 0
        ]
    )
    return incidents


def _record_users(groups, incidents) -> dict[int, int]:
    """Insert unseen user hashes and return how many were new per incident."""
    adapt = connection.ops.adapt_datetimefield_value
    rows = [
        (incidents[key].pk, user_hash, adapt(g.last_seen))
        for key, g in groups.items()
        for user_hash in sorted(g.user_hashes)
    ]
    if not rows:
        return {}
    table = IncidentUser._meta.db_table
    placeholders = ", ".join(["(%s, %s, %s)"] * len(rows))
    params = [value for row in rows for value in row]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (incident_id, user_hash, last_seen) VALUES {placeholders} "
            "ON CONFLICT (incident_id, user_hash) DO NOTHING RETURNING incident_id",
            params,
        )
        inserted = cursor.fetchall()
        # Users seen before: their last_seen moves on, for "distinct users in the window" alert rules.
        cursor.execute(
            f"WITH v(incident_id, user_hash, last_seen) AS (VALUES {placeholders}) "
            f"UPDATE {table} SET last_seen = v.last_seen FROM v "
            f"WHERE {table}.incident_id = v.incident_id AND {table}.user_hash = v.user_hash "
            f"AND ({table}.last_seen IS NULL OR {table}.last_seen < v.last_seen)",
            params,
        )
    new_users: dict[int, int] = {}
    for (incident_id,) in inserted:
        new_users[incident_id] = new_users.get(incident_id, 0) + 1
    return new_users


def _record_environments(groups, incidents) -> None:
    IncidentEnvironment.objects.bulk_create(
        [
            IncidentEnvironment(incident=incidents[key], environment=env)
            for key, g in groups.items()
            for env in sorted(g.environments)
        ],
        ignore_conflicts=True,
    )


def _upsert_counts(model, key_columns: list[str], rows: list[tuple]) -> None:
    """Add counts to rollup rows, creating them as needed, in one statement."""
    if not rows:
        return
    table = model._meta.db_table
    columns = [*key_columns, "count"]
    placeholders = ", ".join(["(" + ", ".join(["%s"] * len(columns)) + ")"] * len(rows))
    # Datetimes go through the backend's adapter so SQLite stores them as the ORM does.
    adapt = connection.ops.adapt_datetimefield_value
    params = [adapt(value) if isinstance(value, datetime) else value for row in rows for value in row]
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES {placeholders} "
        f"ON CONFLICT ({', '.join(key_columns)}) DO UPDATE SET count = {table}.count + excluded.count"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _write_rollups(groups, incidents) -> None:
    minute_rows, hour_counts, source_counts, source_hour_counts = [], {}, {}, {}
    for key, g in groups.items():
        incident_id = incidents[key].pk
        for minute, count in sorted(g.per_minute().items()):
            minute_rows.append((incident_id, minute, count))
            hour_key = (incident_id, minute.replace(minute=0))
            hour_counts[hour_key] = hour_counts.get(hour_key, 0) + count
        for (env, severity, minute), count in g.counts.items():
            source_key = (g.source_id, g.error_type_id, severity, env, minute)
            source_counts[source_key] = source_counts.get(source_key, 0) + count
            source_hour_key = (g.source_id, g.error_type_id, severity, env, minute.replace(minute=0))
            source_hour_counts[source_hour_key] = source_hour_counts.get(source_hour_key, 0) + count
    _upsert_counts(IncidentMinute, ["incident_id", "minute"], minute_rows)
    _upsert_counts(IncidentHour, ["incident_id", "hour"], [(*k, v) for k, v in sorted(hour_counts.items())])
    source_key_columns = ["source_id", "error_type_id", "severity", "environment"]
    _upsert_counts(SourceMinute, [*source_key_columns, "minute"], [(*k, v) for k, v in sorted(source_counts.items())])
    # The hour rollup outlives the minute one: long charts, summaries and the ingested-events counter read it.
    _upsert_counts(SourceHour, [*source_key_columns, "hour"], [(*k, v) for k, v in sorted(source_hour_counts.items())])


def _update_sources(groups) -> None:
    """Move each source's last_event_at on: absence rules read it."""
    newest: dict[int, datetime] = {}
    for g in groups.values():
        newest[g.source_id] = max(newest.get(g.source_id, g.last_seen), g.last_seen)
    for source_id, last_seen in sorted(newest.items()):
        Source.objects.filter(pk=source_id).update(
            last_event_at=Greatest(Coalesce("last_event_at", last_seen), last_seen)
        )


def _update_incidents(groups, incidents, new_users: dict[int, int]) -> None:
    """Add each group's counts to its incident, all incidents in one statement."""
    adapt = connection.ops.adapt_datetimefield_value
    rows = [
        (
            incidents[key].pk,
            g.event_count,
            new_users.get(incidents[key].pk, 0),
            adapt(g.first_seen),
            adapt(g.last_seen),
            g.severity,
            g.title,
            g.culprit,
        )
        for key, g in groups.items()
    ]
    greatest, least = ("GREATEST", "LEAST") if connection.vendor == "postgresql" else ("MAX", "MIN")
    t = Incident._meta.db_table
    _update_from_values(
        t,
        ["id", "events", "users", "first_seen", "last_seen", "severity", "title", "culprit"],
        rows,  # the incidents are locked already (_upsert_incidents), in id order
        f"event_count = {t}.event_count + v.events, user_count = {t}.user_count + v.users, "
        f"first_seen = {least}({t}.first_seen, v.first_seen), last_seen = {greatest}({t}.last_seen, v.last_seen), "
        f"severity = {greatest}({t}.severity, v.severity), title = v.title, culprit = v.culprit",
    )
    IncidentActivity.objects.bulk_create(
        [
            IncidentActivity(
                incident=incidents[key],
                kind=IncidentActivity.Kind.SEVERITY_RAISED,
                actor=DIGEST_ACTOR,
                detail={"from": incidents[key].severity, "to": g.severity},
            )
            for key, g in groups.items()
            if g.severity > incidents[key].severity and incidents[key].event_count
        ]
    )


def _update_from_values(
    table: str, columns: list[str], rows: list[tuple], assignments: str, *, received_since: datetime | None = None
) -> None:
    """UPDATE `table` SET `assignments` from the rows, named v(`columns`) and matched on v.id: one statement
    where the ORM would need one per row. `received_since` bounds the event table's received_at, so that
    PostgreSQL looks only in the partitions of the batch's days, not in every day's."""
    placeholders = ", ".join(["(" + ", ".join(["%s"] * len(columns)) + ")"] * len(rows))
    bound = f" AND {table}.received_at >= %s" if received_since else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH v({', '.join(columns)}) AS (VALUES {placeholders}) "
            f"UPDATE {table} SET {assignments} FROM v WHERE {table}.id = v.id{bound}",
            [value for row in rows for value in row]
            + ([connection.ops.adapt_datetimefield_value(received_since)] if received_since else []),
        )


def _publish_live(incidents) -> None:
    """One live message per incident this batch touched (a burst is one message, not one per event)."""
    fresh = Incident.objects.filter(pk__in=[row.pk for row in incidents.values()])
    created = {row.pk for row in incidents.values() if row.event_count == 0}
    outbox.publish_many(
        [
            LiveMessage(
                topic="incident.created" if incident.pk in created else "incident.updated",
                key=f"incident:{incident.pk}",
                payload=incident.live_payload(),
                source_id=incident.source_id,
                incident_id=incident.pk,
            )
            for incident in fresh
        ]
    )


def _attach_events(groups, incidents, *, received_since: datetime) -> None:
    pairs = [(event_id, incidents[key].pk) for key, g in groups.items() for event_id in g.event_ids]
    _update_from_values(
        ErrorEvent._meta.db_table,
        ["id", "incident_id"],
        pairs,
        "incident_id = v.incident_id",
        received_since=received_since,
    )


def _apply_lifecycle(groups, incidents) -> None:
    """Reopen resolved incidents as regressed and unmute those whose condition is met."""
    now = timezone.now()
    for key in groups:
        incident = incidents[key]
        if incident.status == Incident.Status.RESOLVED:
            services.incident_regress(incident=incident, by=DIGEST_ACTOR)
        elif incident.status == Incident.Status.MUTED:
            reason = _unmute_reason(incident, now)
            if reason:
                services.incident_unmute(incident=incident, by=DIGEST_ACTOR, reason=reason)


def _unmute_reason(incident: Incident, now: datetime) -> str:
    if incident.muted_until and incident.muted_until <= now:
        return "mute period ended"
    if incident.unmute_after_events:
        since = now - timedelta(minutes=incident.unmute_window_minutes)
        if incident.status_changed_at:
            since = max(since, incident.status_changed_at)  # only events after the mute count
        # Minute rollups are too coarse to separate events just before the mute from those after,
        # so count on the (incident, received_at) index, stopping at the threshold.
        needed = incident.unmute_after_events
        seen = ErrorEvent.objects.filter(incident=incident, received_at__gte=since)[:needed].count()
        if seen >= needed:
            return f"{seen} events within {incident.unmute_window_minutes} minutes"
    return ""
