"""The circuit breaker with asyncio: counting, timeouts, fallbacks, decorators, permits and blocking stores."""

import asyncio
import threading

import pytest

from resilience.runtime.breaker import BreakerConfig, CallNotPermitted, CircuitBreaker, State
from resilience.runtime.decorators import breaker as breaker_decorator
from resilience.runtime.degradation import DEFAULT_RULES, Feature
from resilience.runtime.runtime import Runtime, set_runtime
from resilience.runtime.state import InMemoryStateStore
from tests.resilience.runtime.clocks import FakeClock


class Boom(Exception):
    pass


async def ok() -> str:
    return "ok"


async def boom() -> None:
    raise Boom("down")


def make(clock: FakeClock | None = None, **overrides) -> CircuitBreaker:
    settings = {"window_size": 10, "minimum_calls": 2, "wait_duration": 10.0}
    return CircuitBreaker("async", BreakerConfig(**(settings | overrides)), clock=clock or FakeClock())


@pytest.mark.asyncio
async def test_async_failures_open_the_breaker_and_then_calls_are_refused():
    breaker = make()
    assert await breaker.call_async(ok) == "ok"
    with pytest.raises(Boom):
        await breaker.call_async(boom)
    assert breaker.state is State.OPEN
    with pytest.raises(CallNotPermitted):
        await breaker.call_async(ok)


@pytest.mark.asyncio
async def test_an_async_call_is_cancelled_at_the_timeout_and_counted_as_a_failure():
    breaker = make(call_timeout=0.01, record_exceptions=(Boom,), minimum_calls=1)
    cancelled = asyncio.Event()

    async def hang() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(TimeoutError):
        await breaker.call_async(hang)
    assert cancelled.is_set()
    assert breaker.metrics().failures == 1  # counted although TimeoutError is not a recorded type
    assert breaker.state is State.OPEN


@pytest.mark.asyncio
async def test_cancellation_from_outside_is_not_counted():
    breaker = make()
    entered = asyncio.Event()

    async def wait_forever() -> None:
        entered.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(breaker.call_async(wait_forever))
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.metrics().calls == 0


@pytest.mark.asyncio
async def test_an_async_fallback_is_awaited_for_refused_and_failed_calls():
    async def fallback(error: BaseException, symbol: str) -> str:
        return f"cached {symbol} after {type(error).__name__}"

    breaker = CircuitBreaker(
        "quotes", BreakerConfig(minimum_calls=1, window_size=3), clock=FakeClock(), fallback=fallback
    )

    async def quote(symbol: str) -> str:
        raise Boom(symbol)

    assert await breaker.call_async(quote, "EUR") == "cached EUR after Boom"
    assert await breaker.call_async(quote, "USD") == "cached USD after CallNotPermitted"


@pytest.mark.asyncio
async def test_protect_wraps_async_functions_as_coroutines():
    breaker = make(minimum_calls=1)

    @breaker.protect
    async def fetch(value: int) -> int:
        if value < 0:
            raise Boom(value)
        return value * 2

    assert asyncio.iscoroutinefunction(fetch)
    assert await fetch(4) == 8
    with pytest.raises(Boom):
        await fetch(-1)
    with pytest.raises(CallNotPermitted):
        await fetch(1)


@pytest.mark.asyncio
async def test_async_slow_calls_and_bad_statuses_are_counted():
    clock = FakeClock()
    breaker = make(clock, slow_call_duration=1.0, failure_statuses=("5xx",), minimum_calls=10)

    class Reply:
        def __init__(self, status: int) -> None:
            self.status = status

    async def slow_reply() -> Reply:
        clock.advance(1.0)
        return Reply(200)

    await breaker.call_async(slow_reply)
    assert (await breaker.call_async(asyncio.sleep, 0, Reply(502))).status == 502
    metrics = breaker.metrics()
    assert (metrics.calls, metrics.failures, metrics.slow_calls) == (2, 1, 1)


@pytest.mark.asyncio
async def test_a_hundred_tasks_racing_in_half_open_get_exactly_the_permitted_probes():
    clock = FakeClock()
    breaker = make(clock, permitted_calls_in_half_open=3, success_threshold=3, minimum_calls=1)
    with pytest.raises(Boom):
        await breaker.call_async(boom)
    clock.advance(10)
    release = asyncio.Event()
    settled = 0
    all_settled = asyncio.Event()

    def settle() -> None:
        nonlocal settled
        settled += 1
        if settled == 100:
            all_settled.set()

    async def probe() -> str:
        settle()
        await release.wait()
        return "probed"

    async def attempt() -> str:
        try:
            return await breaker.call_async(probe)
        except CallNotPermitted:
            settle()
            return "refused"

    tasks = [asyncio.create_task(attempt()) for _ in range(100)]
    await all_settled.wait()  # every task is probing or refused before any probe ends
    release.set()
    outcomes = await asyncio.gather(*tasks)
    assert outcomes.count("probed") == 3
    assert breaker.state is State.CLOSED


class BlockingStore(InMemoryStateStore):
    """An in-memory store that claims to do I/O and remembers which threads called it."""

    blocking = True

    def __init__(self) -> None:
        super().__init__()
        self.callers: set[int] = set()

    def read(self, name: str):
        self.callers.add(threading.get_ident())
        return super().read(name)

    def compare_and_set(self, name: str, expected_generation: int, new) -> bool:
        self.callers.add(threading.get_ident())
        return super().compare_and_set(name, expected_generation, new)

    def acquire_half_open_permit(self, name: str, generation: int, limit: int) -> bool:
        self.callers.add(threading.get_ident())
        return super().acquire_half_open_permit(name, generation, limit)


@pytest.mark.asyncio
async def test_a_blocking_store_is_called_off_the_event_loop():
    store = BlockingStore()
    clock = FakeClock()
    breaker = CircuitBreaker("remote", BreakerConfig(minimum_calls=1, window_size=2), store=store, clock=clock)
    store.callers.clear()  # the constructor's read, made by this sync code
    with pytest.raises(Boom):
        await breaker.call_async(boom)
    clock.advance(60)
    assert await breaker.call_async(ok) == "ok"
    assert breaker.state is State.CLOSED
    assert store.callers and threading.get_ident() not in store.callers


@pytest.mark.asyncio
async def test_decorators_and_degradation_reach_a_blocking_store_only_off_the_event_loop():
    store, clock = BlockingStore(), FakeClock()
    runtime = Runtime(store=store, clock=clock, error_rate=lambda: 0.0)  # levels from open breakers only
    runtime.apply({"breakers": {"quotes-api": {"minimum_calls": 1, "window_size": 2, "automatic_half_open": True}}})
    runtime.degradation.apply([Feature("quotes", breakers=("quotes-api",))], DEFAULT_RULES)
    previous = set_runtime(runtime)
    try:

        @breaker_decorator("charts-api")
        async def chart() -> str:
            return "chart"

        store.callers.clear()  # what the set-up above read, on this thread
        assert await chart() == "chart"  # its first call builds the breaker, reading the store
        assert store.callers and threading.get_ident() not in store.callers

        with pytest.raises(Boom):
            await runtime.breaker("quotes-api").call_async(boom)
        assert runtime.breaker("quotes-api").state is State.OPEN
        store.callers.clear()
        clock.advance(120)  # the open wait is over: the next look at the state moves it to half-open
        assert await runtime.degradation.call_async("quotes", _live_quote) == "live"
        assert store.callers and threading.get_ident() not in store.callers
        assert runtime.breaker("quotes-api").state is State.HALF_OPEN
    finally:
        set_runtime(previous)


async def _live_quote() -> str:
    return "live"
