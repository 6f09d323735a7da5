"""Real sentry-sdk payloads for a fixed DSN, serialised and compressed by the SDK's own transport."""

from collections.abc import Callable

import sentry_sdk
from sentry_sdk.envelope import Envelope, Item

from tests import support
from tests.support import CapturingTransport, Sent, json_item

DSN = "http://abc123@127.0.0.1:9/42"

__all__ = ["DSN", "auth_header", "capture", "capture_one_event", "combined_envelope", "json_item", "raise_timeout"]


def raise_timeout():
    """An action for capture(): a timeout as the SDK sees an application raise it."""
    raise TimeoutError("read timed out after 30s")


def capture(*actions: Callable[[], object], **options) -> list[Sent]:
    return support.capture(DSN, *actions, **options)


def capture_one_event(*actions: Callable[[], object], **options) -> Sent:
    """Return the one envelope carrying an event that the actions produced."""
    [sent] = [item for item in capture(*actions, **options) if item.event is not None]
    return sent


def auth_header() -> str:
    """Return the X-Sentry-Auth header the SDK sends with DSN."""
    client = sentry_sdk.Client(dsn=DSN, transport=CapturingTransport, default_integrations=False)
    try:
        return client.transport._auth.to_header()
    finally:
        client.close()


def combined_envelope(event_envelope: Envelope, *others: Envelope, extra_items: list[Item] = ()) -> bytes:
    """Serialise an event envelope with the items of other SDK envelopes appended, as the SDK can batch them."""
    combined = Envelope(headers=event_envelope.headers)
    for envelope in (event_envelope, *others):
        for item in envelope.items:
            combined.add_item(item)
    for item in extra_items:
        combined.add_item(item)
    return combined.serialize()
