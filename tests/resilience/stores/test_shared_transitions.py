"""Console processes sharing one breaker through the database or Redis agree on its transitions."""

import json
import os
import subprocess
import sys
import time
import uuid

import pytest
from django.conf import settings

from resilience.models import Breaker, BreakerTransition
from resilience.runtime.state import Mode, SharedState, State
from tests.support import PROBES, database_url_for_processes

# Separate processes read and write the test database, so tests commit for real.
pytestmark = [pytest.mark.django_db(transaction=True, serialized_rollback=True), pytest.mark.live]

BREAKER_PROCESS = PROBES / "breaker_process.py"
RACERS = 4


@pytest.fixture(params=["database", "redis"])
def store_kind(request):
    if request.param == "redis" and not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL")
    return request.param


@pytest.fixture
def breaker_name(store_kind):
    """A name of its own: the Redis store keeps state under the console's prefix, on a server others may share."""
    name = f"shared-{uuid.uuid4().hex[:8]}"
    yield name
    if store_kind == "redis":
        import redis

        redis.Redis.from_url(settings.REDIS_URL).delete(f"resilience:breaker:{name}")


@pytest.fixture
def shared_store(store_kind, console_threads):
    """The store the console processes use, as the test process reaches it."""
    if store_kind == "redis":
        from resilience.stores.redis import RedisStateStore

        store = RedisStateStore.from_url(settings.REDIS_URL)  # the console's own prefix
    else:
        from resilience.stores.database import DatabaseStateStore

        store = DatabaseStateStore()
    yield store
    store.close()


class ConsoleProcess:
    """One breaker_process.py: a console process of its own, driven line by line."""

    def __init__(self, name: str, store_kind: str):
        env = {
            **os.environ,
            "DATABASE_URL": database_url_for_processes(),
            "REDIS_URL": settings.REDIS_URL or "",
            "RESILIENCE_STATE_STORE": store_kind,
            "RESILIENCE_WINDOW_REPORT_SECONDS": "3600",
        }
        command = [sys.executable, str(BREAKER_PROCESS), name]
        self.process = subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.ready = self.read()

    def send(self, command: str) -> None:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def read(self) -> dict:
        line = self.process.stdout.readline()
        assert line, f"the console process exited with {self.process.wait(30)}"
        return json.loads(line)

    def ask(self, command: str) -> dict:
        self.send(command)
        return self.read()

    def stop(self) -> None:
        if self.process.stdin and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()


@pytest.fixture
def start_processes(breaker_name, store_kind):
    started: list[ConsoleProcess] = []

    def start(count: int) -> list[ConsoleProcess]:
        for _ in range(count):
            started.append(ConsoleProcess(breaker_name, store_kind))
        return started[-count:]

    yield start
    for process in started:
        process.stop()


def test_processes_racing_out_of_an_elapsed_opening_make_one_transition_to_half_open(
    breaker_name, shared_store, start_processes
):
    # Probes admitted by every racer, and too few successes to close: the breaker stays half-open after.
    Breaker.objects.create(name=breaker_name, wait_duration=30, permitted_calls_in_half_open=10, success_threshold=10)
    now_ms = int(time.time() * 1000)  # the console's breakers share a wall clock
    opened = SharedState(
        state=State.OPEN,
        generation=1,
        changed_at_ms=now_ms - 60_000,
        opened_at_ms=now_ms - 60_000,
        open_until_ms=now_ms - 30_000,  # the open wait is over
        attempt=1,
        last_reason="failure rate 80%",
    )
    assert shared_store.compare_and_set(breaker_name, 0, opened)

    racers = start_processes(RACERS)
    assert [(racer.ready["state"], racer.ready["generation"]) for racer in racers] == [("open", 1)] * RACERS
    for racer in racers:  # every racer is blocked on its stdin: the calls start together
        racer.send("call")
    after_call = [racer.read() for racer in racers]

    assert [answer["outcome"] for answer in after_call] == ["ok"] * RACERS  # each got a probe
    assert [(answer["state"], answer["generation"]) for answer in after_call] == [("half_open", 2)] * RACERS
    shared = shared_store.read(breaker_name)
    assert (shared.state, shared.generation, shared.half_open_successes) == (State.HALF_OPEN, 2, RACERS)
    announced = [racer.ask("flush")["announced"] for racer in racers]
    assert sorted(state for states in announced for state in states) == ["half_open"]  # one winner announced
    history = list(BreakerTransition.objects.filter(breaker_name=breaker_name).values_list("from_state", "to_state"))
    assert history == [("open", "half_open")]


def test_a_forced_opening_made_in_one_process_is_seen_in_another(breaker_name, shared_store, start_processes):
    Breaker.objects.create(name=breaker_name)
    operator, other = start_processes(2)
    assert (other.ready["state"], other.ready["mode"]) == ("closed", "auto")
    assert other.ask("call")["outcome"] == "ok"

    forced = operator.ask("force_open")

    assert (forced["state"], forced["mode"]) == ("open", "forced_open")
    seen = other.ask(f"wait {Mode.FORCED_OPEN}")  # no call made: the state reaches it from the store
    assert seen["seen"] and (seen["state"], seen["mode"]) == ("open", "forced_open")
    assert other.ask("call")["outcome"] == "refused"
    assert shared_store.read(breaker_name).mode is Mode.FORCED_OPEN
    # The operator's process recorded the transition; the one that adopted it did not repeat it.
    assert (operator.ask("flush")["announced"], other.ask("flush")["announced"]) == (["open"], [])
    history = list(BreakerTransition.objects.filter(breaker_name=breaker_name).values_list("to_state", "mode"))
    assert history == [("open", "forced_open")]
