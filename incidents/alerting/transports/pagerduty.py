"""PagerDuty Events API v2: trigger, acknowledge and resolve one PagerDuty alert per console alert.

All three actions share the message's dedup_key, so PagerDuty folds them into one incident; a "test"
message triggers. Only a trigger carries `payload`, `links`, `client` and `client_url`: PagerDuty reads
them on triggers only. PagerDuty answers 202 when it accepts an event.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from incidents.alerting.transports.base import ConfigField, Delivery, Message, Transport, isoformat
from incidents.alerting.transports.http import check_url, post_json
from resilience.exceptions import ConfigError

DEFAULT_URL = "https://events.pagerduty.com/v2/enqueue"
ROUTING_KEY_LENGTH = 32
MAX_SUMMARY = 1024
MAX_DEDUP_KEY = 255
MAX_SOURCE = 255
ACTIONS = {"firing": "trigger", "test": "trigger", "acknowledged": "acknowledge", "resolved": "resolve"}
# PagerDuty has four levels; "low" is below "warning" (which "medium" takes), so it becomes "info".
SEVERITIES = {"critical": "critical", "high": "error", "medium": "warning", "low": "info", "info": "info"}


def dedup_key(message: Message) -> str:
    """Return the message's dedup key, hashed when it is longer than PagerDuty's 255 characters."""
    if len(message.dedup_key) <= MAX_DEDUP_KEY:
        return message.dedup_key
    return hashlib.sha256(message.dedup_key.encode("utf-8")).hexdigest()


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _links(message: Message) -> list[dict[str, str]]:
    links = []
    if message.url:
        links.append({"href": message.url, "text": "Open in the incident console"})
    if message.runbook.startswith(("https://", "http://")):
        links.append({"href": message.runbook, "text": "Runbook"})
    return links


class PagerDutyTransport(Transport):
    """Send each message as a PagerDuty Events API v2 event."""

    kind = "pagerduty"
    label = "PagerDuty"
    config_fields = (
        ConfigField(
            "routing_key", True, f"The {ROUTING_KEY_LENGTH}-character key of an Events API v2 integration.", secret=True
        ),
        ConfigField("url", False, f"Events API endpoint; defaults to {DEFAULT_URL} (EU: events.eu.pagerduty.com)."),
        ConfigField("source", False, "The payload's source; defaults to the source label, else incident-console."),
    )

    @classmethod
    def clean_fields(cls, config: dict[str, Any]) -> dict[str, Any]:
        """Check the routing key, the endpoint and the source."""
        key = config["routing_key"]
        if not isinstance(key, str) or len(key) != ROUTING_KEY_LENGTH or not key.isascii() or not key.isalnum():
            raise ConfigError("routing_key", f"must be {ROUTING_KEY_LENGTH} letters and digits")
        config["url"] = check_url(config.get("url", DEFAULT_URL))
        source = config.get("source")
        if source is not None and (not isinstance(source, str) or len(source) > MAX_SOURCE):
            raise ConfigError("source", f"must be a string of at most {MAX_SOURCE} characters")
        return config

    def _source(self, message: Message) -> str:
        return self.config.get("source") or message.labels.get("source") or "incident-console"

    def _payload(self, message: Message) -> dict[str, Any]:
        details = {key: value for key, value in message.as_dict().items() if key not in ("event", "dedup_key", "url")}
        return {
            "summary": _clip(f"{message.rule}: {message.summary}", MAX_SUMMARY),
            "source": _clip(self._source(message), MAX_SOURCE),
            "severity": SEVERITIES[message.severity],
            "timestamp": isoformat(message.started_at or datetime.now(UTC)),
            "component": message.labels.get("error_type") or None,
            "class": message.rule or None,
            "custom_details": details,
        }

    def event(self, message: Message) -> dict[str, Any]:
        """Return the Events API v2 body for a message."""
        action = ACTIONS[message.event]
        body: dict[str, Any] = {
            "routing_key": self.config["routing_key"],
            "event_action": action,
            "dedup_key": dedup_key(message),
        }
        if action == "trigger":
            payload = {key: value for key, value in self._payload(message).items() if value is not None}
            body |= {"payload": payload, "client": "incident console", "links": _links(message)}
            if message.url:
                body["client_url"] = message.url
        return body

    def notify(self, message: Message) -> Delivery:
        """Send the event once."""
        return post_json(self.config["url"], self.event(message))
