"""The shared base: messages, errors, config validation naming the field, and the registry."""

from __future__ import annotations

import pickle
from datetime import datetime, timedelta, timezone

import pytest
from django.core.exceptions import ImproperlyConfigured

from incidents.alerting.transports import (
    DEFAULT_TRANSPORTS,
    Delivery,
    Message,
    Transport,
    TransportError,
    transport_class,
    transport_for,
)
from incidents.alerting.transports.alertmanager import AlertmanagerTransport
from incidents.alerting.transports.base import isoformat
from incidents.alerting.transports.email import EmailTransport
from incidents.alerting.transports.pagerduty import PagerDutyTransport
from incidents.alerting.transports.slack import SlackTransport
from incidents.alerting.transports.webhook import WebhookTransport
from incidents.models import NotificationChannel
from resilience.exceptions import ConfigError

KEY = "R0123456789abcdef0123456789abcde"
URL = "https://hooks.example.com/x"


class EchoTransport(Transport):
    """A deployment's own transport, plugged in by dotted path."""

    kind = "webhook"
    label = "Echo"

    def notify(self, message: Message) -> Delivery:
        return Delivery(status_code=None, response=message.summary)


def test_a_message_refuses_an_unknown_event_or_severity():
    with pytest.raises(ValueError, match="event must be one of firing, resolved, acknowledged, test"):
        Message(event="fired", dedup_key="k", rule="r", severity="critical", summary="s")
    with pytest.raises(ValueError, match="severity must be one of"):
        Message(event="firing", dedup_key="k", rule="r", severity="warning", summary="s")


def test_datetimes_are_written_in_utc():
    paris = timezone(timedelta(hours=1))
    assert isoformat(datetime(2025, 3, 1, 13, 0, 5, 250000, tzinfo=paris)) == "2025-03-01T12:00:05.250000Z"
    assert isoformat(datetime(2025, 3, 1, 12, 0)) == "2025-03-01T12:00:00Z"


def test_a_transport_error_survives_pickling():
    error = TransportError("HTTP 429", permanent=False, status_code=429, retry_after=30.0)

    copy = pickle.loads(pickle.dumps(error))

    assert (str(copy), copy.permanent, copy.status_code, copy.retry_after) == ("HTTP 429", False, 429, 30.0)


# Config validation


@pytest.mark.parametrize(
    ("transport", "config", "field", "reason"),
    [
        (WebhookTransport, {}, "url", "is required"),
        (WebhookTransport, {"url": ""}, "url", "is required"),
        (WebhookTransport, {"url": "ftp://example.com"}, "url", "http:// or https://"),
        (WebhookTransport, {"url": "http://169.254.169.254/latest/meta-data"}, "url", "not a public address"),
        (WebhookTransport, {"url": URL, "headers": {"Host": "x"}}, "headers", "cannot be overridden"),
        (WebhookTransport, {"url": URL, "headers": {"X-A": "1\r\n2"}}, "headers", "without CR or LF"),
        (WebhookTransport, {"url": URL, "secret": "short"}, "secret", "at least 16 characters"),
        (WebhookTransport, {"url": URL, "token": "x"}, "token", "expected one of url, headers, secret"),
        (WebhookTransport, ["url", URL], "config", "must be a mapping"),
        (SlackTransport, {"url": "http://localhost/services/x"}, "url", "a name for this machine"),
        (SlackTransport, {"url": URL, "channel": "#ops"}, "channel", "is not a slack setting"),
        (PagerDutyTransport, {}, "routing_key", "is required"),
        (PagerDutyTransport, {"routing_key": KEY[:31]}, "routing_key", "must be 32 letters and digits"),
        (PagerDutyTransport, {"routing_key": KEY[:31] + "-"}, "routing_key", "must be 32 letters and digits"),
        (PagerDutyTransport, {"routing_key": KEY, "url": "http://10.0.0.1/"}, "url", "not a public address"),
        (PagerDutyTransport, {"routing_key": KEY, "source": 5}, "source", "must be a string"),
        (EmailTransport, {}, "to", "is required"),
        (EmailTransport, {"to": []}, "to", "is required"),
        (EmailTransport, {"to": ["ops@example.com", "not-an-address"]}, "to", "'not-an-address' is not a valid"),
        (EmailTransport, {"to": {"a": "b"}}, "to", "must be a list"),
        (EmailTransport, {"to": [f"u{n}@example.com" for n in range(51)]}, "to", "at most 50"),
        (AlertmanagerTransport, {"url": URL, "receiver": 7}, "receiver", "must be a string"),
        (AlertmanagerTransport, {"url": URL, "headers": {"Content-Length": "1"}}, "headers", "cannot be overridden"),
    ],
)
def test_a_bad_config_names_the_field(strict_network, transport, config, field, reason):
    with pytest.raises(ConfigError) as at_save:
        transport.validate(config)
    with pytest.raises(ConfigError) as at_build:
        transport(config)

    assert at_save.value.field == at_build.value.field == field
    assert reason in str(at_save.value)
    assert str(at_save.value).startswith(f"{field}: ")


