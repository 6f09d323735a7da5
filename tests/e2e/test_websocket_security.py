"""The live stream's origin check and the logs of the real web server (granian's ASGI interface on
config.asgi): whose handshakes are served, and that no token reaches the log.

granian writes a request's URL only in its access log, off unless --access-log: its default format
has the path without the query string, and a format naming %(query_string)s goes through the
redacting filter Django's logging config puts on granian's handlers (config/logging_filters.py).
"""

import asyncio
import json
import urllib.error
import urllib.request

import pytest
import websockets
from django.test import Client

from access.services import api_token_create
from access.websocket import origin_is_the_consoles
from tests.api_support import user_with_role
from tests.e2e.captured_server import web_server


def live(test):
    """Mark a test that starts a server: it reads the test's rows from its own process, so they are committed."""
    return pytest.mark.live(pytest.mark.django_db(transaction=True, serialized_rollback=True)(test))


@pytest.fixture
def viewer(django_user_model):
    return user_with_role(django_user_model, "viewer")


@pytest.fixture
def token(viewer) -> str:
    return api_token_create(user=viewer, name="live")[1]


@pytest.fixture
def session_cookie(viewer) -> str:
    client = Client()
    client.force_login(viewer)
    return f"sessionid={client.cookies['sessionid'].value}"


async def outcome(port: int, *, origin: str | None, path: str = "/ws/live/", **headers) -> str | int:
    """ "subscribed", the close code the server sent, or the HTTP status that refused the handshake."""
    url = f"ws://127.0.0.1:{port}{path}"
    try:
        async with websockets.connect(url, origin=origin, additional_headers=headers, open_timeout=10) as ws:
            try:
                await ws.send('{"type": "subscribe", "topics": ["incident"]}')
                return json.loads(await asyncio.wait_for(ws.recv(), 10))["type"]
            except websockets.ConnectionClosed as closed:
                return closed.rcvd.code
    except websockets.InvalidStatus as refused:
        return refused.response.status_code


@live
def test_a_viewer_session_is_served_only_from_the_consoles_own_scheme_host_and_port(django_db_blocker, session_cookie):
    with web_server(django_db_blocker) as (port, log):
        cookie = {"Cookie": session_cookie}
        assert asyncio.run(outcome(port, origin=f"http://127.0.0.1:{port}", **cookie)) == "subscribed"
        assert asyncio.run(outcome(port, origin="http://127.0.0.1:9999", **cookie)) == 403
        assert asyncio.run(outcome(port, origin=f"https://127.0.0.1:{port}", **cookie)) == 403
        assert asyncio.run(outcome(port, origin=f"http://localhost:{port}", **cookie)) == 403
        assert asyncio.run(outcome(port, origin="null", **cookie)) == 403
        assert asyncio.run(outcome(port, origin=None, **cookie)) == 403  # only programs omit it, with a token
    assert "Traceback" not in log.text


@live
def test_a_program_with_a_bearer_token_and_no_origin_is_served(django_db_blocker, token):
    with web_server(django_db_blocker) as (port, log):
        assert asyncio.run(outcome(port, origin=None, Authorization=f"Bearer {token}")) == "subscribed"
        assert asyncio.run(outcome(port, origin=None, path=f"/ws/live/?token={token}")) == "subscribed"
        assert asyncio.run(outcome(port, origin=None, Authorization="Bearer ict_not-a-token")) == 4401
        assert asyncio.run(outcome(port, origin="https://evil.example", Authorization=f"Bearer {token}")) == 403
    assert "Traceback" not in log.text


# What granian is started with, and a line each request is then logged by (None: it logs no request).
ACCESS_LOGS = {
    "no-access-log": ([], None, None),
    "access-log": (["--access-log"], '"GET /healthz HTTP/1.1" 200', '"- /ws/live/ HTTP/1.1" 101'),
    "access-log-with-query": (
        ["--access-log", "--access-log-fmt", "%(method)s %(path)s?%(query_string)s %(status)d"],
        "GET /healthz?token=[redacted]&sentry_key=[redacted] 200",
        "- /ws/live/?a=1&token=[redacted] 101",
    ),
}


@live
@pytest.mark.parametrize("access_log", ACCESS_LOGS)
def test_no_token_reaches_the_server_log(django_db_blocker, token, access_log):
    flags, healthz_line, websocket_line = ACCESS_LOGS[access_log]
    with web_server(django_db_blocker, *flags) as (port, log):
        assert asyncio.run(outcome(port, origin=None, path=f"/ws/live/?token={token}")) == "subscribed"
        assert asyncio.run(outcome(port, origin="http://evil.example", path=f"/ws/live/?a=1&token={token}")) == 403
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz?token={token}&sentry_key=abc123", timeout=10):
            pass
        if healthz_line:
            log.wait_for(healthz_line)
            log.wait_for(websocket_line)
    # The server has stopped and its output is read to the end.
    assert token not in log.text
    assert token.removeprefix("ict_") not in log.text
    assert "abc123" not in log.text
    if not healthz_line:
        assert "/healthz" not in log.text and "/ws/live/" not in log.text


@pytest.mark.parametrize(
    ("origin", "served"),
    [
        ("https://console.example.com", True),
        ("https://console.example.com:443", True),
        ("http://console.example.com", False),
        ("https://console.example.com:8443", False),
        ("https://team.example.org", True),
        ("https://example.org", False),
        ("https://evil-example.org", False),
        ("null", False),
        ("https://[::1", False),
    ],
)
def test_an_origin_is_the_consoles_when_scheme_host_and_port_match(settings, origin, served):
    settings.CONSOLE_URL = "https://console.example.com"
    settings.CSRF_TRUSTED_ORIGINS = ["https://*.example.org"]
    assert origin_is_the_consoles(origin) is served


@live
def test_a_page_refused_to_a_viewer_is_logged_as_one_line_without_a_traceback(
    django_db_blocker, viewer, session_cookie
):
    viewer.is_staff = True  # may use admin, not the sources page
    viewer.save(update_fields=["is_staff"])
    with web_server(django_db_blocker) as (port, log):
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/admin/incidents/source/", headers={"Cookie": session_cookie}
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 403
        log.wait_for("Forbidden (Permission denied): /admin/incidents/source/")
    assert "Traceback" not in log.text and "PermissionDenied" not in log.text
