"""Evaluate every alert rule once a minute: pending -> firing, quiet resolution, absence, silences ending."""

from django.db import migrations

SCHEDULE_NAME = "alert sweep"


def create(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name=SCHEDULE_NAME,
        defaults={"func": "incidents.tasks.sweep_alerts", "schedule_type": "I", "minutes": 1, "repeats": -1},
    )


def remove(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=SCHEDULE_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("incidents", "0007_alerting")]

    operations = [migrations.RunPython(create, remove)]
