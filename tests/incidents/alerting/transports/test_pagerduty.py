"""PagerDuty Events API v2: actions sharing one dedup key, severity mapping, payload only on trigger."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest

from incidents.alerting.transports import TransportError
from incidents.alerting.transports.pagerduty import DEFAULT_URL, PagerDutyTransport
from tests.receivers import Reply

ROUTING_KEY = "R0123456789abcdef0123456789abcde"


@pytest.fixture
def pagerduty(receiver, allow_loopback):
    receiver.reply = Reply(status=202, body=b'{"status":"success","message":"Event processed"}')
    return PagerDutyTransport({"routing_key": ROUTING_KEY, "url": receiver.url("/v2/enqueue")})


def test_firing_triggers_with_a_full_payload(pagerduty, receiver, message):
    delivery = pagerduty.notify(message)

    body = receiver.last.json()
    assert receiver.last.path == "/v2/enqueue"
    assert body["routing_key"] == ROUTING_KEY
    assert body["event_action"] == "trigger"
    assert body["dedup_key"] == message.dedup_key
    assert body["payload"] == {
        "summary": "Checkout timeouts: 42 timeouts in 5 minutes (threshold 10)",
        "source": "checkout",
        "severity": "critical",
        "timestamp": "2025-03-01T12:00:05Z",
        "component": "NETWORK_TIMEOUT",
        "class": "Checkout timeouts",
        "custom_details": {
            "rule": "Checkout timeouts",
            "severity": "critical",
            "summary": "42 timeouts in 5 minutes (threshold 10)",
            "runbook": "https://runbooks.example.com/checkout-timeouts",
            "value": 42.0,
            "threshold": 10.0,
            "labels": {"source": "checkout", "error_type": "NETWORK_TIMEOUT"},
            "started_at": "2025-03-01T12:00:05Z",
            "ended_at": None,
        },
    }
    assert body["links"] == [
        {"href": "https://console.example.com/alerts/7/", "text": "Open in the incident console"},
        {"href": "https://runbooks.example.com/checkout-timeouts", "text": "Runbook"},
    ]
    assert body["client_url"] == "https://console.example.com/alerts/7/"
    assert delivery.status_code == 202
    assert "Event processed" in delivery.response


@pytest.mark.parametrize(("event", "action"), [("acknowledged", "acknowledge"), ("resolved", "resolve")])
def test_acknowledge_and_resolve_share_the_dedup_key_and_carry_no_payload(pagerduty, receiver, message, event, action):
    pagerduty.notify(replace(message, event=event))

    assert receiver.last.json() == {"routing_key": ROUTING_KEY, "event_action": action, "dedup_key": message.dedup_key}


def test_a_test_message_triggers(pagerduty, receiver, message):
    pagerduty.notify(replace(message, event="test"))

    assert receiver.last.json()["event_action"] == "trigger"
    assert "payload" in receiver.last.json()


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [("critical", "critical"), ("high", "error"), ("medium", "warning"), ("low", "info"), ("info", "info")],
)
def test_severities_map_to_pagerduty_levels(pagerduty, receiver, message, ours, theirs):
    pagerduty.notify(replace(message, severity=ours))

    assert receiver.last.json()["payload"]["severity"] == theirs


def test_a_long_summary_is_cut_to_1024_characters(pagerduty, receiver, message):
    pagerduty.notify(replace(message, summary="x" * 5000))

    summary = receiver.last.json()["payload"]["summary"]
    assert len(summary) == 1024
    assert summary.startswith("Checkout timeouts: xxx")


def test_a_dedup_key_over_255_characters_is_hashed_the_same_way_every_time(pagerduty, receiver, message):
    long_key = "k" * 300
    pagerduty.notify(replace(message, dedup_key=long_key))
    pagerduty.notify(replace(message, dedup_key=long_key, event="resolved"))

    keys = [request.json()["dedup_key"] for request in receiver.requests]
    assert keys == [hashlib.sha256(long_key.encode()).hexdigest()] * 2


def test_the_configured_source_wins_over_the_label(receiver, allow_loopback, message):
    transport = PagerDutyTransport({"routing_key": ROUTING_KEY, "url": receiver.url(), "source": "prod-eu"})

    transport.notify(message)

    assert receiver.last.json()["payload"]["source"] == "prod-eu"


def test_it_uses_the_public_endpoint_by_default():
    assert PagerDutyTransport({"routing_key": ROUTING_KEY}).config["url"] == DEFAULT_URL


def test_an_invalid_event_is_permanent(pagerduty, receiver, message):
    receiver.reply = Reply(status=400, body=b'{"status":"invalid event","errors":["Length of routing_key is wrong"]}')

    with pytest.raises(TransportError) as caught:
        pagerduty.notify(message)

    assert (caught.value.permanent, caught.value.status_code) == (True, 400)
    assert "invalid event" in str(caught.value)
