"""The live stream's outbox: `publish()` records a message and tells the web processes after commit.

A message is a row of LiveMessage written inside the transaction that caused it, so it
exists exactly when the change does; its id orders the stream. Once the transaction
commits, the id is sent to the "live" group of the channel layer, where each web process's
hub (consumers.py) hears it and reads the new rows. Whatever misses that signal (a
worker process on the in-memory layer, a dropped Redis message) is still in the table for the
hub's next poll. A message's payload is built by the model it is about (`Incident.live_payload()`,
`Alert.live_payload()`).
"""

import asyncio
import logging
import os
import threading
from datetime import timedelta

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from incidents.models import LiveMessage
from resilience.process_runtime import REDIS_BREAKER, breaker

logger = logging.getLogger(__name__)

GROUP = "live"
SIGNAL_TIMEOUT_SECONDS = 0.5


def publish(
    *, topic: str, key: str, payload: dict, source_id: int | None = None, incident_id: int | None = None
) -> LiveMessage:
    """Record a live message now and signal it to consumers once the surrounding transaction commits."""
    message = LiveMessage.objects.create(
        topic=topic, key=key[:250], payload=payload, source_id=source_id, incident_id=incident_id
    )
    transaction.on_commit(lambda: _signal(message))
    return message


def expire_old() -> int:
    """Delete the messages older than LIVE_MESSAGE_RETENTION; return how many went."""
    cutoff = timezone.now() - timedelta(seconds=settings.LIVE_MESSAGE_RETENTION_SECONDS)
    deleted, _ = LiveMessage.objects.filter(created_at__lt=cutoff).delete()
    return deleted


def newest_id() -> int:
    """The id of the newest live message: a page rendered now continues the stream after it."""
    return LiveMessage.objects.order_by("-id").values_list("id", flat=True).first() or 0


def publish_many(messages: list[LiveMessage]) -> None:
    """Record several live messages in one INSERT; one signal after commit wakes consumers for all."""
    created = LiveMessage.objects.bulk_create(messages)
    if created:
        transaction.on_commit(lambda: _signal(created[-1]))


def _signal(message: LiveMessage) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    signal = {"type": "live.message", "id": message.id, "topic": message.topic}
    if settings.REDIS_URL:
        _redis_signaller.send(layer, signal)
        return
    try:
        # The in-memory layer lives on the ASGI server's loop, where async_to_sync runs this from a view.
        async_to_sync(layer.group_send)(GROUP, signal)
    except Exception:
        # The message is committed; consumers find it by id when they next read the table.
        logger.warning("could not signal live message %s", message.id, exc_info=True)


class _Signaller:
    """Sends signals on the Redis channel layer from one event loop thread per process.

    async_to_sync outside a server's loop (a django-q2 worker) starts a loop per call, and
    channels_redis keeps its connections per loop: each signal would connect to Redis anew,
    some 15 ms in the digest's path. Here the connection stays. The caller waits for the send
    (about a millisecond; at most SIGNAL_TIMEOUT_SECONDS): it lets go of the GIL meanwhile, where
    a signal sent in the background would queue behind the caller's next CPU-bound work. A signal
    lost with Redis is made up for by the consumers' next read of the table.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    def send(self, layer, signal: dict) -> None:
        # Got here: building a breaker may read the database, which the loop's thread must not.
        redis_breaker = breaker(REDIS_BREAKER)
        sent = asyncio.run_coroutine_threadsafe(self._send(redis_breaker, layer, signal), self._running_loop())
        try:
            sent.result(timeout=SIGNAL_TIMEOUT_SECONDS + 1)  # _send gives up first; this is a backstop
        except TimeoutError:
            sent.cancel()

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                self._loop = asyncio.new_event_loop()
                threading.Thread(target=self._loop.run_forever, name="live-signals", daemon=True).start()
            return self._loop

    async def _send(self, redis_breaker, layer, signal: dict) -> None:
        try:
            # The timeout inside the breaker's call: a Redis that hangs counts as failing and opens it.
            await redis_breaker.call_async(_group_send_within, layer, signal)
        except Exception:
            logger.warning("could not signal live message %s", signal["id"], exc_info=True)


async def _group_send_within(layer, signal: dict) -> None:
    async with asyncio.timeout(SIGNAL_TIMEOUT_SECONDS):
        await layer.group_send(GROUP, signal)


_redis_signaller = _Signaller()
# A forked process (django-q2 starts its workers so) has the parent's loop but not its thread.
os.register_at_fork(after_in_child=_redis_signaller.__init__)
