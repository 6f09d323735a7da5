"""Ingest endpoints: the native JSON API and the Sentry-compatible store and envelope.

The hot path. Each endpoint does only authentication, limits, parsing, classification and
one durable INSERT, and is written against `IngestRequest` rather than Django's HttpRequest,
so that it runs both as a Django view (the URLconf, tests) and on the web server's event loop
in front of Django (`ingest_async`, called by incidents.ingest.asgi), where the events of
concurrent requests are committed together (incidents.ingest.writer).
"""

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import SynchronousOnlyOperation
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from incidents.health.metrics import INGEST_LATENCY
from incidents.ingest import pipeline
from incidents.ingest.classification import classify_and_group
from incidents.ingest.decoding import read_body
from incidents.ingest.errors import IngestError
from incidents.ingest.native import parse_native
from incidents.ingest.normalize import normalize_native_event, normalize_sentry_event
from incidents.ingest.quotas import quota_consume
from incidents.ingest.sentry import key_from_dsn, parse_auth_header, parse_envelope, parse_store
from incidents.ingest.storage import EventWrite
from incidents.ingest.unavailable import DATABASE_ERRORS, unavailable_error, unavailable_headers
from incidents.ingest.writer import event_writer
from incidents.models import IngestKey, Source


@dataclass(frozen=True)
class IngestRequest:
    """What an ingest endpoint reads of a request, whichever server delivered it."""

    header: Callable[[str], str | None]  # by HTTP name, e.g. "X-Sentry-Auth"
    query: Callable[[str], str | None]
    stream: BinaryIO
    content_length: int | None


@dataclass(frozen=True)
class IngestResponse:
    status: int
    body: dict
    headers: dict[str, str]


_CORS = {"Access-Control-Allow-Origin": "*"}  # browser SDKs post cross-origin with the key in the URL


def _error_response(error: IngestError, cors: bool) -> IngestResponse:
    headers = dict(_CORS) if cors else {}
    if error.status == 429:
        headers["Retry-After"] = str(error.retry_after)
        headers["X-Sentry-Rate-Limits"] = f"{error.retry_after}::key"
    elif error.status == 503:  # the database is unavailable
        headers.update(unavailable_headers(sentry=cors))
    return IngestResponse(error.status, error.as_dict(), headers)


# Keys are looked up at most once a second per process: revoking a key or editing a source
# reaches every web process within a second, and the hot path saves a query per request.
KEY_CACHE_SECONDS = 1.0
_key_cache: dict[str, tuple[float, IngestKey | None]] = {}


def forget_keys() -> None:
    """Drop the cached keys, so the next request of each key reads it from the database again."""
    _key_cache.clear()


def _lookup_key(public_key: str) -> IngestKey | None:
    now = time.monotonic()
    cached = _key_cache.get(public_key)
    if cached and cached[0] > now:
        return cached[1]
    key = IngestKey.objects.select_related("source").filter(public_key=public_key).first()
    if len(_key_cache) > 10_000:
        _key_cache.clear()  # bounded: a flood of made-up keys must not grow memory
    _key_cache[public_key] = (now + KEY_CACHE_SECONDS, key)
    return key


def source_for_bearer_key(authorization: str | None) -> Source:
    """The source an `Authorization: Bearer <ingest key>` header stands for; IngestError 401/403 otherwise."""
    authorization = authorization or ""
    public_key = authorization[7:].strip() if authorization.lower().startswith("bearer ") else None
    return _authenticate(public_key, None)


def _authenticate(public_key: str | None, source_id: int | None) -> Source:
    """Return the source the key may send to, or raise 401 for no or unknown keys and 403 for refused ones."""
    if not public_key:
        raise IngestError(401, "sentry_key", "an ingest key is required (X-Sentry-Auth, sentry_key or Bearer)")
    key = _lookup_key(public_key)
    if key is None:
        raise IngestError(401, "sentry_key", "unknown ingest key")
    if source_id is not None and key.source_id != source_id:
        raise IngestError(403, "sentry_key", f"this key does not belong to source {source_id}")
    if not key.is_usable():
        raise IngestError(403, "sentry_key", "this ingest key has been revoked or has expired")
    if not key.source.is_active:
        raise IngestError(403, "source", "this source is disabled")
    return key.source


