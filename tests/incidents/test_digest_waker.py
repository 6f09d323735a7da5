"""Waking the digest: a burst of stored events enqueues a handful of digest tasks, never none."""

import pytest
from django_q.brokers import get_broker

from incidents.services import DigestWaker

# Transactional: the broker may be the ORM one, written from the timer's own connection.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def broker(settings):
    """The real django-q2 broker the settings name, emptied before and after."""
    settings.INGEST_WAKE_DIGEST = True
    queue = get_broker()
    queue.purge_queue()
    yield queue
    queue.purge_queue()


def test_a_burst_wakes_the_digest_once_now_and_once_after_the_last_event(broker):
    waker = DigestWaker(interval=60, quiet_interval=60)  # the whole burst falls in one interval
    for _ in range(1000):
        waker.wake()
    assert broker.queue_size() == 1
    trailing = waker._timer
    assert trailing is not None and trailing.is_alive()
    trailing.cancel()  # rather than wait a minute, fire it now as the timer would
    waker._fire()
    assert broker.queue_size() == 2


def test_a_wake_after_the_interval_enqueues_at_once(broker):
    waker = DigestWaker(interval=0, quiet_interval=0)
    waker.wake()
    waker.wake()
    assert broker.queue_size() == 2
    assert waker._timer is None


def test_a_quiet_process_wakes_the_digest_at_once_and_a_busy_one_waits_the_interval(broker):
    waker = DigestWaker(interval=60, quiet_interval=0, busy_rate=5, clock=lambda: 1000.0)  # all in one second
    for _ in range(4):
        waker.wake()
    assert broker.queue_size() == 4 and waker._timer is None  # quiet: every event digested at once
    waker.wake()  # the fifth this second: busy
    assert broker.queue_size() == 4
    assert waker._timer is not None
    waker._timer.cancel()
