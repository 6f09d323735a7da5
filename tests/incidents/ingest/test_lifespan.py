"""A web worker's ASGI lifespan: startup loads what the ingest fast path reads before the first request."""

import asyncio

import pytest

from config.asgi import application
from incidents.ingest import classification

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


async def run_lifespan() -> list[str]:
    inbox: asyncio.Queue = asyncio.Queue()
    sent: list[str] = []

    async def send(message):
        sent.append(message["type"])

    task = asyncio.create_task(application({"type": "lifespan"}, inbox.get, send))
    await inbox.put({"type": "lifespan.startup"})
    await inbox.put({"type": "lifespan.shutdown"})
    await asyncio.wait_for(task, timeout=30)
    return sent


def test_startup_loads_the_classification_rules_and_completes():
    assert not classification.rules_are_cached()  # the autouse fixture forgot them
    assert asyncio.run(run_lifespan()) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert classification.rules_are_cached()
