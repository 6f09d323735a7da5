"""A breaker on the Redis store makes no round trip while it stays CLOSED: Redis sees no command per call.

The Redis server itself counts (MONITOR, on a connection of the test's own). Only the commands that
arrive on the store's connections are kept, told apart by the client name they all carry: the server
may be shared with other tests. The store's state listener is stopped while counting, so its periodic
catch-up read is not taken for a call's round trip; the calls never needed it.
"""

import asyncio
import threading
import uuid

import pytest
from django.conf import settings

from resilience.runtime.breaker import BreakerConfig, CircuitBreaker
from resilience.runtime.state import State
from resilience.stores.redis import RedisStateStore

CALLS = 10_000

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL")

PLAIN = BreakerConfig(window_size=100, minimum_calls=10, failure_rate_threshold=50)
# Timed calls and judged results leave the one-flag fast path, still without a store.
TIMED = BreakerConfig(
    window_size=100,
    minimum_calls=10,
    failure_rate_threshold=50,
    slow_call_duration=5,
    call_timeout=5,
    failure_statuses=("5xx",),
)


@pytest.fixture
def store():
    import redis

    client_name = f"success-path-{uuid.uuid4().hex[:8]}"  # every connection of the store's pool carries it
    prefix = f"test:{uuid.uuid4().hex[:8]}:"
    client = redis.Redis.from_url(settings.REDIS_URL, client_name=client_name, socket_timeout=10)
    built = RedisStateStore(client, prefix=prefix)
    yield built
    built.close()
    for key in client.scan_iter(prefix + "*"):
        client.delete(key)
    client.close()


class StoreCommands:
    """Collects, through MONITOR, the commands Redis receives on the store's connections."""

    def __init__(self, store: RedisStateStore):
        import redis

        self.store = store
        self.marker = f"measure-{uuid.uuid4().hex}"
        self.seen: list[tuple[str, str]] = []  # (client address, command) between the markers
        self._counting = threading.Event()
        self._observer = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=30)
        self._monitor = self._observer.monitor()
        self._thread = threading.Thread(target=self._watch, name="redis-monitor", daemon=True)

    def __enter__(self) -> "StoreCommands":
        self._monitor.__enter__()  # MONITOR is on once this returns
        self._thread.start()
        self.store.client.echo(f"{self.marker}:start")  # on the store's own connection
        assert self._counting.wait(10), "the Redis server never showed the start marker"
        return self

    def __exit__(self, *exc_info) -> None:
        self.store.client.echo(f"{self.marker}:stop")
        self._thread.join(30)
        assert not self._thread.is_alive(), "the Redis server never showed the stop marker"
        self._monitor.__exit__(None, None, None)
        name = self.store.client.connection_pool.connection_kwargs["client_name"]
        ours = {entry["addr"] for entry in self._observer.client_list() if entry.get("name") == name}
        self._observer.close()
        assert ours, "the store's connections were not found"
        self.commands = [command for address, command in self.seen if address in ours]

    def _watch(self) -> None:
        for entry in self._monitor.listen():
            command = entry["command"]
            if command == f"ECHO {self.marker}:start":
                self._counting.set()
            elif command == f"ECHO {self.marker}:stop":
                return
            elif self._counting.is_set() and entry.get("client_type") != "lua":
                self.seen.append((f"{entry['client_address']}:{entry['client_port']}", command))


def breaker_on(store: RedisStateStore, config: BreakerConfig) -> CircuitBreaker:
    breaker = CircuitBreaker("payments-api", config, store=store)
    store.close()  # the state listener: its catch-up reads come every few seconds whatever the calls do
    return breaker


def ok():
    return "ok"


async def ok_async():
    return "ok"


def refused():
    raise ConnectionError("connection refused")


@pytest.mark.parametrize("config", [PLAIN, TIMED], ids=["plain", "timed"])
def test_successful_calls_make_no_round_trip(store, config):
    breaker = breaker_on(store, config)
    guarded = breaker.protect(ok)

    with StoreCommands(store) as counted:
        for _ in range(CALLS):
            breaker.call(ok)
        for _ in range(CALLS):
            guarded()

    assert counted.commands == []
    assert breaker.metrics().calls == 100  # the calls were counted, in the window
    assert breaker.state is State.CLOSED


@pytest.mark.parametrize("config", [PLAIN, TIMED], ids=["plain", "timed"])
def test_successful_async_calls_make_no_round_trip(store, config):
    breaker = breaker_on(store, config)

    async def calls():
        for _ in range(CALLS):
            assert await breaker.call_async(ok_async) == "ok"

    with StoreCommands(store) as counted:
        asyncio.run(calls())

    assert counted.commands == []
    assert breaker.metrics().calls == 100


def test_failures_that_do_not_trip_make_no_round_trip(store):
    # Only transitions and permits go through the store: a failure recorded below the threshold is neither.
    breaker = breaker_on(store, PLAIN)

    with StoreCommands(store) as counted:
        for call in range(CALLS):
            if call % 4 == 0:  # 25 % of calls fail, under the 50 % threshold
                with pytest.raises(ConnectionError):
                    breaker.call(refused)
            else:
                breaker.call(ok)

    assert counted.commands == []
    metrics = breaker.metrics()
    assert (metrics.state, metrics.failures, metrics.calls) == (State.CLOSED, 25, 100)


def test_the_count_sees_the_round_trip_of_a_transition(store):
    """The other tests' empty counts mean something: a trip's compare-and-set is counted."""
    breaker = breaker_on(store, PLAIN)

    with StoreCommands(store) as counted:
        for _ in range(10):
            with pytest.raises(ConnectionError):
                breaker.call(refused)

    assert breaker.state is State.OPEN
    scripts = [command for command in counted.commands if command.startswith("EVALSHA")]
    assert len(scripts) in (1, 2), counted.commands  # twice when the script had to be loaded first
    assert all(command.startswith(("EVALSHA", "SCRIPT", "EVAL")) for command in counted.commands)
