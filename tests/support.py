"""Builders for what real clients send: sentry-sdk envelopes and native events."""

import time
import uuid
from collections.abc import Callable

import sentry_sdk
from sentry_sdk.envelope import Envelope, Item, PayloadRef
from sentry_sdk.transport import Transport


class CaptureTransport(Transport):
    """A sentry-sdk transport that keeps envelopes instead of sending them."""

    def __init__(self, options=None):
        super().__init__(options)
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)


def sdk_envelopes(dsn: str, *actions: Callable[[], None], **options) -> list[Envelope]:
    """Run each action under a real sentry-sdk client and return the envelopes it produced."""
    client = sentry_sdk.Client(dsn=dsn, transport=CaptureTransport, default_integrations=False, **options)
    with sentry_sdk.isolation_scope() as scope:
        scope.set_client(client)
        for action in actions:
            try:
                action()
            except Exception:
                scope.capture_exception()
    client.flush(timeout=2)
    return [envelope for envelope in client.transport.envelopes if envelope.get_event()]


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


def json_item(item_type: str, payload: dict) -> Item:
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
