"""Endpoints for processes that run the resilience runtime away from the console's database.

    GET  /api/v1/resilience/config/       the config snapshot; ETag, 304 on If-None-Match
    POST /api/v1/resilience/transitions/  {"transitions": [...]} a client's breaker transitions
    POST /api/v1/resilience/windows/      {"process": ..., "windows": [...]} its breakers' window figures

All take `Authorization: Bearer <ingest key>`: a service already holds its source's key
to report errors, and transitions become events of that source. Reports are the key's
source's: it may report the breakers it runs, unassigned ones (defined without a source: the
first to report one takes it) and names nobody registered (kept under it), never another
source's nor the console's own (403 naming the field); the config holds its own breakers, the
unassigned ones and the shared policies. Bad input is a 400 naming the field, an oversized
body a 413 naming the limit, refused while it is read.
"""

from datetime import UTC, datetime

from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from incidents.fleet.reports import breakers_claim, transition_record, windows_record
from incidents.ingest.decoding import MAX_REPORT_BODY_BYTES, decode_json, read_body
from incidents.ingest.endpoints import source_for_bearer_key
from incidents.ingest.errors import IngestError
from incidents.models import Source
from resilience.config_snapshot import config_snapshot
from resilience.config_watcher import config_version
from resilience.models import BREAKER_NAME, BreakerState

MAX_TRANSITIONS = 100
MAX_WINDOWS = 1000
MAX_COUNT = 2**31 - 1
MAX_GENERATION = 2**63 - 1  # a bigint column
_STATES = sorted(BreakerState.State.values)
_MODES = sorted(BreakerState.Mode.values)


def _error(error: IngestError) -> JsonResponse:
    return JsonResponse(error.as_dict(), status=error.status)


@require_GET
def config(request: HttpRequest) -> HttpResponse:
    """The snapshot every Runtime applies; cheap to poll with If-None-Match."""
    try:
        source = source_for_bearer_key(request.headers.get("Authorization"))
    except IngestError as error:
        return _error(error)
    # Each source gets its own view of a version: its tag must not match another source's snapshot.
    headers = {"Cache-Control": "no-cache", "Vary": "Authorization"}
    etag = f'"resilience-config-{config_version()}-{source.pk}"'
    if request.headers.get("If-None-Match") == etag:
        return HttpResponse(status=304, headers={"ETag": etag, **headers})
    snapshot = config_snapshot(source=source)
    # The snapshot's own version may be newer than the ETag read above; name it by what it holds.
    etag = f'"resilience-config-{snapshot["version"]}-{source.pk}"'
    return JsonResponse(snapshot, headers={"ETag": etag, **headers})


@csrf_exempt
@require_POST
def transitions(request: HttpRequest) -> JsonResponse:
    """Record a client's transitions: each in its breaker's history and as an event of the key's source."""
    try:
        source = source_for_bearer_key(request.headers.get("Authorization"))
        entries = _entries(decode_json(_body(request), "body"))
        parsed = [_transition(entry, index) for index, entry in enumerate(entries)]
        breakers = [(f"transitions[{index}].breaker", entry["breaker_name"]) for index, entry in enumerate(parsed)]
        with transaction.atomic():  # claims and all of them or, if refused or storing fails, none
            _check_reporter(source, breakers)
            for entry in parsed:
                transition_record(source=source, **entry)
    except IngestError as error:
        return _error(error)
    return JsonResponse({"recorded": len(parsed)})


def _body(request: HttpRequest) -> bytes:
    """The body, refused with 413 as soon as it passes the limit (never Django's HTML answer)."""
    length = request.headers.get("Content-Length")
    return read_body(
        request,
        content_length=int(length) if length and length.isdigit() else None,
        content_encoding=request.headers.get("Content-Encoding"),
        max_compressed=MAX_REPORT_BODY_BYTES,
        max_decompressed=MAX_REPORT_BODY_BYTES,
    )


