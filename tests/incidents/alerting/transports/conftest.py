"""Real HTTP and SMTP receivers on loopback that record what the transports send them."""

from __future__ import annotations

import shutil
import socketserver
import ssl
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from incidents.alerting.transports import Message
from tests.receivers import Receiver


@pytest.fixture
def allow_loopback(settings):
    """Let transports reach loopback receivers, as an operator would allow an internal network."""
    settings.NOTIFICATION_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128"]
    settings.NOTIFICATION_ALLOWED_HOSTS = []
    settings.NOTIFICATION_TIMEOUT_SECONDS = 5


@pytest.fixture
def strict_network(settings):
    """Allow nothing private: the production default."""
    settings.NOTIFICATION_ALLOWED_NETWORKS = []
    settings.NOTIFICATION_ALLOWED_HOSTS = []


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """An Event a test's receiver waits on; set at teardown so no handler thread outlives the test."""
    event = threading.Event()
    yield event
    event.set()


@pytest.fixture
def message() -> Message:
    return Message(
        event="firing",
        dedup_key="rule-7:source=checkout,error_type=NETWORK_TIMEOUT",
        rule="Checkout timeouts",
        severity="critical",
        summary="42 timeouts in 5 minutes (threshold 10)",
        runbook="https://runbooks.example.com/checkout-timeouts",
        value=42.0,
        threshold=10.0,
        labels={"source": "checkout", "error_type": "NETWORK_TIMEOUT"},
        started_at=datetime(2025, 3, 1, 12, 0, 5, tzinfo=UTC),
        url="https://console.example.com/alerts/7/",
    )


# TLS


@pytest.fixture(scope="session")
def certificate(tmp_path_factory) -> tuple[str, str]:
    """A self-signed certificate for the name localhost only, and its key."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = str(folder / "cert.pem"), str(folder / "key.pem")
    command = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost"
    subprocess.run(
        [*command.split(), "-keyout", key, "-out", cert, "-addext", "subjectAltName=DNS:localhost"],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def tls_receiver(receivers, certificate) -> Receiver:
    """An HTTPS receiver on 127.0.0.1 with a certificate for localhost, recording the SNI names it is sent."""
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server_names: list[str | None] = []
    context.sni_callback = lambda _sock, name, _context: server_names.append(name)
    started = Receiver(tls=context)
    started.server_names = server_names
    receivers.append(started)
    return started


# SMTP


class _SmtpHandler(socketserver.StreamRequestHandler):
    server: _SmtpServer

    def _say(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self):
        self._say("220 test smtp ready")
        while line := self.rfile.readline():
            verb = line.decode().strip().split(" ", 1)[0].split(":", 1)[0].upper()
            if verb == "QUIT":
                return self._say("221 bye")
            if verb == "RCPT":
                self._say(self.server.rcpt_reply)
            elif verb == "DATA":
                self._say("354 go ahead")
                self.server.messages.append(self._read_data())
                self._say("250 queued")
            else:
                self._say("250 ok")

    def _read_data(self) -> bytes:
        lines = []
        while (line := self.rfile.readline()) not in (b".\r\n", b""):
            lines.append(line)
        return b"".join(lines)


class _SmtpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def smtp_server(settings) -> Iterator[_SmtpServer]:
    """An SMTP server on loopback that Django's SMTP backend talks to; `rcpt_reply` sets its RCPT answer."""
    server = _SmtpServer(("127.0.0.1", 0), _SmtpHandler)
    server.rcpt_reply = "250 ok"
    server.messages = []
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.server_address[1]
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 5
    yield server
    server.shutdown()
    server.server_close()
