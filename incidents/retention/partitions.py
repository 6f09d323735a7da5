"""PostgreSQL's event table, partitioned by the day of received_at (UTC).

Expiry drops a whole day instead of deleting its rows: no dead tuples, no vacuum, and the
space is back at once. Partitions are made ahead by the purge schedule, and storage makes
today's if it is missing (a dict lookup when it is there), so no insert ever finds no partition.

Written by hand: django-postgres-extra manages partitions, but only through its own database
backend, which would replace the pooled psycopg backend the console configures; the few
statements needed are these.

The locks are chosen so that ingest never waits: a partition is created standalone and then
ATTACHed (SHARE UPDATE EXCLUSIVE on the parent, which inserts do not conflict with), and
expired ones are DETACHed CONCURRENTLY before being dropped. That is why the table has no
DEFAULT partition: with one, neither would be possible.
"""

import contextlib
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction

from incidents.models import ErrorEvent

PARENT = ErrorEvent._meta.db_table
PREFIX = f"{PARENT}_p"
# Partitions made ahead of today, so a day's first event never waits for one.
DAYS_AHEAD = 7
# Creators take turns (two processes making the same day would collide on its name).
_CREATE_LOCK_KEY = 0x70617274  # "part"

# How long creating a partition may wait for a lock before it fails (rather than hang a request).
LOCK_TIMEOUT = 5.0

_covered: set[date] = set()
_covered_lock = threading.Lock()


@dataclass(frozen=True)
class Partition:
    name: str
    day: date
    rows: int  # the planner's estimate (-1: never analysed)
    bytes: int
    detach_pending: bool = False

    @property
    def ends(self) -> datetime:
        return datetime.combine(self.day + timedelta(days=1), time(), tzinfo=UTC)


def enabled() -> bool:
    return connection.vendor == "postgresql"


def name_for(day: date) -> str:
    return f"{PREFIX}{day:%Y%m%d}"


def cover(moments: Iterable[datetime]) -> None:
    """Make sure each moment's day has a partition (only a set lookup once it has)."""
    days = {moment.astimezone(UTC).date() for moment in moments}
    if days <= _covered:
        return
    ensure(days)


def ensure(days: Iterable[date]) -> list[str]:
    """Create the partitions these days lack, committed at once; return their names.

    On the caller's connection when it is not in a transaction (the writer's: ingest never waits
    for a second connection from the pool); inside one, on a connection of our own, so that the
    partition stands even if the caller's transaction rolls back. The table has no foreign key
    constraints, so ATTACH locks nothing a caller's transaction may hold: it takes SHARE UPDATE
    EXCLUSIVE on the table, which inserts and reads do not conflict with.
    """
    wanted = set(days)
    with _covered_lock:
        created: list[str] = []
        if wanted - {p.day for p in attached()}:
            if connection.in_atomic_block:
                with _own_connection() as own, own.cursor() as cursor, own.wrap_database_errors:
                    cursor.execute("BEGIN")
                    created = _create_missing(cursor, own, wanted)
                    cursor.execute("COMMIT")
            else:
                with transaction.atomic(), connection.cursor() as cursor:
                    created = _create_missing(cursor, connection, wanted)
        _covered.update(wanted)
        return created


def _create_missing(cursor, using, wanted: set[date]) -> list[str]:
    cursor.execute(f"SET LOCAL lock_timeout = '{int(LOCK_TIMEOUT * 1000)}ms'")
    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CREATE_LOCK_KEY])
    existing = {p.day for p in attached(using)}
    created = []
    for day in sorted(wanted - existing):
        _create(cursor, day)
        created.append(name_for(day))
    return created


def ensure_ahead(today: date | None = None) -> list[str]:
    """Create today's partition and the next DAYS_AHEAD days'."""
    today = today or datetime.now(UTC).date()
    return ensure(today + timedelta(days=n) for n in range(DAYS_AHEAD + 1))


def attached(using=None) -> list[Partition]:
    """The event table's partitions, oldest first, with the planner's row estimate and their size."""
    with (using or connection).cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, c.reltuples, pg_total_relation_size(c.oid), i.inhdetachpending "
            "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass ORDER BY c.relname",
            [PARENT],
        )
        rows = cursor.fetchall()
    return [
        Partition(name, _day_of(name), int(rows_estimate), size, bool(pending))
        for name, rows_estimate, size, pending in rows
        if name.startswith(PREFIX)
    ]


def expired(cutoff: datetime) -> list[Partition]:
    """Partitions whose whole day lies before `cutoff`."""
    return [partition for partition in attached() if partition.ends <= cutoff]


def drop(partition: Partition) -> None:
    """Detach the partition without blocking ingest, then drop it."""
    # An earlier run interrupted between the two steps of a concurrent detach left it pending.
    step = "FINALIZE" if partition.detach_pending else "CONCURRENTLY"
    with _autocommit_connection() as own, own.cursor() as cursor, own.wrap_database_errors:
        # Not in a transaction (DETACH CONCURRENTLY may not be): a session setting, reset before
        # the pooled connection goes back.
        cursor.execute(f"SET lock_timeout = '{int(LOCK_TIMEOUT * 1000)}ms'")
        try:
            cursor.execute(f"ALTER TABLE {PARENT} DETACH PARTITION {partition.name} {step}")
            cursor.execute(f"DROP TABLE {partition.name}")
        finally:
            cursor.execute("RESET lock_timeout")
    with _covered_lock:
        _covered.discard(partition.day)


def detached_leftovers() -> list[str]:
    """Tables of ours no longer attached: a run died between detaching and dropping them."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_class c WHERE c.relkind = 'r' AND c.relname LIKE %s "
            "AND NOT c.relispartition AND c.relnamespace = current_schema()::regnamespace",
            [PREFIX.replace("_", r"\_") + "%"],
        )
        return [name for (name,) in cursor.fetchall()]


def drop_leftover(name: str) -> None:
    with _autocommit_connection() as own, own.cursor() as cursor, own.wrap_database_errors:
        cursor.execute(f"DROP TABLE IF EXISTS {name}")


def forget() -> None:
    """Forget which days are known to have partitions (after a test drops them behind our back)."""
    with _covered_lock:
        _covered.clear()


def _create(cursor, day: date) -> None:
    name, start = name_for(day), datetime.combine(day, time(), tzinfo=UTC)
    cursor.execute(
        f"CREATE TABLE IF NOT EXISTS {name} (LIKE {PARENT} INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
        "INCLUDING STORAGE INCLUDING COMPRESSION)"
    )
    # ATTACH builds the parent's indexes on the (empty) table and adopts its foreign keys.
    cursor.execute(
        f"ALTER TABLE {PARENT} ATTACH PARTITION {name} FOR VALUES FROM (%s) TO (%s)",
        [start, start + timedelta(days=1)],
    )


def _day_of(name: str) -> date:
    return datetime.strptime(name.removeprefix(PREFIX), "%Y%m%d").date()


@contextlib.contextmanager
def _autocommit_connection() -> Iterator:
    """This thread's connection when it is in autocommit, else one of our own."""
    if not connection.in_atomic_block:
        yield connection
        return
    with _own_connection() as own:
        yield own


@contextlib.contextmanager
def _own_connection() -> Iterator:
    """A connection of our own in autocommit, for a caller inside a transaction: DDL here commits at
    once, and DETACH CONCURRENTLY may not run inside a transaction."""
    own = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        own.ensure_connection()
        yield own
    finally:
        own.close()
