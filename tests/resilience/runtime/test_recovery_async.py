"""The RecoveryManager on asyncio: execute_async, recover_async and async-decorated functions."""

import asyncio

import pytest

from resilience.runtime.recovery import FallbackRegistry, RecoveryManager, RecoveryPolicy, Strategy


class CodedError(Exception):
    def __init__(self, code: str = "NETWORK_TIMEOUT", message: str = "boom") -> None:
        super().__init__(message)
        self.error_code = code


class AsyncFlaky:
    """An async operation that fails `failures` times, then returns `result`."""

    def __init__(self, failures: int, result: object = "ok") -> None:
        self.failures = failures
        self.result = result
        self.calls: list[tuple] = []
        self.errors: list[Exception] = []

    async def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        await asyncio.sleep(0)
        if len(self.calls) <= self.failures:
            error = CodedError(message=f"failure {len(self.calls)}")
            self.errors.append(error)
            raise error
        return self.result


def make_manager(*policies: RecoveryPolicy, **overrides) -> RecoveryManager:
    options = {"fallbacks": FallbackRegistry(), "restart_hooks": {}, "degraded_results": {}}
    options.update(overrides)
    return RecoveryManager(list(policies), **options)


async def always_fails():
    raise CodedError()


@pytest.mark.asyncio
async def test_async_retry_reruns_the_operation_until_it_succeeds():
    operation = AsyncFlaky(failures=2)
    manager = make_manager(RecoveryPolicy("r", Strategy.RETRY, max_attempts=3))

    assert await manager.execute_async(operation, "BTC", component="api") == "ok"
    assert operation.calls == [(("BTC",), {})] * 3


@pytest.mark.asyncio
async def test_async_retry_reraises_the_original_error_after_max_attempts():
    operation = AsyncFlaky(failures=10)
    manager = make_manager(RecoveryPolicy("r", Strategy.RETRY, max_attempts=2))

    with pytest.raises(CodedError) as raised:
        await manager.execute_async(operation, component="api")

    assert raised.value is operation.errors[0]
    assert len(operation.calls) == 3


@pytest.mark.asyncio
async def test_async_retry_goes_through_the_injected_async_runner_within_the_attempt_budget():
    runner_calls: list[str] = []

    async def eager_runner(operation):
        runner_calls.append("runner")
        last = None
        for _ in range(10):
            try:
                return await operation()
            except CodedError as error:
                last = error
        raise last

    operation = AsyncFlaky(failures=100)
    manager = make_manager(RecoveryPolicy("r", Strategy.RETRY, max_attempts=3), async_retry_runner=eager_runner)

    with pytest.raises(CodedError):
        await manager.execute_async(operation, component="api")

    assert runner_calls == ["runner"]
    assert len(operation.calls) == 1 + 3


@pytest.mark.asyncio
async def test_the_sync_runner_is_not_used_on_the_async_path():
    def sync_runner(operation):
        raise AssertionError("the sync runner must not run async operations")

    manager = make_manager(RecoveryPolicy("r", Strategy.RETRY, max_attempts=1), retry_runner=sync_runner)

    assert await manager.execute_async(AsyncFlaky(failures=1), component="api") == "ok"


@pytest.mark.asyncio
async def test_async_fallbacks_are_awaited_and_sync_ones_called():
    fallbacks = FallbackRegistry()

    async def async_cache(symbol):
        return f"async {symbol}"

    fallbacks.register("async-cache", async_cache)
    fallbacks.register("sync-cache", lambda symbol: f"sync {symbol}")
    manager = make_manager(
        RecoveryPolicy("a", Strategy.FALLBACK, component="a", fallback="async-cache"),
        RecoveryPolicy("s", Strategy.FALLBACK, component="s", fallback="sync-cache"),
        fallbacks=fallbacks,
    )

    assert await manager.execute_async(AsyncFlaky(failures=1), "ETH", component="a") == "async ETH"
    assert await manager.execute_async(AsyncFlaky(failures=1), "ETH", component="s") == "sync ETH"