def _sentry_key(request: IngestRequest) -> str | None:
    header = request.header("X-Sentry-Auth") or request.header("Authorization") or ""
    if header.lower().startswith("sentry "):
        return parse_auth_header(header).get("sentry_key")
    return request.query("sentry_key")


def _read(request: IngestRequest) -> bytes:
    return read_body(
        request.stream,
        content_length=request.content_length,
        content_encoding=request.header("Content-Encoding"),
        max_compressed=settings.INGEST_MAX_COMPRESSED_BYTES,
        max_decompressed=settings.INGEST_MAX_DECOMPRESSED_BYTES,
    )


@dataclass(frozen=True)
class Admitted:
    """A request that passed every check: the events to store (classified) and the answer once they are."""

    write: EventWrite
    body: dict


def _admit(source: Source, events: list[dict], received_at) -> EventWrite:
    """Check the source's environments, classify the events, then count them against the source's quota.

    The quota comes last: every step before it only reads (caches, or the database when they are
    stale), so the fast path may run it again in a thread when a cache needs the database.
    """
    for index, event in enumerate(events):
        if not source.accepts_environment(event["environment"]):
            field = f"events[{index}].environment" if len(events) > 1 else "environment"
            raise IngestError(
                400, field, f"{event['environment']!r} is not one of this source's environments {source.environments}"
            )
    classified = [classify_and_group(event) for event in events]
    retry_after = quota_consume(source_id=source.pk, limit_per_minute=source.effective_rate_limit, amount=len(events))
    if retry_after is not None:
        limit = source.effective_rate_limit
        raise IngestError(429, "source", f"rate limit of {limit} events per minute exceeded", retry_after=retry_after)
    return EventWrite(source.pk, classified, received_at)


def _sentry_envelope(request: IngestRequest, source_id: int) -> Admitted:
    """Accept a Sentry envelope; items other than events are skipped."""
    public_key = _sentry_key(request)
    source = _authenticate(public_key, source_id) if public_key else None
    envelope = parse_envelope(_read(request), max_events=settings.INGEST_MAX_BATCH_EVENTS)
    if source is None:
        dsn_key = key_from_dsn(envelope.headers.get("dsn", ""))
        source = _authenticate(dsn_key[0] if dsn_key else None, source_id)
    received_at = timezone.now()
    events = [normalize_sentry_event(raw, received_at=received_at) for raw in envelope.events]
    first_id = events[0]["event_id"] if events else envelope.headers.get("event_id")
    return Admitted(_admit(source, events, received_at), {"id": _hex(first_id)})


def _sentry_store(request: IngestRequest, source_id: int) -> Admitted:
    """Accept one event in the legacy store format."""
    source = _authenticate(_sentry_key(request), source_id)
    raw = parse_store(_read(request), max_decompressed=settings.INGEST_MAX_DECOMPRESSED_BYTES)
    received_at = timezone.now()
    event = normalize_sentry_event(raw, received_at=received_at)
    return Admitted(_admit(source, [event], received_at), {"id": _hex(event["event_id"])})


def _native_events(request: IngestRequest, source_id: None = None) -> Admitted:
    """Accept one event or a batch in the console's own JSON format."""
    source = source_for_bearer_key(request.header("Authorization"))
    raw_events = parse_native(_read(request), max_events=settings.INGEST_MAX_BATCH_EVENTS)
    received_at = timezone.now()
    prefix = len(raw_events) > 1
    events = [
        normalize_native_event(raw, received_at=received_at, field_prefix=f"events[{i}]." if prefix else "")
        for i, raw in enumerate(raw_events)
    ]
    ids = [event["event_id"] for event in events]
    body = {"id": _hex(ids[0])} if len(ids) == 1 else {"ids": [_hex(event_id) for event_id in ids]}
    return Admitted(_admit(source, events, received_at), body)


def _hex(event_id) -> str | None:
    if event_id is None:
        return None
    return getattr(event_id, "hex", str(event_id).replace("-", ""))


# endpoint name -> (handler, whether browsers may call it cross-origin)
ENDPOINTS: dict[str, tuple[Callable[..., Admitted], bool]] = {
    "envelope": (_sentry_envelope, True),
    "store": (_sentry_store, True),
    "native": (_native_events, False),
}


