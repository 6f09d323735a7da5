"""The console client's own behaviour: buffering, batching, failure handling and log records as events.

The console's answers that are hard to provoke on a real one (5xx, 429, a refused entry, a broken
snapshot) come from a small scripted HTTP server; tests/e2e/test_resilience_client.py runs the
client against the real console.
"""

import gzip
import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from resilience.client import Backoff, ConsoleClient, ConsoleLogHandler, event_from_record
from resilience.runtime.runtime import Runtime


@dataclass
class Request:
    method: str
    path: str
    headers: dict
    body: object


@dataclass
class FakeConsole:
    """Answers each request with the next scripted (status, body, headers), then 200 {}; records them all."""

    url: str = ""
    script: list = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def answer(self, request: Request) -> tuple[int, dict, dict]:
        with self.arrived:
            self.requests.append(request)
            self.arrived.notify_all()
            matching = [entry for entry in self.script if request.path.startswith(entry[0])]
            if matching:
                self.script.remove(matching[0])
                return matching[0][1:]
        return 200, {}, {}

    def posts(self, path: str) -> list[Request]:
        with self.arrived:
            return [request for request in self.requests if request.method == "POST" and request.path == path]

    def await_requests(self, path: str, count: int, timeout: float = 10) -> list[Request]:
        with self.arrived:
            self.arrived.wait_for(
                lambda: sum(request.path == path for request in self.requests) >= count, timeout=timeout
            )
            return [request for request in self.requests if request.path == path]


def _handler(console: FakeConsole) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.headers.get("Content-Encoding") == "gzip":
                raw = gzip.decompress(raw)
            body = json.loads(raw) if raw else None
            status, payload, headers = console.answer(Request(self.command, self.path, dict(self.headers), body))
            data = json.dumps(payload).encode() if status != 304 else b""
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _serve

        def log_message(self, *args) -> None:
            pass

    return Handler


@pytest.fixture
def console() -> Iterator[FakeConsole]:
    fake = FakeConsole()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()


EVENTS = "/api/v1/events/"
TRANSITIONS = "/api/v1/resilience/transitions/"
CONFIG = "/api/v1/resilience/config/"


def sent_messages(console: FakeConsole) -> list[str]:
    return [event["message"] for request in console.posts(EVENTS) for event in request.body["events"]]


def test_a_full_buffer_drops_the_oldest_entries_and_counts_them(console):
    client = ConsoleClient(console.url, "key", buffer_size=3, batch_size=10)
    for number in range(5):
        client.capture_event({"message": f"event {number}"})
    assert client.stats()["dropped"] == 2
    client.close(timeout=5)
    assert sent_messages(console) == ["event 2", "event 3", "event 4"]
    assert client.stats()["sent"] == 3


def test_events_carry_the_defaults_and_the_bearer_key(console):
    client = ConsoleClient(console.url, "secret-key", environment="production", release="shop@2", component="cart")
    client.capture_event({"message": "one", "component": "checkout"})
    client.close(timeout=5)
    [request] = console.posts(EVENTS)
    assert request.headers["Authorization"] == "Bearer secret-key"
    [event] = request.body["events"]
    assert (event["environment"], event["release"], event["component"]) == ("production", "shop@2", "checkout")
    assert len(event["event_id"]) == 32 and isinstance(event["timestamp"], float)


def test_batches_respect_batch_size(console):
    client = ConsoleClient(console.url, "key", batch_size=2)
    for number in range(5):
        client.capture_event({"message": f"event {number}"})
    client.close(timeout=5)
    assert [len(request.body["events"]) for request in console.posts(EVENTS)] == [2, 2, 1]


def test_a_failed_send_keeps_the_batch_and_sends_it_later(console):
    console.script = [(EVENTS, 503, {"error": "down"}, {}), (EVENTS, 502, {}, {})]
    client = ConsoleClient(console.url, "key", flush_seconds=0.01, poll_seconds=60)
    client.capture_event({"message": "kept"})
    client.start()
    requests = console.await_requests(EVENTS, 3)
    client.close(timeout=5)
    assert [len(request.body["events"]) for request in requests] == [1, 1, 1]
    assert len({request.body["events"][0]["event_id"] for request in requests}) == 1  # the same event, resent
    stats = client.stats()
    assert (stats["sent"], stats["failed_sends"], stats["dropped"]) == (1, 2, 0)
    assert "502" in stats["last_error"]


def test_a_refused_batch_is_dropped_and_logged_once(console, caplog):
    console.script = [(EVENTS, 401, {"error": "unknown ingest key", "field": "sentry_key"}, {})] * 2
    client = ConsoleClient(console.url, "wrong", batch_size=1)
    client.capture_event({"message": "first"})
    client.capture_event({"message": "second"})
    with caplog.at_level(logging.WARNING, logger="resilience.client"):
        client.close(timeout=5)
    assert len(console.posts(EVENTS)) == 2  # each tried once, never again
    assert client.stats()["dropped"] == 2 and client.stats()["sent"] == 0
    assert len([record for record in caplog.records if "refused" in record.getMessage()]) == 1


