"""Every breaker state store keeps the same promises: atomic transitions and permits across threads and processes."""

import os
import subprocess
import sys
import threading
import uuid
from dataclasses import replace

import pytest
from django.conf import settings
from django.db import connection

from resilience.runtime.state import InMemoryStateStore, Mode, SharedState, State
from resilience.stores.database import DatabaseStateStore
from resilience.stores.redis import RedisStateStore
from tests.support import PROBES, database_url_for_processes

# Threads and processes need their own connections to the test database, so tests commit for real.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

PERMIT_PROBE = PROBES / "permit_probe.py"


@pytest.fixture(params=["memory", "database", "redis"])
def store_kind(request):
    if request.param == "redis" and not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL")
    return request.param


@pytest.fixture
def redis_prefix():
    prefix = f"test:{uuid.uuid4().hex[:8]}:"
    yield prefix
    if settings.REDIS_URL:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL)
        for key in client.scan_iter(prefix + "*"):
            client.delete(key)


@pytest.fixture
def make_store(store_kind, redis_prefix):
    """Build stores of the kind under test; two built here act like two processes sharing state."""
    built = []

    def make():
        if store_kind == "memory":
            store = built[0] if built else InMemoryStateStore()  # one process: the same instance
        elif store_kind == "database":
            store = DatabaseStateStore(poll_seconds=0.05)
        else:
            store = RedisStateStore.from_url(settings.REDIS_URL, prefix=redis_prefix)
        built.append(store)
        return store

    yield make
    for store in built:
        if hasattr(store, "close"):
            store.close()


def half_open(store, name: str) -> SharedState:
    opened = replace(SharedState(), state=State.OPEN, generation=1, last_reason="failure rate 60%")
    assert store.compare_and_set(name, 0, opened)
    probing = replace(opened, state=State.HALF_OPEN, generation=2, last_reason="wait over")
    assert store.compare_and_set(name, 1, probing)
    return probing


def test_an_unknown_breaker_reads_as_closed(make_store):
    assert make_store().read("payments") == SharedState()


def test_a_transition_lands_only_on_the_generation_it_was_based_on(make_store):
    store = make_store()
    opened = replace(SharedState(), state=State.OPEN, generation=1, opened_at_ms=1000, open_until_ms=31000, attempt=1)
    assert store.compare_and_set("payments", 0, opened)
    assert not store.compare_and_set("payments", 0, replace(opened, last_reason="a late loser"))
    assert store.read("payments") == opened


def test_permits_are_capped_across_threads(make_store):
    store = make_store()
    probing = half_open(store, "payments")
    start = threading.Barrier(8)
    granted: list[bool] = []

    def race():
        start.wait()
        try:
            granted.extend(store.acquire_half_open_permit("payments", probing.generation, 3) for _ in range(5))
        finally:
            connection.close()  # give a database store's pooled connection back

    threads = [threading.Thread(target=race) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert granted.count(True) == 3
    assert store.read("payments").half_open_permits_used == 3


def test_a_permit_of_an_older_generation_is_refused(make_store):
    store = make_store()
    probing = half_open(store, "payments")
    assert not store.acquire_half_open_permit("payments", probing.generation - 1, 3)


def test_a_probe_result_releases_its_permit_and_counts_a_success(make_store):
    store = make_store()
    probing = half_open(store, "payments")
    assert store.acquire_half_open_permit("payments", probing.generation, 1)
    assert not store.acquire_half_open_permit("payments", probing.generation, 1)
    after = store.record_probe("payments", probing.generation, True)
    assert (after.half_open_permits_used, after.half_open_successes) == (0, 1)
    assert store.acquire_half_open_permit("payments", probing.generation, 1)


def test_forcing_open_then_back_to_auto_probes_first(make_store):
    store = make_store()
    before, forced = store.force_mode("payments", Mode.FORCED_OPEN, 5000, "maintenance")
    assert (before.state, forced.state, forced.mode) == (State.CLOSED, State.OPEN, Mode.FORCED_OPEN)
    _, auto = store.force_mode("payments", Mode.AUTO, 6000, "maintenance over")
    assert (auto.state, auto.mode, auto.last_reason) == (State.HALF_OPEN, Mode.AUTO, "maintenance over")
    assert store.read("payments") == auto


def test_a_transition_made_elsewhere_reaches_subscribers(make_store):
    watching, elsewhere = make_store(), make_store()
    seen: list[SharedState] = []
    arrived = threading.Event()

    def on_change(state: SharedState) -> None:
        seen.append(state)
        if state.state == State.OPEN:
            arrived.set()

    watching.subscribe("payments", on_change)  # a subscriber may first be told the state it starts from
    elsewhere.force_mode("payments", Mode.FORCED_OPEN, 5000, "operator")
    assert arrived.wait(10), seen
    assert seen[-1].state == State.OPEN and seen[-1].last_reason == "operator"
    assert [state.generation for state in seen] == sorted({state.generation for state in seen})  # never older


@pytest.mark.live
def test_processes_racing_for_permits_get_no_more_than_the_limit(store_kind, make_store, redis_prefix):
    if store_kind == "memory":
        pytest.skip("an in-memory store is one process's")
    store = make_store()
    probing = half_open(store, "payments")
    env = {**os.environ, "DATABASE_URL": database_url_for_processes(), "REDIS_URL": settings.REDIS_URL or ""}
    command = [sys.executable, str(PERMIT_PROBE), store_kind, "payments", str(probing.generation), "3", "20"]
    probes = [
        subprocess.Popen([*command, redis_prefix], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    for probe in probes:
        assert probe.stdout.readline().strip() == "ready"
    for probe in probes:
        probe.stdin.write("go\n")
        probe.stdin.flush()
    granted = [int(probe.stdout.readline().split()[1]) for probe in probes]
    for probe in probes:
        probe.stdin.close()
        probe.wait(timeout=30)
    assert sum(granted) == 3
