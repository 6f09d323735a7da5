"""Slack incoming webhooks: a one-line text plus an attachment coloured by severity, with fields.

Slack answers 200 "ok"; other statuses (400 invalid_payload, 403, 404 channel_not_found, 410
channel_is_archived) are permanent, 429 and 5xx transient with Retry-After, as for every HTTP kind.
"""

from __future__ import annotations

from typing import Any

from incidents.alerting.transports.base import ConfigField, Delivery, Message, Transport, isoformat
from incidents.alerting.transports.http import check_url, post_json

COLORS = {
    "critical": "#b91c1c",
    "high": "#ea580c",
    "medium": "#d97706",
    "low": "#2563eb",
    "info": "#6b7280",
}
RESOLVED_COLOR = "#16a34a"
MAX_TEXT = 3000
MAX_LABEL_FIELDS = 20


def escape(text: str) -> str:
    """Return text with Slack's control characters escaped, so that `<!channel>` or `<url|x>` stay literal."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def headline(message: Message) -> str:
    """Return the one-line text: event, severity, rule and summary."""
    return f"[{message.event.upper()}] [{message.severity.upper()}] {message.rule}: {message.summary}"


def _field(title: str, value: str, *, short: bool = True) -> dict[str, Any]:
    return {"title": escape(title), "value": escape(_clip(value, 500)), "short": short}


def _fields(message: Message) -> list[dict[str, Any]]:
    fields = [_field("Severity", message.severity)]
    if message.value is not None:
        fields.append(_field("Value", f"{message.value:g}"))
    if message.threshold is not None:
        fields.append(_field("Threshold", f"{message.threshold:g}"))
    for name, value in list(message.labels.items())[:MAX_LABEL_FIELDS]:
        fields.append(_field(str(name), str(value)))
    if message.started_at is not None:
        fields.append(_field("Started", isoformat(message.started_at)))
    if message.ended_at is not None:
        fields.append(_field("Ended", isoformat(message.ended_at)))
    if message.runbook:
        fields.append(_field("Runbook", message.runbook, short=False))
    return fields


class SlackTransport(Transport):
    """Post each message to a Slack incoming webhook."""

    kind = "slack"
    label = "Slack"
    config_fields = (
        ConfigField("url", True, "Incoming webhook URL, https://hooks.slack.com/services/...", secret=True),
    )

    @classmethod
    def clean_fields(cls, config: dict[str, Any]) -> dict[str, Any]:
        """Check the webhook URL."""
        config["url"] = check_url(config["url"])
        return config

    def payload(self, message: Message) -> dict[str, Any]:
        """Return the Slack body for a message."""
        text = escape(_clip(headline(message), MAX_TEXT))
        color = RESOLVED_COLOR if message.event == "resolved" else COLORS[message.severity]
        attachment: dict[str, Any] = {
            "fallback": text,
            "color": color,
            "title": escape(_clip(message.rule, 200)),
            "text": escape(_clip(message.summary, MAX_TEXT)),
            "fields": _fields(message),
            "footer": "incident console",
        }
        if message.url:
            attachment["title_link"] = message.url
        if message.started_at is not None:
            attachment["ts"] = int(message.started_at.timestamp())
        return {"text": text, "attachments": [attachment]}

    def notify(self, message: Message) -> Delivery:
        """Post the message once."""
        return post_json(self.config["url"], self.payload(message))
