"""Request bodies against the real web server: keys and limits are checked while the body arrives, not after.

The server is the console's one, granian's ASGI interface on config.asgi, where the ASGI middleware
(incidents/ingest/asgi.py) reads every body, chunked ones too, as granian hands it over.
A client declares (or streams) a body far bigger than the limit and writes until the server stops it;
the server must answer, and stop taking bytes, long before the client has sent it all.
"""

import json
import socket
import uuid
from dataclasses import dataclass

import pytest

from incidents import services
from incidents.models import ErrorEvent
from tests.e2e.captured_server import free_port, process_environment, start_web
from tests.support import envelope_bytes, sentry_event

LIMIT = 64 * 1024  # INGEST_MAX_COMPRESSED_BYTES of the servers under test
HUGE = 256 * 1024 * 1024  # what the client offers: far more than any socket buffers hold
BLOCK = b"x" * 65536

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@dataclass
class Server:
    host: str
    port: int


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker):
    """One web server on the test database for the module's tests (no worker: nothing here needs one)."""
    port = free_port()
    with django_db_blocker.unblock():
        env = process_environment(INGEST_MAX_COMPRESSED_BYTES=str(LIMIT), CONSOLE_URL=f"http://127.0.0.1:{port}")
    web = start_web(env, port)
    try:
        yield Server("127.0.0.1", port)
    finally:
        web.stop()


@pytest.fixture
def key():
    source, _ = services.source_create(name="Uploads")
    return source.keys.get()


@dataclass
class Upload:
    sent: int  # body bytes the server let the client write
    finished: bool  # whether the client wrote its whole body
    status: int
    headers: dict
    body: dict


def upload(server: Server, path: str, headers: dict, *, total: int = HUGE, chunked: bool = False, body=None) -> Upload:
    """POST a body of `total` bytes (or `body`), writing until done or the server stops it; return what came back."""
    sock = socket.create_connection((server.host, server.port), timeout=60)  # a hang fails, it does not block
    framing = (
        {"Transfer-Encoding": "chunked"} if chunked else {"Content-Length": str(total if body is None else len(body))}
    )
    head = f"POST {path} HTTP/1.1\r\nHost: {server.host}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in {**headers, **framing}.items()) + "\r\n"
    sent, finished = 0, False
    try:
        sock.sendall(head.encode())
        for block in [body] if body is not None else _blocks(total):
            sock.sendall(b"%x\r\n%s\r\n" % (len(block), block) if chunked else block)
            sent += len(block)
        if chunked:
            sock.sendall(b"0\r\n\r\n")
        finished = True
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered and closed: what it said is still in our receive buffer
    status, fields, payload = _response(sock)
    sock.close()
    return Upload(sent, finished, status, fields, payload)


def _blocks(total: int):
    for start in range(0, total, len(BLOCK)):
        yield BLOCK[: total - start]


def _response(sock: socket.socket) -> tuple[int, dict, dict]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed without an answer: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    length = int(fields["content-length"])
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "the connection closed in the middle of the answer"
        rest += chunk
    payload = rest[:length]
    body = json.loads(payload) if fields.get("content-type") == "application/json" else {"html": payload.decode()}
    return int(lines[0].split()[1]), fields, body


def sentry_auth(public_key: str) -> dict:
    return {"X-Sentry-Auth": f"Sentry sentry_key={public_key}, sentry_version=7"}


def assert_refused_early(result: Upload, status: int, field: str) -> None:
    assert (result.status, result.body["field"]) == (status, field)
    assert not result.finished
    assert result.sent < HUGE // 4  # socket buffers hold a few MiB: the server never read the rest


