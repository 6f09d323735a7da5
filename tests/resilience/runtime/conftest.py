"""Fixtures of the pure runtime's tests: fake clocks and a runtime on one."""

import inspect

import pytest

from resilience.runtime.runtime import set_runtime
from tests.resilience.runtime.clocks import FakeClock, FakeTime
from tests.resilience.runtime.harness import Harness


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(100.0)


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


@pytest.fixture
def harness(request):
    """A runtime on a fake clock, the process's default runtime during the test (what decorators use).

    A coroutine test's harness refuses the blocking sleep: every wait of an async call must be awaited.
    """
    harness = Harness(forbid_blocking_sleep=inspect.iscoroutinefunction(request.function))
    previous = set_runtime(harness.runtime)
    yield harness
    set_runtime(previous)
