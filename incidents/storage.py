"""Durable event storage: the one write on the ingest hot path.

Events are inserted with a single autocommitted INSERT ... ON CONFLICT DO NOTHING (one
round trip, no BEGIN/COMMIT). On PostgreSQL the statement is prepared server-side once
per connection: planning a 20-column insert costs more than running it. The statement is
idempotent, so one that fails on a dead connection (the database restarted while the pool
held it) is sent again once, on a fresh connection.
"""

import functools
from collections.abc import Callable, Sequence
from datetime import datetime

from django.db import InterfaceError, OperationalError, connection, models

from incidents.models import ErrorEvent

# The digest fills in the incident (empty until then).
_COLUMNS = [field for field in ErrorEvent._meta.concrete_fields if not field.primary_key and field.name != "incident"]


@functools.cache
def _insert_sql(vendor: str, count: int) -> str:
    names = ", ".join(connection.ops.quote_name(field.column) for field in _COLUMNS)
    row = "(" + ", ".join(["%s"] * len(_COLUMNS)) + ")"
    return (
        f"INSERT INTO {ErrorEvent._meta.db_table} ({names}) VALUES {', '.join([row] * count)} "
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


def _params(source_id: int, events: Sequence[dict], received_at: datetime) -> list:
    adapters = _adapters(connection.vendor)
    params = []
    for event in events:
        values = {**event, "source": source_id, "received_at": received_at}
        params.extend(adapt(values[field.name]) for adapt, field in zip(adapters, _COLUMNS, strict=True))
    return params


def store_events(*, source_id: int, events: Sequence[dict], received_at: datetime) -> int:
    """Insert the events once per event_id (a repeat is a client retry); return how many were new."""
    sql = _insert_sql(connection.vendor, len(events))
    params = _params(source_id, events, received_at)
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.rowcount
    connection.ensure_connection()  # not retried: no connection within the pool's timeout is an outage
    try:
        return _insert_prepared(sql, params)
    except (OperationalError, InterfaceError):
        # Inside a transaction the caller's earlier writes went with the connection: no retry.
        if connection.in_atomic_block or not _connection_lost():
            raise
    connection.close()  # the pool discards the dead connection; the next one it hands out is checked
    return _insert_prepared(sql, params)


def _insert_prepared(sql: str, params: list) -> int:
    import psycopg

    connection.ensure_connection()
    # A server-side binding cursor lets psycopg reuse the prepared plan on this connection;
    # its errors are raised as Django's, as a Django cursor's would be.
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, prepare=True)
        return cursor.rowcount


def _connection_lost() -> bool:
    raw = connection.connection
    return raw is not None and (raw.closed or raw.broken)
