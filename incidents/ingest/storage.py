"""Durable event storage: the one write on the ingest hot path.

Each event's id is recorded first as an EventReceipt (INSERT ... ON CONFLICT DO NOTHING: a
repeated event_id is a client's retry), and only the events whose receipt is new are stored:
on PostgreSQL in one statement (a data-modifying CTE), on SQLite in two within one transaction.
The event table cannot be unique on event_id itself: on PostgreSQL it is partitioned by time,
and a partition is made for a day before the day's first event is stored (retention.partitions).
Batches are cut into chunks of a few fixed sizes, so that on
PostgreSQL each size is prepared server-side once per connection (planning a 20-column insert
costs more than running it) and a handful of statements serve every batch. The statements are
idempotent, so a batch that fails on a dead connection (the database restarted while the pool
held it) is sent again once, on a fresh connection.
"""

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import InterfaceError, OperationalError, connection, models, transaction

from incidents.models import ErrorEvent, EventReceipt
from incidents.retention import partitions

# The digest fills in the incident (empty until then).
_COLUMNS = [field for field in ErrorEvent._meta.concrete_fields if not field.primary_key and field.name != "incident"]
# Rows per statement, largest first; SQLite takes at most 999 parameters in Django's reckoning.
_CHUNKS = {"postgresql": (256, 64, 16, 4, 1), "sqlite": (32, 8, 1)}


@dataclass(frozen=True)
class EventWrite:
    """Classified events of one request, to be stored together."""

    source_id: int
    events: Sequence[dict]
    received_at: datetime


_KEY = [_COLUMNS.index(ErrorEvent._meta.get_field(name)) for name in ("source", "event_id", "received_at")]
_RECEIPTS = EventReceipt._meta.db_table


@functools.cache
def _insert_sql(vendor: str, count: int) -> str:
    """The statement for `count` rows; PostgreSQL's with its own numbered placeholders ($1, $2, ...):
    psycopg parses %s placeholders on every execute of a statement this long, a tenth of its cost."""
    names = [connection.ops.quote_name(field.column) for field in _COLUMNS]
    if vendor != "postgresql":
        rows = ", ".join("(" + ", ".join(["%s"] * len(names)) + ")" for _ in range(count))
        return f"INSERT INTO {ErrorEvent._meta.db_table} ({', '.join(names)}) VALUES {rows}"
    # Typed placeholders: VALUES in a CTE has no target columns to take the types from.
    types = [field.db_type(connection) for field in _COLUMNS]
    width = len(names)
    rows = ", ".join(
        "(" + ", ".join(f"${r * width + c + 1}::{types[c]}" for c in range(width)) + ")" for r in range(count)
    )
    return (
        f"WITH batch ({', '.join(names)}) AS (VALUES {rows}), "
        f"fresh AS (INSERT INTO {_RECEIPTS} (source_id, event_id, received_at) "
        "SELECT source_id, event_id, received_at FROM batch ON CONFLICT DO NOTHING RETURNING source_id, event_id) "
        f"INSERT INTO {ErrorEvent._meta.db_table} ({', '.join(names)}) "
        f"SELECT {', '.join('batch.' + name for name in names)} FROM batch JOIN fresh USING (source_id, event_id)"
    )


@functools.cache
def _receipts_sql(count: int) -> str:
    """SQLite's first statement: the receipts, returning those that are new."""
    rows = ", ".join(["(%s, %s, %s)"] * count)
    return (
        f"INSERT INTO {_RECEIPTS} (source_id, event_id, received_at) VALUES {rows} "
        "ON CONFLICT DO NOTHING RETURNING source_id, event_id"
    )


@functools.cache
def _adapters(vendor: str) -> list[Callable]:
    """One function per column turning an event's value into a query parameter.

    psycopg adapts UUIDs, datetimes, numbers and strings itself, and JSON through Jsonb,
    so on PostgreSQL only JSON columns need wrapping; Django's per-field preparation,
    which other databases need, costs a tenth of the request here.
    """
    if vendor != "postgresql":
        return [functools.partial(_prepared_by_django, field) for field in _COLUMNS]
    from psycopg.types.json import Jsonb

    return [_jsonb_or_null(Jsonb) if isinstance(field, models.JSONField) else _unchanged for field in _COLUMNS]


