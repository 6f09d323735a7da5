"""A runtime on a fake clock, and the policies the runtime and decorator tests build it from."""

from dataclasses import dataclass, field

from resilience.runtime.retry import RetryPolicy
from resilience.runtime.runtime import Runtime
from tests.resilience.runtime.clocks import FakeClock


@dataclass
class Harness:
    """A runtime on a fake clock whose sleeps only advance that clock."""

    clock: FakeClock = field(default_factory=FakeClock)
    slept: list[float] = field(default_factory=list)
    reports: list[tuple[str, dict]] = field(default_factory=list)
    forbid_blocking_sleep: bool = False  # async tests: every wait must be awaited

    def __post_init__(self) -> None:
        self.runtime = Runtime(
            clock=self.clock,
            sleep=self.sleep,
            async_sleep=self.async_sleep,
            reporter=lambda kind, payload: self.reports.append((kind, payload)),
        )

    def sleep(self, seconds: float) -> None:
        if self.forbid_blocking_sleep:
            raise AssertionError("async calls must not use the blocking sleep")
        self.slept.append(seconds)
        self.clock.advance(seconds)

    async def async_sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.clock.advance(seconds)


def retry_policy(name: str, **overrides) -> dict:
    settings = {
        "name": name,
        "strategy": "fixed",
        "base_delay": 1.0,
        "max_attempts": 3,
        "retry_on_transient": False,
        "retry_on_exceptions": ("ConnectionError",),
    }
    return RetryPolicy(**(settings | overrides)).to_dict()
