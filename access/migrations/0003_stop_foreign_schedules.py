"""Stop schedules saved before the schedule form was restricted that run anything but a console task.

Such a row (say `os.system`, or kwargs the scheduler would eval) could have been written by a
non-superuser; it keeps its history but never runs again (`repeats = 0` is what django-q skips).
"""

import logging

from django import forms
from django.db import migrations

logger = logging.getLogger(__name__)


def _problem(schedule, known: dict) -> str | None:
    from access.task_admin import parse_args, parse_kwargs

    if schedule.func not in known:
        return f"{schedule.func} is not a console task"
    if schedule.hook:
        return f"it has a hook ({schedule.hook})"
    try:
        parse_args(schedule.args or "")
        parse_kwargs(schedule.kwargs or "")
    except forms.ValidationError as error:
        return "; ".join(error.messages)
    return None


def stop_foreign_schedules(apps, schema_editor):
    from access.task_admin import console_tasks

    known = console_tasks()
    for schedule in apps.get_model("django_q", "Schedule").objects.exclude(repeats=0):
        problem = _problem(schedule, known)
        if problem:
            logger.warning("stopped schedule %r (id %s): %s", schedule.name, schedule.pk, problem)
            schedule.repeats = 0
            schedule.save(update_fields=["repeats"])


class Migration(migrations.Migration):
    dependencies = [
        ("access", "0002_api_token_created_by"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
        ("incidents", "0012_live_message_expiry_schedule"),
    ]

    operations = [migrations.RunPython(stop_foreign_schedules, migrations.RunPython.noop)]
