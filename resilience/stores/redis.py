"""Breaker state shared through Redis, for processes on several machines.

Each breaker is one hash. Every change runs as a Lua script, so it is atomic in Redis:
a transition lands only if the generation is still the one the process saw, a half-open
permit only if fewer than the limit are taken. After each transition the script
publishes the breaker's name, and a subscriber thread hands the new state to the
breakers of every process. Only transitions and permits come here: the CLOSED success
path of a breaker never calls the store, so it makes no network round trip.
"""

import logging
import threading
import time
from dataclasses import fields

from resilience.runtime.state import Mode, SharedState, State, StateCallback, state_for_mode
from resilience.stores.subscribers import Subscribers

logger = logging.getLogger(__name__)

CATCH_UP_SECONDS = 5.0
_FIELDS = [field.name for field in fields(SharedState)]
_INTEGER_FIELDS = {field.name for field in fields(SharedState) if field.type in (int, "int")}

# KEYS[1] hash, ARGV[1] expected generation, ARGV[2] channel, ARGV[3] name, ARGV[4..] field/value pairs
_COMPARE_AND_SET = """
local generation = tonumber(redis.call('HGET', KEYS[1], 'generation') or '0')
if generation ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
"""

# KEYS[1] hash, ARGV[1] generation, ARGV[2] limit
_ACQUIRE_PERMIT = """
local state = redis.call('HMGET', KEYS[1], 'generation', 'state', 'half_open_permits_used')
if tonumber(state[1] or '0') ~= tonumber(ARGV[1]) or state[2] ~= 'half_open' then return 0 end
if tonumber(state[3] or '0') >= tonumber(ARGV[2]) then return 0 end
redis.call('HINCRBY', KEYS[1], 'half_open_permits_used', 1)
return 1
"""

# KEYS[1] hash, ARGV[1] generation, ARGV[2] 1 when the probe succeeded
_RECORD_PROBE = """
local state = redis.call('HMGET', KEYS[1], 'generation', 'state', 'half_open_permits_used')
if tonumber(state[1] or '0') == tonumber(ARGV[1]) and state[2] == 'half_open' then
  if tonumber(state[3] or '0') > 0 then redis.call('HINCRBY', KEYS[1], 'half_open_permits_used', -1) end
  redis.call('HINCRBY', KEYS[1], 'half_open_successes', tonumber(ARGV[2]))
end
return redis.call('HGETALL', KEYS[1])
"""


def _decode(raw: dict) -> SharedState:
    if not raw:
        return SharedState()
    values = {key.decode(): value.decode() for key, value in raw.items()}
    known = {name: values[name] for name in _FIELDS if name in values}
    for name in _INTEGER_FIELDS & known.keys():
        known[name] = int(known[name])
    if "state" in known:
        known["state"] = State(known["state"])
    if "mode" in known:
        known["mode"] = Mode(known["mode"])
    return SharedState(**known)


def _pairs(state: SharedState) -> list[str]:
    pairs: list[str] = []
    for name in _FIELDS:
        pairs += [name, str(getattr(state, name))]
    return pairs


class RedisStateStore:
    """BreakerStateStore on Redis hashes and Lua scripts."""

    blocking = True  # network I/O: async breakers call it from a worker thread

    def __init__(self, client, *, prefix: str = "resilience:breaker:", channel: str = "resilience:breaker-state"):
        self.client = client
        self.prefix = prefix
        self.channel = channel
        self._compare_and_set = client.register_script(_COMPARE_AND_SET)
        self._acquire = client.register_script(_ACQUIRE_PERMIT)
        self._record = client.register_script(_RECORD_PROBE)
        self._lock = threading.Lock()
        self._subscribers = Subscribers()
        self._listener: threading.Thread | None = None
        self._stopped = threading.Event()

    @classmethod
    def from_url(cls, url: str, **options) -> "RedisStateStore":
        import redis

        return cls(redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2), **options)

    def _key(self, name: str) -> str:
        return self.prefix + name

    def read(self, name: str) -> SharedState:
        return _decode(self.client.hgetall(self._key(name)))

    def compare_and_set(self, name: str, expected_generation: int, new: SharedState) -> bool:
        args = [expected_generation, self.channel, name, *_pairs(new)]
        landed = bool(self._compare_and_set(keys=[self._key(name)], args=args))
        if landed:
            self._subscribers.notify(name, new)
        return landed

    def acquire_half_open_permit(self, name: str, generation: int, limit: int) -> bool:
        return bool(self._acquire(keys=[self._key(name)], args=[generation, limit]))

    def record_probe(self, name: str, generation: int, success: bool | None) -> SharedState:
        flat = self._record(keys=[self._key(name)], args=[generation, 1 if success else 0])
        return _decode(dict(zip(flat[::2], flat[1::2], strict=True)))

    def force_mode(self, name: str, mode: Mode, now_ms: int, reason: str) -> tuple[SharedState, SharedState]:
        # An operator's switch always lands: retry the compare-and-set until no transition races it.
        while True:
            before = self.read(name)
            after = state_for_mode(before, mode, now_ms, reason)
            if self.compare_and_set(name, before.generation, after):
                return before, after

    def subscribe(self, name: str, callback: StateCallback) -> None:
        self._subscribers.add(name, callback)
        with self._lock:
            if self._listener is None:
                self._listener = threading.Thread(target=self._listen, name="breaker-state-listener", daemon=True)
                self._listener.start()

    def close(self) -> None:
        self._stopped.set()
        if self._listener is not None:
            self._listener.join(5)

    def _catch_up(self) -> float:
        names = self._subscribers.names()
        for name in names:
            self._subscribers.notify(name, self.read(name))
        return time.monotonic()

    def _listen(self) -> None:
        """Deliver other processes' transitions; reconnect after Redis errors.

        Messages published while not subscribed are lost, so every (re)subscription, and
        every CATCH_UP_SECONDS, reads the watched breakers once: nothing is missed for long.
        """
        while not self._stopped.is_set():
            try:
                subscription = self.client.pubsub(ignore_subscribe_messages=True)
                subscription.subscribe(self.channel)
                caught_up_at = self._catch_up()
                while not self._stopped.is_set():
                    message = subscription.get_message(timeout=0.5)
                    if message and message["type"] == "message":
                        name = message["data"].decode()
                        if name in self._subscribers:
                            self._subscribers.notify(name, self.read(name))
                    if time.monotonic() - caught_up_at > CATCH_UP_SECONDS:
                        caught_up_at = self._catch_up()
                subscription.close()
            except Exception:
                logger.warning("breaker state subscription failed; reconnecting", exc_info=True)
                self._stopped.wait(1)
