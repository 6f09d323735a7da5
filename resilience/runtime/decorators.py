"""Decorators that protect sync and async functions with the process runtime's named breakers and policies.

Names are resolved at call time against `get_runtime()`, so a function decorated at import time uses
whichever runtime the process configured later, and the config its latest snapshot gave: no
re-decoration. What a name resolves to is cached per runtime and its `generation`, which every
apply and registration bumps, so the common call costs one global read and one comparison.

- `@breaker("payments-api")`: every call goes through that breaker; an unknown name creates it with
  the default config (breakers may be defined in code, before any config names them).
- `@retry("server_error")`: every call is retried by that policy; an unknown name raises ConfigError
  at call time, naming the policy.
- `@resilient(breaker=..., retry=..., fallback=..., timeout=...)`: the timeout inside the breaker
  inside the retry, so each attempt goes through the breaker and a timed-out attempt counts as a
  breaker failure. A refused call (CallNotPermitted) is retried only when the policy lists it. The
  fallback, a callable or the name of a fallback registered on the runtime, is called with the
  call's own arguments (like recovery's and degradation's fallbacks) when every attempt failed or
  the breaker refused.
- `@recover("component")`: failures go through the runtime's recovery policies.
- `@critical`: marks a function that runs at every degradation level; `@emergency_only`: runs the
  function only while the runtime's degradation level is EMERGENCY, else returns None.

A sync call cannot be interrupted safely: with a `timeout` it runs to its end and, when it took
longer (by the runtime's clock), its result is discarded and TimeoutError raised, so the breaker
and the retry policy see a failure. An async call is cancelled at the timeout.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from resilience.exceptions import ConfigError
from resilience.runtime.degradation import mark_critical, run_in_emergency_only
from resilience.runtime.runtime import Clock, Runtime, get_runtime

__all__ = ["breaker", "critical", "emergency_only", "recover", "resilient", "retry"]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
Decorator = Callable[[F], F]
FallbackSpec = Callable[..., Any] | str


class _PerRuntime(Generic[T]):
    """`build(runtime)`, cached for the runtime in use until its generation changes."""

    __slots__ = ("_build", "_cached")

    def __init__(self, build: Callable[[Runtime], T]) -> None:
        self._build = build
        self._cached: tuple[Runtime, int, T] | None = None

    def get(self) -> T:
        runtime = get_runtime()
        cached = self._cached
        if cached is not None and cached[0] is runtime and cached[1] == runtime.generation:
            return cached[2]
        # Read before building: an apply racing the build leaves a stale stamp, so the next call rebuilds.
        generation = runtime.generation
        value = self._build(runtime)
        self._cached = (runtime, generation, value)
        return value

    async def get_async(self) -> T:
        """As get(), but a build that may touch a blocking store (database, Redis) runs off the event loop."""
        runtime = get_runtime()
        cached = self._cached
        if cached is not None and cached[0] is runtime and cached[1] == runtime.generation:
            return cached[2]
        if runtime.breakers.store.blocking:
            return await asyncio.to_thread(self.get)
        return self.get()


def breaker(name: str) -> Decorator:
    """Decorate a sync or async function so every call goes through the runtime's breaker `name`."""

    def decorate(fn: F) -> F:
        resolved = _PerRuntime(lambda runtime: runtime.breaker(name))
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def guarded_async(*args: Any, **kwargs: Any) -> Any:
                return await (await resolved.get_async()).call_async(fn, *args, **kwargs)

            return guarded_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            return resolved.get().call(fn, *args, **kwargs)

        return guarded  # type: ignore[return-value]

    return decorate


def retry(policy: str) -> Decorator:
    """Decorate a sync or async function so every call is retried by the runtime's retry policy `policy`."""

    def decorate(fn: F) -> F:
        resolved = _PerRuntime(lambda runtime: runtime.retrier(policy))
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def retried_async(*args: Any, **kwargs: Any) -> Any:
                return await resolved.get().call_async(fn, *args, **kwargs)

            return retried_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def retried(*args: Any, **kwargs: Any) -> Any:
            return resolved.get().call(fn, *args, **kwargs)

        return retried  # type: ignore[return-value]

    return decorate


