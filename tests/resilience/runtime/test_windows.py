"""Sliding windows: running totals, eviction, ageing, lock-free successes and resizing."""

import threading

from resilience.runtime.windows import FAILED, SLOW, CountWindow, TimeWindow, WindowKind, resize_window
from tests.resilience.runtime.clocks import FakeClock


def totals(window) -> tuple[int, int, int]:
    window.advance()
    return window.calls, window.failures, window.slow_calls


def test_a_count_window_keeps_totals_of_the_last_n_calls():
    window = CountWindow(3)
    window.record(FAILED)
    window.record(SLOW)
    window.record(FAILED | SLOW)
    assert totals(window) == (3, 2, 2)
    window.record(0)  # evicts the first failure
    assert totals(window) == (3, 1, 2)
    window.record(0)
    window.record(0)
    assert totals(window) == (3, 0, 0)


def test_a_count_window_folds_lock_free_successes_in_before_the_next_outcome():
    window = CountWindow(4)
    window.record(FAILED)
    window.note_success()
    window.note_success()
    assert window.flush() == 2
    assert window.flush() == 0
    window.record(FAILED)
    assert window.outcomes() == [FAILED, 0, 0, FAILED]


def test_a_flood_of_successes_leaves_a_window_of_successes():
    window = CountWindow(3)
    window.record(FAILED)
    for _ in range(10):
        window.note_success()
    assert totals(window) == (3, 0, 0)
    window.record(FAILED)
    assert totals(window) == (3, 1, 0)


def test_successes_noted_from_many_threads_are_all_counted():
    window = CountWindow(100_000)
    start = threading.Barrier(8)

    def note_many() -> None:
        start.wait()
        for _ in range(5000):
            window.note_success()

    threads = [threading.Thread(target=note_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert totals(window) == (40_000, 0, 0)


def test_clearing_drops_successes_noted_before():
    window = CountWindow(5)
    window.note_success()
    window.clear()
    assert totals(window) == (0, 0, 0)


def test_a_time_window_forgets_seconds_that_age_out():
    clock = FakeClock()
    window = TimeWindow(3, clock, threading.Lock())
    window.record(FAILED)
    clock.advance(1)
    window.record(SLOW)
    window.note_success()
    assert totals(window) == (3, 1, 1)
    clock.advance(2)  # the first second has left a 3-second window
    assert totals(window) == (2, 0, 1)
    clock.advance(1)
    assert totals(window) == (0, 0, 0)


def test_a_time_window_notes_successes_into_the_second_they_happened():
    clock = FakeClock()
    window = TimeWindow(2, clock, threading.Lock())
    window.note_success()
    clock.advance(1)
    window.note_success()
    window.note_success()
    assert totals(window) == (3, 0, 0)
    clock.advance(1)
    assert totals(window) == (2, 0, 0)


def test_a_long_silence_empties_a_time_window():
    clock = FakeClock()
    window = TimeWindow(5, clock, threading.Lock())
    window.record(FAILED)
    clock.advance(3600)
    assert totals(window) == (0, 0, 0)
    window.record(FAILED)
    assert totals(window) == (1, 1, 0)


def test_resizing_a_count_window_keeps_the_newest_outcomes_in_order():
    clock = FakeClock()
    window = CountWindow(4)
    for flags in (FAILED, 0, SLOW, FAILED):
        window.record(flags)
    smaller = resize_window(window, WindowKind.COUNT, 2, clock, threading.Lock())
    assert smaller.outcomes() == [SLOW, FAILED]
    larger = resize_window(window, WindowKind.COUNT, 10, clock, threading.Lock())
    assert larger.outcomes() == [FAILED, 0, SLOW, FAILED]


def test_resizing_a_time_window_keeps_the_seconds_still_covered():
    clock = FakeClock()
    window = TimeWindow(10, clock, threading.Lock())
    window.record(FAILED)
    clock.advance(5)
    window.record(0)
    smaller = resize_window(window, WindowKind.TIME, 3, clock, threading.Lock())
    assert totals(smaller) == (1, 0, 0)
    larger = resize_window(window, WindowKind.TIME, 20, clock, threading.Lock())
    assert totals(larger) == (2, 1, 0)
    clock.advance(15)  # the failure is now 20 seconds old
    assert totals(larger) == (1, 0, 0)


def test_changing_the_window_kind_keeps_the_rates():
    clock = FakeClock()
    window = TimeWindow(60, clock, threading.Lock())
    for flags in (FAILED, FAILED, 0, 0, 0, 0, 0, 0, SLOW, 0):
        window.record(flags)
    as_count = resize_window(window, WindowKind.COUNT, 5, clock, threading.Lock())
    assert totals(as_count) == (5, 1, 0)  # 20% failures kept; half a slow call rounds away
    back = resize_window(as_count, WindowKind.TIME, 30, clock, threading.Lock())
    assert totals(back) == totals(as_count)
    clock.advance(30)
    assert totals(back) == (0, 0, 0)


def test_an_unchanged_kind_and_size_keeps_the_same_window():
    window = CountWindow(4)
    assert resize_window(window, WindowKind.COUNT, 4, FakeClock(), threading.Lock()) is window