@pytest.mark.asyncio
async def test_an_async_fallback_that_fails_reraises_the_original_error():
    async def broken():
        raise LookupError("cache empty")

    manager = make_manager(
        RecoveryPolicy("p", Strategy.FALLBACK, fallback="cache", max_attempts=2),
        fallbacks=FallbackRegistry({"cache": broken}),
    )
    operation = AsyncFlaky(failures=1)

    with pytest.raises(CodedError) as raised:
        await manager.execute_async(operation, component="api")

    assert raised.value is operation.errors[0]
    assert "LookupError('cache empty')" in raised.value.__notes__[0]


@pytest.mark.asyncio
async def test_async_degrade_awaits_the_provider_and_marks_the_feature():
    marks: list[tuple[str, float]] = []

    class Marker:
        def mark_degraded(self, feature, *, duration, reason):
            marks.append((feature, duration))

    async def stale_quotes():
        return "stale"

    manager = make_manager(
        RecoveryPolicy("q", Strategy.DEGRADE, degraded_result="stale", degrade_seconds=9),
        degraded_results={"stale": stale_quotes},
        degradation=Marker(),
    )

    assert await manager.execute_async(always_fails, component="quotes") == "stale"
    assert marks == [("quotes", 9)]


@pytest.mark.asyncio
async def test_async_restart_awaits_the_hook_then_reruns_once():
    events: list[str] = []

    async def reconnect():
        events.append("restart")

    async def operation():
        events.append("run")
        if events.count("run") == 1:
            raise CodedError("CONNECTION_LOST")
        return "reconnected"

    manager = make_manager(
        RecoveryPolicy("ws", Strategy.RESTART, restart_hook="reconnect", max_attempts=1),
        restart_hooks={"reconnect": reconnect},
    )

    assert await manager.execute_async(operation, component="ws") == "reconnected"
    assert events == ["run", "restart", "run"]


@pytest.mark.asyncio
async def test_async_ignore_and_alert():
    reports: list[str] = []
    manager = make_manager(
        RecoveryPolicy("quiet", Strategy.IGNORE, component="feed", default=[]),
        RecoveryPolicy("loud", Strategy.ALERT, component="auth"),
        reporter=lambda kind, payload: reports.append(kind),
    )

    assert await manager.execute_async(always_fails, component="feed") == []
    with pytest.raises(CodedError):
        await manager.execute_async(always_fails, component="auth")
    assert "recovery.alert" in reports


@pytest.mark.asyncio
async def test_recover_async_applies_an_async_fallback_to_an_error_caught_elsewhere():
    async def cached():
        return "cached"

    manager = make_manager(
        RecoveryPolicy("p", Strategy.FALLBACK, fallback="cache"), fallbacks=FallbackRegistry({"cache": cached})
    )

    assert await manager.recover_async(CodedError(), component="api") == "cached"


@pytest.mark.asyncio
async def test_recover_with_decorates_coroutine_functions():
    manager = make_manager(RecoveryPolicy("feed", Strategy.RETRY, component="feed", max_attempts=2))
    operation = AsyncFlaky(failures=1, result="fetched")

    @manager.recover_with("feed")
    async def fetch(symbol):
        return await operation(symbol)

    assert await fetch("BTC") == "fetched"
    assert manager.stats()["policies"][0]["recovered"] == 1


@pytest.mark.asyncio
async def test_cancellation_is_never_recovered():
    manager = make_manager(RecoveryPolicy("everything", Strategy.IGNORE))

    async def cancelled():
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await manager.execute_async(cancelled, component="api")
    assert manager.stats()["policies"] == []


@pytest.mark.asyncio
async def test_recoveries_on_one_loop_interleave_instead_of_blocking_it():
    # Each fallback waits for the other one to start: this only finishes if neither blocks the loop.
    started = {"a": asyncio.Event(), "b": asyncio.Event()}

    def waiting_fallback(mine, other):
        async def fallback():
            started[mine].set()
            await started[other].wait()
            return mine

        return fallback

    manager = make_manager(
        RecoveryPolicy("a", Strategy.FALLBACK, component="a", fallback="a"),
        RecoveryPolicy("b", Strategy.FALLBACK, component="b", fallback="b"),
        fallbacks=FallbackRegistry({"a": waiting_fallback("a", "b"), "b": waiting_fallback("b", "a")}),
    )

    results = await asyncio.wait_for(
        asyncio.gather(
            manager.execute_async(always_fails, component="a"), manager.execute_async(always_fails, component="b")
        ),
        timeout=5,
    )

    assert results == ["a", "b"]
