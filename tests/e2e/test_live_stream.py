"""The live stream over real websockets: the web server (granian's ASGI interface on config.asgi) in its
own process.

This test process plays the worker: what it publishes reaches the server's consumers only
through the table (the embedded default's in-memory channel layer does not cross
processes), and through the Redis channel layer as well when REDIS_URL is set.
"""

import asyncio
import contextlib
import json
import socket
import threading
import urllib.request
import uuid

import pytest
import websockets
from channels.db import database_sync_to_async
from django.db import connection, transaction
from django.utils import timezone
from websockets.client import ClientProtocol
from websockets.frames import Opcode
from websockets.protocol import State
from websockets.typing import Origin
from websockets.uri import parse_uri

from access.models import ApiToken
from access.services import api_token_create
from incidents import services
from incidents.live import outbox
from incidents.models import AlertRule, ErrorType, SourceMinute
from tests.api_support import user_with_role
from tests.e2e.captured_server import free_port, process_environment, start_web
from tests.factories import incident_published

# The server reads the table from its own process: every row must be committed.
pytestmark = [pytest.mark.django_db(transaction=True, serialized_rollback=True), pytest.mark.live]


@contextlib.contextmanager
def web_on_the_test_database(django_db_blocker, **env):
    """Start the web server with the test database (and `env`); yield its port."""
    port = free_port()
    with django_db_blocker.unblock():
        environment = process_environment(CONSOLE_URL=f"http://127.0.0.1:{port}", **env)  # its pages' origin
    web = start_web(environment, port)
    try:
        yield port
    finally:
        web.stop()


@pytest.fixture(scope="module")
def web(django_db_setup, django_db_blocker):
    """The web server, sharing the test database, for the whole module."""
    with web_on_the_test_database(django_db_blocker, Q_CLUSTER_NAME=f"t-{uuid.uuid4().hex[:6]}") as port:
        yield f"ws://127.0.0.1:{port}/ws/live/"


@pytest.fixture
def token(django_user_model) -> str:
    return api_token_create(user=user_with_role(django_user_model, "viewer"), name="live")[1]


def connect(url: str, *, token: str | None = None, origin: str | None = None, token_in_url: bool = False):
    """Connect with the token in an Authorization header, as programs should, or in the URL, from a
    page of the console (unless `origin` says otherwise)."""
    origin = origin or "http" + url.removeprefix("ws").split("/ws/")[0]
    headers = {"Authorization": f"Bearer {token}"} if token and not token_in_url else {}
    url += f"?token={token}" if token and token_in_url else ""
    return websockets.connect(url, origin=origin, additional_headers=headers, open_timeout=10)


async def subscribe(ws, **fields) -> dict:
    await ws.send(json.dumps({"type": "subscribe", **fields}))
    return await received(ws)


async def received(ws, timeout: float = 5) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def nothing_more(ws, wait: float = 0.6) -> bool:
    try:
        await asyncio.wait_for(ws.recv(), wait)
    except TimeoutError:
        return True
    return False


new_incident = database_sync_to_async(incident_published)


def run(coroutine):
    return asyncio.run(coroutine)


def test_anonymous_connections_are_closed_with_4401(web):
    async def scenario():
        async with connect(web) as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            return closed.value.rcvd.code

    assert run(scenario()) == 4401


@pytest.mark.parametrize("token_in_url", [False, True], ids=["header", "url"])
def test_a_token_in_the_header_or_the_url_lets_a_client_subscribe_and_a_revoked_one_does_not(web, token, token_in_url):
    async def attempt() -> dict | int:
        async with connect(web, token=token, token_in_url=token_in_url) as ws:
            try:
                return await subscribe(ws, topics=["incident"])
            except websockets.ConnectionClosed as closed:
                return closed.rcvd.code

    assert run(attempt())["type"] == "subscribed"
    ApiToken.objects.update(revoked_at=timezone.now())
    assert run(attempt()) == 4401


def test_a_foreign_origin_is_refused(web, token):
    async def scenario():
        async with connect(web, token=token, origin="https://evil.example"):
            pass

    with pytest.raises(websockets.InvalidStatus):
        run(scenario())


