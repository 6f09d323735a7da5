"""The generic JSON webhook: the body, the extra headers and the signature a receiver verifies."""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from incidents.alerting.transports import TransportError
from incidents.alerting.transports.webhook import WebhookTransport
from tests.receivers import Reply

SECRET = "s3cret-s3cret-s3cret"


def test_it_posts_every_message_field_with_a_version(receiver, allow_loopback, message):
    ended = replace(message, event="resolved", ended_at=datetime(2025, 3, 1, 12, 30, tzinfo=UTC))

    delivery = WebhookTransport({"url": receiver.url()}).notify(ended)

    assert delivery.status_code == 200
    assert receiver.last.json() == {
        "version": 1,
        "event": "resolved",
        "dedup_key": "rule-7:source=checkout,error_type=NETWORK_TIMEOUT",
        "rule": "Checkout timeouts",
        "severity": "critical",
        "summary": "42 timeouts in 5 minutes (threshold 10)",
        "runbook": "https://runbooks.example.com/checkout-timeouts",
        "value": 42.0,
        "threshold": 10.0,
        "labels": {"source": "checkout", "error_type": "NETWORK_TIMEOUT"},
        "started_at": "2025-03-01T12:00:05Z",
        "ended_at": "2025-03-01T12:30:00Z",
        "url": "https://console.example.com/alerts/7/",
    }
    assert receiver.last.headers["content-type"] == "application/json"


def test_a_value_json_cannot_spell_goes_out_as_null(receiver, allow_loopback, message):
    WebhookTransport({"url": receiver.url()}).notify(replace(message, value=float("nan"), threshold=float("inf")))

    assert (receiver.last.json()["value"], receiver.last.json()["threshold"]) == (None, None)


def test_it_sends_the_configured_headers(receiver, allow_loopback, message):
    transport = WebhookTransport({"url": receiver.url(), "headers": {"Authorization": "Bearer abc", "X-Team": "pay"}})

    transport.notify(message)

    assert receiver.last.headers["authorization"] == "Bearer abc"
    assert receiver.last.headers["x-team"] == "pay"
    assert "x-console-signature" not in receiver.last.headers


def test_a_receiver_can_verify_the_signature(receiver, allow_loopback, message):
    before = int(time.time())
    WebhookTransport({"url": receiver.url(), "secret": SECRET}).notify(message)

    request = receiver.last
    timestamp = request.headers["x-console-timestamp"]
    expected = hmac.new(SECRET.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["x-console-signature"], f"sha256={expected}")
    assert before <= int(timestamp) <= time.time()


def test_a_failure_is_reported_with_its_status(receiver, allow_loopback, message):
    receiver.reply = Reply(status=503, headers={"Retry-After": "12"})

    with pytest.raises(TransportError) as caught:
        WebhookTransport({"url": receiver.url()}).notify(message)

    assert (caught.value.permanent, caught.value.status_code, caught.value.retry_after) == (False, 503, 12.0)


def test_an_allow_list_removed_after_saving_still_stops_the_send(receiver, allow_loopback, settings, message):
    transport = WebhookTransport({"url": receiver.url()})
    settings.NOTIFICATION_ALLOWED_NETWORKS = []

    with pytest.raises(TransportError) as caught:
        transport.notify(message)

    assert caught.value.permanent is True
    assert receiver.requests == []
