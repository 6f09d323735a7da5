"""Email through Django's mail backends: the locmem outbox, and a real SMTP conversation on loopback."""

from __future__ import annotations

import socket
from dataclasses import replace

import pytest

from incidents.alerting.transports import TransportError
from incidents.alerting.transports.email import EmailTransport

RECIPIENTS = ["oncall@example.com", "payments@example.com"]


def test_it_emails_the_recipients_a_plain_text_message(mailoutbox, message, settings):
    settings.DEFAULT_FROM_EMAIL = "console@example.com"

    delivery = EmailTransport({"to": RECIPIENTS}).notify(message)

    (sent,) = mailoutbox
    assert sent.subject == "[FIRING] [CRITICAL] Checkout timeouts: 42 timeouts in 5 minutes (threshold 10)"
    assert sent.to == RECIPIENTS
    assert sent.from_email == "console@example.com"
    assert sent.content_subtype == "plain"
    for line in [
        "42 timeouts in 5 minutes (threshold 10)",
        "Rule: Checkout timeouts",
        "Severity: critical",
        "Value: 42",
        "Threshold: 10",
        "source: checkout",
        "Started: 2025-03-01T12:00:05Z",
        "https://runbooks.example.com/checkout-timeouts",
        "https://console.example.com/alerts/7/",
    ]:
        assert line in sent.body.splitlines()
    assert delivery.status_code is None
    assert delivery.response == "accepted for 2 recipient(s)"


def test_a_resolved_alert_says_so_in_the_subject(mailoutbox, message):
    EmailTransport({"to": RECIPIENTS}).notify(replace(message, event="resolved", severity="high"))

    assert mailoutbox[0].subject.startswith("[RESOLVED] [HIGH] Checkout timeouts: ")


def test_a_multi_line_summary_makes_a_one_line_subject(mailoutbox, message):
    EmailTransport({"to": RECIPIENTS}).notify(replace(message, summary="first line\nsecond\r\nthird " + "y" * 300))

    subject = mailoutbox[0].subject
    assert subject.startswith("[FIRING] [CRITICAL] Checkout timeouts: first line second third yyy")
    assert len(subject) == 200
    assert "\n" not in subject


def test_comma_separated_recipients_are_accepted():
    assert EmailTransport({"to": "a@example.com, b@example.com,a@example.com"}).config["to"] == [
        "a@example.com",
        "b@example.com",
    ]


def test_it_talks_smtp_to_the_configured_server(smtp_server, message):
    delivery = EmailTransport({"to": RECIPIENTS}).notify(message)

    (raw,) = smtp_server.messages
    assert b"Subject: [FIRING] [CRITICAL] Checkout timeouts" in raw
    assert delivery.status_code is None


def test_a_recipient_refused_for_good_is_permanent(smtp_server, message):
    smtp_server.rcpt_reply = "550 5.1.1 no such user"

    with pytest.raises(TransportError) as caught:
        EmailTransport({"to": ["ghost@example.com"]}).notify(message)

    assert caught.value.permanent is True
    assert "ghost@example.com" in str(caught.value)
    assert smtp_server.messages == []


def test_a_recipient_refused_for_now_is_transient(smtp_server, message):
    smtp_server.rcpt_reply = "451 4.7.1 greylisted, try later"

    with pytest.raises(TransportError) as caught:
        EmailTransport({"to": ["someone@example.com"]}).notify(message)

    assert caught.value.permanent is False


def test_an_unreachable_mail_server_is_transient(settings, message):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound but not listening: connecting is refused
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", closed.getsockname()[1]
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        with pytest.raises(TransportError) as caught:
            EmailTransport({"to": RECIPIENTS}).notify(message)

    assert caught.value.permanent is False
    assert "ConnectionRefusedError" in str(caught.value)
