"""Expire old live messages every ten minutes: a browser away longer than LIVE_MESSAGE_RETENTION reloads."""

from django.db import migrations

SCHEDULE_NAME = "live message expiry"


def create(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name=SCHEDULE_NAME,
        defaults={"func": "incidents.tasks.expire_live_messages", "schedule_type": "I", "minutes": 10, "repeats": -1},
    )


def remove(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=SCHEDULE_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("incidents", "0011_rollup_time_indexes")]

    operations = [migrations.RunPython(create, remove)]
