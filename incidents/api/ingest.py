"""Ingest endpoints: the native JSON API and the Sentry-compatible store and envelope.

These are plain Django views rather than DRF ones: they are the hot path, and
each does only authentication, limits, parsing and one durable INSERT.
"""

import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from incidents import services
from incidents.ingest.decoding import read_body
from incidents.ingest.errors import IngestError
from incidents.ingest.native import parse_native
from incidents.ingest.normalize import normalize_native_event, normalize_sentry_event
from incidents.ingest.sentry import key_from_dsn, parse_auth_header, parse_envelope, parse_store
from incidents.models import IngestKey, Source
from incidents.quotas import quota_consume

_CORS = {"Access-Control-Allow-Origin": "*"}  # browser SDKs post cross-origin with the key in the URL


def _error_response(error: IngestError) -> JsonResponse:
    response = JsonResponse(error.as_dict(), status=error.status, headers=_CORS)
    if error.status == 429:
        retry_after = str(error.retry_after)
        response["Retry-After"] = retry_after
        response["X-Sentry-Rate-Limits"] = f"{retry_after}::key"
    return response


def _handles_ingest_errors(view: Callable) -> Callable:
    def wrapper(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except IngestError as error:
            return _error_response(error)

    wrapper.__name__ = view.__name__
    wrapper.__doc__ = view.__doc__
    return csrf_exempt(require_POST(wrapper))


# Keys are looked up at most once a second per process: revoking a key or editing a source
# reaches every web process within a second, and the hot path saves a query per request.
KEY_CACHE_SECONDS = 1.0
_key_cache: dict[str, tuple[float, IngestKey | None]] = {}


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


def _sentry_key(request: HttpRequest) -> str | None:
    header = request.headers.get("X-Sentry-Auth") or request.headers.get("Authorization", "")
    if header.lower().startswith("sentry "):
        return parse_auth_header(header).get("sentry_key")
    return request.GET.get("sentry_key")


def _read(request: HttpRequest) -> bytes:
    length = request.headers.get("Content-Length")
    return read_body(
        request,
        content_length=int(length) if length and length.isdigit() else None,
        content_encoding=request.headers.get("Content-Encoding"),
        max_compressed=settings.INGEST_MAX_COMPRESSED_BYTES,
        max_decompressed=settings.INGEST_MAX_DECOMPRESSED_BYTES,
    )


def _accept(source: Source, events: list[dict]) -> list:
    """Check the source's environments and quota, then store the events."""
    for index, event in enumerate(events):
        if not source.accepts_environment(event["environment"]):
            field = f"events[{index}].environment" if len(events) > 1 else "environment"
            raise IngestError(
                400, field, f"{event['environment']!r} is not one of this source's environments {source.environments}"
            )
    retry_after = quota_consume(source_id=source.pk, limit_per_minute=source.effective_rate_limit, amount=len(events))
    if retry_after is not None:
        limit = source.effective_rate_limit
        raise IngestError(429, "source", f"rate limit of {limit} events per minute exceeded", retry_after=retry_after)
    if events:
        services.events_store(source=source, events=events, received_at=timezone.now())
    return [event["event_id"] for event in events]


@_handles_ingest_errors
def sentry_envelope(request: HttpRequest, source_id: int) -> JsonResponse:
    """Accept a Sentry envelope; items other than events are skipped."""
    public_key = _sentry_key(request)
    source = _authenticate(public_key, source_id) if public_key else None
    envelope = parse_envelope(_read(request), max_events=settings.INGEST_MAX_BATCH_EVENTS)
    if source is None:
        dsn_key = key_from_dsn(envelope.headers.get("dsn", ""))
        source = _authenticate(dsn_key[0] if dsn_key else None, source_id)
    received_at = timezone.now()
    events = [normalize_sentry_event(raw, received_at=received_at) for raw in envelope.events]
    ids = _accept(source, events)
    event_id = ids[0] if ids else envelope.headers.get("event_id")
    return JsonResponse({"id": _hex(event_id)}, headers=_CORS)


@_handles_ingest_errors
def sentry_store(request: HttpRequest, source_id: int) -> JsonResponse:
    """Accept one event in the legacy store format."""
    source = _authenticate(_sentry_key(request), source_id)
    raw = parse_store(_read(request), max_decompressed=settings.INGEST_MAX_DECOMPRESSED_BYTES)
    event = normalize_sentry_event(raw, received_at=timezone.now())
    ids = _accept(source, [event])
    return JsonResponse({"id": _hex(ids[0])}, headers=_CORS)


@_handles_ingest_errors
def native_events(request: HttpRequest) -> JsonResponse:
    """Accept one event or a batch in the console's own JSON format."""
    authorization = request.headers.get("Authorization", "")
    public_key = authorization[7:].strip() if authorization.lower().startswith("bearer ") else None
    source = _authenticate(public_key, None)
    raw_events = parse_native(_read(request), max_events=settings.INGEST_MAX_BATCH_EVENTS)
    received_at = timezone.now()
    prefix = len(raw_events) > 1
    events = [
        normalize_native_event(raw, received_at=received_at, field_prefix=f"events[{i}]." if prefix else "")
        for i, raw in enumerate(raw_events)
    ]
    ids = _accept(source, events)
    if len(ids) == 1:
        return JsonResponse({"id": _hex(ids[0])})
    return JsonResponse({"ids": [_hex(event_id) for event_id in ids]})


def _hex(event_id) -> str | None:
    if event_id is None:
        return None
    return getattr(event_id, "hex", str(event_id).replace("-", ""))