def test_a_subscriber_gets_what_another_process_publishes(web, token, source):
    async def scenario():
        async with connect(web, token=token) as ws:
            assert (await subscribe(ws, topics=["incident"]))["type"] == "subscribed"
            incident = await new_incident(source, "boom")
            message = await received(ws)
            return incident, message

    incident, message = run(scenario())
    assert (message["type"], message["topic"], message["payload"]["id"]) == ("message", "incident.created", incident.pk)


def test_reconnecting_with_the_last_id_replays_exactly_what_was_missed_in_order(web, token, source):
    async def scenario():
        async with connect(web, token=token) as ws:
            await subscribe(ws, topics=["*"])
            await new_incident(source, "seen")
            seen = (await received(ws))["id"]
        missed = [await new_incident(source, f"missed {n}") for n in range(3)]
        async with connect(web, token=token) as ws:
            assert (await subscribe(ws, after=seen))["after"] == seen
            replayed = [await received(ws) for _ in missed]
            return seen, missed, replayed, await nothing_more(ws)

    seen, missed, replayed, quiet = run(scenario())
    assert [m["payload"]["id"] for m in replayed] == [i.pk for i in missed]
    assert all(m["id"] > seen for m in replayed) and quiet


def test_a_subscription_to_one_incident_gets_only_that_incident(web, token, source):
    async def scenario():
        target = await new_incident(source, "target")
        async with connect(web, token=token) as ws:
            await subscribe(ws, incident=target.pk)
            await new_incident(source, "other")
            await database_sync_to_async(services.incident_acknowledge)(incident=target, by="system:test")
            return target, await received(ws), await nothing_more(ws)

    target, message, quiet = run(scenario())
    assert (message["topic"], message["payload"]["id"], message["payload"]["status"]) == (
        "incident.updated", target.pk, "acknowledged",
    )  # fmt: skip
    assert quiet


@pytest.mark.parametrize(
    "frame, field",
    [
        ("not json", "frame"),
        ('{"type": "shout"}', "type"),
        ('{"type": "subscribe", "topics": ["gossip"]}', "topics"),
        ('{"type": "subscribe", "topics": "incident"}', "topics"),
        ('{"type": "subscribe", "after": -1}', "after"),
        ('{"type": "subscribe", "incident": 999999}', "incident"),
        ('{"type": "subscribe", "source": "nowhere"}', "source"),
    ],
)
def test_a_bad_frame_gets_an_error_frame_naming_the_field_and_the_connection_stays(web, token, frame, field):
    async def scenario():
        async with connect(web, token=token) as ws:
            await ws.send(frame)
            error = await received(ws)
            return error, await subscribe(ws, topics=["*"])

    error, subscribed = run(scenario())
    assert (error["type"], error["field"]) == ("error", field)
    assert subscribed["type"] == "subscribed"


def test_an_oversized_frame_closes_the_connection_with_1009(web, token):
    async def scenario():
        async with connect(web, token=token) as ws:
            await ws.send(json.dumps({"type": "subscribe", "pad": "x" * 5000}))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await received(ws)
            return closed.value.rcvd.code

    assert run(scenario()) == 1009


def test_an_alert_that_fires_reaches_the_stream(web, token, source):
    async def scenario():
        async with connect(web, token=token) as ws:
            await subscribe(ws, topics=["alert"])
            await database_sync_to_async(fire_an_alert)(source)
            return await received(ws)

    message = run(scenario())
    assert message["topic"] == "alert.firing" and message["payload"]["rule"] == "any event"


def fire_an_alert(source) -> None:
    from incidents.alerting import evaluation

    AlertRule.objects.all().delete()
    AlertRule.objects.create(name="any event", source=source, window_minutes=5, warning_threshold=0)
    minute = timezone.now().replace(second=0, microsecond=0)
    SourceMinute.objects.create(
        source=source,
        error_type=ErrorType.objects.get(code="NETWORK_TIMEOUT"),
        severity=40,
        environment="",
        minute=minute,
        count=3,
    )
    evaluation.evaluate_rules()


@database_sync_to_async
def burst_of_updates(incident, count: int) -> list[int]:
    ids = []
    for n in range(count):
        payload = incident.live_payload(event_count=n + 1)
        message = outbox.publish(
            topic="incident.updated", key=f"incident:{incident.pk}", payload=payload,
            source_id=incident.source_id, incident_id=incident.pk,
        )  # fmt: skip
        ids.append(message.id)
    return ids


