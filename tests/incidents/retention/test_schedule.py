"""The retention purge runs on a django-q2 schedule, in a real worker cluster."""

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import Schedule

from incidents.ingest import pipeline
from incidents.ingest.normalize import normalize_native_event
from incidents.models import ErrorEvent, EventReceipt, PurgeRun
from tests.e2e.captured_server import ROOT, stop_process
from tests.support import database_url_for_processes, native_event, wait_until


def test_the_purge_is_scheduled_every_ten_minutes(db):
    schedule = Schedule.objects.get(name="retention purge")
    assert (schedule.func, schedule.schedule_type, schedule.minutes, schedule.repeats) == (
        "incidents.tasks.purge_expired",
        "I",
        10,
        -1,
    )


@pytest.mark.live
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_worker_cluster_runs_the_scheduled_purge(source, settings):
    at = timezone.now() - timedelta(days=45)
    old = [normalize_native_event(native_event(), received_at=at) for _ in range(3)]
    pipeline.events_store(source=source, events=old, received_at=at)
    fresh = [normalize_native_event(native_event(), received_at=timezone.now())]
    pipeline.events_store(source=source, events=fresh, received_at=timezone.now())
    Schedule.objects.filter(name="retention purge").update(next_run=timezone.now())
    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_processes(),
        "Q_CLUSTER_NAME": f"retention-{uuid.uuid4().hex[:8]}",
        "PYTHONPATH": str(ROOT),
    }
    # In its own process group, so that stopping it also stops its workers.
    worker = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=env, start_new_session=True)
    try:
        done = wait_until(
            lambda: PurgeRun.objects.filter(trigger="schedule", status=PurgeRun.Status.FINISHED).exists(),
            timeout=90,
            interval=0.2,
        )
        assert done, list(PurgeRun.objects.values("status", "error"))
    finally:
        stop_process(worker)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)

    assert [str(e) for e in ErrorEvent.objects.values_list("event_id", flat=True)] == [str(fresh[0]["event_id"])]
    assert EventReceipt.objects.count() == 1
