"""Connection limits against real servers over real sockets: slow headers and bodies are cut off,
and one client cannot hold more than LIVE_MAX_SOCKETS_PER_CLIENT live websockets."""

import asyncio
import contextlib
import socket

import pytest
import websockets
from django.test import Client

from access.services import api_token_create
from config.servers import REQUEST_TIMEOUT
from tests.api_support import user_with_role
from tests.e2e.captured_server import granian, uvicorn

pytestmark = [pytest.mark.django_db(transaction=True, serialized_rollback=True), pytest.mark.live]

# The header read timeout of the README's production recipe, here 1 s instead of 10 s.
GRANIAN_TIMEOUTS = ["--http1-header-read-timeout", "1000"]
# Far longer than the servers' deadlines below: how long a test waits before calling a socket stuck.
STUCK_SECONDS = 20


@contextlib.contextmanager
def web_server(kind: str, django_db_blocker):
    if kind == "uvicorn":
        deadlines = {"HTTP_HEADER_TIMEOUT_SECONDS": "1", "HTTP_BODY_TIMEOUT_SECONDS": "1"}
        with uvicorn(django_db_blocker, **deadlines) as (port, log):
            yield port, log
    else:
        with granian(django_db_blocker, *GRANIAN_TIMEOUTS) as (port, log):
            yield port, log


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
        received += sock.recv(4096)
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


@pytest.mark.parametrize("kind", ["uvicorn", "granian"])
def test_sockets_that_never_finish_their_request_headers_are_closed(django_db_blocker, kind):
    with web_server(kind, django_db_blocker) as (port, _log):
        answers = slow_sockets(port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # slowloris
    assert {*answers} <= {b"", REQUEST_TIMEOUT}


def test_sockets_that_never_send_a_byte_are_closed_under_uvicorn(django_db_blocker):
    # granian's header timeout starts at a request's first byte: idle sockets are a proxy's to limit there.
    with web_server("uvicorn", django_db_blocker) as (port, _log):
        answers = slow_sockets(port, b"")
    assert {*answers} <= {b"", REQUEST_TIMEOUT}


def test_a_body_that_never_completes_is_cut_off_under_uvicorn(django_db_blocker):
    with (
        web_server("uvicorn", django_db_blocker) as (port, _log),
        socket.create_connection(("127.0.0.1", port)) as sock,
    ):
        sock.sendall(
            b"POST /api/v1/events/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100000\r\n\r\n{"message": '
        )
        closed_by_the_server(sock)


def test_a_kept_alive_connection_is_served_and_closed_when_its_next_request_stalls(django_db_blocker):
    with (
        web_server("uvicorn", django_db_blocker) as (port, _log),
        socket.create_connection(("127.0.0.1", port)) as sock,
    ):
        sock.settimeout(STUCK_SECONDS)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert whole_response(sock).startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        assert closed_by_the_server(sock) in (b"", REQUEST_TIMEOUT)


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

    with uvicorn(django_db_blocker, LIVE_MAX_SOCKETS_PER_CLIENT="5") as (port, log):
        asyncio.run(scenario(port))
    assert "Traceback" not in log.text and "ERROR" not in log.text
