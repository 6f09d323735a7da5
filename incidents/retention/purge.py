"""Apply the retention policy: each step says what it would remove, and removes it in bounded batches.

Each batch is its own short transaction, so ingest and the digest never wait long for a lock,
and a run stopped anywhere (Ctrl-C, its time budget, a crash) leaves only whole batches done:
the next run goes on from there. On PostgreSQL events mostly go as whole day partitions (see
partitions.py); rows are deleted only for sources kept shorter than the longest retention, for
the per-incident cap, and on SQLite.

One run at a time: a run is claimed by inserting a running PurgeRun row, which a partial unique
constraint allows only once; a run whose heartbeat stopped is marked interrupted by the next.
"""

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, models, transaction
from django.db.models import Exists, OuterRef, Q, Sum
from django.utils import timezone

from incidents.models import (
    ErrorEvent,
    EventReceipt,
    Incident,
    IncidentActivity,
    IncidentHour,
    IncidentMinute,
    Notification,
    PurgeRun,
    RetentionPolicy,
    Source,
    SourceHour,
    SourceMinute,
)
from incidents.retention import partitions, sizes
from incidents.retention.plan import Plan
from resilience.models import BreakerTransition, BreakerWindow

logger = logging.getLogger(__name__)

# A run whose heartbeat is older than this died: the next run may take over.
STALE_AFTER = timedelta(minutes=5)
HEARTBEAT_EVERY = 5.0  # seconds


@dataclass
class Removed:
    """What a batch (or a step, or a run) removed."""

    rows: int = 0
    bytes: int = 0
    partitions: int = 0

    def __iadd__(self, other: "Removed") -> "Removed":
        self.rows += other.rows
        self.bytes += other.bytes
        self.partitions += other.partitions
        return self


class Step:
    key: str
    label: str

    def __init__(self, plan: Plan) -> None:
        self.plan = plan

    def estimate(self) -> Removed:
        raise NotImplementedError

    def batches(self) -> Iterator[Removed]:
        raise NotImplementedError


class ExpiredPartitions(Step):
    key, label = "event_partitions", "event partitions past retention (dropped whole)"

    def estimate(self) -> Removed:
        found = partitions.expired(self.plan.partition_cutoff)
        return Removed(sum(_rows_of(p) for p in found), sum(p.bytes for p in found), len(found))

    def batches(self) -> Iterator[Removed]:
        for name in partitions.detached_leftovers():
            partitions.drop_leftover(name)
        for partition in partitions.expired(self.plan.partition_cutoff):
            rows = _rows_of(partition)
            partitions.drop(partition)
            yield Removed(rows, partition.bytes, 1)


class ExpiredEvents(Step):
    key, label = "events", "events past their source's retention (deleted as rows)"

    def _selections(self) -> Iterator[Q]:
        for source in self.plan.sources:
            if self.plan.rows_deleted_for(source):
                yield Q(source_id=source.pk, received_at__lt=self.plan.event_cutoff(source))

    def estimate(self) -> Removed:
        rows = sum(ErrorEvent.objects.filter(where).count() for where in self._selections())
        return Removed(rows, rows * sizes.bytes_per_row(ErrorEvent))

    def batches(self) -> Iterator[Removed]:
        width = sizes.bytes_per_row(ErrorEvent)
        for where in self._selections():
            for rows in _delete_events_in_batches(ErrorEvent.objects.filter(where), self.plan.batch_rows):
                yield Removed(rows, rows * width)


