"""The live stream's outbox: messages recorded with the change that caused them, signalled after commit."""

import asyncio

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import transaction
from django.utils import timezone

from incidents.fleet.reports import console_source, transition_record
from incidents.live import outbox
from incidents.models import LiveMessage
from resilience.config_watcher import config_version_bump

# Seeded rows (the error-type catalog) must survive: transitions are classified. Signals through the Redis
# breaker start the console runtime: console_threads stops its threads with the test.
pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.asyncio,
    pytest.mark.usefixtures("console_threads"),
]


@pytest_asyncio.fixture
async def listener():
    """A channel in the live group, as a consumer's would be; one event loop, as in a web process."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(outbox.GROUP, channel)
    yield lambda: asyncio.wait_for(layer.receive(channel), timeout=10)
    await layer.group_discard(outbox.GROUP, channel)


@pytest.fixture
def new_messages():
    """Messages published from now on (the restored database may hold earlier ones)."""
    last = LiveMessage.objects.order_by("id").values_list("id", flat=True).last() or 0
    return LiveMessage.objects.filter(id__gt=last).order_by("id")


def publish(**message):
    return sync_to_async(outbox.publish)(**message)


def rolled_back_publish():
    with pytest.raises(RuntimeError), transaction.atomic():
        outbox.publish(topic="incident.updated", key="incident:1", payload={"count": 1})
        raise RuntimeError("the change failed")


async def test_a_message_of_a_rolled_back_change_is_neither_kept_nor_signalled(listener, new_messages):
    await sync_to_async(rolled_back_publish)()
    kept = await publish(topic="incident.updated", key="incident:1", payload={"count": 2})
    assert [m.payload async for m in new_messages] == [{"count": 2}]
    assert await listener() == {"type": "live.message", "id": kept.id, "topic": "incident.updated"}


async def test_ids_follow_the_order_of_publishing(listener):
    first = await publish(topic="a", key="k", payload={})
    second = await publish(topic="b", key="k", payload={})
    assert second.id > first.id
    assert [(await listener())["id"], (await listener())["id"]] == [first.id, second.id]


async def test_a_breaker_transition_and_a_config_change_are_published(listener, new_messages):
    await sync_to_async(transition_and_config_change)()
    transition, config = [m async for m in new_messages]
    assert (transition.topic, transition.key) == ("breaker.transition", "breaker:payments-api")
    assert transition.payload["to_state"] == "open" and transition.payload["reason"].startswith("failure rate")
    assert config.topic == "config.changed" and config.payload["version"] > 0
    assert [(await listener())["topic"], (await listener())["topic"]] == ["breaker.transition", "config.changed"]


def transition_and_config_change():
    source = console_source()
    transition_record(
        source=source,
        breaker_name="payments-api",
        from_state="closed",
        to_state="open",
        mode="auto",
        generation=1,
        reason="failure rate 60% >= 50%",
        process="web-1:1",
        at=timezone.now(),
    )
    config_version_bump()
