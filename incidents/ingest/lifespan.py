"""ASGI lifespan: a worker process warms what the ingest fast path reads before its first request.

The fast path runs on the event loop, where Django refuses database access; a cold cache makes
a request take a thread instead (incidents.ingest.endpoints.ingest_async). Loading the resilience
runtime (the Redis breaker the quota goes through) and the classification rules at startup
spares the first requests of every worker that detour.
"""

import logging

from asgiref.sync import sync_to_async
from django.db import close_old_connections

from incidents.ingest.classification import warm_rules
from resilience.process_runtime import runtime

logger = logging.getLogger(__name__)


def _warm_up() -> None:
    try:
        runtime()
        warm_rules()
    except Exception:  # the database may be down at startup: requests warm the caches later
        logger.warning("could not warm the ingest caches at startup", exc_info=True)
    finally:
        close_old_connections()


class Lifespan:
    async def __call__(self, scope, receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await sync_to_async(_warm_up, thread_sensitive=False)()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