def test_a_burst_of_updates_is_coalesced_live_but_replayed_whole(web, token, source):
    async def scenario():
        incident = await new_incident(source, "busy")
        async with connect(web, token=token) as ws:
            await subscribe(ws, topics=["incident"])
            before = await database_sync_to_async(outbox.newest_id)()
            ids = await burst_of_updates(incident, 40)
            live_frames = []
            while not live_frames or live_frames[-1]["payload"]["event_count"] < 40:
                live_frames.append(await received(ws))
        async with connect(web, token=token) as ws:
            await subscribe(ws, after=before)
            replayed = [await received(ws) for _ in ids]
        return before, ids, live_frames, replayed

    before, ids, live_frames, replayed = run(scenario())
    assert len(live_frames) <= 5  # the newest update wins; 40 updates in well under a second
    assert live_frames[-1]["id"] == ids[-1]
    assert [frame["id"] for frame in replayed] == ids and ids[0] > before


def test_a_degradation_level_change_reaches_the_stream(web, token, console_threads):
    from resilience.models import Breaker, DegradationFeature, DegradationRule

    @database_sync_to_async
    def open_a_critical_breaker():
        Breaker.objects.create(name="payments-api")
        DegradationFeature.objects.create(name="checkout", breakers="payments-api", critical=True)
        DegradationRule.objects.create(name="critical-open", condition="critical_breaker_open", level=2)
        runtime = console_threads.runtime()
        console_threads.apply_saved_config(runtime)
        runtime.breaker("payments-api").force_open(reason="maintenance")

    async def scenario():
        async with connect(web, token=token) as ws:
            await subscribe(ws, topics=["degradation"])
            await open_a_critical_breaker()
            return await received(ws, timeout=10)

    message = run(scenario())
    assert (message["topic"], message["payload"]["level"], message["payload"]["previous"]) == (
        "degradation.changed", "MINIMAL", "FULL",
    )  # fmt: skip


@pytest.fixture
def second_web(django_db_blocker):
    """Another web server on the same database (and the same Redis channel layer when REDIS_URL is set)."""
    with web_on_the_test_database(django_db_blocker) as port:
        yield f"ws://127.0.0.1:{port}/ws/live/"


def test_clients_of_two_web_processes_both_get_a_message(web, second_web, token, source):
    async def scenario():
        async with connect(web, token=token) as first, connect(second_web, token=token) as second:
            await subscribe(first, topics=["incident"])
            await subscribe(second, topics=["incident"])
            incident = await new_incident(source, "seen everywhere")
            return incident, await received(first), await received(second)

    incident, first, second = run(scenario())
    assert first["payload"]["id"] == second["payload"]["id"] == incident.pk
    assert first["id"] == second["id"]


SMALL_INBOX = 3  # batches a connection may have waiting, on the server below


@pytest.fixture
def small_inbox_web(django_db_blocker):
    with web_on_the_test_database(django_db_blocker, LIVE_INBOX_BATCHES=str(SMALL_INBOX)) as port:
        yield port


@database_sync_to_async
def publish_bulky(number: int) -> int:
    # Big enough that a client that stops reading fills every buffer between it and the consumer.
    payload = {"breaker": f"bulky-{number}", "padding": "x" * 512 * 1024}
    return outbox.publish(topic="breaker.transition", key=f"breaker:bulky-{number}", payload=payload).id


def metric(port: int, token: str, name: str) -> float:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {token}"})
    for line in urllib.request.urlopen(request, timeout=10).read().decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} is not in /metrics")


class StallingClient:
    """A websocket client on a plain socket that reads only when told to: between reads, nothing
    takes the server's frames off the socket, so the server's sends to it soon have to wait."""

    def __init__(self, port: int, token: str):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(("127.0.0.1", port))
        self.sock.settimeout(30)
        url = f"ws://127.0.0.1:{port}/ws/live/?token={token}"
        self.protocol = ClientProtocol(parse_uri(url), origin=Origin(f"http://127.0.0.1:{port}"), max_size=None)
        self.protocol.send_request(self.protocol.connect())
        self._flush()
        self.frames: list[dict] = []
        while self.protocol.handshake_exc is None and self.protocol.state is not State.OPEN:
            self._read_once()
        assert self.protocol.state is State.OPEN, self.protocol.handshake_exc

    def send(self, frame: dict) -> None:
        self.protocol.send_text(json.dumps(frame).encode())
        self._flush()

    def receive(self, count: int) -> list[dict]:
        while len(self.frames) < count:
            self._read_once()
        taken, self.frames = self.frames[:count], self.frames[count:]
        return taken

    def close(self) -> None:
        self.sock.close()

    def _read_once(self) -> None:
        self.protocol.receive_data(self.sock.recv(65536))
        events = self.protocol.events_received()  # the handshake's response, then frames
        self.frames += [json.loads(e.data) for e in events if getattr(e, "opcode", None) is Opcode.TEXT]
        self._flush()  # pongs

    def _flush(self) -> None:
        self.sock.sendall(b"".join(self.protocol.data_to_send()))