class EventsOverCap(Step):
    key, label = "events_over_cap", "events beyond the per-incident cap (the first and newest kept)"

    def _incidents(self) -> list[tuple[int, int]]:
        """(id, event count) of the incidents that may hold more events than the cap: those that saw
        more and gained events since they were last trimmed (every one, once the policy changed)."""
        cap, first = self.plan.policy.events_per_incident, self.plan.policy.first_events_per_incident
        if cap is None:
            return []
        found = Incident.objects.filter(event_count__gt=cap + first)  # none stores more events than it saw
        since = _last_complete_run_start()
        if since is not None and self.plan.policy.updated_at and self.plan.policy.updated_at < since:
            found = found.filter(
                Q(capped_at_event_count__isnull=True) | Q(event_count__gt=models.F("capped_at_event_count"))
            )
        return list(found.order_by("pk").values_list("pk", "event_count"))

    def _beyond(self, incident_id: int) -> models.QuerySet | None:
        """The incident's events older than its newest `cap`, less its first few; None if within the cap."""
        cap, first = self.plan.policy.events_per_incident, self.plan.policy.first_events_per_incident
        events = ErrorEvent.objects.filter(incident_id=incident_id)
        boundary = events.order_by("-received_at", "-id").values_list("received_at", "id")[cap : cap + 1]
        if not boundary:
            return None
        at, pk = boundary[0]
        kept_first = list(events.order_by("received_at", "id").values_list("id", flat=True)[:first])
        return events.filter(Q(received_at__lt=at) | Q(received_at=at, id__lte=pk)).exclude(id__in=kept_first)

    def estimate(self) -> Removed:
        rows = 0
        for incident_id, _ in self._incidents():
            beyond = self._beyond(incident_id)
            rows += beyond.count() if beyond is not None else 0
        return Removed(rows, rows * sizes.bytes_per_row(ErrorEvent))

    def batches(self) -> Iterator[Removed]:
        width = sizes.bytes_per_row(ErrorEvent)
        for incident_id, seen in self._incidents():
            beyond = self._beyond(incident_id)
            if beyond is not None:
                for rows in _delete_events_in_batches(beyond, self.plan.batch_rows):
                    yield Removed(rows, rows * width)
            # Its count when trimmed (by server-side counting, not the clients' timestamps): the next
            # run looks at it again only once it has seen more.
            Incident.objects.filter(pk=incident_id).update(capped_at_event_count=seen)


class ExpiredReceipts(Step):
    key, label = "event_receipts", "event receipts past retention (a repeat after this is stored anew)"

    def estimate(self) -> Removed:
        rows = sum(
            EventReceipt.objects.filter(source_id=source.pk, received_at__lt=self.plan.removal_cutoff(source)).count()
            for source in self.plan.sources
        )
        return Removed(rows, rows * sizes.bytes_per_row(EventReceipt))

    def batches(self) -> Iterator[Removed]:
        width = sizes.bytes_per_row(EventReceipt)
        for source in self.plan.sources:
            while deleted := _delete_receipts(source.pk, self.plan.removal_cutoff(source), self.plan.batch_rows):
                yield Removed(deleted, deleted * width)


class ExpiredRows(Step):
    """Rows of one or more models older than a number of days, by one timestamp column."""

    def __init__(
        self, plan: Plan, key: str, label: str, models_: tuple, column: str, days: int, keep: Q | None = None
    ) -> None:
        super().__init__(plan)
        self.key, self.label, self.models, self.column = key, label, models_, column
        self.days, self.keep = days, keep

    def _selection(self, model) -> models.QuerySet:
        rows = model.objects.filter(**{f"{self.column}__lt": self.plan.cutoff(self.days)})
        return rows.exclude(self.keep) if self.keep is not None else rows

    def estimate(self) -> Removed:
        found = Removed()
        for model in self.models:
            rows = self._selection(model).count()
            found += Removed(rows, rows * sizes.bytes_per_row(model))
        return found

    def batches(self) -> Iterator[Removed]:
        for model in self.models:
            width = sizes.bytes_per_row(model)
            while True:
                ids = list(self._selection(model).order_by().values_list("pk", flat=True)[: self.plan.batch_rows])
                if not ids:
                    break
                deleted, _ = model.objects.filter(pk__in=ids).delete()
                yield Removed(deleted, deleted * width)


class FoldedSourceHours(Step):
    """Source hour rollups past retention, folded into one row per key so the totals stay whole."""

    key, label = "source_hour_rollups", "source hour rollups past retention (folded into all-time totals)"
    KEY = ("source_id", "error_type_id", "severity", "environment")

    def _selection(self) -> models.QuerySet:
        cutoff = self.plan.cutoff(self.plan.policy.hour_rollup_days)
        return SourceHour.objects.filter(hour__lt=cutoff).exclude(hour=SourceHour.FOLDED_HOUR)

    def estimate(self) -> Removed:
        rows = self._selection().count()
        return Removed(rows, rows * sizes.bytes_per_row(SourceHour))

    def batches(self) -> Iterator[Removed]:
        width = sizes.bytes_per_row(SourceHour)
        while True:
            with transaction.atomic():
                ids = list(self._selection().order_by().values_list("pk", flat=True)[: self.plan.batch_rows])
                if not ids:
                    return
                totals = SourceHour.objects.filter(pk__in=ids).values(*self.KEY).annotate(total=Sum("count"))
                for row in totals.order_by():
                    folded, _ = SourceHour.objects.get_or_create(
                        **{k: row[k] for k in self.KEY}, hour=SourceHour.FOLDED_HOUR, defaults={"count": 0}
                    )
                    SourceHour.objects.filter(pk=folded.pk).update(count=models.F("count") + row["total"])
                deleted, _ = SourceHour.objects.filter(pk__in=ids).delete()
            yield Removed(deleted, deleted * width)


