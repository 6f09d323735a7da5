"""Config changes reach separate running processes, by Redis message or by polling."""

import json
import os
import queue
import subprocess
import sys
import threading

import pytest
from django.conf import settings
from django.db import OperationalError

from resilience import config_watcher
from resilience.config_watcher import ConfigWatcher, config_version, config_version_bump
from resilience.models import Breaker
from tests.support import PROBES, database_url_for_processes, wait_until

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

PROBE = PROBES / "config_probe.py"
CONSOLE_PROBE = PROBES / "console_probe.py"


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


class ConsoleProbe:
    """A console process with a breaker that has `failures` failed calls in its window."""

    def __init__(self, name: str, failures: int):
        environment = {
            **os.environ,
            "DATABASE_URL": database_url_for_processes(),
            "RESILIENCE_CONFIG_POLL_SECONDS": "0.1",
        }
        self.process = subprocess.Popen(
            [sys.executable, str(CONSOLE_PROBE), name, str(failures)],
            env=environment,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ask(self, command: str = "report") -> dict:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.first_report()

    def first_report(self) -> dict:
        return json.loads(self.process.stdout.readline())

    def stop(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=15)


@pytest.fixture
def console_probe():
    started: list[ConsoleProbe] = []

    def start(name: str, failures: int) -> ConsoleProbe:
        started.append(ConsoleProbe(name, failures))
        return started[-1]

    yield start
    for probe in started:
        probe.stop()


def test_a_running_process_applies_a_saved_breaker_keeping_its_window_and_state(console_probe):
    row = Breaker.objects.create(name="payments-api", window_size=20, minimum_calls=8, failure_rate_threshold=50)
    probe = console_probe("payments-api", failures=6)
    # Its first calls already ran on the saved config, not on the defaults (a minimum of 10).
    assert probe.first_report() == {"minimum_calls": 8, "calls": 6, "state": "closed"}
    row.minimum_calls = 5
    row.save()
    applied = wait_until(lambda: (report := probe.ask())["minimum_calls"] == 5 and report, timeout=15)
    assert applied == {"minimum_calls": 5, "calls": 6, "state": "closed"}  # the window came through the change
    assert probe.ask("fail") == {"minimum_calls": 5, "calls": 7, "state": "open"}  # the new minimum applies at once


def test_a_change_that_failed_to_apply_is_tried_again_without_another_save(monkeypatch):
    monkeypatch.setattr(config_watcher, "RETRY_SECONDS", 0.05)
    attempts = []

    def apply_once_the_database_is_back(version: int) -> None:
        attempts.append(version)
        if len(attempts) == 1:
            raise OperationalError("the database was briefly unreachable")

    watcher = ConfigWatcher(apply_once_the_database_is_back, poll_seconds=0.02).start()
    try:
        assert wait_until(lambda: len(attempts) >= 2)
        assert attempts[:2] == [config_version(), config_version()]
        assert wait_until(lambda: watcher.applied == config_version())
    finally:
        watcher.stop()
