"""A service outside the console's database runs its resilience runtime through resilience.client
against a real console server and worker: it pulls the saved config, follows changes, and its
transitions and logged errors become events."""

import logging
import socket
import threading
from collections.abc import Iterator

import pytest

from incidents import services
from incidents.models import ErrorEvent
from resilience.client import ConsoleClient, ConsoleLogHandler, configure
from resilience.config_watcher import config_version_bump
from resilience.models import Breaker, BreakerTransition, BreakerWindow
from resilience.runtime.breaker import CallNotPermitted
from resilience.runtime.decorators import resilient
from resilience.runtime.runtime import Runtime, get_runtime, set_runtime
from tests.support import wait_until

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


class Versions:
    """Collects on_config calls so a test can await a version instead of sleeping."""

    def __init__(self) -> None:
        self.seen: list[int | None] = []
        self._changed = threading.Condition()

    def __call__(self, version: int | None) -> None:
        with self._changed:
            self.seen.append(version)
            self._changed.notify_all()

    def await_count(self, count: int, timeout: float = 15) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: len(self.seen) >= count, timeout=timeout)


@pytest.fixture
def token(shop) -> str:
    return shop.keys.get().public_key


@pytest.fixture
def installed() -> Iterator[list[ConsoleClient]]:
    """Clients started by configure(); closed, and the previous runtime restored, afterwards."""
    previous = get_runtime()
    clients: list[ConsoleClient] = []
    yield clients
    for client in clients:
        client.close(timeout=5)
    set_runtime(previous)


def test_the_client_applies_the_saved_config_and_later_changes(live_console, shop, token, installed):
    row = Breaker.objects.create(
        name="payments-api", source=shop, failure_rate_threshold=25.0, minimum_calls=5, window_size=10
    )
    versions = Versions()
    client = configure(live_console.url, token, poll_seconds=0.1, on_config=versions)
    installed.append(client)
    assert versions.await_count(1)
    breaker = get_runtime().breaker("payments-api")
    assert (breaker.config.failure_rate_threshold, breaker.config.minimum_calls) == (25.0, 5)
    breaker.call(lambda: "ok")

    row.failure_rate_threshold = 80.0
    row.save()
    assert wait_until(lambda: versions.seen[-1] > versions.seen[0])
    assert get_runtime().breaker("payments-api") is breaker  # the same breaker, reconfigured in place
    assert breaker.config.failure_rate_threshold == 80.0
    assert breaker.metrics().calls == 1  # window counts survive the change
    assert client.stats()["config_version"] == versions.seen[-1]


def test_an_unchanged_config_is_not_applied_again(live_console, token):
    versions = Versions()
    runtime = Runtime()
    applied = []
    apply = runtime.apply
    runtime.apply = lambda snapshot: applied.append(snapshot) or apply(snapshot)
    client = ConsoleClient(live_console.url, token, runtime=runtime, poll_seconds=0.05, on_config=versions).start()
    try:
        assert versions.await_count(1)
        assert wait_until(lambda: client.stats()["config_unchanged"] >= 3)
    finally:
        client.close(timeout=5)
    assert len(applied) == 1 and len(versions.seen) == 1


def test_a_tripped_breaker_becomes_a_transition_and_an_event(live_console, shop, token, installed):
    Breaker.objects.create(
        name="payments-api", source=shop, window_size=2, minimum_calls=2, failure_rate_threshold=50.0
    )
    versions = Versions()
    options = {"poll_seconds": 0.1, "flush_seconds": 0.1, "timeout": 10, "on_config": versions}
    installed.append(configure(live_console.url, token, **options))
    assert versions.await_count(1)

    @resilient(breaker="payments-api")
    def charge() -> None:
        raise ConnectionError("payments-api refused")

    for _ in range(2):
        with pytest.raises(ConnectionError):
            charge()
    with pytest.raises(CallNotPermitted):
        charge()

    assert wait_until(lambda: BreakerTransition.objects.filter(breaker_name="payments-api", to_state="open").exists())
    # Delivery is at least once, but a batch sent again after a lost answer is recorded once.
    recorded = BreakerTransition.objects.values_list("breaker__name", "from_state", "to_state")
    assert list(recorded) == [("payments-api", "closed", "open")]
    assert wait_until(lambda: ErrorEvent.objects.filter(logger="resilience.breaker").exists())
    event = ErrorEvent.objects.filter(logger="resilience.breaker").first()
    assert (event.tags["breaker"], event.tags["to_state"], event.source.name) == ("payments-api", "open", "Shop")