def test_an_entry_the_console_names_is_dropped_alone(console):
    console.script = [(EVENTS, 400, {"error": "must be a string", "field": "events[1].logger"}, {})]
    client = ConsoleClient(console.url, "key")
    for number in range(3):
        client.capture_event({"message": f"event {number}"})
    client.close(timeout=5)
    assert [len(request.body["events"]) for request in console.posts(EVENTS)] == [3, 2]
    assert sent_messages(console)[3:] == ["event 0", "event 2"]
    assert (client.stats()["sent"], client.stats()["dropped"]) == (2, 1)


def test_a_429_is_retried_only_after_retry_after(console):
    console.script = [(EVENTS, 429, {"error": "slow down"}, {"Retry-After": "3600"})]
    client = ConsoleClient(console.url, "key", flush_seconds=0.01, poll_seconds=60)
    client.capture_event({"message": "later"})
    client.start()
    console.await_requests(EVENTS, 1)
    client.close(timeout=2)  # a final flush would send it, but the console asked for an hour
    assert len(console.posts(EVENTS)) == 1
    assert client.stats()["dropped"] == 1 and client.stats()["failed_sends"] == 1


def test_backoff_doubles_up_to_its_cap_and_starts_over_after_a_success():
    backoff = Backoff(1.0, cap=5.0)
    assert [backoff.next_delay() for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    backoff.reset()
    assert backoff.next_delay() == 1.0


def test_transitions_and_recovery_reports_go_to_their_endpoints(console):
    client = ConsoleClient(console.url, "key")
    runtime = Runtime(reporter=client.report)
    runtime.breaker("payments-api").force_open("maintenance")
    client.report(
        "recovery.outcome",
        {"policy": "feed", "strategy": "retry", "component": "prices", "error_type": "NETWORK_TIMEOUT",
         "error": "TimeoutError()", "outcome": "failed", "reason": "attempts exhausted"},
    )  # fmt: skip
    client.close(timeout=5)
    [posted] = console.posts(TRANSITIONS)
    [transition] = posted.body["transitions"]
    assert (transition["breaker"], transition["from_state"], transition["to_state"]) == (
        "payments-api",
        "closed",
        "open",
    )
    assert transition["mode"] == "forced_open" and isinstance(transition["at"], float)
    [event] = console.posts(EVENTS)[0].body["events"]
    assert (event["logger"], event["level"], event["component"]) == ("resilience.recovery", "error", "prices")
    assert event["tags"] == {
        "policy": "feed",
        "strategy": "retry",
        "outcome": "failed",
        "error_type": "NETWORK_TIMEOUT",
    }
    assert event["fingerprint"] == ["recovery", "feed", "failed"]


def test_reporting_never_raises_on_bad_input(console):
    client = ConsoleClient(console.url, "key")
    client.report("breaker.transition", None)
    client.report("breaker.transition", {"breaker": "x"})
    client.capture_event(["not", "an", "event"])
    client.capture_event({"message": "fine", "context": {"nan": float("nan"), "object": object()}})
    client.close(timeout=5)
    assert client.stats()["dropped"] == 3
    [event] = console.posts(EVENTS)[0].body["events"]
    assert event["context"]["nan"] == "nan" and event["context"]["object"].startswith("<object object")


def test_a_snapshot_with_errors_keeps_the_last_good_config(console):
    good = {"version": 1, "breakers": {"payments-api": {"failure_rate_threshold": 30.0}}}
    bad = {"version": 2, "breakers": {"payments-api": {"failure_rate_threshold": 300.0}}}
    console.script = [(CONFIG, 200, good, {"ETag": '"v1"'}), (CONFIG, 200, bad, {"ETag": '"v2"'})]
    applied = []
    both = threading.Event()
    runtime = Runtime()

    def on_config(version):
        applied.append(version)
        if len(applied) == 2:
            both.set()

    client = ConsoleClient(console.url, "key", runtime=runtime, poll_seconds=0.01, on_config=on_config).start()
    assert both.wait(10)
    client.close(timeout=5)
    assert applied == [1, 2]
    assert runtime.breaker("payments-api").config.failure_rate_threshold == 30.0
    assert [error.field for error in client.last_config_errors] == ["breakers.payments-api.failure_rate_threshold"]
    requests = [request for request in console.requests if request.path == CONFIG]
    assert "If-None-Match" not in requests[0].headers and requests[1].headers["If-None-Match"] == '"v1"'


def test_close_gives_up_at_its_timeout_when_the_console_is_down():
    client = ConsoleClient("http://127.0.0.1:9", "key", timeout=0.5)
    client.capture_event({"message": "lost"})
    client.close(timeout=1)
    stats = client.stats()
    assert (stats["sent"], stats["dropped"], stats["buffered"]) == (0, 1, 0)
    assert "ConnectionRefusedError" in stats["last_error"] or "URLError" in stats["last_error"]


# Log records


def raise_chained() -> None:
    try:
        {}["order"]
    except KeyError as error:
        raise ValueError("order 42 is invalid") from error


def error_record(**extra) -> logging.LogRecord:
    log = logging.getLogger("shop.orders")
    try:
        raise_chained()
    except ValueError:
        record = log.makeRecord(log.name, logging.ERROR, __file__, 1, "could not %s", ("charge",), None)
        import sys

        record.exc_info = sys.exc_info()
    record.__dict__.update(extra)
    return record


def test_a_record_becomes_an_event_with_its_exception_chain_and_extra_context():
    event = event_from_record(error_record(order_id=42, customer={"tier": "gold", "since": object()}))
    assert (event["message"], event["level"], event["logger"]) == ("could not charge", "error", "shop.orders")
    cause, surfaced = event["exception"]
    assert (cause["type"], surfaced["type"], surfaced["value"]) == ("KeyError", "ValueError", "order 42 is invalid")
    assert "LookupError" in cause["bases"]
    frame = surfaced["stacktrace"]["frames"][-1]
    assert (frame["function"], frame["module"], frame["in_app"]) == ("raise_chained", __name__, True)
    assert frame["context_line"] == 'raise ValueError("order 42 is invalid") from error'
    assert event["context"]["order_id"] == 42
    assert event["context"]["customer"]["since"].startswith("<object object")
    assert "exc_info" not in event["context"] and "msg" not in event["context"]


def test_library_frames_are_not_in_app():
    try:
        json.loads("{")
    except ValueError as error:
        record = logging.LogRecord("app", logging.ERROR, __file__, 1, "bad json", (), (type(error), error, None))
        record.exc_info = (type(error), error, error.__traceback__)
    frames = event_from_record(record)["exception"][-1]["stacktrace"]["frames"]
    assert frames[0]["in_app"] is True and frames[-1]["in_app"] is False
    assert frames[-1]["module"].startswith("json")


def test_the_handler_captures_errors_only_and_never_the_clients_own_records(console):
    client = ConsoleClient(console.url, "key")
    handler = ConsoleLogHandler(client)
    log = logging.getLogger("shop.handler")
    log.addHandler(handler)
    own = logging.getLogger("resilience.client")
    own.addHandler(handler)
    try:
        log.warning("not an error")
        log.error("failed %s", "payment", extra={"order_id": 7})
        own.error("the client's own trouble")
    finally:
        log.removeHandler(handler)
        own.removeHandler(handler)
    client.close(timeout=5)
    [event] = console.posts(EVENTS)[0].body["events"]
    assert (event["message"], event["context"]) == ("failed payment", {"order_id": 7})


def test_the_handler_does_not_recurse_when_capturing_logs(console):
    class LoggingClient(ConsoleClient):
        def capture_event(self, event: dict) -> None:
            logging.getLogger("shop.nested").error("logged while capturing")
            super().capture_event(event)

    client = LoggingClient(console.url, "key")
    handler = ConsoleLogHandler(client)
    log = logging.getLogger("shop.nested")
    log.addHandler(handler)
    try:
        log.error("outer")
    finally:
        log.removeHandler(handler)
    client.close(timeout=5)
    assert sent_messages(console) == ["outer"]


def test_the_handler_never_raises_on_a_broken_record(console, monkeypatch):
    monkeypatch.setattr(logging, "raiseExceptions", False)  # handleError would print the traceback
    client = ConsoleClient(console.url, "key")
    handler = ConsoleLogHandler(client)
    handler.handle(logging.LogRecord("shop", logging.ERROR, __file__, 1, "%d items", ("many",), None))
    assert client.stats()["buffered"] == 0


WINDOWS = "/api/v1/resilience/windows/"


def test_a_breaker_the_console_says_is_not_the_services_own_is_left_out_of_later_window_reports(console):
    refusal = {"error": "breaker 'redis' is the console's own", "field": "windows[1].breaker"}
    console.script.append((WINDOWS, 403, refusal, {}))
    runtime = Runtime()
    for name in ("payments-api", "redis"):
        runtime.breaker(name).call(lambda: "ok")
    client = ConsoleClient(console.url, "key", runtime=runtime, windows_seconds=0.01, poll_seconds=60).start()
    try:
        reports = console.await_requests(WINDOWS, 2)
    finally:
        client.close(timeout=5)
    assert [[window["breaker"] for window in report.body["windows"]] for report in reports[:2]] == [
        ["payments-api", "redis"],
        ["payments-api"],
    ]