def test_a_client_that_stops_reading_is_not_buffered_for_and_catches_up_from_the_table(
    small_inbox_web, token, django_user_model
):
    admin_token = api_token_create(user=user_with_role(django_user_model, "admin"), name="metrics")[1]

    async def scenario():
        slow = await asyncio.to_thread(StallingClient, small_inbox_web, token)
        try:
            slow.send({"type": "subscribe", "topics": ["breaker"]})
            async with connect(f"ws://127.0.0.1:{small_inbox_web}/ws/live/", token=token) as fast:
                await subscribe(fast, topics=["breaker"])
                ids = []
                for number in range(SMALL_INBOX * 4):
                    ids.append(await publish_bulky(number))
                    # The fast client has it before the next is written: each is a batch of its own.
                    while (await received(fast))["id"] != ids[-1]:
                        pass
            dropped = await asyncio.to_thread(metric, small_inbox_web, admin_token, "console_live_catch_ups_total")
            frames = await asyncio.to_thread(slow.receive, 1 + len(ids))  # reading again, at last
        finally:
            slow.close()
        return ids, dropped, frames[1:]  # after its "subscribed"

    ids, dropped, frames = run(scenario())
    assert dropped >= 1  # its waiting batches were let go rather than kept for it
    assert [frame["id"] for frame in frames] == ids  # and it still gets every message once, in order


@database_sync_to_async
def publish_transition(breaker: str) -> int:
    return outbox.publish(topic="breaker.transition", key=f"breaker:{breaker}", payload={"breaker": breaker}).id


class SlowTransaction:
    """A message whose transaction takes its id now and commits when told to."""

    def __init__(self):
        self.inserted, self.release, self.id = threading.Event(), threading.Event(), None
        self.thread = threading.Thread(target=self._run)

    def __enter__(self) -> "SlowTransaction":
        if connection.vendor != "postgresql":
            pytest.skip("SQLite runs one writing transaction at a time: commits cannot overtake each other")
        self.thread.start()
        assert self.inserted.wait(30)
        return self

    def __exit__(self, *exc_info) -> None:
        self.release.set()
        self.thread.join(30)

    async def commit(self) -> None:
        self.release.set()
        await asyncio.to_thread(self.thread.join, 30)

    def _run(self) -> None:
        try:
            with transaction.atomic():
                self.id = outbox.publish(topic="breaker.transition", key="breaker:slow", payload={"breaker": "slow"}).id
                self.inserted.set()
                self.release.wait(30)
        finally:
            connection.close()


def test_a_message_committed_after_a_later_one_still_reaches_the_client(web, token):
    async def scenario():
        async with connect(web, token=token) as ws:
            await subscribe(ws, topics=["breaker"])
            with SlowTransaction() as slow:
                fast = await publish_transition("fast")
                first = await received(ws)  # the hub reads past the slow one's id, not committed yet
                await slow.commit()
                return slow.id, fast, first, await received(ws, timeout=10)

    slow, fast, first, second = run(scenario())
    assert slow < fast
    assert (first["id"], second["id"]) == (fast, slow)


def test_a_replay_that_went_past_an_uncommitted_message_sends_it_once_committed(web, token):
    async def scenario():
        before = await database_sync_to_async(outbox.newest_id)()
        with SlowTransaction() as slow:
            fast = await publish_transition("fast")
            async with connect(web, token=token) as ws:
                await subscribe(ws, topics=["breaker"], after=before)
                first = await received(ws)  # the replay from the table: the slow one is not there yet
                await slow.commit()
                return slow.id, fast, first, await received(ws, timeout=10), await nothing_more(ws)

    slow, fast, first, second, then_nothing = run(scenario())
    assert (first["id"], second["id"]) == (fast, slow)
    assert then_nothing  # and each once