def _prepared_by_django(field: models.Field, value):
    return field.get_db_prep_save(value, connection)


def _unchanged(value):
    return value


def _jsonb_or_null(jsonb: type) -> Callable:
    return lambda value: None if value is None else jsonb(value)


def _rows(writes: Sequence[EventWrite]) -> list[list]:
    """The parameters of each event, once per event_id (a retry may repeat one within a batch)."""
    adapters = _adapters(connection.vendor)
    rows, seen = [], set()
    for write in writes:
        for event in write.events:
            if (write.source_id, event["event_id"]) in seen:
                continue
            seen.add((write.source_id, event["event_id"]))
            values = {**event, "source": write.source_id, "received_at": write.received_at}
            rows.append([adapt(values[field.name]) for adapt, field in zip(adapters, _COLUMNS, strict=True)])
    return rows


def _chunks(rows: list[list]) -> Iterator[tuple[int, list]]:
    """(row count, flat parameters) per statement, in sizes from _CHUNKS."""
    start = 0
    for size in _CHUNKS.get(connection.vendor, _CHUNKS["sqlite"]):
        while len(rows) - start >= size:
            yield size, [value for row in rows[start : start + size] for value in row]
            start += size


def store_writes(writes: Sequence[EventWrite]) -> int:
    """Insert the events of several requests in one transaction, once per event_id (a repeat is a client
    retry); return how many were new."""
    if connection.vendor != "postgresql":
        rows = _rows(writes)
        with transaction.atomic():  # a receipt stands only with its event
            return _insert_all(_new_receipts(rows), _insert_plain)
    connection.ensure_connection()  # not retried: no connection within the pool's timeout is an outage
    rows, days = _rows(writes), {write.received_at for write in writes}
    try:
        return _insert_partitioned(rows, days)
    except (OperationalError, InterfaceError):
        # Inside a transaction the caller's earlier writes went with the connection: no retry.
        if connection.in_atomic_block or not _connection_lost():
            raise
    connection.close()  # the pool discards the dead connection; the next one it hands out is checked
    return _insert_partitioned(rows, days)


def _insert_partitioned(rows: list[list], moments: set[datetime]) -> int:
    partitions.cover(moments)
    return _insert_all(rows, _insert_prepared)


def _insert_all(rows: list[list], insert: Callable[[str, list], int]) -> int:
    chunks = list(_chunks(rows))
    if not chunks:
        return 0
    if len(chunks) == 1:  # one statement is atomic by itself: no BEGIN/COMMIT round trips
        size, params = chunks[0]
        return insert(_insert_sql(connection.vendor, size), params)
    with transaction.atomic():
        return sum(insert(_insert_sql(connection.vendor, size), params) for size, params in chunks)


def _new_receipts(rows: list[list]) -> list[list]:
    """Record the receipts (SQLite) and keep the rows whose event_id is new."""
    source, event_id, received_at = _KEY
    new = set()
    with connection.cursor() as cursor:
        for start in range(0, len(rows), 256):
            chunk = rows[start : start + 256]
            params = [value for row in chunk for value in (row[source], row[event_id], row[received_at])]
            cursor.execute(_receipts_sql(len(chunk)), params)
            new.update((str(s), str(e)) for s, e in cursor.fetchall())
    return [row for row in rows if (str(row[source]), str(row[event_id])) in new]


def _insert_plain(sql: str, params: list) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _insert_prepared(sql: str, params: list) -> int:
    import psycopg

    connection.ensure_connection()
    # A server-side binding cursor lets psycopg reuse the prepared plan on this connection, and a raw
    # one takes the statement as PostgreSQL does; its errors are raised as Django's, as a Django cursor's would be.
    with connection.wrap_database_errors, psycopg.RawCursor(connection.connection) as cursor:
        cursor.execute(sql, params, prepare=True)
        return cursor.rowcount


def _connection_lost() -> bool:
    raw = connection.connection
    return raw is not None and (raw.closed or raw.broken)
