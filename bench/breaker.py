"""Circuit breaker benchmark: success-path overhead against pybreaker and circuitbreaker, and concurrency.

    .venv/bin/python bench/breaker.py

Prints the overhead per call of each breaker on the success path (wrapped call minus a direct
call of the same trivial function, best of several repeats), then the throughput of 8 threads
and of 100 asyncio tasks sharing one breaker next to the same work unprotected: a breaker that
serialised its callers behind a lock would fall far behind the unprotected figure. With Redis
reachable (REDIS_URL, default redis://127.0.0.1:6379/0) it also times a breaker sharing its
state through Redis and counts the commands Redis received meanwhile: the success path makes none.
"""

import asyncio
import importlib.metadata
import os
import sys
import threading
import time
import timeit
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import circuitbreaker
import pybreaker
import redis

from resilience.runtime.breaker import BreakerConfig, CircuitBreaker, WindowKind
from resilience.stores.redis import RedisStateStore

CALLS_PER_REPEAT = 200_000
REPEATS = 7
THREADS = 8
CALLS_PER_THREAD = 100_000
TASKS = 100
CALLS_PER_TASK = 5_000


def target() -> None:
    return None


async def target_async() -> None:
    return None


def best_ns_per_call(function: Callable[[], object]) -> float:
    return min(timeit.repeat(function, number=CALLS_PER_REPEAT, repeat=REPEATS)) / CALLS_PER_REPEAT * 1e9


def overhead_rows() -> list[tuple[str, float]]:
    count_breaker = CircuitBreaker("count", BreakerConfig(window_kind=WindowKind.COUNT, window_size=100))
    time_breaker = CircuitBreaker("time", BreakerConfig(window_kind=WindowKind.TIME, window_size=60))
    contenders: dict[str, Callable[[], object]] = {
        "ours, count window, breaker.call(f)": lambda: count_breaker.call(target),
        "ours, count window, @protect": count_breaker.protect(target),
        "ours, time window, breaker.call(f)": lambda: time_breaker.call(target),
        "ours, time window, @protect": time_breaker.protect(target),
        f"pybreaker {importlib.metadata.version('pybreaker')}, @breaker": pybreaker.CircuitBreaker()(target),
        f"circuitbreaker {importlib.metadata.version('circuitbreaker')}, @circuit": circuitbreaker.circuit(target),
    }
    direct = best_ns_per_call(target)
    direct_via_lambda = best_ns_per_call(lambda: target())
    rows = []
    for label, function in contenders.items():
        # A lambda adds a call of its own, so it is compared with a direct call made through a lambda.
        baseline = direct_via_lambda if label.endswith("call(f)") else direct
        rows.append((label, best_ns_per_call(function) - baseline))
    return rows


def redis_store_row() -> tuple[float, int, int] | None:
    """(overhead per call in ns, successful calls made, commands Redis received meanwhile), or None without Redis."""
    url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    counter = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        counter.ping()
    except redis.ConnectionError:
        return None
    store = RedisStateStore.from_url(url, prefix=f"bench:{time.time_ns()}:")
    breaker = CircuitBreaker("redis-store", BreakerConfig(window_kind=WindowKind.COUNT, window_size=100), store=store)
    direct_via_lambda = best_ns_per_call(lambda: target())
    before = counter.info("stats")["total_commands_processed"]
    overhead = best_ns_per_call(lambda: breaker.call(target)) - direct_via_lambda
    # The first INFO counts itself only once processed: the second one sees it.
    commands = counter.info("stats")["total_commands_processed"] - before - 1
    store.close()
    return overhead, CALLS_PER_REPEAT * REPEATS, commands


def thread_throughput(call: Callable[[], object]) -> float:
    start = threading.Barrier(THREADS + 1)

    def work() -> None:
        start.wait()
        for _ in range(CALLS_PER_THREAD):
            call()

    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return THREADS * CALLS_PER_THREAD / (time.perf_counter() - began)


def task_throughput(call: Callable[[], object]) -> float:
    async def work() -> None:
        for _ in range(CALLS_PER_TASK):
            await call()

    async def run_all() -> float:
        began = time.perf_counter()
        await asyncio.gather(*(work() for _ in range(TASKS)))
        return TASKS * CALLS_PER_TASK / (time.perf_counter() - began)

    return asyncio.run(run_all())


def concurrency_rows() -> list[tuple[str, float, float]]:
    breaker = CircuitBreaker("shared", BreakerConfig())
    return [
        (
            f"{THREADS} threads, one breaker",
            thread_throughput(lambda: target()),
            thread_throughput(lambda: breaker.call(target)),
        ),
        (
            f"{TASKS} asyncio tasks, one breaker",
            task_throughput(lambda: target_async()),
            task_throughput(lambda: breaker.call_async(target_async)),
        ),
    ]


def main() -> None:
    print(f"Python {sys.version.split()[0]}; success-path overhead per call (best of {REPEATS} x {CALLS_PER_REPEAT:,})")
    print(f"{'breaker':<48} {'ns/call':>9} {'us/call':>9}")
    for label, overhead in overhead_rows():
        print(f"{label:<48} {overhead:>9.0f} {overhead / 1000:>9.3f}")
    on_redis = redis_store_row()
    if on_redis is not None:
        overhead, calls, commands = on_redis
        print(f"{'ours, count window, Redis state store':<48} {overhead:>9.0f} {overhead / 1000:>9.3f}")
        print(f"  Redis commands from anyone during those {calls:,} successful calls: {commands}")
    print()
    print(f"{'throughput':<32} {'unprotected/s':>14} {'protected/s':>14} {'ratio':>7}")
    for label, unprotected, protected in concurrency_rows():
        print(f"{label:<32} {unprotected:>14,.0f} {protected:>14,.0f} {protected / unprotected:>7.2f}")


if __name__ == "__main__":
    main()
