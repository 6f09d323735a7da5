"""Notifications delivered by real django-q2 clusters, on the ORM broker and on the Redis broker:
two clusters at once never send an attempt twice, and a worker killed mid-send loses nothing."""

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import uuid
from collections import Counter

import pytest
from django.utils import timezone

from incidents.alerting import services
from incidents.models import Notification
from tests.e2e.captured_server import ROOT, stop_process
from tests.receivers import Reply
from tests.support import database_url_for_processes, wait_until

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture(params=["orm", "redis"])
def cluster_env(request, transactional_db) -> dict:
    """The environment of worker processes on the chosen broker, sharing the test database."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_processes(),
        "Q_CLUSTER_NAME": f"alerts-{uuid.uuid4().hex[:8]}",
        "PYTHONPATH": str(ROOT),
        "NOTIFICATION_ALLOWED_NETWORKS": "127.0.0.0/8",
        "NOTIFICATION_LEASE_SECONDS": "2",
    }
    if request.param == "redis":
        if not os.environ.get("REDIS_URL"):
            pytest.skip("needs REDIS_URL")
    else:
        env.pop("REDIS_URL", None)
        env.pop("RESILIENCE_STATE_STORE", None)
    return env


@pytest.fixture
def clusters(cluster_env):
    """Two django-q2 clusters on one queue, as two machines would run them."""
    command = [sys.executable, "manage.py", "qcluster"]
    # Each in its own process group, so that stopping it also stops its workers.
    started = [subprocess.Popen(command, cwd=ROOT, env=cluster_env, start_new_session=True) for _ in range(2)]
    yield started
    for process in started:
        stop_process(process)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def enqueue(env: dict, func: str, *args) -> None:
    """Enqueue a task from a separate process, on the broker the clusters use."""
    code = f"from django_q.tasks import async_task; async_task({func!r}, *{list(args)!r})"
    subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env, check=True)


def test_two_clusters_delivering_the_same_attempts_send_each_once(clusters, cluster_env, receiver, receiver_channel):
    ids = [services.channel_test(channel=receiver_channel, by="user:ops").pk for _ in range(40)]
    for _ in range(3):  # several tasks racing for every attempt, spread over both clusters
        enqueue(cluster_env, "incidents.tasks.deliver_notifications", random.sample(ids, len(ids)))
    assert wait_until(lambda: Notification.objects.filter(status="sent").count() == len(ids), timeout=60)
    sent = Counter(request.json()["dedup_key"] for request in receiver.requests)
    assert len(sent) == len(ids) and set(sent.values()) == {1}
    assert Notification.objects.count() == len(ids)  # no attempt failed, none was duplicated


def test_a_worker_killed_mid_send_loses_nothing(clusters, cluster_env, receiver, receiver_channel):
    release = threading.Event()
    receiver.reply = Reply(hold=release)
    notification = services.channel_test(channel=receiver_channel, by="user:ops")
    enqueue(cluster_env, "incidents.tasks.deliver_notifications", [notification.pk])
    assert wait_until(lambda: receiver.requests, timeout=60)  # the worker is inside the send
    claimed_by = Notification.objects.get(pk=notification.pk).claimed_by
    os.kill(int(claimed_by.rsplit(":", 1)[1]), signal.SIGKILL)
    receiver.reply = Reply()
    release.set()
    # Its claim runs out (2 s here); then the sweep, as the schedule runs it, claims the attempt again.
    lease_until = Notification.objects.get(pk=notification.pk).lease_until
    assert wait_until(lambda: timezone.now() > lease_until, timeout=30)
    enqueue(cluster_env, "incidents.tasks.sweep_alerts")
    assert wait_until(lambda: Notification.objects.get(pk=notification.pk).status == "sent", timeout=60)
    assert len(receiver.requests) == 2  # the killed attempt's request, and the one that completed
