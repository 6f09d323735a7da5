"""Slack incoming webhooks: the text, the coloured attachment and Slack's answers."""

from __future__ import annotations

from dataclasses import replace

import pytest

from incidents.alerting.transports import TransportError
from incidents.alerting.transports.slack import COLORS, RESOLVED_COLOR, SlackTransport
from tests.receivers import Reply


def fields_of(body) -> dict[str, str]:
    return {field["title"]: field["value"] for field in body["attachments"][0]["fields"]}


def test_it_posts_a_headline_and_an_attachment_with_fields(receiver, allow_loopback, message):
    delivery = SlackTransport({"url": receiver.url("/services/T0/B0/x")}).notify(message)

    body = receiver.last.json()
    assert body["text"] == "[FIRING] [CRITICAL] Checkout timeouts: 42 timeouts in 5 minutes (threshold 10)"
    attachment = body["attachments"][0]
    assert attachment["color"] == COLORS["critical"]
    assert attachment["title"] == "Checkout timeouts"
    assert attachment["title_link"] == "https://console.example.com/alerts/7/"
    assert attachment["ts"] == int(message.started_at.timestamp())
    assert fields_of(body) == {
        "Severity": "critical",
        "Value": "42",
        "Threshold": "10",
        "source": "checkout",
        "error_type": "NETWORK_TIMEOUT",
        "Started": "2025-03-01T12:00:05Z",
        "Runbook": "https://runbooks.example.com/checkout-timeouts",
    }
    assert (delivery.status_code, delivery.response) == (200, "ok")


@pytest.mark.parametrize(
    ("severity", "event", "color"), [("high", "firing", COLORS["high"]), ("low", "test", COLORS["low"])]
)
def test_the_colour_follows_the_severity(receiver, allow_loopback, message, severity, event, color):
    SlackTransport({"url": receiver.url()}).notify(replace(message, severity=severity, event=event))

    assert receiver.last.json()["attachments"][0]["color"] == color
    assert receiver.last.json()["text"].startswith(f"[{event.upper()}] [{severity.upper()}]")


def test_a_resolved_alert_is_green(receiver, allow_loopback, message):
    SlackTransport({"url": receiver.url()}).notify(replace(message, event="resolved"))

    assert receiver.last.json()["attachments"][0]["color"] == RESOLVED_COLOR
    assert receiver.last.json()["text"].startswith("[RESOLVED]")


def test_text_from_errors_cannot_ping_the_channel_or_forge_links(receiver, allow_loopback, message):
    SlackTransport({"url": receiver.url()}).notify(replace(message, summary="<!channel> see <http://evil|here> & now"))

    body = receiver.last.json()
    assert body["text"].endswith("&lt;!channel&gt; see &lt;http://evil|here&gt; &amp; now")
    assert "<" not in body["attachments"][0]["text"]


def test_slack_throttling_is_transient_with_its_delay(receiver, allow_loopback, message):
    receiver.reply = Reply(status=429, body=b"rate_limited", headers={"Retry-After": "30"})

    with pytest.raises(TransportError) as caught:
        SlackTransport({"url": receiver.url()}).notify(message)

    assert (caught.value.permanent, caught.value.retry_after) == (False, 30.0)


def test_an_archived_channel_is_permanent(receiver, allow_loopback, message):
    receiver.reply = Reply(status=410, body=b"channel_is_archived")

    with pytest.raises(TransportError) as caught:
        SlackTransport({"url": receiver.url()}).notify(message)

    assert caught.value.permanent is True
    assert "channel_is_archived" in str(caught.value)
