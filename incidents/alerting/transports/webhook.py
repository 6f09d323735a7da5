"""A generic JSON webhook: every message field, plus `"version": 1`, POSTed to a URL.

With a `secret`, each request carries `X-Console-Timestamp` (Unix seconds) and
`X-Console-Signature: sha256=<hex>`, the HMAC-SHA256 with the secret of `<timestamp>.<body>`. The
timestamp is signed with the body so that a receiver which refuses stale timestamps also refuses
replays. A receiver verifies with:

    expected = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    hmac.compare_digest(f"sha256={expected}", signature)
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

from incidents.alerting.transports.base import ConfigField, Delivery, Message, Transport
from incidents.alerting.transports.http import check_headers, check_url, encode_json, post
from resilience.exceptions import ConfigError

PAYLOAD_VERSION = 1
MIN_SECRET_LENGTH = 16
SIGNATURE_HEADER = "X-Console-Signature"
TIMESTAMP_HEADER = "X-Console-Timestamp"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Return the signature header value for a body sent at a timestamp."""
    digest = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


class WebhookTransport(Transport):
    """POST each message as JSON to a URL, optionally signed."""

    kind = "webhook"
    label = "Webhook"
    config_fields = (
        ConfigField("url", True, "http(s) URL that receives a JSON POST for each notification."),
        ConfigField("headers", False, 'Extra request headers, e.g. {"Authorization": "Bearer ..."}.', secret=True),
        ConfigField(
            "secret",
            False,
            f"At least {MIN_SECRET_LENGTH} characters; signs each body as {SIGNATURE_HEADER}: sha256=HMAC(ts.body).",
            secret=True,
        ),
    )

    @classmethod
    def clean_fields(cls, config: dict[str, Any]) -> dict[str, Any]:
        """Check the URL, the extra headers and the secret."""
        config["url"] = check_url(config["url"])
        if "headers" in config:
            config["headers"] = check_headers(config["headers"])
        if "secret" in config:
            secret = config["secret"]
            if not isinstance(secret, str) or len(secret) < MIN_SECRET_LENGTH:
                raise ConfigError("secret", f"must be a string of at least {MIN_SECRET_LENGTH} characters")
        return config

    def payload(self, message: Message) -> dict[str, Any]:
        """Return the JSON body for a message."""
        return {"version": PAYLOAD_VERSION, **message.as_dict()}

    def notify(self, message: Message) -> Delivery:
        """POST the message once."""
        body = encode_json(self.payload(message))
        headers = dict(self.config.get("headers", {}))
        if "secret" in self.config:
            timestamp = str(int(time.time()))
            headers[TIMESTAMP_HEADER] = timestamp
            headers[SIGNATURE_HEADER] = sign(self.config["secret"], timestamp, body)
        return post(self.config["url"], body, headers=headers)
