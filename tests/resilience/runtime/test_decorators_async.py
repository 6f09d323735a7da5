"""Decorators on coroutine functions and async methods: awaited fake sleeps, cancellation at the timeout."""

import asyncio

import pytest

from resilience.exceptions import ConfigError
from resilience.runtime.breaker import CallNotPermitted, State
from resilience.runtime.decorators import breaker, recover, resilient, retry
from resilience.runtime.recovery import RecoveryPolicy, Strategy
from tests.resilience.runtime.harness import retry_policy


class AsyncFlaky:
    """A coroutine function raising the given errors in turn, then returning `result`."""

    def __init__(self, *errors: Exception, result: object = "ok") -> None:
        self.errors = list(errors)
        self.result = result
        self.calls = 0

    async def __call__(self, *args, **kwargs):
        self.calls += 1
        await asyncio.sleep(0)
        if self.errors:
            raise self.errors.pop(0)
        return self.result


def as_coroutine_function(flaky: AsyncFlaky):
    async def call(*args, **kwargs):
        return await flaky(*args, **kwargs)

    return call


@pytest.mark.asyncio
async def test_async_breaker_decorator_opens_and_refuses(harness):
    harness.runtime.apply({"breakers": {"pay": {"consecutive_failures": 1}}})
    flaky = AsyncFlaky(ConnectionError("down"))
    charge = breaker("pay")(as_coroutine_function(flaky))

    with pytest.raises(ConnectionError):
        await charge()
    with pytest.raises(CallNotPermitted):
        await charge()

    assert flaky.calls == 1
    assert harness.runtime.breaker("pay").state is State.OPEN


@pytest.mark.asyncio
async def test_async_retry_decorator_awaits_the_fake_sleep(harness):
    harness.runtime.apply({"retry_policies": {"net": retry_policy("net", base_delay=2.0)}})
    flaky = AsyncFlaky(ConnectionError("1"), ConnectionError("2"), result="body")

    assert await retry("net")(as_coroutine_function(flaky))() == "body"

    assert flaky.calls == 3
    assert harness.slept == [2.0, 2.0]


@pytest.mark.asyncio
async def test_an_unknown_async_retry_policy_is_a_config_error_naming_it(harness):
    fetch = retry("ghost")(as_coroutine_function(AsyncFlaky()))

    with pytest.raises(ConfigError, match="ghost"):
        await fetch()


@pytest.mark.asyncio
async def test_async_methods_are_decorated_and_bound(harness):
    harness.runtime.apply({"retry_policies": {"net": retry_policy("net")}})

    class Client:
        def __init__(self) -> None:
            self.flaky = AsyncFlaky(ConnectionError("reset"), result="body")

        @resilient(breaker="api", retry="net")
        async def get(self, path: str) -> str:
            return f"{await self.flaky()} of {path}"

    assert await Client().get("/x") == "body of /x"
    assert harness.runtime.breaker("api").metrics().calls == 2


@pytest.mark.asyncio
async def test_a_config_applied_after_async_decoration_is_used_by_the_next_call(harness):
    flaky = AsyncFlaky(*[ConnectionError(str(n)) for n in range(10)])
    fetch = resilient(retry="net")(as_coroutine_function(flaky))
    harness.runtime.apply({"retry_policies": {"net": retry_policy("net", max_attempts=1)}})
    with pytest.raises(ConnectionError):
        await fetch()

    harness.runtime.apply({"retry_policies": {"net": retry_policy("net", max_attempts=4)}})
    with pytest.raises(ConnectionError):
        await fetch()

    assert flaky.calls == 1 + 4


@pytest.mark.asyncio
async def test_async_resilient_falls_back_on_refusal_after_attempts_through_the_breaker(harness):
    runtime = harness.runtime
    runtime.apply(
        {
            "breakers": {"pay": {"consecutive_failures": 2}},
            "retry_policies": {"net": retry_policy("net", max_attempts=5)},
        }
    )
    flaky = AsyncFlaky(*[ConnectionError(str(n)) for n in range(5)])

    async def queue_it(amount: int) -> str:
        return f"queued {amount}"

    charge = resilient(breaker="pay", retry="net", fallback=queue_it)(as_coroutine_function(flaky))

    assert await charge(42) == "queued 42"
    assert flaky.calls == 2
    assert runtime.breaker("pay").metrics().not_permitted == 1


@pytest.mark.asyncio
async def test_async_resilient_cancels_at_the_timeout_and_counts_it_as_a_breaker_failure(harness):
    runtime = harness.runtime
    runtime.apply({"breakers": {"slow": {"consecutive_failures": 1}}})
    cancelled = asyncio.Event()

    @resilient(breaker="slow", timeout=0.001, fallback=lambda: "fallback")
    async def hang() -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    assert await hang() == "fallback"
    assert cancelled.is_set()
    assert runtime.breaker("slow").metrics().failures == 1
    assert runtime.breaker("slow").state is State.OPEN


@pytest.mark.asyncio
async def test_async_resilient_accepts_a_sync_registered_fallback(harness):
    harness.runtime.register_fallback("stale", lambda symbol: f"stale {symbol}")
    quote = resilient(fallback="stale")(as_coroutine_function(AsyncFlaky(ValueError("bad"))))

    assert await quote("EUR") == "stale EUR"


@pytest.mark.asyncio
async def test_async_recover_runs_the_components_recovery_policy(harness):
    runtime = harness.runtime

    async def cached(symbol: str) -> str:
        return f"cached {symbol}"

    runtime.register_fallback("cached", cached)
    policy = RecoveryPolicy(name="quotes", strategy=Strategy.FALLBACK, component="quotes", fallback="cached")
    runtime.apply({"recovery_policies": [policy.to_dict()]})

    @recover("quotes")
    async def quote(symbol: str) -> str:
        raise ConnectionError("down")

    assert await quote("EUR") == "cached EUR"
    assert runtime.recovery.stats()["policies"][0]["recovered"] == 1
