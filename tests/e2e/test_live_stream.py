"""The live stream over real websockets: uvicorn serving config.asgi in its own process.

This test process plays the worker: what it publishes reaches the server's consumers only
through the table (the embedded default's in-memory channel layer does not cross
processes), and through the Redis channel layer as well when REDIS_URL is set.
"""

import asyncio
import json
import os
import socket
import uuid

import pytest
import websockets
from channels.db import database_sync_to_async
from django.utils import timezone

from access.services import api_token_create
from incidents import live, services
from incidents.models import AlertRule, ErrorType, SourceMinute
from tests.api_support import user_with_role
from tests.e2e.conftest import ROOT, _start_uvicorn, _stop
from tests.support import database_url_for_processes

# The server reads the table from its own process: every row must be committed.
pytestmark = [pytest.mark.django_db(transaction=True, serialized_rollback=True), pytest.mark.live]


@pytest.fixture(scope="module")
def web(django_db_setup, django_db_blocker):
    """uvicorn on config.asgi, sharing the test database, for the whole module."""
    with django_db_blocker.unblock():
        database_url = database_url_for_processes()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    port = listener.getsockname()[1]
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "PYTHONPATH": str(ROOT),
        "Q_CLUSTER_NAME": f"t-{uuid.uuid4().hex[:6]}",
    }
    server = _start_uvicorn(env, listener)
    try:
        yield f"ws://127.0.0.1:{port}/ws/live/"
    finally:
        _stop(server)
        listener.close()


@pytest.fixture
def token(django_user_model) -> str:
    return api_token_create(user=user_with_role(django_user_model, "viewer"), name="live")[1]


def connect(url: str, *, token: str | None = None, origin: str = "http://127.0.0.1"):
    return websockets.connect(url + (f"?token={token}" if token else ""), origin=origin, open_timeout=10)


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


@database_sync_to_async
def new_incident(source, title: str):
    timeouts = ErrorType.objects.get(code="NETWORK_TIMEOUT")
    incident = source.incidents.create(
        fingerprint=uuid.uuid4().hex, title=title, error_type=timeouts, category="NETWORK", severity=40,
        first_seen=timezone.now(), last_seen=timezone.now(),
    )  # fmt: skip
    live.publish(
        topic="incident.created", key=f"incident:{incident.pk}", payload=live.incident_payload(incident),
        source_id=source.pk, incident_id=incident.pk,
    )  # fmt: skip
    return incident


def run(coroutine):
    return asyncio.run(coroutine)


def test_anonymous_connections_are_closed_with_4401(web):
    async def scenario():
        async with connect(web) as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            return closed.value.rcvd.code

    assert run(scenario()) == 4401


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
    from incidents import alerting

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
    alerting.evaluate_rules()


@database_sync_to_async
def burst_of_updates(incident, count: int) -> list[int]:
    ids = []
    for n in range(count):
        payload = live.incident_payload(incident, event_count=n + 1)
        message = live.publish(
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
            before = await database_sync_to_async(live.newest_id)()
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
    """Another uvicorn process on the same database (and the same Redis channel layer when REDIS_URL is set)."""
    with django_db_blocker.unblock():
        database_url = database_url_for_processes()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    server = _start_uvicorn({**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(ROOT)}, listener)
    try:
        yield f"ws://127.0.0.1:{listener.getsockname()[1]}/ws/live/"
    finally:
        _stop(server)
        listener.close()


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
