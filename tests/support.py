"""Builders for what real clients send (sentry-sdk envelopes, native events), and what tests read back:
admin messages, queued deliveries."""

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import sentry_sdk
from asgiref.sync import async_to_sync
from django.db import connection
from django.http import HttpResponse
from django.utils import timezone
from django_q.models import OrmQ
from sentry_sdk.envelope import Envelope, Item, PayloadRef
from sentry_sdk.transport import HttpTransport

from incidents.ingest import pipeline
from incidents.ingest.digest import digest_pending
from incidents.ingest.normalize import normalize_native_event

# Small programs that tests start as separate processes.
PROBES = Path(__file__).parent / "probes"

DELIVER = "incidents.tasks.deliver_notifications"  # the task path django-q2 queues deliveries under


@dataclass
class Sent:
    """What a sentry-sdk client would have put on the wire."""

    envelope: Envelope
    content_encoding: str | None
    body: bytes

    @property
    def event(self) -> dict | None:
        return self.envelope.get_event()


class CapturingTransport(HttpTransport):
    """The SDK's HTTP transport stopped at the wire: it keeps each body instead of sending it."""

    def __init__(self, options):
        super().__init__(options)
        self.sent: list[Sent] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        content_encoding, body = self._serialize_envelope(envelope)
        self.sent.append(Sent(envelope, content_encoding, body.getvalue()))


def capture(dsn: str, *actions: Callable[[], object], compression: str | None = None, **options) -> list[Sent]:
    """Run each action under a real sentry-sdk client and return what it would have sent.

    An action that raises is captured as an exception event, as an SDK integration would.
    """
    experiments = {"transport_compression_algo": compression} if compression else {"transport_compression_level": 0}
    client = sentry_sdk.Client(
        dsn=dsn, transport=CapturingTransport, default_integrations=False, _experiments=experiments, **options
    )
    with sentry_sdk.isolation_scope() as scope:
        scope.set_client(client)
        for action in actions:
            try:
                action()
            except Exception:
                sentry_sdk.capture_exception()
    client.flush(timeout=2)
    sent = client.transport.sent
    client.close()
    return sent


def sdk_envelopes(dsn: str, *actions: Callable[[], object], **options) -> list[Envelope]:
    """Run each action under a real sentry-sdk client and return the envelopes carrying an event."""
    return [sent.envelope for sent in capture(dsn, *actions, **options) if sent.event is not None]


def envelope_bytes(event: dict, *, dsn: str | None = None, extra_items: list[Item] = ()) -> bytes:
    """Serialise an event, and optional other items, as a Sentry envelope."""
    headers = {"event_id": event["event_id"]}
    if dsn:
        headers["dsn"] = dsn
    envelope = Envelope(headers=headers)
    envelope.add_event(event)
    for item in extra_items:
        envelope.add_item(item)
    return envelope.serialize()


def json_item(item_type: str, payload: object) -> Item:
    return Item(payload=PayloadRef(json=payload), type=item_type)


def sentry_event(message: str = "boom", **fields) -> dict:
    """A minimal store-style event, as an SDK without an exception sends it."""
    return {
        "event_id": uuid.uuid4().hex,
        "timestamp": time.time(),
        "level": "error",
        "platform": "python",
        "message": message,
        **fields,
    }


def native_event(**fields) -> dict:
    """An event in the console's own JSON format, with a real-looking exception."""
    return {
        "event_id": uuid.uuid4().hex,
        "level": "error",
        "exception": {
            "type": "TimeoutError",
            "value": "read timed out after 30s",
            "module": "builtins",
            "stacktrace": {
                "frames": [{"filename": "app/rates.py", "module": "app.rates", "function": "fetch_rates", "lineno": 42}]
            },
        },
        "environment": "production",
        **fields,
    }


def auth_header(key) -> dict:
    return {"HTTP_X_SENTRY_AUTH": f"Sentry sentry_key={key.public_key}, sentry_version=7, sentry_client=test/1.0"}


