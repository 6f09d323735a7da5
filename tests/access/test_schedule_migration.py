"""Schedules saved before the schedule form was restricted stop running on upgrade."""

from importlib import import_module

import pytest
from django.apps import apps
from django_q.models import Schedule

stop_foreign_schedules = import_module("access.migrations.0003_stop_foreign_schedules").stop_foreign_schedules

pytestmark = pytest.mark.django_db


def _schedule(name: str, **fields) -> Schedule:
    return Schedule.objects.create(name=name, schedule_type=Schedule.MINUTES, minutes=1, repeats=-1, **fields)


def test_it_stops_a_schedule_of_a_function_that_is_not_a_console_task():
    planted = _schedule("planted", func="os.system", args="'id'")
    stop_foreign_schedules(apps, None)
    planted.refresh_from_db()
    assert planted.repeats == 0


def test_it_stops_a_console_task_with_a_hook_or_kwargs_the_scheduler_would_eval():
    hooked = _schedule("hooked", func="incidents.tasks.sweep_alerts", hook="os.system")
    evaluated = _schedule("evaluated", func="incidents.tasks.sweep_alerts", kwargs="x=__import__('os').system('id')")
    stop_foreign_schedules(apps, None)
    assert Schedule.objects.get(pk=hooked.pk).repeats == 0
    assert Schedule.objects.get(pk=evaluated.pk).repeats == 0


def test_it_leaves_the_console_own_schedules_running():
    stop_foreign_schedules(apps, None)
    seeded = Schedule.objects.filter(func__startswith="incidents.tasks.")
    assert seeded.exists()
    assert not seeded.filter(repeats=0).exists()
