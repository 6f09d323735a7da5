"""Compress large event JSON with lz4 on PostgreSQL.

A stored event's exception chain with frames and variables passes the 2 KB TOAST
threshold, so PostgreSQL compresses it on every insert; lz4 does that several times
faster than the default pglz, and reads back faster in admin too.
"""

from django.db import migrations

_COLUMNS = ("exception", "tags", '"user"', "request", "contexts", "extra", "sdk")


def _set_compression(method: str):
    def apply(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        table = apps.get_model("incidents", "ErrorEvent")._meta.db_table
        clauses = ", ".join(f"ALTER COLUMN {column} SET COMPRESSION {method}" for column in _COLUMNS)
        schema_editor.execute(f"ALTER TABLE {table} {clauses}")

    return apply


class Migration(migrations.Migration):
    dependencies = [("incidents", "0004_event_classified_at_ingest")]

    operations = [migrations.RunPython(_set_compression("lz4"), _set_compression("pglz"))]
