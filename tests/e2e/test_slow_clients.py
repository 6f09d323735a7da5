"""Connection limits against the real web server over real sockets: slow headers and bodies are cut
off, and one client cannot hold more than LIVE_MAX_SOCKETS_PER_CLIENT live websockets.

The server is granian's ASGI interface on config.asgi. Request headers are granian's to bound
(--http1-header-read-timeout, from HTTP_HEADER_TIMEOUT_SECONDS): it closes the connection without
an answer. Bodies are the ASGI middleware's (incidents/ingest/asgi.py), which reads every HTTP
body: one not complete within HTTP_BODY_TIMEOUT_SECONDS is answered 408 and the connection closed.
A connection that never sends a byte is not bounded by granian (its header timeout starts with a
request's first byte, or with the end of the previous response): that is a proxy's to limit.
"""

import asyncio
import json
import socket
import time

import pytest
import websockets
from django.test import Client

from access.services import api_token_create
from incidents import services
from tests.api_support import user_with_role
from tests.e2e.captured_server import web_server

pytestmark = [pytest.mark.django_db(transaction=True, serialized_rollback=True), pytest.mark.live]

# The servers' deadlines here: 1 s instead of the default 10 s (headers) and 30 s (bodies).
DEADLINES = {"HTTP_HEADER_TIMEOUT_SECONDS": "1", "HTTP_BODY_TIMEOUT_SECONDS": "1"}
# Far longer than those deadlines: how long a test waits before calling a socket stuck.
STUCK_SECONDS = 20


@pytest.fixture(scope="module")
def port(django_db_setup, django_db_blocker):
    """The web server with those deadlines, for the module's tests that need no other setting."""
    with web_server(django_db_blocker, **DEADLINES) as (port, _log):
        yield port


def closed_by_the_server(sock: socket.socket) -> bytes:
    """Read until the server closes the connection; return what it sent (a 408, say)."""
    sock.settimeout(STUCK_SECONDS)
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        raise AssertionError(f"the server kept a slow client's socket open for {STUCK_SECONDS}s") from None
    return received


def whole_response(sock: socket.socket) -> bytes:
    """Read one response: its head, then as many body bytes as its Content-Length says (they may come apart)."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(4096)
        assert chunk, f"the connection closed without a whole answer: {received!r}"
        received += chunk
    head, body = received.split(b"\r\n\r\n", 1)
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(4096)
    return head + b"\r\n\r\n" + body


def slow_sockets(port: int, request_start: bytes) -> list[bytes]:
    """Open 40 sockets that send `request_start` and then nothing; return what each got before it was closed."""
    sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(40)]
    try:
        for sock in sockets:
            sock.sendall(request_start)
        return [closed_by_the_server(sock) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def test_sockets_that_never_finish_their_request_headers_are_closed_without_an_answer(port):
    answers = slow_sockets(port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # slowloris
    assert answers == [b""] * 40


@pytest.fixture
def ingest_key():
    source, key = services.source_create(name="Slow uploads")
    return source.pk, key.public_key


def _unfinished_requests(source_id: int, public_key: str) -> dict[str, bytes]:
    """Requests whose body starts and never ends: ingest (authenticated, so the body is what is waited
    for) and a form post, each with a declared length and chunked."""
    envelope = f"POST /api/{source_id}/envelope/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    envelope += f"X-Sentry-Auth: Sentry sentry_key={public_key}, sentry_version=7\r\n"
    native = "POST /api/v1/events/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    native += f"Authorization: Bearer {public_key}\r\n"
    form = "POST /admin/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    length, chunked = "Content-Length: 100000\r\n\r\n", "Transfer-Encoding: chunked\r\n\r\n"
    return {
        "envelope": (envelope + length).encode() + b'{"event_id"',
        "envelope-chunked": (envelope + chunked).encode() + b'b\r\n{"event_id"\r\n',
        "native": (native + length).encode() + b'{"message": ',
        "native-chunked": (native + chunked).encode() + b'c\r\n{"message": \r\n',
        "form": (form + length).encode() + b"username=",
        "form-chunked": (form + chunked).encode() + b"9\r\nusername=\r\n",
    }


@pytest.mark.parametrize("kind", ["envelope", "envelope-chunked", "native", "native-chunked", "form", "form-chunked"])
def test_a_body_that_never_completes_is_answered_408_and_its_connection_closed(port, ingest_key, kind):
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(STUCK_SECONDS)
        started = time.monotonic()
        sock.sendall(_unfinished_requests(*ingest_key)[kind])
        response = whole_response(sock)
        waited = time.monotonic() - started
        rest = closed_by_the_server(sock)
    head, body = response.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 408"), response
    assert b"connection: close" in head.lower()
    assert json.loads(body) == {"error": "the body was not complete within 1 s", "field": "body"}
    assert rest == b""
    assert 1 <= waited < STUCK_SECONDS


@pytest.mark.parametrize(
    "next_request", [b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n", b""], ids=["stalls", "never-comes"]
)
def test_a_kept_alive_connection_is_served_and_closed_when_its_next_request_stalls(port, next_request):
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(STUCK_SECONDS)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert whole_response(sock).startswith(b"HTTP/1.1 200")
        sock.sendall(next_request)
        assert closed_by_the_server(sock) == b""


async def open_sockets(port: int, count: int, **headers) -> tuple[list, list[int]]:
    """Open `count` live sockets at once; return those the server kept and the close codes of the others."""
    url = f"ws://127.0.0.1:{port}/ws/live/"

    async def one():
        ws = await websockets.connect(url, origin=f"http://127.0.0.1:{port}", additional_headers=headers)
        try:
            await ws.send('{"type": "subscribe", "topics": ["incident"]}')
            await asyncio.wait_for(ws.recv(), 10)
            return ws
        except websockets.ConnectionClosed as closed:
            return closed.rcvd

    outcomes = await asyncio.gather(*(one() for _ in range(count)))
    kept = [ws for ws in outcomes if not isinstance(ws, websockets.frames.Close)]
    return kept, [close.code for close in outcomes if isinstance(close, websockets.frames.Close)]


def test_one_token_or_one_users_sessions_cannot_hold_more_live_sockets_than_the_cap(
    django_db_blocker, django_user_model
):
    viewer = user_with_role(django_user_model, "viewer")
    token = api_token_create(user=viewer, name="many")[1]
    other_token = api_token_create(user=viewer, name="another program")[1]
    browser = Client()
    browser.force_login(viewer)
    session = {"Cookie": f"sessionid={browser.cookies['sessionid'].value}"}

    async def scenario(port):
        kept, refused = await open_sockets(port, 8, Authorization=f"Bearer {token}")
        assert (len(kept), refused) == (5, [4429] * 3)
        others, refused_others = await open_sockets(port, 2, Authorization=f"Bearer {other_token}")
        assert (len(others), refused_others) == (2, [])  # each token has a cap of its own
        sessions, refused_sessions = await open_sockets(port, 6, **session)
        assert (len(sessions), refused_sessions) == (5, [4429])
        await kept.pop().close()
        again, refused_again = await open_sockets(port, 2, Authorization=f"Bearer {token}")
        assert (len(again), refused_again) == (1, [4429])  # a closed socket frees its place
        for ws in kept + others + sessions + again:
            await ws.close()

    with web_server(django_db_blocker, LIVE_MAX_SOCKETS_PER_CLIENT="5") as (port, log):
        asyncio.run(scenario(port))
    assert "Traceback" not in log.text and "ERROR" not in log.text
