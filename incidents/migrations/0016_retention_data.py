"""Fill what retention relies on from what is stored: receipts for the stored events' ids, hour
rollups per source from the minute rollups, the policy row, and the purge schedule."""

from django.db import migrations
from django.db.models import Sum
from django.db.models.functions import TruncHour

SCHEDULE_NAME = "retention purge"


def fill(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO incidents_eventreceipt (source_id, event_id, received_at) "
            "SELECT source_id, event_id, MIN(received_at) FROM incidents_errorevent GROUP BY source_id, event_id"
        )
    SourceMinute = apps.get_model("incidents", "SourceMinute")
    SourceHour = apps.get_model("incidents", "SourceHour")
    keys = ("source_id", "error_type_id", "severity", "environment")
    hours = SourceMinute.objects.annotate(hour=TruncHour("minute")).values(*keys, "hour").annotate(total=Sum("count"))
    batch = []
    for row in hours.order_by().iterator(chunk_size=2000):
        batch.append(SourceHour(**{key: row[key] for key in keys}, hour=row["hour"], count=row["total"]))
        if len(batch) >= 2000:
            SourceHour.objects.bulk_create(batch)
            batch = []
    SourceHour.objects.bulk_create(batch)
    apps.get_model("incidents", "RetentionPolicy").objects.get_or_create(pk=1)
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name=SCHEDULE_NAME,
        defaults={"func": "incidents.tasks.purge_expired", "schedule_type": "I", "minutes": 10, "repeats": -1},
    )


def empty(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=SCHEDULE_NAME).delete()
    for name in ("EventReceipt", "SourceHour", "RetentionPolicy"):
        apps.get_model("incidents", name).objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("incidents", "0015_retention"), ("django_q", "0018_task_success_index")]

    operations = [migrations.RunPython(fill, empty)]
