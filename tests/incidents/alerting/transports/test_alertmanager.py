"""The Alertmanager-compatible webhook body, as Alertmanager's webhook_config receivers expect it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from incidents.alerting.transports.alertmanager import AlertmanagerTransport, label_name


def test_a_firing_alert_has_alertmanagers_shape(receiver, allow_loopback, settings, message):
    settings.CONSOLE_URL = "https://console.example.com"

    AlertmanagerTransport({"url": receiver.url("/alerts"), "receiver": "payments-oncall"}).notify(message)

    group_labels = {"source": "checkout", "error_type": "NETWORK_TIMEOUT", "alertname": "Checkout timeouts"}
    labels = group_labels | {"severity": "critical"}
    annotations = {
        "summary": "42 timeouts in 5 minutes (threshold 10)",
        "event": "firing",
        "runbook_url": "https://runbooks.example.com/checkout-timeouts",
        "value": "42",
        "threshold": "10",
    }
    assert receiver.last.json() == {
        "version": "4",
        "groupKey": '{}:{alertname="Checkout timeouts", error_type="NETWORK_TIMEOUT", source="checkout"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "payments-oncall",
        "groupLabels": group_labels,
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": "https://console.example.com",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": annotations,
                "startsAt": "2025-03-01T12:00:05Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "https://console.example.com/alerts/7/",
                "fingerprint": message.dedup_key,
            }
        ],
    }


def test_a_resolved_alert_ends_when_it_ended(receiver, allow_loopback, message):
    ended_at = datetime(2025, 3, 1, 12, 30, tzinfo=UTC)

    AlertmanagerTransport({"url": receiver.url()}).notify(replace(message, event="resolved", ended_at=ended_at))

    body = receiver.last.json()
    assert body["status"] == "resolved"
    assert body["receiver"] == "incident-console"
    assert (body["alerts"][0]["status"], body["alerts"][0]["endsAt"]) == ("resolved", "2025-03-01T12:30:00Z")
    assert body["alerts"][0]["fingerprint"] == message.dedup_key


def test_an_acknowledged_alert_is_still_firing(receiver, allow_loopback, message):
    AlertmanagerTransport({"url": receiver.url()}).notify(replace(message, event="acknowledged"))

    body = receiver.last.json()
    assert (body["status"], body["alerts"][0]["endsAt"]) == ("firing", "0001-01-01T00:00:00Z")
    assert body["commonAnnotations"]["event"] == "acknowledged"


def test_a_text_runbook_is_not_called_a_url(receiver, allow_loopback, message):
    AlertmanagerTransport({"url": receiver.url()}).notify(replace(message, runbook="Restart the checkout workers."))

    annotations = receiver.last.json()["alerts"][0]["annotations"]
    assert annotations["runbook"] == "Restart the checkout workers."
    assert "runbook_url" not in annotations


def test_label_names_are_made_valid_for_prometheus():
    assert [label_name(name) for name in ["error_type", "error-type", "1st", "a.b", ""]] == [
        "error_type",
        "error_type",
        "_1st",
        "a_b",
        "_",
    ]
