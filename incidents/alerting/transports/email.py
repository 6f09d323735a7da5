"""Email through Django's configured mail backend: a plain-text message per notification.

The SMTP server is the operator's (EMAIL_* settings), not the channel's, so no address checks apply.
Refusals with a 5xx SMTP code (unknown recipient, sender refused, bad credentials, rejected message)
are permanent; 4xx codes, connection errors and timeouts are transient.
"""

from __future__ import annotations

import smtplib
from typing import Any

from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.core.validators import validate_email

from incidents.alerting.transports.base import ConfigField, Delivery, Message, Transport, TransportError, isoformat
from resilience.exceptions import ConfigError

MAX_RECIPIENTS = 50
MAX_SUBJECT = 200


def _clean_recipients(value: Any) -> list[str]:
    """Return the recipients as a list of unique addresses, raising ConfigError on the first bad one."""
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list | tuple):
        raise ConfigError("to", "must be a list of email addresses")
    addresses = list(dict.fromkeys(str(item).strip() for item in value if str(item).strip()))
    if not addresses:
        raise ConfigError("to", "is required")
    if len(addresses) > MAX_RECIPIENTS:
        raise ConfigError("to", f"must have at most {MAX_RECIPIENTS} addresses")
    for address in addresses:
        try:
            validate_email(address)
        except ValidationError:
            raise ConfigError("to", f"{address!r} is not a valid email address") from None
    return addresses


def subject(message: Message) -> str:
    """Return the one-line subject: event, severity, rule and summary."""
    text = f"[{message.event.upper()}] [{message.severity.upper()}] {message.rule}: {message.summary}"
    # Collapse newlines: a header must stay on one line (Django refuses it otherwise).
    text = " ".join(text.split())
    return text if len(text) <= MAX_SUBJECT else text[: MAX_SUBJECT - 1] + "…"


def body(message: Message) -> str:
    """Return the plain-text body listing everything the message says."""
    lines = [message.summary, "", f"Rule: {message.rule}", f"Severity: {message.severity}", f"Event: {message.event}"]
    if message.value is not None:
        lines.append(f"Value: {message.value:g}")
    if message.threshold is not None:
        lines.append(f"Threshold: {message.threshold:g}")
    lines += [f"{name}: {value}" for name, value in message.labels.items()]
    if message.started_at is not None:
        lines.append(f"Started: {isoformat(message.started_at)}")
    if message.ended_at is not None:
        lines.append(f"Ended: {isoformat(message.ended_at)}")
    if message.runbook:
        lines += ["", "Runbook:", message.runbook]
    if message.url:
        lines += ["", message.url]
    return "\n".join(lines) + "\n"


def _refusal(exc: smtplib.SMTPException) -> TransportError:
    """Return the TransportError an SMTP failure means: 5xx permanent, anything else transient."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _text in exc.recipients.values()]
        refused = ", ".join(sorted(exc.recipients))
        return TransportError(f"recipients refused: {refused} ({codes})", permanent=all(code >= 500 for code in codes))
    if isinstance(exc, smtplib.SMTPResponseException):
        detail = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
        return TransportError(f"SMTP {exc.smtp_code}: {detail}", permanent=exc.smtp_code >= 500)
    return TransportError(f"SMTP failed: {type(exc).__name__}: {exc}", permanent=False)


class EmailTransport(Transport):
    """Email each message to a list of addresses."""

    kind = "email"
    label = "Email"
    config_fields = (
        ConfigField("to", True, f"Recipient addresses: a list, or comma-separated; at most {MAX_RECIPIENTS}."),
    )

    @classmethod
    def clean_fields(cls, config: dict[str, Any]) -> dict[str, Any]:
        """Check the recipients."""
        config["to"] = _clean_recipients(config["to"])
        return config

    def notify(self, message: Message) -> Delivery:
        """Send the email once through the configured backend."""
        email = EmailMessage(subject=subject(message), body=body(message), to=self.config["to"])
        try:
            sent = email.send(fail_silently=False)
        except smtplib.SMTPException as exc:
            raise _refusal(exc) from exc
        except OSError as exc:
            # Connection refused, reset or timed out: the mail server may be back soon.
            reason = f"could not reach the mail server: {type(exc).__name__}: {exc}"
            raise TransportError(reason, permanent=False) from exc
        if not sent:
            raise TransportError("the mail backend sent nothing", permanent=False)
        return Delivery(status_code=None, response=f"accepted for {len(self.config['to'])} recipient(s)")