def _check_reporter(source: Source, breakers: list[tuple[str, str]]) -> None:
    """Claim the unassigned breakers named; refuse the whole report, 403 naming the first field, if it names
    a breaker `source` may not report."""
    refused = breakers_claim(source=source, names={name for _field, name in breakers})
    for field, name in breakers:
        if name in refused:
            raise IngestError(403, field, f"breaker {name!r} {refused[name]}; this key reports for {source.slug}")


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
    name = _breaker_name(entry.get("breaker"), f"{prefix}.breaker")
    from_state, to_state = (
        _choice(entry.get(field), _STATES, f"{prefix}.{field}") for field in ("from_state", "to_state")
    )
    mode = _choice(entry.get("mode", "auto"), _MODES, f"{prefix}.mode")
    generation = _integer(entry.get("generation", 0), MAX_GENERATION, f"{prefix}.generation")
    at = entry.get("at")
    if not isinstance(at, int | float) or isinstance(at, bool) or not 0 < at < 32503680000:
        raise IngestError(400, f"{prefix}.at", "must be epoch seconds")
    reason = _text(entry.get("reason", ""), f"{prefix}.reason")
    process = _text(entry.get("process", ""), f"{prefix}.process")
    return {
        "breaker_name": name,
        "from_state": from_state,
        "to_state": to_state,
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
        source = source_for_bearer_key(request.headers.get("Authorization"))
        process, entries = _window_report(decode_json(_body(request), "body"))
        parsed = [_window(entry, index) for index, entry in enumerate(entries)]
        breakers = [(f"windows[{index}].breaker", window["breaker"]) for index, window in enumerate(parsed)]
        _refuse_repeats(breakers)
        with transaction.atomic():  # a refused or failed report claims nothing
            _check_reporter(source, breakers)
            windows_record(source=source, process=process, windows=parsed, at=timezone.now())
    except IngestError as error:
        return _error(error)
    return JsonResponse({"recorded": len(parsed)})


def _window_report(payload) -> tuple[str, list]:
    if not isinstance(payload, dict):
        raise IngestError(400, "body", "must be an object with process and windows")
    process, entries = payload.get("process"), payload.get("windows")
    if not isinstance(process, str) or not 0 < len(process) <= 200:
        raise IngestError(400, "process", "must be the reporting process, 1 to 200 characters")
    _text(process, "process")
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
    window = {
        "breaker": _breaker_name(entry.get("breaker"), f"{prefix}.breaker"),
        "state": _choice(entry.get("state"), _STATES, f"{prefix}.state"),
        "mode": _choice(entry.get("mode"), _MODES, f"{prefix}.mode"),
    }
    for field in ("calls", "failures", "slow_calls", "not_permitted"):
        window[field] = _integer(entry.get(field), MAX_COUNT, f"{prefix}.{field}")
    for field in ("failures", "slow_calls"):
        if window[field] > window["calls"]:
            raise IngestError(400, f"{prefix}.{field}", "cannot be more than calls")
    return window


def _refuse_repeats(breakers: list[tuple[str, str]]) -> None:
    """One figure per breaker and process: a second would overwrite the first within the same report."""
    seen = set()
    for field, name in breakers:
        if name in seen:
            raise IngestError(400, field, f"breaker {name!r} is reported twice; send one window per breaker")
        seen.add(name)


def _breaker_name(name, field: str) -> str:
    if not isinstance(name, str) or not 0 < len(name) <= 200:
        raise IngestError(400, field, "must be a breaker name of 1 to 200 characters")
    _text(name, field)
    if not BREAKER_NAME.regex.match(name):
        raise IngestError(400, field, "must be printable, without '/' and without leading or trailing spaces")
    return name


def _choice(value, choices: list[str], field: str) -> str:
    if not isinstance(value, str) or value not in choices:
        raise IngestError(400, field, f"must be one of {choices}")
    return value


def _integer(value, maximum: int, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= maximum:
        raise IngestError(400, field, f"must be an integer from 0 to {maximum}")
    return value


def _text(value, field: str) -> str:
    """A string PostgreSQL can store: no NUL character and no lone surrogate (which UTF-8 cannot encode)."""
    if not isinstance(value, str):
        raise IngestError(400, field, "must be a string")
    if "\x00" in value:
        raise IngestError(400, field, "must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise IngestError(400, field, "must not contain lone surrogates (invalid UTF-16 escapes)") from error
    return value
