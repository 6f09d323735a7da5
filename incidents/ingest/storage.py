"""Durable event storage: the one write on the ingest hot path.

Events are inserted with multi-row INSERT ... ON CONFLICT DO NOTHING statements (a repeated
event_id is a client's retry). Batches are cut into chunks of a few fixed sizes, so that on
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

from incidents.models import ErrorEvent

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


@functools.cache
def _insert_sql(vendor: str, count: int) -> str:
    """The statement for `count` rows; PostgreSQL's with its own numbered placeholders ($1, $2, ...):
    psycopg parses %s placeholders on every execute of a statement this long, a tenth of its cost."""
    names = ", ".join(connection.ops.quote_name(field.column) for field in _COLUMNS)
    width = len(_COLUMNS)
    if vendor == "postgresql":
        rows = ("(" + ", ".join(f"${r * width + c + 1}" for c in range(width)) + ")" for r in range(count))
    else:
        rows = ("(" + ", ".join(["%s"] * width) + ")" for _ in range(count))
    return (
        f"INSERT INTO {ErrorEvent._meta.db_table} ({names}) VALUES {', '.join(rows)} "
        "ON CONFLICT (source_id, event_id) DO NOTHING"
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
    adapters = _adapters(connection.vendor)
    rows = []
    for write in writes:
        for event in write.events:
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
        return _insert_all(_rows(writes), _insert_plain)
    connection.ensure_connection()  # not retried: no connection within the pool's timeout is an outage
    rows = _rows(writes)
    try:
        return _insert_all(rows, _insert_prepared)
    except (OperationalError, InterfaceError):
        # Inside a transaction the caller's earlier writes went with the connection: no retry.
        if connection.in_atomic_block or not _connection_lost():
            raise
    connection.close()  # the pool discards the dead connection; the next one it hands out is checked
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
