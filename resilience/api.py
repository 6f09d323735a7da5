"""Endpoints for processes that run the resilience runtime away from the console's database.

    GET  /api/v1/resilience/config/       the config snapshot; ETag, 304 on If-None-Match
    POST /api/v1/resilience/transitions/  {"transitions": [...]} a client's breaker transitions
    POST /api/v1/resilience/windows/      {"process": ..., "windows": [...]} its breakers' window figures

Both take `Authorization: Bearer <ingest key>`: a service already holds its source's key
to report errors, and transitions become events of that source.
"""

from datetime import UTC, datetime

from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from incidents.api.ingest import source_for_bearer_key
from incidents.ingest.decoding import decode_json
from incidents.ingest.errors import IngestError
from resilience.live import config_version
from resilience.models import BreakerState
from resilience.reporting import config_snapshot, transition_record, windows_record

MAX_TRANSITIONS = 100
MAX_WINDOWS = 1000
MAX_COUNT = 2**31 - 1
MAX_BODY_BYTES = 256 * 1024
_STATES = set(BreakerState.State.values)
_MODES = set(BreakerState.Mode.values)


def _error(error: IngestError) -> JsonResponse:
    return JsonResponse(error.as_dict(), status=error.status)


@require_GET
def config(request: HttpRequest) -> HttpResponse:
    """The snapshot every Runtime applies; cheap to poll with If-None-Match."""
    try:
        source_for_bearer_key(request.headers.get("Authorization"))
    except IngestError as error:
        return _error(error)
    etag = f'"resilience-config-{config_version()}"'
    if request.headers.get("If-None-Match") == etag:
        return HttpResponse(status=304, headers={"ETag": etag})
    snapshot = config_snapshot()
    # The snapshot's own version may be newer than the ETag read above; name it by what it holds.
    etag = f'"resilience-config-{snapshot["version"]}"'
    return JsonResponse(snapshot, headers={"ETag": etag, "Cache-Control": "no-cache"})


@csrf_exempt
@require_POST
def transitions(request: HttpRequest) -> JsonResponse:
    """Record a client's transitions: each in its breaker's history and as an event of the key's source."""
    try:
        source = source_for_bearer_key(request.headers.get("Authorization"))
        if len(request.body) > MAX_BODY_BYTES:
            raise IngestError(413, "body", f"body is over the limit of {MAX_BODY_BYTES} bytes")
        parsed = [_transition(entry, index) for index, entry in enumerate(_entries(decode_json(request.body, "body")))]
    except IngestError as error:
        return _error(error)
    with transaction.atomic():  # all of them or, if storing fails, none
        for entry in parsed:
            transition_record(source=source, **entry)
    return JsonResponse({"recorded": len(parsed)})


def _entries(payload) -> list:
    entries = payload.get("transitions") if isinstance(payload, dict) else None
    if not isinstance(entries, list) or not entries:
        raise IngestError(400, "transitions", "must be a non-empty list of transitions")
    if len(entries) > MAX_TRANSITIONS:
        raise IngestError(400, "transitions", f"{len(entries)} transitions is over the limit of {MAX_TRANSITIONS}")
    return entries


def _transition(entry, index: int) -> dict:
    """Check one transition, naming the field at fault; nothing is recorded unless all are valid."""
    prefix = f"transitions[{index}]"
    if not isinstance(entry, dict):
        raise IngestError(400, prefix, "must be an object")
    name = entry.get("breaker")
    _breaker_name(name, f"{prefix}.breaker")
    for field in ("from_state", "to_state"):
        if entry.get(field) not in _STATES:
            raise IngestError(400, f"{prefix}.{field}", f"must be one of {sorted(_STATES)}")
    mode = entry.get("mode", "auto")
    if mode not in _MODES:
        raise IngestError(400, f"{prefix}.mode", f"must be one of {sorted(_MODES)}")
    generation, at = entry.get("generation", 0), entry.get("at")
    if not isinstance(generation, int) or isinstance(generation, bool) or generation < 0:
        raise IngestError(400, f"{prefix}.generation", "must be an integer >= 0")
    if not isinstance(at, int | float) or isinstance(at, bool) or not 0 < at < 32503680000:
        raise IngestError(400, f"{prefix}.at", "must be epoch seconds")
    reason, process = entry.get("reason", ""), entry.get("process", "")
    if not isinstance(reason, str) or not isinstance(process, str):
        raise IngestError(400, f"{prefix}.reason", "reason and process must be strings")
    return {
        "breaker_name": name,
        "from_state": entry["from_state"],
        "to_state": entry["to_state"],
        "mode": mode,
        "generation": generation,
        "reason": reason,
        "process": process,
        "at": datetime.fromtimestamp(at, tz=UTC),
    }


@csrf_exempt
@require_POST
def windows(request: HttpRequest) -> JsonResponse:
    """Keep a client process's latest window figures, replacing its previous report."""
    try:
        source_for_bearer_key(request.headers.get("Authorization"))
        if len(request.body) > MAX_BODY_BYTES:
            raise IngestError(413, "body", f"body is over the limit of {MAX_BODY_BYTES} bytes")
        payload = decode_json(request.body, "body")
        process, entries = _window_report(payload)
        parsed = [_window(entry, index) for index, entry in enumerate(entries)]
    except IngestError as error:
        return _error(error)
    windows_record(process=process, windows=parsed, at=timezone.now())
    return JsonResponse({"recorded": len(parsed)})


def _window_report(payload) -> tuple[str, list]:
    if not isinstance(payload, dict):
        raise IngestError(400, "body", "must be an object with process and windows")
    process, entries = payload.get("process"), payload.get("windows")
    if not isinstance(process, str) or not 0 < len(process) <= 200:
        raise IngestError(400, "process", "must be the reporting process, 1 to 200 characters")
    if not isinstance(entries, list) or not entries:
        raise IngestError(400, "windows", "must be a non-empty list of window reports")
    if len(entries) > MAX_WINDOWS:
        raise IngestError(400, "windows", f"{len(entries)} windows is over the limit of {MAX_WINDOWS}")
    return process, entries


def _window(entry, index: int) -> dict:
    """Check one window report, naming the field at fault; nothing is kept unless all are valid."""
    prefix = f"windows[{index}]"
    if not isinstance(entry, dict):
        raise IngestError(400, prefix, "must be an object")
    _breaker_name(entry.get("breaker"), f"{prefix}.breaker")
    if entry.get("state") not in _STATES:
        raise IngestError(400, f"{prefix}.state", f"must be one of {sorted(_STATES)}")
    if entry.get("mode") not in _MODES:
        raise IngestError(400, f"{prefix}.mode", f"must be one of {sorted(_MODES)}")
    for field in ("calls", "failures", "slow_calls", "not_permitted"):
        value = entry.get(field)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_COUNT:
            raise IngestError(400, f"{prefix}.{field}", f"must be an integer from 0 to {MAX_COUNT}")
    for field in ("failures", "slow_calls"):
        if entry[field] > entry["calls"]:
            raise IngestError(400, f"{prefix}.{field}", "cannot be more than calls")
    return {key: entry[key] for key in ("breaker", "state", "mode", "calls", "failures", "slow_calls", "not_permitted")}


def _breaker_name(name, field: str) -> None:
    if not isinstance(name, str) or not 0 < len(name) <= 200:
        raise IngestError(400, field, "must be a breaker name of 1 to 200 characters")
