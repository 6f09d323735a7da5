"""Durable event storage: the one write on the ingest hot path.

Events are inserted with a single autocommitted INSERT ... ON CONFLICT DO NOTHING (one
round trip, no BEGIN/COMMIT). On PostgreSQL the statement is prepared server-side once
per connection: planning a 20-column insert costs more than running it.
"""

from collections.abc import Sequence
from datetime import datetime

from django.db import connection

from incidents.models import ErrorEvent

# The digest fills in incident, error type and severity (nullable until then) and the fingerprint.
_COLUMNS = [
    field
    for field in ErrorEvent._meta.concrete_fields
    if not field.primary_key and field.name not in ("incident", "error_type", "severity")
]


def _insert_sql(count: int) -> str:
    names = ", ".join(connection.ops.quote_name(field.column) for field in _COLUMNS)
    row = "(" + ", ".join(["%s"] * len(_COLUMNS)) + ")"
    return (
        f"INSERT INTO {ErrorEvent._meta.db_table} ({names}) VALUES {', '.join([row] * count)} "
        "ON CONFLICT (source_id, event_id) DO NOTHING"
    )


def _params(source_id: int, events: Sequence[dict], received_at: datetime) -> list:
    params = []
    for event in events:
        values = {**event, "source": source_id, "received_at": received_at, "fingerprint": ""}
        for field in _COLUMNS:
            params.append(field.get_db_prep_save(values[field.name], connection))
    return params


def store_events(*, source_id: int, events: Sequence[dict], received_at: datetime) -> int:
    """Insert the events once per event_id (a repeat is a client retry); return how many were new."""
    sql = _insert_sql(len(events))
    params = _params(source_id, events, received_at)
    if connection.vendor == "postgresql":
        import psycopg

        connection.ensure_connection()
        # A server-side binding cursor lets psycopg reuse the prepared plan on this connection.
        with psycopg.Cursor(connection.connection) as cursor:
            cursor.execute(sql, params, prepare=True)
            return cursor.rowcount
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount
