"""The live stream at /ws/live/: LiveMessage rows, in id order, to the browsers subscribed to them.

Who: a logged-in session or an API token (access/websocket.py: an Authorization header, or
`?token=ict_...`), of a viewer or above; anonymous connections are closed with 4401, others below
viewer with 4403, and one past LIVE_MAX_SOCKETS_PER_CLIENT open sockets of its token (or of its
user's sessions) in this process with 4429. The origin is checked before this runs (access/websocket.py).

Client frames (JSON text, at most MAX_FRAME_BYTES):
    {"type": "subscribe", "topics": ["incident", "breaker", "recovery", "alert", "degradation", "config"] or ["*"],
     "source": "<slug>", "incident": <id>, "after": <last id seen, to replay what was missed>}
Server frames:
    {"type": "subscribed", "after": <id>}     then every later message that matches:
    {"type": "message", "id": 42, "topic": "incident.updated", "key": "incident:7", "payload": {...}, "at": "..."}
    {"type": "error", "field": "topics", "error": "unknown topics ['x']; use any of ..."}

Messages are read from the table, never trusted to the signal: the channel layer's "live"
group only wakes the reader early; a signal that never comes (a worker publishing on the
in-memory layer of another process) is made up for by the next poll. One reader per process
(the hub) reads each new row once for all its connections, and it alone is in the group: a
signal costs one channel-layer message per web process, however many browsers are connected.
A slow client is never buffered for without bound: past LIVE_INBOX_BATCHES waiting batches it
reads the table at its own pace.
"""

import asyncio
import collections
import contextlib
import json
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import Error as DatabaseErrors
from django.db import connection
from django.db.models import Q

from access.roles import Role, role_of
from incidents.health.metrics import LIVE_CATCH_UPS
from incidents.live.outbox import GROUP, newest_id
from incidents.models import Incident, LiveMessage, Source

logger = logging.getLogger(__name__)

TOPICS = ("incident", "breaker", "recovery", "alert", "degradation", "config")
MAX_FRAME_BYTES = 4096
POLL_SECONDS = 0.25  # without a signal (in-memory layer, other process), the table is read this often
BATCH = 200
# Live updates of one incident go out at most this often (the newest wins): a burst of events
# is a few messages a second to a browser. Replays after a reconnect are never coalesced.
COALESCE_SECONDS = 0.4
# How long a message id the hub read past is looked for again: longer than any transaction
# that publishes takes between its INSERT and its COMMIT.
LATE_COMMIT_SECONDS = 10.0
MAX_GAP = 10_000  # a longer run of missing ids is a rolled-back bulk insert, not a late commit
UPDATES_REMEMBERED = 5000  # incidents whose last update a connection remembers, for coalescing
REJOIN_SECONDS = 300  # the hub renews its group membership, which the layer expires (settings: group_expiry)
LISTEN_RETRY_SECONDS = 1.0


class _Hub:
    """The one reader of the table in a process: each new row is read once and offered to every
    local consumer, however many browsers are connected. It listens for publishers' signals on
    a channel of its own in the "live" group while it has consumers."""

    def __init__(self):
        self.consumers: set[LiveConsumer] = set()
        self.wake = asyncio.Event()
        self.after: int | None = None
        self.gaps = _Gaps()
        self.reader: asyncio.Task | None = None

    async def join(self, consumer: "LiveConsumer") -> None:
        if self.after is None:
            self.after = await _read_table(newest_id)
        self.consumers.add(consumer)
        if self.reader is None or self.reader.done():
            self.reader = asyncio.create_task(self._read_forever())

    def leave(self, consumer: "LiveConsumer") -> None:
        self.consumers.discard(consumer)

    async def _read_forever(self) -> None:
        listener = asyncio.create_task(self._listen())
        try:
            while self.consumers:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout=POLL_SECONDS)
                self.wake.clear()
                try:
                    await self._read_new_rows()
                except Exception:  # whatever it was, every connection of the process waits on this loop
                    logger.warning("could not read live messages; trying again", exc_info=True)
        finally:
            listener.cancel()

    async def _read_new_rows(self) -> None:
        while True:
            rows = await _read_table(_rows_after, self.after, BATCH, self.gaps.ids())
            self.after = self.gaps.take(self.after, [row["id"] for row in rows])
            if rows:
                for consumer in list(self.consumers):
                    consumer.offer(rows)
            if len(rows) < BATCH:
                return

    async def _listen(self) -> None:
        """Set `wake` on every signal; without a layer, or while it fails, the poll carries on alone."""
        layer = get_channel_layer()
        if layer is None:
            return
        channel = await layer.new_channel()
        joined_at = -math.inf
        try:
            while True:
                try:
                    if time.monotonic() - joined_at > REJOIN_SECONDS:  # memberships expire in the layer
                        await layer.group_add(GROUP, channel)
                        joined_at = time.monotonic()
                    with contextlib.suppress(TimeoutError):  # a quiet spell still rejoins in time
                        await asyncio.wait_for(layer.receive(channel), REJOIN_SECONDS)
                        self.wake.set()
                except Exception:
                    logger.warning("live signals unavailable; reading the table every %ss", POLL_SECONDS, exc_info=True)
                    joined_at = -math.inf
                    await asyncio.sleep(LISTEN_RETRY_SECONDS)  # a back-off, not a synchronisation
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(layer.group_discard(GROUP, channel))