def test_a_logged_exception_becomes_an_event_with_its_type_and_context(live_console, token, installed):
    client = configure(live_console.url, token, flush_seconds=0.1, environment="production", release="shop@3")
    installed.append(client)
    handler = ConsoleLogHandler(client)
    log = logging.getLogger("shop.orders")
    log.addHandler(handler)

    def place_order(order_id: int) -> None:
        try:
            {}["stock"]
        except KeyError as error:
            raise RuntimeError(f"order {order_id} could not be placed") from error

    try:
        try:
            place_order(42)
        except RuntimeError:
            log.exception("checkout failed", extra={"order_id": 42, "basket": ["apple", "pear"]})
    finally:
        log.removeHandler(handler)

    assert wait_until(lambda: ErrorEvent.objects.filter(logger="shop.orders").exists())
    event = ErrorEvent.objects.get(logger="shop.orders")
    assert [entry["type"] for entry in event.exception] == ["KeyError", "RuntimeError"]
    assert event.exception[-1]["value"] == "order 42 could not be placed"
    assert any(frame["function"] == "place_order" for frame in event.exception[-1]["stacktrace"]["frames"])
    assert event.extra == {"order_id": 42, "basket": ["apple", "pear"]}
    assert (event.message, event.environment, event.release) == ("checkout failed", "production", "shop@3")


def test_a_recovery_outcome_becomes_an_event_per_policy_and_outcome(live_console, token):
    client = ConsoleClient(live_console.url, token, flush_seconds=0.1)
    try:
        client.report(
            "recovery.outcome",
            {"policy": "data-feed-retry", "strategy": "retry", "component": "prices", "error_type": "NETWORK_TIMEOUT",
             "error": "TimeoutError('feed')", "outcome": "recovered"},
        )  # fmt: skip
        client.start()
        assert wait_until(lambda: ErrorEvent.objects.filter(logger="resilience.recovery").exists())
    finally:
        client.close(timeout=5)
    event = ErrorEvent.objects.get(logger="resilience.recovery")
    assert event.tags == {
        "policy": "data-feed-retry",
        "strategy": "retry",
        "outcome": "recovered",
        "error_type": "NETWORK_TIMEOUT",
    }
    assert (event.component, event.level) == ("prices", "info")


def test_with_the_console_unreachable_the_service_keeps_working(installed):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    closed_port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    client = configure(
        f"http://127.0.0.1:{closed_port}", "key", buffer_size=5, batch_size=2, poll_seconds=0.05, flush_seconds=0.05
    )
    installed.append(client)

    @resilient(breaker="inventory")
    def reserve() -> None:
        raise ConnectionError("inventory down")

    get_runtime().breaker("inventory").force_open("the warehouse is offline")
    with pytest.raises(CallNotPermitted):
        reserve()
    for number in range(20):
        client.capture_event({"message": f"event {number}"})
    get_runtime().breaker("inventory").force_closed("back")
    with pytest.raises(ConnectionError):
        reserve()  # the breaker admits calls again: it runs on without the console

    assert wait_until(lambda: client.stats()["failed_sends"] >= 1 and client.stats()["config_pulls"] >= 2)
    stats = client.stats()
    assert stats["buffered"] <= 5 + 2  # the buffer, and the one batch being retried
    assert stats["dropped"] + stats["buffered"] == 20 + 2 and stats["sent"] == 0  # 20 events, 2 transitions
    assert stats["config_version"] is None and stats["last_error"]


