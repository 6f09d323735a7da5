"""Config changes reach separate running processes, by Redis message or by polling."""

import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.conf import settings

from resilience.live import config_version, config_version_bump
from tests.support import database_url_for_processes

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

PROBE = Path(__file__).with_name("config_probe.py")


class Probe:
    """A watcher process whose applied versions arrive on a queue as it prints them."""

    def __init__(self, **env):
        environment = {**os.environ, "DATABASE_URL": database_url_for_processes(), **env}
        self.process = subprocess.Popen(
            [sys.executable, str(PROBE)], env=environment, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.versions: queue.Queue[int] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.versions.put(int(line.split()[1]))

    def next_version(self, timeout: float = 15) -> int:
        return self.versions.get(timeout=timeout)

    def stop(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=15)


@pytest.fixture
def probes():
    started: list[Probe] = []

    def start(**env) -> Probe:
        probe = Probe(**env)
        started.append(probe)
        return probe

    yield start
    for probe in started:
        probe.stop()


def test_a_bump_raises_the_version_by_one():
    before = config_version()
    assert config_version_bump() == before + 1 == config_version()


def test_every_polling_process_applies_a_change(probes):
    # A long poll interval would fail the test's deadline only if polling did not happen at all.
    watchers = [probes(REDIS_URL="", RESILIENCE_CONFIG_POLL_SECONDS="0.1") for _ in range(2)]
    initial = config_version()
    assert [watcher.next_version() for watcher in watchers] == [initial, initial]
    bumped = config_version_bump()
    assert [watcher.next_version() for watcher in watchers] == [bumped, bumped]


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL")
def test_a_published_change_wakes_a_watcher_long_before_its_next_poll(probes):
    # Polling once an hour: only the Redis message can deliver the change within the deadline.
    watcher = probes(REDIS_URL=settings.REDIS_URL, RESILIENCE_CONFIG_POLL_SECONDS="3600")
    assert watcher.next_version() == config_version()
    bumped = config_version_bump()
    assert watcher.next_version(timeout=10) == bumped