class _Gaps:
    """Ids a reader went past that were not there yet, looked for again for LATE_COMMIT_SECONDS.

    An id is taken at INSERT and seen at COMMIT, so a transaction that commits after a later one
    shows its message late; one that rolled back never shows it, and its id is forgotten in time.
    The hub keeps one, to read late messages; each connection keeps one, to send a message it went
    past (while catching up from the table, say) when it shows up, and nothing twice.
    """

    def __init__(self):
        self._since: dict[int, float] = {}

    def take(self, after: int, ids: list[int]) -> int:
        """Account for `ids` (ascending) read after `after`; return the new `after`."""
        for message_id in ids:
            self.admit(after, message_id)
            after = max(after, message_id)
        return after

    def admit(self, after: int, message_id: int) -> bool:
        """Whether a message not seen before: one past `after` (noting the ids skipped), or a late one."""
        if message_id <= after:
            return self._since.pop(message_id, None) is not None
        if message_id - after - 1 <= MAX_GAP:
            self._since.update(dict.fromkeys(range(after + 1, message_id), time.monotonic()))
        return True

    def ids(self) -> list[int]:
        deadline = time.monotonic() - LATE_COMMIT_SECONDS
        for message_id in [i for i, since in self._since.items() if since < deadline]:
            del self._since[message_id]
        return sorted(self._since)


# The stream's reads of the table run in a thread of their own that keeps its connection: not
# behind the requests Django serves in its thread-sensitive executor (ingest, pages), and without
# taking a connection from the pool and setting it up again for every read, which under load cost
# more than the query. A read that fails drops the connection; the next read opens another.
_reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="live-reader")


async def _read_table(fn, *args):
    return await asyncio.get_running_loop().run_in_executor(_reader, _read_keeping_the_connection, fn, args)


def _read_keeping_the_connection(fn, args):
    try:
        return fn(*args)
    except DatabaseErrors:
        connection.close()
        raise


_hubs: dict[asyncio.AbstractEventLoop, _Hub] = {}


def _hub() -> _Hub:
    return _hubs.setdefault(asyncio.get_running_loop(), _Hub())