@pytest.mark.parametrize(
    ("transport", "config"),
    [
        (WebhookTransport, {"url": URL, "headers": {"Authorization": "Bearer x"}, "secret": "0123456789abcdef"}),
        (WebhookTransport, {"url": URL, "headers": None, "secret": ""}),  # empty optional form fields
        (SlackTransport, {"url": "https://hooks.slack.com/services/T0/B0/x"}),
        (PagerDutyTransport, {"routing_key": KEY, "url": "https://events.eu.pagerduty.com/v2/enqueue"}),
        (EmailTransport, {"to": ["ops@example.com"]}),
        (AlertmanagerTransport, {"url": URL}),
    ],
)
def test_a_good_config_is_accepted(strict_network, transport, config):
    transport.validate(config)
    assert transport(config).config["url" if "url" in config else "to"]


def test_every_kind_describes_its_config_for_the_admin_form():
    for kind in NotificationChannel.Kind.values:
        fields = transport_class(kind).config_fields
        assert [field for field in fields if field.required], kind
        assert all(field.help for field in fields), kind


# Registry


def test_every_kind_has_its_transport():
    assert NotificationChannel.Kind.values == list(DEFAULT_TRANSPORTS)
    for kind, label in NotificationChannel.Kind.choices:
        transport = transport_class(kind)
        assert transport.kind == kind
        assert label.startswith(transport.label.split()[0])  # admin's kind names the transport it picks


def test_the_settings_list_the_default_transports(settings):
    assert settings.NOTIFICATION_TRANSPORTS == DEFAULT_TRANSPORTS


def test_an_unknown_kind_is_a_config_error():
    with pytest.raises(ConfigError) as caught:
        transport_class("carrier-pigeon")

    assert caught.value.field == "kind"
    assert "must be one of webhook, slack, pagerduty, email, alertmanager" in str(caught.value)


def test_a_kind_can_be_replaced_by_dotted_path(settings, message):
    settings.NOTIFICATION_TRANSPORTS = {"webhook": f"{__name__}.EchoTransport"}

    transport = transport_for("webhook", {})

    assert isinstance(transport, EchoTransport)
    assert transport.notify(message).response == message.summary
    with pytest.raises(ConfigError):
        transport_class("slack")


@pytest.mark.parametrize(
    "path", ["incidents.alerting.transports.nowhere.Transport", "incidents.alerting.transports.base.Message"]
)
def test_a_wrong_dotted_path_is_improperly_configured(settings, path):
    settings.NOTIFICATION_TRANSPORTS = {"webhook": path}

    with pytest.raises(ImproperlyConfigured, match="NOTIFICATION_TRANSPORTS"):
        transport_class("webhook")
