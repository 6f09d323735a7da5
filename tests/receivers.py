"""A real HTTP receiver on loopback that records requests: webhook targets in tests."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Handlers wait at most this long on a test's Event, so a failing test cannot leave a thread behind for good.
HOLD_LIMIT = 30


@dataclass
class Request:
    """One request a receiver got."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


@dataclass
class Reply:
    """What a receiver answers: a status, headers and body, optionally held until an Event is set."""

    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    hold: threading.Event | None = None
    stream_until: threading.Event | None = None  # send an endless body until this is set


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.receiver.record(Request("POST", self.path, headers, body))
        reply = self.server.receiver.reply
        if reply.hold is not None:
            reply.hold.wait(HOLD_LIMIT)
        if reply.stream_until is not None:
            return self._stream(reply.stream_until)
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def _stream(self, stop: threading.Event) -> None:
        self.send_response(200)
        self.send_header("Connection", "close")
        self.end_headers()
        chunk = b"x" * 16384
        try:
            while not stop.is_set():
                self.wfile.write(chunk)
        except OSError:
            pass  # the client stopped reading and closed: what the test wants

    def log_message(self, format, *args):
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: Receiver


class _Server6(_Server):
    address_family = socket.AF_INET6


class Receiver:
    """An HTTP server on a loopback port that records requests and answers with `reply`."""

    def __init__(self, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> None:
        server_class = _Server6 if ":" in host else _Server
        self.server = server_class((host, 0), _Handler)
        self.server.receiver = self
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.host, self.port = host, self.server.server_address[1]
        self.scheme = "https" if tls else "http"
        self.requests: list[Request] = []
        self.reply = Reply()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def url(self, path: str = "/hook", host: str | None = None) -> str:
        host = host or (f"[{self.host}]" if ":" in self.host else self.host)
        return f"{self.scheme}://{host}:{self.port}{path}"

    def record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    @property
    def last(self) -> Request:
        assert self.requests, "the receiver got no request"
        return self.requests[-1]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
