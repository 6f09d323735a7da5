"""What the console's tables hold: size on disk and rows, the oldest event per source, the last purge.

Rows are the planner's estimate on PostgreSQL (reltuples, kept by autovacuum: counting millions
of rows for a page or a scrape would cost more than the page), exact counts on SQLite, whose
databases are small. Sizes include indexes and TOAST; on SQLite they come from the dbstat table
where the library has it.
"""

import threading
import time
from dataclasses import dataclass
from datetime import datetime

from django.apps import apps
from django.db import DatabaseError, connection, models
from django.utils import timezone

from incidents.models import ErrorEvent, PurgeRun, RetentionPolicy, Source
from incidents.retention.plan import Plan

# What an operator reads, largest and most important first; each is the model's own table.
TABLES = (
    ("incidents.ErrorEvent", "events"),
    ("incidents.EventReceipt", "event receipts"),
    ("incidents.IncidentMinute", "incident minute rollups"),
    ("incidents.SourceMinute", "source minute rollups"),
    ("incidents.IncidentHour", "incident hour rollups"),
    ("incidents.SourceHour", "source hour rollups"),
    ("incidents.IncidentUser", "incident users"),
    ("incidents.IncidentEnvironment", "incident environments"),
    ("incidents.IncidentActivity", "timeline entries"),
    ("incidents.Notification", "notifications"),
    ("resilience.BreakerTransition", "breaker transitions"),
    ("resilience.BreakerWindow", "breaker window reports"),
    ("incidents.LiveMessage", "live messages"),
    ("incidents.Incident", "incidents"),
)
# Figures are read at most this often per process (scrapes and page views come every few seconds).
CACHE_SECONDS = 30


@dataclass(frozen=True)
class TableSize:
    table: str
    label: str
    bytes: int | None
    rows: int | None


@dataclass(frozen=True)
class OldestEvent:
    source: str
    slug: str
    received_at: datetime | None
    retention_days: int
    due: bool  # past retention as the purge applies it: the next purge removes it


_cache: dict[str, tuple[float, object]] = {}
_cache_lock = threading.Lock()


def table_sizes(*, fresh: bool = False) -> list[TableSize]:
    """Every table retention governs, with its size and rows."""
    return _cached("tables", _read_table_sizes, fresh)


def oldest_events(*, fresh: bool = False) -> list[OldestEvent]:
    """The oldest stored event of each source, with the retention that applies to it."""
    return _cached("oldest", _read_oldest_events, fresh)


def last_purge() -> PurgeRun | None:
    return PurgeRun.objects.exclude(status=PurgeRun.Status.RUNNING).first()


def running_purge() -> PurgeRun | None:
    return PurgeRun.objects.filter(status=PurgeRun.Status.RUNNING).first()


def size_of(model: type[models.Model]) -> TableSize:
    """Bytes and rows of one model's table (all partitions of a partitioned one)."""
    table = model._meta.db_table
    label = dict(TABLES).get(model._meta.label, table)
    if connection.vendor == "postgresql":
        return TableSize(table, label, *_postgres_size(table))
    return TableSize(table, label, _sqlite_bytes().get(table), model.objects.count())


def bytes_per_row(model: type[models.Model]) -> int:
    """Average bytes a row of the table takes, indexes included (0 when unknown or empty), from the
    cached figures: a purge asks for each table several times, and SQLite reads dbstat whole."""
    size = next((found for found in table_sizes() if found.table == model._meta.db_table), None) or size_of(model)
    rows = size.rows if size.rows is not None else model.objects.count()  # never analysed: count once
    if not size.bytes or not rows:
        return 0
    return size.bytes // rows


def forget() -> None:
    with _cache_lock:
        _cache.clear()


def _cached(key: str, read, fresh: bool):
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(key)
        if hit and not fresh and now - hit[0] < CACHE_SECONDS:
            return hit[1]
    value = read()
    with _cache_lock:
        _cache[key] = (now, value)
    return value


def _read_table_sizes() -> list[TableSize]:
    return [size_of(apps.get_model(label)) for label, _ in TABLES]


def _postgres_size(table: str) -> tuple[int, int | None]:
    # pg_partition_tree gives the table itself when it is not partitioned. Rows are the leaves' only:
    # an ANALYZE of the partitioned table (vacuumdb --analyze does one) gives it the total as well.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COALESCE(SUM(pg_total_relation_size(t.relid)), 0), "
            "SUM(GREATEST(c.reltuples, 0)) FILTER (WHERE t.isleaf), BOOL_OR(c.reltuples >= 0 AND t.isleaf) "
            "FROM pg_partition_tree(%s::regclass) t JOIN pg_class c ON c.oid = t.relid",
            [table],
        )
        size, rows, analysed = cursor.fetchone()
    return int(size), int(rows) if analysed else None


def _sqlite_bytes() -> dict[str, int]:
    """Bytes per table, its indexes included, from dbstat (None-free: tables it lacks are absent)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT m.tbl_name, SUM(s.pgsize) FROM dbstat s JOIN sqlite_master m ON m.name = s.name "
                "GROUP BY m.tbl_name"
            )
            return {table: int(size) for table, size in cursor.fetchall()}
    except DatabaseError:  # SQLite built without SQLITE_ENABLE_DBSTAT_VTAB
        return {}


def _read_oldest_events() -> list[OldestEvent]:
    plan = Plan(RetentionPolicy.current(), timezone.now(), sources=list(Source.objects.order_by("name")))
    rows = []
    for source in plan.sources:
        # One index probe per source (on every partition's source index), not a scan of all events.
        oldest = (
            ErrorEvent.objects.filter(source=source)
            .order_by("received_at")
            .values_list("received_at", flat=True)
            .first()
        )
        due = oldest is not None and oldest < plan.removal_cutoff(source)
        rows.append(OldestEvent(source.name, source.slug, oldest, plan.days(source), due))
    return rows
