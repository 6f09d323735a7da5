"""Digest once a minute as a safety net.

Ingest wakes the digest as soon as events are stored; the schedule only catches
events whose digest was lost, for instance when a worker was killed mid-task.
"""

from django.db import migrations

SCHEDULE_NAME = "digest safety net"


def create(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name=SCHEDULE_NAME,
        defaults={"func": "incidents.tasks.digest_events", "schedule_type": "I", "minutes": 1, "repeats": -1},
    )


def remove(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=SCHEDULE_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("incidents", "0002_seed_catalog"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create, remove)]
