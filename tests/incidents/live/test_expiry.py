"""Old live messages expire on a django-q2 schedule."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import Schedule

from incidents import tasks
from incidents.models import LiveMessage

pytestmark = pytest.mark.django_db


def test_messages_older_than_the_retention_are_deleted_and_newer_ones_kept(settings):
    settings.LIVE_MESSAGE_RETENTION_SECONDS = 3600
    old = LiveMessage.objects.create(
        topic="incident.updated", key="incident:1", payload={}, created_at=timezone.now() - timedelta(hours=2)
    )
    recent = LiveMessage.objects.create(topic="incident.updated", key="incident:1", payload={})
    assert tasks.expire_live_messages() == 1
    assert list(LiveMessage.objects.values_list("id", flat=True)) == [recent.pk]
    assert old.pk < recent.pk


def test_the_expiry_runs_every_ten_minutes():
    schedule = Schedule.objects.get(name="live message expiry")
    assert (schedule.func, schedule.schedule_type, schedule.minutes) == (
        "incidents.tasks.expire_live_messages",
        "I",
        10,
    )