def recover(component: str, *, error_type: str | None = None) -> Decorator:
    """Decorate a sync or async function so its failures are recovered by the runtime's recovery policies."""

    def decorate(fn: F) -> F:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def recovered_async(*args: Any, **kwargs: Any) -> Any:
                manager = get_runtime().recovery
                return await manager.execute_async(fn, *args, component=component, error_type=error_type, **kwargs)

            return recovered_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def recovered(*args: Any, **kwargs: Any) -> Any:
            manager = get_runtime().recovery
            return manager.execute(fn, *args, component=component, error_type=error_type, **kwargs)

        return recovered  # type: ignore[return-value]

    return decorate


critical = mark_critical


def emergency_only(fn: F) -> F:
    """Run `fn` only while the current runtime's degradation level is EMERGENCY; else return None."""
    return run_in_emergency_only(fn, lambda: get_runtime().degradation)  # type: ignore[return-value]


def resilient(
    *,
    breaker: str | None = None,
    retry: str | None = None,
    fallback: FallbackSpec | None = None,
    timeout: float | None = None,
) -> Decorator:
    """Decorate a sync or async function with a timeout, inside a breaker, inside a retry, with a fallback."""
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0):
        raise ConfigError("timeout", f"must be a number of seconds > 0, not {timeout!r}")
    if fallback is not None and not (callable(fallback) or (isinstance(fallback, str) and fallback)):
        raise ConfigError("fallback", f"must be a callable or a registered fallback's name, not {fallback!r}")

    def decorate(fn: F) -> F:
        if inspect.iscoroutinefunction(fn):
            chain = _PerRuntime(lambda runtime: _async_chain(fn, runtime, breaker, retry, timeout))

            @functools.wraps(fn)
            async def protected_async(*args: Any, **kwargs: Any) -> Any:
                try:
                    return await (await chain.get_async())(*args, **kwargs)
                except Exception as error:
                    if fallback is None:
                        raise
                    result = _fallback(fallback, error)(*args, **kwargs)
                    return await result if inspect.isawaitable(result) else result

            return protected_async  # type: ignore[return-value]

        sync_chain = _PerRuntime(lambda runtime: _sync_chain(fn, runtime, breaker, retry, timeout))

        @functools.wraps(fn)
        def protected(*args: Any, **kwargs: Any) -> Any:
            try:
                return sync_chain.get()(*args, **kwargs)
            except Exception as error:
                if fallback is None:
                    raise
                return _fallback(fallback, error)(*args, **kwargs)

        return protected  # type: ignore[return-value]

    return decorate


def _sync_chain(
    fn: Callable[..., Any], runtime: Runtime, breaker: str | None, retry: str | None, timeout: float | None
) -> Callable[..., Any]:
    """Return fn wrapped in the timeout, then the breaker, then the retry, as resolved on `runtime`."""
    call = fn if timeout is None else functools.partial(_call_within, fn, timeout, runtime.clock)
    if breaker is not None:
        call = functools.partial(runtime.breaker(breaker).call, call)
    if retry is not None:
        call = functools.partial(runtime.retrier(retry).call, call)
    return call


def _async_chain(
    fn: Callable[..., Awaitable[Any]], runtime: Runtime, breaker: str | None, retry: str | None, timeout: float | None
) -> Callable[..., Awaitable[Any]]:
    """Return the async counterpart of `_sync_chain`."""
    call = fn if timeout is None else functools.partial(_await_within, fn, timeout)
    if breaker is not None:
        call = functools.partial(runtime.breaker(breaker).call_async, call)
    if retry is not None:
        call = functools.partial(runtime.retrier(retry).call_async, call)
    return call


def _call_within(fn: Callable[..., T], timeout: float, clock: Clock, *args: Any, **kwargs: Any) -> T:
    started = clock()
    result = fn(*args, **kwargs)
    elapsed = clock() - started
    if elapsed > timeout:
        raise TimeoutError(f"{fn.__qualname__} took {elapsed:.3f}s, more than its {timeout}s timeout")
    return result


async def _await_within(fn: Callable[..., Awaitable[T]], timeout: float, *args: Any, **kwargs: Any) -> T:
    async with asyncio.timeout(timeout):
        return await fn(*args, **kwargs)


def _fallback(fallback: FallbackSpec, error: Exception) -> Callable[..., Any]:
    """Return the fallback to call, looking a name up on the current runtime."""
    if callable(fallback):
        return fallback
    registered = get_runtime().fallbacks.get(fallback)
    if registered is None:
        raise ConfigError(f"fallbacks.{fallback}", f"no fallback is registered as {fallback!r}") from error
    return registered