class LiveConsumer(AsyncWebsocketConsumer):
    # No channel of its own: the hub listens for the signals (a layer alias that names no layer).
    channel_layer_alias = "live-consumers-use-the-hub"

    async def connect(self):
        role = await database_sync_to_async(role_of)(self.scope.get("user"))
        if role == Role.NONE:
            await self._refuse(4401 if not _authenticated(self.scope) else 4403)
            return
        client = _client(self.scope)
        if _sockets[client] >= settings.LIVE_MAX_SOCKETS_PER_CLIENT:
            await self._refuse(4429, f"over LIVE_MAX_SOCKETS_PER_CLIENT ({settings.LIVE_MAX_SOCKETS_PER_CLIENT})")
            return
        _sockets[client] += 1  # counted before the next await: concurrent handshakes see it
        self.client = client
        try:
            await self._start()
        except BaseException:
            self._uncount()
            raise

    async def _refuse(self, code: int, reason: str = "") -> None:
        # Accepted first: a close before the handshake would be a bare HTTP 403, without the reason.
        await self.accept()
        await self.close(code=code, reason=reason)

    def _uncount(self) -> None:
        client, self.client = getattr(self, "client", None), None
        if client is not None:
            _sockets[client] -= 1
            if _sockets[client] <= 0:
                del _sockets[client]

    async def _start(self) -> None:
        self.topics: frozenset[str] = frozenset(TOPICS)
        self.source_id: int | None = None
        self.incident_id: int | None = None
        self.after = await _read_table(newest_id)
        # Batches the hub read, waiting to be sent; a client too slow to keep up is not buffered for:
        # its inbox is emptied and it catches up from the table at its own pace.
        self.inbox: asyncio.Queue[list[dict]] = asyncio.Queue(maxsize=settings.LIVE_INBOX_BATCHES)
        self.catching_up = False
        self.gaps = _Gaps()  # ids it went past before their message was there: sent when it is
        self.newest_update: dict[str, int] = {}  # the id of each incident's newest update handled
        self.sent_at: dict[str, float] = {}  # when each incident's last update went out
        self.held: dict[str, dict] = {}  # the newest update of an incident waiting for its turn
        await self.accept()
        await _hub().join(self)
        self.sender = asyncio.create_task(self._send_forever())

    async def disconnect(self, code):
        self._uncount()
        sender = getattr(self, "sender", None)
        if sender is not None:
            _hub().leave(self)
            sender.cancel()

    async def receive(self, text_data=None, bytes_data=None):
        raw = text_data if text_data is not None else bytes_data
        if len(raw) > MAX_FRAME_BYTES:
            await self.close(code=1009)  # message too big
            return
        try:
            frame = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            await self._error("frame", "must be a JSON object")
            return
        if not isinstance(frame, dict) or frame.get("type") != "subscribe":
            await self._error("type", 'the only frame a client sends is {"type": "subscribe", ...}')
            return
        await self._subscribe(frame)

    def offer(self, rows: list[dict]) -> None:
        """Take a batch from the hub; when too many wait, drop them and catch up from the table instead."""
        try:
            self.inbox.put_nowait(rows)
        except asyncio.QueueFull:
            while not self.inbox.empty():
                self.inbox.get_nowait()
            self.catching_up = True
            LIVE_CATCH_UPS.inc()
            self.inbox.put_nowait([])  # wakes the sender

    async def _subscribe(self, frame: dict) -> None:
        problem = await database_sync_to_async(_subscription_problem)(frame, self.scope.get("user"))
        if problem:
            await self._error(*problem)
            return
        topics = frame.get("topics") or ["*"]
        self.topics = frozenset(TOPICS) if "*" in topics else frozenset(topics)
        self.source_id = await database_sync_to_async(_source_id)(frame.get("source"))
        self.incident_id = frame.get("incident")
        if frame.get("after") is not None:
            self.after = frame["after"]
            self.catching_up = True  # replay from the table what came after it
            self.offer([])
        await self.send(text_data=json.dumps({"type": "subscribed", "after": self.after}))

    async def _send_forever(self) -> None:
        while True:
            try:
                rows = await asyncio.wait_for(self.inbox.get(), timeout=0 if self.catching_up else self._next_due())
            except TimeoutError:
                rows = []
            try:
                await self._catch_up()
            except Exception:
                # Still behind: the next turn reads the table again, and the hub's batches wait for it.
                logger.warning("could not read live messages for a connection; trying again", exc_info=True)
                self.catching_up = True
                await asyncio.sleep(POLL_SECONDS)  # a back-off, not a synchronisation
                continue
            await self._send(rows, coalesce=True)
            await self._send_held_when_due()

    async def _catch_up(self) -> None:
        while self.catching_up:  # a replay is exact: every message, none held back
            self.catching_up = False
            backlog = await _read_table(_rows_after, self.after, BATCH, self.gaps.ids())
            await self._send(backlog, coalesce=False)
            self.catching_up = self.catching_up or len(backlog) == BATCH

    async def _send(self, rows: list[dict], *, coalesce: bool) -> None:
        for row in rows:
            if not self.gaps.admit(self.after, row["id"]):
                continue  # sent already: the table and the hub both brought it
            self.after = max(self.after, row["id"])
            if not self._wants(row) or self._superseded(row) or (coalesce and self._hold(row)):
                continue
            await self.send(text_data=json.dumps(_frame(row)))

    def _superseded(self, row: dict) -> bool:
        """An incident update older than one already handled (it committed late): the newer state stands."""
        if row["topic"] != "incident.updated":
            return False
        if len(self.newest_update) >= UPDATES_REMEMBERED and row["key"] not in self.newest_update:
            self._forget_quiet_incidents()
        newest = self.newest_update.get(row["key"], 0)
        self.newest_update[row["key"]] = max(newest, row["id"])
        return row["id"] < newest

    def _forget_quiet_incidents(self) -> None:
        """Keep the coalescing state of the incidents with an update waiting; a dashboard open for
        days would otherwise remember every incident it ever heard of."""
        self.newest_update = {key: self.newest_update[key] for key in self.held}
        self.sent_at = {key: self.sent_at[key] for key in self.held}

    def _hold(self, row: dict) -> bool:
        """Hold an incident update that follows another within COALESCE_SECONDS; a later one replaces it."""
        if row["topic"] != "incident.updated":
            return False
        now = time.monotonic()
        if now - self.sent_at.get(row["key"], 0.0) < COALESCE_SECONDS:
            self.held[row["key"]] = row
            return True
        self.sent_at[row["key"]] = now
        self.held.pop(row["key"], None)  # superseded by this one
        return False

    async def _send_held_when_due(self) -> None:
        now = time.monotonic()
        for key, row in list(self.held.items()):
            if row["id"] < self.newest_update.get(key, 0):
                del self.held[key]  # a newer state went out meanwhile, replayed whole
            elif now - self.sent_at[key] >= COALESCE_SECONDS:
                del self.held[key]
                self.sent_at[key] = now
                await self.send(text_data=json.dumps(_frame(row)))

    def _next_due(self) -> float | None:
        if not self.held:
            return None
        return max(0.0, min(self.sent_at[key] for key in self.held) + COALESCE_SECONDS - time.monotonic())

    def _wants(self, row: dict) -> bool:
        if row["topic"].split(".", 1)[0] not in self.topics:
            return False
        if self.incident_id is not None and row["incident_id"] != self.incident_id:
            return False
        return self.source_id is None or row["source_id"] == self.source_id

    async def _error(self, field: str, message: str) -> None:
        await self.send(text_data=json.dumps({"type": "error", "field": field, "error": message}))


