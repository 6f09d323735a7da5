"""An Alertmanager-compatible webhook: the body Alertmanager's webhook_config receivers get (version "4").

Each message is one group holding one alert. The group labels are the message's labels plus
`alertname`; the alert's labels add `severity`. Alertmanager knows only firing and resolved, so
"acknowledged" and "test" go out as firing, with the console's event in the `event` annotation. The
fingerprint is the message's dedup_key, so a receiver can match a resolve to its firing.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from incidents.alerting.transports.base import ConfigField, Delivery, Message, Transport, finite, isoformat
from incidents.alerting.transports.http import check_headers, check_url, post_json
from resilience.exceptions import ConfigError

VERSION = "4"
ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time: Alertmanager's endsAt for an alert still firing
DEFAULT_RECEIVER = "incident-console"
MAX_RECEIVER = 200
_INVALID_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")


def label_name(name: str) -> str:
    """Return the name made a valid Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)."""
    name = _INVALID_LABEL_CHARS.sub("_", str(name)) or "_"
    return f"_{name}" if name[0].isdigit() else name


def group_key(group_labels: dict[str, str]) -> str:
    """Return a group key in Alertmanager's form, `{}:{name="value", ...}` with names sorted."""
    pairs = ", ".join(f"{name}={json.dumps(value, ensure_ascii=False)}" for name, value in sorted(group_labels.items()))
    return f"{{}}:{{{pairs}}}"


def _annotations(message: Message) -> dict[str, str]:
    annotations = {"summary": message.summary, "event": message.event}
    if message.runbook:
        is_url = message.runbook.startswith(("https://", "http://"))
        annotations["runbook_url" if is_url else "runbook"] = message.runbook
    if finite(message.value) is not None:
        annotations["value"] = f"{message.value:g}"
    if finite(message.threshold) is not None:
        annotations["threshold"] = f"{message.threshold:g}"
    return annotations


class AlertmanagerTransport(Transport):
    """POST each message to a receiver written for Alertmanager's webhook."""

    kind = "alertmanager"
    label = "Alertmanager webhook"
    config_fields = (
        ConfigField("url", True, "http(s) URL of a receiver that understands Alertmanager's webhook body."),
        ConfigField("receiver", False, f"The body's receiver name; defaults to {DEFAULT_RECEIVER}."),
        ConfigField("headers", False, 'Extra request headers, e.g. {"Authorization": "Bearer ..."}.', secret=True),
    )

    @classmethod
    def clean_fields(cls, config: dict[str, Any]) -> dict[str, Any]:
        """Check the URL, the receiver name and the extra headers."""
        config["url"] = check_url(config["url"])
        receiver = config.get("receiver", DEFAULT_RECEIVER)
        if not isinstance(receiver, str) or len(receiver) > MAX_RECEIVER:
            raise ConfigError("receiver", f"must be a string of at most {MAX_RECEIVER} characters")
        config["receiver"] = receiver
        if "headers" in config:
            config["headers"] = check_headers(config["headers"])
        return config

    def _alert(self, message: Message, status: str, labels: dict[str, str]) -> dict[str, Any]:
        now = datetime.now(UTC)
        ends_at = isoformat(message.ended_at or now) if status == "resolved" else ZERO_TIME
        return {
            "status": status,
            "labels": labels,
            "annotations": _annotations(message),
            "startsAt": isoformat(message.started_at or now),
            "endsAt": ends_at,
            "generatorURL": message.url,
            "fingerprint": message.dedup_key,
        }

    def payload(self, message: Message) -> dict[str, Any]:
        """Return the Alertmanager webhook body for a message."""
        status = "resolved" if message.event == "resolved" else "firing"
        group_labels = {label_name(name): str(value) for name, value in message.labels.items()}
        group_labels["alertname"] = message.rule
        labels = group_labels | {"severity": message.severity}
        alert = self._alert(message, status, labels)
        return {
            "version": VERSION,
            "groupKey": group_key(group_labels),
            "truncatedAlerts": 0,
            "status": status,
            "receiver": self.config["receiver"],
            "groupLabels": group_labels,
            "commonLabels": labels,
            "commonAnnotations": alert["annotations"],
            "externalURL": getattr(settings, "CONSOLE_URL", ""),
            "alerts": [alert],
        }

    def notify(self, message: Message) -> Delivery:
        """POST the group once."""
        return post_json(self.config["url"], self.payload(message), headers=self.config.get("headers"))