class ExpiredIncidents(Step):
    key, label = "incidents", "resolved incidents whose events all expired, quiet past retention (with rollups)"
    BATCH = 100  # each takes its rollups, users and timeline with it

    def _selection(self, source: Source) -> models.QuerySet:
        return Incident.objects.filter(
            source=source, status=Incident.Status.RESOLVED, last_seen__lt=self.plan.event_cutoff(source)
        ).exclude(Exists(ErrorEvent.objects.filter(incident=OuterRef("pk"))))

    def estimate(self) -> Removed:
        return Removed(sum(self._selection(source).count() for source in self.plan.sources))

    def batches(self) -> Iterator[Removed]:
        for source in self.plan.sources:
            while True:
                with transaction.atomic():
                    # Chosen and locked in the transaction that deletes them: an incident the digest is
                    # giving a new event waits for, or is skipped by, this (PostgreSQL re-checks the
                    # status and last_seen of a row it waited for; SQLite's transactions take the
                    # write lock at their start).
                    chosen = self._selection(source).select_for_update(of=("self",))
                    ids = list(chosen.values_list("pk", flat=True)[: self.BATCH])
                    if not ids:
                        break
                    _, per_model = Incident.objects.filter(pk__in=ids).delete()
                yield Removed(per_model.get(Incident._meta.label, 0))


def steps(plan: Plan) -> list[Step]:
    """Every step the policy asks for, in the order a run takes them."""
    policy = plan.policy
    found: list[Step] = [ExpiredPartitions(plan)] if partitions.enabled() else []
    found += [ExpiredEvents(plan), EventsOverCap(plan), ExpiredReceipts(plan)]
    found += [
        ExpiredRows(
            plan,
            "minute_rollups",
            "minute rollups past retention",
            (IncidentMinute, SourceMinute),
            "minute",
            policy.minute_rollup_days,
        ),
        ExpiredRows(
            plan,
            "incident_hour_rollups",
            "incident hour rollups past retention",
            (IncidentHour,),
            "hour",
            policy.hour_rollup_days,
        ),
        FoldedSourceHours(plan),
        ExpiredRows(
            plan,
            "notifications",
            "finished notification attempts past retention",
            (Notification,),
            "created_at",
            policy.notification_days,
            keep=Q(status__in=[Notification.Status.QUEUED, Notification.Status.SENDING]),
        ),
        ExpiredRows(
            plan,
            "timeline",
            "incident timeline entries past retention",
            (IncidentActivity,),
            "created_at",
            policy.timeline_days,
        ),
        ExpiredRows(
            plan,
            "transitions",
            "breaker transitions past retention",
            (BreakerTransition,),
            "at",
            policy.transition_days,
        ),
        ExpiredRows(
            plan,
            "window_reports",
            "breaker window reports of silent processes",
            (BreakerWindow,),
            "reported_at",
            policy.window_report_days,
        ),
    ]
    if policy.delete_expired_incidents:
        found.append(ExpiredIncidents(plan))
    return found


def estimate(plan: Plan | None = None) -> list[tuple[Step, Removed]]:
    """What a run would remove now, step by step (nothing is changed)."""
    plan = plan or Plan(RetentionPolicy.current(), timezone.now())
    return [(step, step.estimate()) for step in steps(plan)]


Progress = Callable[[Step, Removed], None]


def run(
    *,
    trigger: str,
    time_budget: float | None = None,
    progress: Progress | None = None,
    plan: Plan | None = None,
    pause: float | None = None,
) -> PurgeRun | None:
    """Apply the policy in batches; return the run's record, or None if another run holds the claim.

    `time_budget` (seconds) stops the run after the batch that passes it (the schedule's runs stay
    short). Between batches the run rests RETENTION_REST_PER_WORK times as long as the batch took,
    and at least `pause` seconds, so that on a busy machine the purge takes a bounded share of the
    database's time and ingest keeps the rest; `pause=0` does not rest at all.
    """
    record = claim(trigger)
    if record is None:
        return None
    pause = settings.RETENTION_BATCH_PAUSE_SECONDS if pause is None else pause
    deadline = time.monotonic() + time_budget if time_budget is not None else None
    try:
        if partitions.enabled():
            partitions.ensure_ahead()
        plan = plan or Plan(RetentionPolicy.current(), timezone.now())
        record.status = _apply(record, plan, deadline, pause, progress)
        return record
    except KeyboardInterrupt:
        record.status = PurgeRun.Status.INTERRUPTED
        raise
    except Exception as error:
        record.status, record.error = PurgeRun.Status.FAILED, f"{type(error).__name__}: {error}"
        logger.exception("retention purge failed")
        raise
    finally:
        record.finished_at = timezone.now()
        _save(record)
        sizes.forget()