# Open live sockets of each client in this process (see _client), for LIVE_MAX_SOCKETS_PER_CLIENT.
_sockets: collections.Counter[str] = collections.Counter()


def _client(scope) -> str:
    """Whom a socket counts against: its API token, or its user when it came with a session."""
    token_id = scope.get("api_token_id")
    return f"token:{token_id}" if token_id is not None else f"user:{scope['user'].pk}"


def _authenticated(scope) -> bool:
    user = scope.get("user")
    return user is not None and user.is_authenticated


def _rows_after(after: int, limit: int, also: list[int] = ()) -> list[dict]:
    """The messages after `after` (and those of the ids `also`), in id order."""
    fields = ("id", "topic", "key", "payload", "created_at", "source_id", "incident_id")
    wanted = Q(id__gt=after) | Q(id__in=also) if also else Q(id__gt=after)
    return list(LiveMessage.objects.filter(wanted).order_by("id").values(*fields)[:limit])


def _frame(row: dict) -> dict:
    return {
        "type": "message",
        "id": row["id"],
        "topic": row["topic"],
        "key": row["key"],
        "payload": row["payload"],
        "at": row["created_at"].isoformat(),
    }


def _subscription_problem(frame: dict, user) -> tuple[str, str] | None:
    """The (field, message) of the first thing wrong with a subscription, or None."""
    topics = frame.get("topics", ["*"])
    if not isinstance(topics, list) or not all(isinstance(topic, str) for topic in topics):
        return "topics", 'must be a list of topic names, e.g. ["incident", "breaker"]'
    unknown = sorted(set(topics) - set(TOPICS) - {"*"})
    if unknown:
        return "topics", f"unknown topics {unknown}; use any of {list(TOPICS)} or ['*']"
    after = frame.get("after")
    if after is not None and (type(after) is not int or after < 0):
        return "after", "must be the id of the last message seen (a whole number >= 0)"
    incident = frame.get("incident")
    if incident is not None and (type(incident) is not int or not Incident.objects.filter(pk=incident).exists()):
        return "incident", "no such incident"  # also what one outside the user's reach would get
    source = frame.get("source")
    if source is not None and (not isinstance(source, str) or not Source.objects.filter(slug=source).exists()):
        return "source", "no such source"
    return None


def _source_id(slug: str | None) -> int | None:
    return Source.objects.filter(slug=slug).values_list("id", flat=True).first() if slug else None