def ingest(endpoint: str, request: IngestRequest, source_id: int | None = None) -> IngestResponse:
    """Run an ingest endpoint, storing on this thread's connection (Django's views, tests).

    Bad input is its 4xx answer, an unavailable database 503, anything else propagates.
    """
    handler, cors = ENDPOINTS[endpoint]
    started = time.perf_counter()
    try:
        admitted = handler(request, source_id)
        if admitted.write.events:
            pipeline.classified_events_store(admitted.write)
    except IngestError as error:
        return _error_response(error, cors)
    except DATABASE_ERRORS as exc:  # nothing was stored: the client should send it again later
        return _error_response(unavailable_error(exc, where=f"ingest ({endpoint})"), cors)
    finally:
        INGEST_LATENCY.labels(endpoint).observe(time.perf_counter() - started)
    return IngestResponse(200, admitted.body, dict(_CORS) if cors else {})


async def ingest_async(endpoint: str, request: IngestRequest, source_id: int | None = None) -> IngestResponse:
    """Run an ingest endpoint on the event loop, its events stored by the group-commit writer.

    Parsing and checking run right here: they are CPU work, and a hop to a thread per request
    would cost more than it frees. Only when a cache needs the database (a key or the rules,
    at most once a second each) does the request run in a thread instead.
    """
    handler, cors = ENDPOINTS[endpoint]
    started = time.perf_counter()
    try:
        try:
            admitted = handler(request, source_id)
        except SynchronousOnlyOperation:
            request.stream.seek(0)
            admitted = await sync_to_async(_admit_in_thread, thread_sensitive=False)(handler, request, source_id)
        if admitted.write.events:
            await asyncio.wrap_future(event_writer.submit(admitted.write))
    except IngestError as error:
        return _error_response(error, cors)
    except DATABASE_ERRORS as exc:
        return _error_response(unavailable_error(exc, where=f"ingest ({endpoint})"), cors)
    finally:
        INGEST_LATENCY.labels(endpoint).observe(time.perf_counter() - started)
    return IngestResponse(200, admitted.body, dict(_CORS) if cors else {})


def _admit_in_thread(handler: Callable[..., Admitted], request: IngestRequest, source_id: int | None) -> Admitted:
    """Run the checks where the database may be used; the thread's connection goes back to the pool after."""
    signals.request_started.send(sender=ingest_async)
    try:
        return handler(request, source_id)
    finally:
        signals.request_finished.send(sender=ingest_async)


def authenticate_headers(endpoint: str, request: IngestRequest, source_id: int | None = None) -> None:
    """Refuse (IngestError 401/403) a request whose headers and query hold no usable key, before reading its body.

    An envelope without a key there may name one in its own `dsn` header, known only once the body is read.
    """
    try:
        if endpoint == "native":
            source_for_bearer_key(request.header("Authorization"))
        elif (public_key := _sentry_key(request)) or endpoint == "store":
            _authenticate(public_key, source_id)
    except DATABASE_ERRORS as exc:  # answered 503 at once, not again after the body is read
        raise unavailable_error(exc, where=f"ingest key check ({endpoint})") from exc


def error_response(endpoint: str, error: IngestError) -> IngestResponse:
    """The answer the endpoint gives for the error, with its CORS and rate-limit headers."""
    return _error_response(error, ENDPOINTS[endpoint][1])


def _django_view(endpoint: str) -> Callable:
    def view(request: HttpRequest, source_id: int | None = None) -> JsonResponse:
        length = request.headers.get("Content-Length")
        ingest_request = IngestRequest(
            header=request.headers.get,
            query=request.GET.get,
            stream=request,
            content_length=int(length) if length and length.isdigit() else None,
        )
        response = ingest(endpoint, ingest_request, source_id)
        return JsonResponse(response.body, status=response.status, headers=response.headers)

    view.__name__ = f"ingest_{endpoint}"
    view.__doc__ = ENDPOINTS[endpoint][0].__doc__
    return csrf_exempt(require_POST(view))


sentry_envelope = _django_view("envelope")
sentry_store = _django_view("store")
native_events = _django_view("native")