def test_the_client_reports_its_windows_and_the_config_it_refused(live_console, shop, token, installed):
    row = Breaker.objects.create(name="payments-api", source=shop, window_size=10, minimum_calls=10)
    versions = Versions()
    options = {"poll_seconds": 0.1, "flush_seconds": 0.1, "windows_seconds": 0.1, "on_config": versions}
    client = configure(live_console.url, token, **options)
    installed.append(client)
    assert versions.await_count(1)
    breaker = get_runtime().breaker("payments-api")
    breaker.call(lambda: "ok")
    with pytest.raises(ConnectionError):
        breaker.call(_refused)
    assert wait_until(lambda: BreakerWindow.objects.filter(breaker_name="payments-api", calls=2).exists())
    assert BreakerWindow.objects.get(breaker_name="payments-api").failures == 1

    # Saved by a process with other libraries installed: this service cannot resolve the class.
    Breaker.objects.filter(pk=row.pk).update(record_exceptions="nowhere.MadeUpError", failure_rate_threshold=10)
    config_version_bump()
    # The client's own report, as an event of its source (the console's processes report theirs as well).
    reported = ErrorEvent.objects.filter(logger="resilience.config", source__name="Shop")
    assert wait_until(reported.exists)
    assert reported.get().tags["field"] == "breakers.payments-api.record_exceptions"
    assert breaker.config.failure_rate_threshold == 50  # the last good config stays


def test_a_breaker_the_service_does_not_run_is_refused_and_its_other_figures_still_count(
    live_console, shop, token, installed
):
    Breaker.objects.create(name="payments-api", source=shop)
    other, _key = services.source_create(name="Warehouse")
    Breaker.objects.create(name="inventory", source=other)
    client = configure(live_console.url, token, poll_seconds=0.1, windows_seconds=0.1, flush_seconds=0.1)
    installed.append(client)
    runtime = get_runtime()
    for name in ("inventory", "payments-api", "redis"):  # another source's, its own, the console's
        runtime.breaker(name).call(lambda: "ok")
    runtime.breaker("redis").force_open("forged")

    mine = BreakerWindow.objects.filter(source=shop, breaker_name="payments-api", calls=1)
    assert wait_until(mine.exists)
    reported = BreakerWindow.objects.exclude(source__slug="console").values_list("source__name", "breaker_name")
    assert list(reported) == [("Shop", "payments-api")]
    assert wait_until(lambda: client.stats()["dropped"] == 1)  # the forced opening of redis, refused
    assert not BreakerTransition.objects.filter(breaker_name="redis").exists()
    assert not ErrorEvent.objects.filter(tags__breaker="redis").exists()


def test_a_breaker_defined_without_a_source_is_applied_and_then_taken_by_the_service_that_reports_it(
    live_console, shop, token, installed
):
    # The README's flow: an admin defines payments-api (no source), the service runs @resilient on it.
    Breaker.objects.create(name="payments-api", failure_rate_threshold=25.0, minimum_calls=5, window_size=10)
    versions = Versions()
    options = {"poll_seconds": 0.1, "windows_seconds": 0.1, "flush_seconds": 0.1, "on_config": versions}
    installed.append(configure(live_console.url, token, **options))
    assert versions.await_count(1)
    assert get_runtime().breaker("payments-api").config.failure_rate_threshold == 25.0

    @resilient(breaker="payments-api")
    def charge() -> str:
        return "charged"

    assert charge() == "charged"
    mine = BreakerWindow.objects.filter(source=shop, breaker_name="payments-api", calls=1)
    assert wait_until(mine.exists)
    assert Breaker.objects.get(name="payments-api").source == shop


def _refused() -> None:
    raise ConnectionError("refused")
