"""On PostgreSQL, turn the event table into one partitioned by day of received_at.

The rows are copied into a partitioned table of the same columns, with a partition for each
day that has events and for the next days, and the old table is dropped. The primary key
becomes (id, received_at), as a partitioned table requires; ids keep counting from where they
were. Ingest's writes wait while it runs (better stop the web processes for it: a write that waited
then fails, and its client is answered with an error it retries; no accepted event is lost). The
table has no foreign key constraints (0015 removed them: see ErrorEvent). On a large database this
copies every event once: run it in a quiet hour. SQLite keeps its plain table.
"""

from datetime import UTC, datetime, time, timedelta

from django.db import migrations

TABLE = "incidents_errorevent"
NEW = "incidents_errorevent_partitioned"
DAYS_AHEAD = 7


def partition(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE {NEW} (LIKE {TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE "
            "INCLUDING COMPRESSION INCLUDING IDENTITY) PARTITION BY RANGE (received_at)"
        )
        cursor.execute(f"ALTER TABLE {NEW} ADD CONSTRAINT {TABLE}_pkey_partitioned PRIMARY KEY (id, received_at)")
        cursor.execute(f"SELECT DISTINCT (received_at AT TIME ZONE 'UTC')::date FROM {TABLE}")
        today = datetime.now(UTC).date()
        days = {day for (day,) in cursor.fetchall()} | {today + timedelta(days=n) for n in range(DAYS_AHEAD + 1)}
        for day in sorted(days):
            start = datetime.combine(day, time(), tzinfo=UTC)
            cursor.execute(
                f"CREATE TABLE {TABLE}_p{day:%Y%m%d} PARTITION OF {NEW} FOR VALUES FROM (%s) TO (%s)",
                [start, start + timedelta(days=1)],
            )
        # Writes wait until the migration commits (reads go on): none can land in the old table after the copy.
        cursor.execute(f"LOCK TABLE {TABLE} IN EXCLUSIVE MODE")
        cursor.execute(f"INSERT INTO {NEW} SELECT * FROM {TABLE}")
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence('{NEW}', 'id'), (SELECT COALESCE(MAX(id), 0) + 1 FROM {TABLE}), false)"
        )
        cursor.execute(f"DROP TABLE {TABLE}")
        cursor.execute(f"ALTER TABLE {NEW} RENAME TO {TABLE}")
        cursor.execute(f"ALTER TABLE {TABLE} RENAME CONSTRAINT {TABLE}_pkey_partitioned TO {TABLE}_pkey")
    model = apps.get_model("incidents", "ErrorEvent")
    for index in model._meta.indexes:
        schema_editor.add_index(model, index)


def unpartition(apps, schema_editor):
    """Back to one plain table (the rows copied, the partitions dropped with the partitioned table)."""
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE {NEW} (LIKE {TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE "
            "INCLUDING COMPRESSION INCLUDING IDENTITY)"
        )
        cursor.execute(f"LOCK TABLE {TABLE} IN EXCLUSIVE MODE")
        cursor.execute(f"INSERT INTO {NEW} SELECT * FROM {TABLE}")
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence('{NEW}', 'id'), (SELECT COALESCE(MAX(id), 0) + 1 FROM {TABLE}), false)"
        )
        cursor.execute(f"DROP TABLE {TABLE}")
        cursor.execute(f"ALTER TABLE {NEW} RENAME TO {TABLE}")
        cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY (id)")
    model = apps.get_model("incidents", "ErrorEvent")
    for index in model._meta.indexes:
        schema_editor.add_index(model, index)


class Migration(migrations.Migration):
    # Not atomic per statement list: the copy and the swap still run in the migration's transaction.
    dependencies = [("incidents", "0016_retention_data")]

    operations = [migrations.RunPython(partition, unpartition, elidable=False)]