def _apply(record: PurgeRun, plan: Plan, deadline: float | None, pause: float, progress: Progress | None) -> str:
    """Run every step's batches, resting between them; the status the run ends with."""
    beat = worked_from = time.monotonic()
    for step in steps(plan):
        for removed in step.batches():
            worked = time.monotonic() - worked_from
            _add(record, step.key, removed)
            if progress:
                progress(step, removed)
            if time.monotonic() - beat >= HEARTBEAT_EVERY:
                _save(record)
                beat = time.monotonic()
            # The longest rest, whatever the last batch took: a run keeps beating well within STALE_AFTER,
            # and a slow batch (a detach waiting for a long transaction) does not idle it for minutes.
            longest = settings.MAX_RETENTION_REST_SECONDS
            left = deadline - time.monotonic() if deadline is not None else longest
            if left <= 0:
                return PurgeRun.Status.PARTIAL
            if pause:
                # Not synchronisation: leaves the database to ingest between batches.
                time.sleep(min(max(pause, settings.RETENTION_REST_PER_WORK * worked), longest, left))
            worked_from = time.monotonic()
    return PurgeRun.Status.FINISHED


def claim(trigger: str) -> PurgeRun | None:
    """Start a run, unless one is running (one whose heartbeat stopped is marked interrupted first)."""
    PurgeRun.objects.filter(status=PurgeRun.Status.RUNNING, heartbeat_at__lt=timezone.now() - STALE_AFTER).update(
        status=PurgeRun.Status.INTERRUPTED, finished_at=timezone.now(), error="its process stopped reporting"
    )
    try:
        with transaction.atomic():
            return PurgeRun.objects.create(trigger=trigger)
    except IntegrityError:  # the one-running constraint: another run holds the claim
        return None


def _add(record: PurgeRun, key: str, removed: Removed) -> None:
    record.removed[key] = record.removed.get(key, 0) + removed.rows
    record.bytes_freed += removed.bytes
    record.partitions_dropped += removed.partitions


def _save(record: PurgeRun) -> None:
    record.heartbeat_at = timezone.now()
    record.save()


def _last_complete_run_start() -> datetime | None:
    return PurgeRun.objects.filter(status=PurgeRun.Status.FINISHED).values_list("started_at", flat=True).first()


def _delete_events_in_batches(selection: models.QuerySet, batch_rows: int) -> Iterator[int]:
    """Delete the selected events, oldest first, a batch per transaction."""
    while True:
        keys = list(selection.order_by("received_at", "id").values_list("id", "received_at")[:batch_rows])
        if not keys:
            return
        # The time bounds let PostgreSQL look in the batch's partitions only.
        deleted, _ = ErrorEvent.objects.filter(
            id__in=[pk for pk, _ in keys], received_at__gte=keys[0][1], received_at__lte=keys[-1][1]
        ).delete()
        yield deleted


def _delete_receipts(source_id: int, before: datetime, limit: int) -> int:
    """Delete up to `limit` of the source's oldest receipts from before `before`, in one statement: the
    rows are found on the received_at index and deleted by their physical address, with no key
    going through Python (750,000 receipts are a day of a busy console)."""
    table = EventReceipt._meta.db_table
    address = "ctid" if connection.vendor == "postgresql" else "rowid"
    found = f"SELECT {address} FROM {table} WHERE source_id = %s AND received_at < %s ORDER BY received_at LIMIT %s"
    match = f"ctid = ANY(ARRAY({found}))" if address == "ctid" else f"rowid IN ({found})"
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {table} WHERE {match}", [source_id, connection.ops.adapt_datetimefield_value(before), limit]
        )
        return cursor.rowcount


# Partitions estimated to hold fewer rows than this are counted (a second or so at most): the planner's
# figure can be stale by then (an emptied partition keeps its last estimate until analysed again).
EXACT_BELOW_ROWS = 1_000_000


def _rows_of(partition: partitions.Partition) -> int:
    """The partition's rows: the planner's estimate for a big one, else a count."""
    if partition.rows >= EXACT_BELOW_ROWS:
        return partition.rows
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {partition.name}")
        return cursor.fetchone()[0]