def wait_until(condition: Callable[[], object], *, timeout: float = 10.0, interval: float = 0.05):
    """Poll a condition until it holds or the deadline passes; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)  # polling a condition with a deadline, not a fixed wait


class FastPathClient:
    """Posts through config.asgi's application, as the web server does: the ingest fast path, its
    checks on the event loop and its group-commit writer included.

    The writer stores events on its own connection, so a test using this client must commit what
    the request needs (its source and key): mark it `django_db(transaction=True, serialized_rollback=True)`,
    or take the `fast_path` parameter of FAST_PATH_PARAMS.
    """

    def __init__(self):
        from config.asgi import application

        self.application = application

    def post(self, path: str, data=b"", content_type: str = "application/octet-stream", **extra) -> HttpResponse:
        body = data.encode() if isinstance(data, str) else data
        path, _, query = path.partition("?")
        headers = [(b"content-type", content_type.encode())]
        if "CONTENT_LENGTH" not in extra:
            headers.append((b"content-length", str(len(body)).encode()))
        for name, value in extra.items():
            if name.startswith("HTTP_") or name in ("CONTENT_LENGTH", "CONTENT_TYPE"):
                header = name.removeprefix("HTTP_").replace("_", "-").lower()
                if value != "":
                    headers.append((header.encode(), str(value).encode("latin-1")))
        scope = {
            "type": "http", "method": "POST", "path": path, "query_string": query.encode(), "headers": headers,
            "client": ("127.0.0.1", 50000), "server": ("testserver", 80), "scheme": "http",
        }  # fmt: skip
        sent: list[dict] = []
        pending = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive():
            if pending:
                return pending.pop()
            await asyncio.Event().wait()  # the client stays: Django cancels a request whose client left

        async def send(message):
            sent.append(message)

        async_to_sync(self.application)(scope, receive, send)
        start = next(message for message in sent if message["type"] == "http.response.start")
        content = b"".join(message.get("body", b"") for message in sent if message["type"] == "http.response.body")
        response = HttpResponse(
            content, status=start["status"], headers={k.decode(): v.decode() for k, v in start["headers"]}
        )
        response.json = lambda: json.loads(content)
        return response


# For a `client` fixture over both ways in: Django's test client in the test's transaction, and the
# fast path, whose writer needs what the test made committed.
FAST_PATH_PARAMS = [
    "django",
    pytest.param("fastpath", marks=pytest.mark.django_db(transaction=True, serialized_rollback=True)),
]


def store_received(source, *, days_ago: float, count: int = 1, fingerprint: str = "timeouts", **fields) -> list[str]:
    """Store `count` events of one incident received `days_ago` days ago (and stamped then), digest them,
    and return their ids."""
    at = timezone.now() - timedelta(days=days_ago)
    raw = [native_event(fingerprint=[fingerprint], timestamp=at.isoformat(), **fields) for _ in range(count)]
    ids = pipeline.events_store(
        source=source, events=[normalize_native_event(event, received_at=at) for event in raw], received_at=at
    )
    digest_pending()
    return [str(event_id) for event_id in ids]


# A purge detaches expired partitions concurrently, which on PostgreSQL waits for every transaction that
# touched the event table, a test's own included: tests that purge commit as they go.
PURGING = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def database_url_for_processes() -> str:
    """The DATABASE_URL that lets a separate process use this test's database."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    password = f":{settings['PASSWORD']}" if settings.get("PASSWORD") else ""
    return f"postgres://{settings['USER']}{password}@{settings['HOST']}:{settings['PORT']}/{settings['NAME']}"


def message_texts(response) -> list[str]:
    """The messages an admin page shows after an action."""
    return [str(message) for message in response.context["messages"]]


def delivery_tasks() -> list[dict]:
    """The delivery tasks queued on the ORM broker."""
    return [row.task for row in OrmQ.objects.all() if row.task.get("func") == DELIVER]


def assert_delivery_enqueued(callbacks, ids: list[int], settings) -> None:
    """The on-commit callbacks hand exactly `ids` to delivery, once; on the ORM broker, run them and read the queue.

    Other callbacks (the live stream's signal) may run beside it.
    """
    assert callbacks
    if "orm" not in settings.Q_CLUSTER:
        return  # a real broker: the callbacks are not run from these tests
    for callback in callbacks:
        callback()
    assert [task["args"] for task in delivery_tasks()] == [(ids,)]


def refuse_connection():
    """A call to a service that is down: what trips a breaker in these tests."""
    raise ConnectionError("connection refused")
