"""ASGI middleware in front of Django: ingest keys and body limits first, and the ingest fast path.

Django's ASGIHandler reads a whole request body, spooling it to a temporary file, before any
view runs: an unauthenticated 1.5 GiB upload was stored and only then answered 401. This
middleware runs in front of it. For the URLs that take ingest keys it checks the key in the
headers or query, and the declared Content-Length, before reading a byte; then, for every HTTP
request, it reads the body itself, counting what arrives (chunked bodies too), and refuses as
soon as it passes the limit or stops arriving for HTTP_BODY_TIMEOUT_SECONDS. Refusals close the
connection, so the server stops reading the rest of the upload.

The three event endpoints are then answered right here, on the event loop, by the same endpoint
code Django's views run (`ingest_async`): Django's handler, URL resolver, middleware and the hop
to its sync thread cost more than the whole endpoint, and none of them does anything for
requests that ingest keys, not sessions or CSRF tokens, authenticate. Every other request, a
body within the limit, is handed to Django whole.
"""

import asyncio
import dataclasses
import io
import json
import logging
import re
from dataclasses import dataclass
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import SynchronousOnlyOperation

from incidents.ingest.decoding import MAX_REPORT_BODY_BYTES, body_too_long, check_declared_length
from incidents.ingest.endpoints import IngestRequest, authenticate_headers, error_response, ingest_async
from incidents.ingest.errors import IngestError

logger = logging.getLogger(__name__)

_SENTRY_PATH = re.compile(r"/api/(?P<source_id>[0-9]+)/(?P<endpoint>envelope|store)/")
_NATIVE_EVENTS_PATH = "/api/v1/events/"
# POSTs that take `Authorization: Bearer <ingest key>`: the native events and the endpoints
# for services that report with their source's key.
_BEARER_PATHS = (
    _NATIVE_EVENTS_PATH,
    "/api/v1/heartbeat/",
    "/api/v1/resilience/transitions/",
    "/api/v1/resilience/windows/",
)


@dataclass(frozen=True)
class _Guard:
    """What a request must pass: an ingest endpoint's key check (None for none), its source, and a body limit;
    and whether this middleware answers it itself (the event endpoints)."""

    endpoint: str | None
    source_id: int | None
    limit: int | None
    answer_here: bool = False


def _guard_for(scope: dict) -> _Guard:
    path, post = scope["path"], scope["method"] == "POST"
    if post and (match := _SENTRY_PATH.fullmatch(path)):
        return _Guard(match["endpoint"], int(match["source_id"]), settings.INGEST_MAX_COMPRESSED_BYTES, True)
    if post and path in _BEARER_PATHS:
        if path == _NATIVE_EVENTS_PATH:
            return _Guard("native", None, settings.INGEST_MAX_COMPRESSED_BYTES, True)
        return _Guard("native", None, MAX_REPORT_BODY_BYTES)  # the native endpoint's Bearer check
    # Everything else is a form or a JSON API call, which Django refuses over this size anyway.
    return _Guard(None, None, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)


def _ingest_request(scope: dict) -> IngestRequest:
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]},{text}" if key in headers else text  # repeats joined, as Django does
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    length = headers.get("content-length", "")
    return IngestRequest(
        header=lambda name: headers.get(name.lower()),
        query=lambda name: query[name][-1] if name in query else None,
        stream=None,
        content_length=int(length) if length.isdigit() else None,
    )


def _authenticate(guard: _Guard, request: IngestRequest) -> None:
    signals.request_started.send(sender=BodyLimits)  # database connections are handled as for a request
    try:
        authenticate_headers(guard.endpoint, request, guard.source_id)
    finally:
        signals.request_finished.send(sender=BodyLimits)


async def _read_within(receive, limit: int) -> dict | None:
    """Read the whole body as one message, raising 413 once it passes the limit; None if the client left.

    A body that is not complete within HTTP_BODY_TIMEOUT_SECONDS is a 408: a client sending a byte
    now and then must not hold a connection, and the memory of its body so far, for ever.
    """
    try:
        async with asyncio.timeout(settings.HTTP_BODY_TIMEOUT_SECONDS):
            return await _read_all(receive, limit)
    except TimeoutError:
        seconds = settings.HTTP_BODY_TIMEOUT_SECONDS
        raise IngestError(408, "body", f"the body was not complete within {seconds:g} s") from None


async def _read_all(receive, limit: int) -> dict | None:
    chunks, received = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        received += len(chunk)
        if received > limit:
            raise body_too_long(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}


async def _refuse(send, endpoint: str | None, error: IngestError) -> None:
    if endpoint is None:
        status, body, headers = error.status, error.as_dict(), {}
    else:
        response = error_response(endpoint, error)
        status, body, headers = response.status, response.body, response.headers
    # The rest of the body is not wanted: the server closes the connection instead of reading it.
    await _respond(send, status, body, headers, close=True)


async def _respond(send, status: int, body: dict, headers: dict[str, str], *, close: bool = False) -> None:
    payload = json.dumps(body).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        *([(b"connection", b"close")] if close else []),
        *((name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload})


class BodyLimits:
    """Refuse unauthenticated ingest requests and over-limit or late bodies before Django reads them;
    answer the event endpoints without Django."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.application(scope, receive, send)
        guard = _guard_for(scope)
        if guard.limit is None:
            return await self.application(scope, receive, send)
        request = _ingest_request(scope)
        try:
            if guard.endpoint is not None:  # first, as the endpoint does: a stranger learns nothing of the limits
                await self._check_key(guard, request)
            check_declared_length(request.content_length, guard.limit)
            message = await _read_within(receive, guard.limit)
        except IngestError as error:
            return await _refuse(send, guard.endpoint, error)
        if message is None:
            return None  # the client went away before sending its whole body: nobody to answer
        if guard.answer_here:
            return await self._ingest(guard, request, message["body"], send)
        return await self.application(scope, _replay(message, receive), send)

    @staticmethod
    async def _ingest(guard: _Guard, request: IngestRequest, body: bytes, send) -> None:
        request = dataclasses.replace(request, stream=io.BytesIO(body), content_length=len(body))
        try:
            response = await ingest_async(guard.endpoint, request, guard.source_id)
        except Exception:
            logger.exception("Internal Server Error: ingest (%s)", guard.endpoint)
            body, status = {"error": "internal error; the event was not stored", "field": "body"}, 500
            return await _respond(send, status, body, {})
        await _respond(send, response.status, response.body, response.headers)

    @staticmethod
    async def _check_key(guard: _Guard, request: IngestRequest) -> None:
        try:
            try:
                # A key used within the last second is in the key cache and is checked right here; only a
                # lookup goes to a thread (Django refuses database access on the loop before any I/O). A hop
                # onto Django's one sync thread for every request cut the ingest rate by a third.
                authenticate_headers(guard.endpoint, request, guard.source_id)
            except SynchronousOnlyOperation:
                await sync_to_async(_authenticate)(guard, request)
        except IngestError:
            raise
        except Exception:
            # The key could not be looked up (the database, say): the endpoint answers that itself,
            # and the body is still read only up to the limit.
            logger.warning("checking the ingest key before reading the body failed", exc_info=True)


def _replay(message: dict, receive):
    """A receive that gives the body read so far, then whatever the server sends next (a disconnect)."""
    pending = [message]

    async def replay():
        return pending.pop() if pending else await receive()

    return replay