class TestUnauthenticatedUploads:
    def test_a_huge_native_body_without_a_key_is_refused_with_401_before_it_is_sent(self, server, key):
        result = upload(server, "/api/v1/events/", {"Content-Type": "application/json"})
        assert_refused_early(result, 401, "sentry_key")

    def test_a_huge_envelope_with_an_unknown_key_is_refused_with_401_before_it_is_sent(self, server, key):
        result = upload(server, f"/api/{key.source_id}/envelope/?sentry_key=nobody", {})
        assert_refused_early(result, 401, "sentry_key")
        assert result.body["error"] == "unknown ingest key"

    def test_a_huge_store_body_with_another_sources_key_is_refused_with_403(self, server, key):
        other, _ = services.source_create(name="Other")
        result = upload(server, f"/api/{other.pk}/store/", sentry_auth(key.public_key))
        assert_refused_early(result, 403, "sentry_key")

    def test_a_huge_resilience_report_without_a_key_is_refused_with_401_before_it_is_sent(self, server, key):
        result = upload(server, "/api/v1/resilience/windows/", {"Content-Type": "application/json"})
        assert_refused_early(result, 401, "sentry_key")

    def test_a_huge_envelope_that_could_name_its_key_in_its_dsn_is_refused_for_its_length(self, server, key):
        result = upload(server, f"/api/{key.source_id}/envelope/", {})
        assert_refused_early(result, 413, "body")
        assert str(LIMIT) in result.body["error"]


class TestOversizedUploads:
    def test_a_declared_length_over_the_limit_is_refused_with_413_before_it_is_sent(self, server, key):
        result = upload(server, f"/api/{key.source_id}/envelope/", sentry_auth(key.public_key))
        assert_refused_early(result, 413, "body")
        assert f"body of {HUGE} bytes is over the limit of {LIMIT} bytes" == result.body["error"]

    def test_a_chunked_body_is_refused_with_413_as_soon_as_it_passes_the_limit(self, server, key):
        result = upload(server, f"/api/{key.source_id}/envelope/", sentry_auth(key.public_key), chunked=True)
        assert_refused_early(result, 413, "body")
        assert result.body["error"] == f"body is over the limit of {LIMIT} bytes"

    def test_a_chunked_native_batch_is_refused_with_413_as_soon_as_it_passes_the_limit(self, server, key):
        headers = {"Authorization": f"Bearer {key.public_key}", "Content-Type": "application/json"}
        result = upload(server, "/api/v1/events/", headers, chunked=True)
        assert_refused_early(result, 413, "body")

    def test_a_sentry_refusal_keeps_the_cors_header_browsers_need(self, server, key):
        result = upload(server, f"/api/{key.source_id}/envelope/?sentry_key={key.public_key}", {})
        assert_refused_early(result, 413, "body")
        assert result.headers["access-control-allow-origin"] == "*"

    def test_a_huge_body_to_any_other_url_is_refused_before_it_is_sent(self, server, key):
        result = upload(server, "/admin/login/", {"Content-Type": "application/x-www-form-urlencoded"})
        assert 400 <= result.status < 500
        assert not result.finished
        assert result.sent < HUGE // 4


class TestChunkedBodiesWithinTheLimit:
    def test_a_chunked_envelope_is_read_and_stored(self, server, key):
        event = sentry_event("sent chunked")
        result = upload(
            server,
            f"/api/{key.source_id}/envelope/",
            sentry_auth(key.public_key),
            chunked=True,
            body=envelope_bytes(event),
        )
        assert (result.status, result.body) == (200, {"id": event["event_id"]})
        assert ErrorEvent.objects.get(event_id=uuid.UUID(event["event_id"])).message == "sent chunked"

    def test_a_chunked_envelope_naming_its_key_in_its_dsn_is_stored(self, server, key):
        event = sentry_event("keyed by dsn")
        body = envelope_bytes(event, dsn=f"http://{key.public_key}@example.com/{key.source_id}")
        result = upload(server, f"/api/{key.source_id}/envelope/", {}, chunked=True, body=body)
        assert (result.status, result.body) == (200, {"id": event["event_id"]})

    def test_a_body_within_the_limit_with_a_content_length_is_stored(self, server, key):
        event = sentry_event("plain")
        result = upload(
            server, f"/api/{key.source_id}/envelope/", sentry_auth(key.public_key), body=envelope_bytes(event)
        )
        assert (result.status, result.body) == (200, {"id": event["event_id"]})
