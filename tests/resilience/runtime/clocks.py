"""Fake time for the pure runtime: clocks that move only when a test moves them, sleeps that only record."""

WALL_NOW = 1_700_000_000.0  # the wall clock's reading when a fake monotonic clock reads 0


class FakeClock:
    """Monotonic seconds that move only when a test advances them, and the wall clock that goes with them."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def wall(self) -> float:
        return WALL_NOW + self.now


class FakeTime:
    """A monotonic clock, a wall clock and sleeps that only record and advance."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def wall_clock(self) -> float:
        return WALL_NOW + self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)
