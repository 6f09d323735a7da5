"""Durable event storage: the one write on the ingest hot path.

On PostgreSQL the events are inserted and the digest flag is raised in a single
autocommitted statement (one round trip, no BEGIN/COMMIT), so the flag can never be
raised for events that were not stored, nor events stored without it. SQLite runs
the same two statements inside one transaction.
"""

from collections.abc import Sequence
from datetime import datetime

from django.db import connection, transaction

from incidents.models import DigestRequest, ErrorEvent

# The digest fills in incident, error type and severity (nullable until then) and the fingerprint.
_COLUMNS = [
    field
    for field in ErrorEvent._meta.concrete_fields
    if not field.primary_key and field.name not in ("incident", "error_type", "severity")
]
_FLAG_SQL = f"UPDATE {DigestRequest._meta.db_table} SET pending = TRUE, requested_at = %s WHERE id = 1 AND NOT pending"


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


def store_events(*, source_id: int, events: Sequence[dict], received_at: datetime) -> bool:
    """Insert the events once per event_id; return True when this call raised the digest flag."""
    insert = _insert_sql(len(events))
    params = _params(source_id, events, received_at)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # A repeated event (a client retry) inserts nothing and need not wake the digest.
            cursor.execute(
                f"WITH inserted AS ({insert} RETURNING 1), "
                f"flagged AS ({_FLAG_SQL} AND EXISTS (SELECT 1 FROM inserted) RETURNING 1) "
                "SELECT count(*) FROM flagged",
                [*params, received_at],
            )
            return cursor.fetchone()[0] > 0
        with transaction.atomic():
            cursor.execute(insert, params)
            if cursor.rowcount == 0:
                return False
            cursor.execute(_FLAG_SQL, [received_at])
            return cursor.rowcount > 0
