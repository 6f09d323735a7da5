"""Retrier.call_async and wrapped coroutines: awaited fake sleeps, cancellation, results."""

import asyncio
import inspect
import random
from types import SimpleNamespace

import pytest

from resilience.exceptions import RateLimitError, RetryError
from resilience.runtime.retry import Retrier, RetryBudget, RetryPolicy
from tests.resilience.runtime.clocks import FakeTime


def never_block(seconds: float) -> None:
    raise AssertionError("the blocking sleep must not be used by async calls")


def make_retrier(policy: RetryPolicy, fake: FakeTime, **kwargs) -> Retrier:
    return Retrier(
        policy,
        clock=fake.clock,
        wall_clock=fake.wall_clock,
        sleep=never_block,
        async_sleep=kwargs.pop("async_sleep", fake.async_sleep),
        rng=random.Random(5),
        **kwargs,
    )


class AsyncFailing:
    """A coroutine function raising the given errors in turn, then returning `result`."""

    def __init__(self, *errors: BaseException, result: object = "ok") -> None:
        self.errors = list(errors)
        self.result = result
        self.calls = 0

    async def __call__(self, *args, **kwargs):
        self.calls += 1
        await asyncio.sleep(0)
        if self.errors:
            raise self.errors.pop(0)
        return self.result


@pytest.mark.asyncio
async def test_it_retries_a_coroutine_awaiting_the_async_sleep(fake):
    fn = AsyncFailing(ConnectionError(), TimeoutError())
    policy = RetryPolicy(strategy="exponential", base_delay=0.5)
    assert await make_retrier(policy, fake).call_async(fn) == "ok"
    assert fake.sleeps == [0.5, 1.0]
    assert fn.calls == 3


@pytest.mark.asyncio
async def test_it_passes_arguments_and_reraises_the_last_error(fake):
    received = []

    async def fetch(symbol, *, interval):
        received.append((symbol, interval))
        raise ConnectionError(f"{symbol} down")

    with pytest.raises(ConnectionError, match="ETH down") as caught:
        await make_retrier(RetryPolicy(base_delay=0.0, max_attempts=2), fake).call_async(fetch, "ETH", interval="1h")
    assert received == [("ETH", "1h")] * 2
    assert caught.value.retry_attempts == 2


@pytest.mark.asyncio
async def test_a_cancelled_task_stops_retrying(fake):
    sleeping = asyncio.Event()

    async def sleep_forever(seconds: float) -> None:
        fake.sleeps.append(seconds)
        sleeping.set()
        await asyncio.Event().wait()

    fn = AsyncFailing(*[ConnectionError() for _ in range(5)])
    retrier = make_retrier(RetryPolicy(base_delay=1.0, max_attempts=5), fake, async_sleep=sleep_forever)
    task = asyncio.create_task(retrier.call_async(fn))
    await sleeping.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)
    assert fn.calls == 1
    assert fake.sleeps == [1.0]
    assert retrier.stats().retries == 1


@pytest.mark.asyncio
async def test_cancellation_raised_by_the_call_is_not_retried(fake):
    fn = AsyncFailing(asyncio.CancelledError())
    retrier = make_retrier(RetryPolicy(base_delay=0.0, retry_on_exceptions=(BaseException,)), fake)
    with pytest.raises(asyncio.CancelledError):
        await retrier.call_async(fn)
    assert fn.calls == 1


@pytest.mark.asyncio
async def test_wrap_keeps_a_coroutine_function_a_coroutine_function(fake):
    retrier = make_retrier(RetryPolicy(base_delay=0.0), fake)
    fn = AsyncFailing(ConnectionError(), result=42)

    @retrier.wrap
    async def answer() -> int:
        return await fn()

    assert inspect.iscoroutinefunction(answer)
    assert await answer() == 42
    assert retrier.stats().successes_after_retry == 1


@pytest.mark.asyncio
async def test_async_bad_results_are_retried_then_raise_retry_error(fake):
    responses = [SimpleNamespace(status_code=503), SimpleNamespace(status_code=503)]

    async def poll():
        return responses.pop(0)

    retrier = make_retrier(RetryPolicy(base_delay=0.0, max_attempts=2, retry_on_statuses=(503,)), fake)
    with pytest.raises(RetryError) as caught:
        await retrier.call_async(poll)
    assert caught.value.last_result.status_code == 503
    assert responses == []


@pytest.mark.asyncio
async def test_async_calls_honour_retry_after_and_the_budget(fake):
    budget = RetryBudget(0, window_seconds=10.0, min_per_second=0.1, clock=fake.clock)
    retrier = make_retrier(RetryPolicy(base_delay=1.0, max_attempts=5), fake, budget=budget)
    fn = AsyncFailing(RateLimitError(retry_after=3), RateLimitError(retry_after=3))
    with pytest.raises(RateLimitError):
        await retrier.call_async(fn)
    assert fake.sleeps == [3.0]  # the budget allowed one retry (0.1/s over 10 s)
    assert retrier.stats().budget_denied == 1


@pytest.mark.asyncio
async def test_concurrent_tasks_share_one_retrier(fake):
    retrier = make_retrier(RetryPolicy(base_delay=0.0), fake)
    functions = [AsyncFailing(ConnectionError(), result=index) for index in range(20)]
    results = await asyncio.gather(*(retrier.call_async(fn) for fn in functions))
    assert results == list(range(20))
    assert retrier.stats().retries == 20
    assert retrier.stats().calls == 20
