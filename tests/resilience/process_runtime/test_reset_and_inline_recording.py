"""The process runtime's public seams for tests: reset() forgets it, recording_inline() writes its
reports on the calling thread, in the caller's transaction (so such tests need no transactional db)."""

import threading

import pytest

from incidents.models import ErrorEvent, LiveMessage
from resilience import process_runtime
from resilience.models import BreakerTransition

pytestmark = pytest.mark.usefixtures("console_threads")  # a fresh runtime before and after each test


def resilience_threads() -> set[str]:
    return {thread.name for thread in threading.enumerate() if thread.name.startswith("resilience-")}


@pytest.mark.django_db
def test_inline_recording_writes_a_transition_before_the_call_returns(django_capture_on_commit_callbacks):
    with process_runtime.recording_inline(), django_capture_on_commit_callbacks(execute=True):
        process_runtime.breaker("inventory-api").force_open(reason="operator")
        transition = BreakerTransition.objects.get(breaker_name="inventory-api", to_state="open")
        assert transition.source.slug == "console"
        assert ErrorEvent.objects.filter(source__slug="console", tags__breaker="inventory-api").exists()
        assert LiveMessage.objects.filter(topic="breaker.transition", key="breaker:inventory-api").exists()
    assert not resilience_threads() - {"resilience-config-watcher", "resilience-housekeeper"}


@pytest.mark.django_db
def test_a_report_that_fails_inline_leaves_the_callers_transaction_usable(caplog):
    def fail(**_signal):
        raise RuntimeError("receiver down")

    process_runtime.signals.breaker_transitioned.connect(fail, dispatch_uid="test-fail")
    try:
        with process_runtime.recording_inline():
            process_runtime.breaker("inventory-api").force_open(reason="operator")
    finally:
        process_runtime.signals.breaker_transitioned.disconnect(dispatch_uid="test-fail")
    assert "could not record breaker.transition" in caplog.text
    assert not BreakerTransition.objects.filter(breaker_name="inventory-api").exists()  # rolled back with its savepoint
    assert BreakerTransition.objects.count() == 0  # and the transaction still answers


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # the recorder thread writes on its own connection
def test_reset_writes_queued_reports_and_stops_every_thread():
    first = process_runtime.runtime()
    process_runtime.breaker("inventory-api").force_open(reason="operator")  # queued for the recorder thread
    assert "resilience-recorder" in resilience_threads()
    process_runtime.reset()
    assert BreakerTransition.objects.filter(breaker_name="inventory-api", to_state="open").exists()
    assert resilience_threads() == set()
    assert process_runtime.runtime() is not first
