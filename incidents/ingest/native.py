"""The console's own JSON event format.

POST /api/v1/events/ with `Authorization: Bearer <ingest key>` and a JSON body that is
one event object, a JSON array of events, or {"events": [...]} (at most
INGEST_MAX_BATCH_EVENTS events). Every field is optional, but an event needs a
`message` or an `exception`; null counts as absent, unknown fields are ignored.

    event_id      32 hex digits or a UUID; generated when absent. Repeats are stored once.
    timestamp     ISO 8601 string (e.g. "2024-05-01T12:00:00Z"; no offset means UTC) or
                  epoch seconds; the time of receipt when absent. Kept within 30 days
                  before and 1 minute after receipt.
    level         fatal | error | warning | info | debug (default error; warn and critical
                  are read as warning and fatal)
    message       string
    exception     {type, value, module, bases, stacktrace, mechanism}, or a list of them,
                  oldest cause first (the last one is the exception that surfaced), or
                  {"values": [...]} as Sentry sends it.
                    type        string, required: the exception class name
                    value       string: the exception message
                    module      string: where the class is defined
                    bases       list of base class names, e.g. ["OSError"]
                    mechanism   object, e.g. {"type": "generic", "handled": true}
                    stacktrace  {frames: [...]}, oldest call first; each frame an object
                                {filename, abs_path, module, function, context_line: strings,
                                 lineno, colno: integers, in_app: boolean,
                                 pre_context, post_context: lists of strings, vars: object}
    http_status   integer 100-599
    logger, component, environment, release, server_name, transaction, platform   strings
    tags          object of string -> string, number or boolean
    user          a user id string, or an object {id, email, username, ip_address, ...}
    request       object {url, method, headers, query_string, data, cookies, env}
    context       object of free-form key-values (stored as `extra`; classification rules match on it)
    contexts      object of objects, as Sentry SDKs send them
    fingerprint   list of strings; "{{ default }}" stands for the default grouping
    sdk           object {name, version}

A wrong type is refused with 400 naming the field, e.g. {"error": "must be a string, not a number",
"field": "message"}; in a request of several events the field is prefixed with the
event's index, e.g. "events[3].level", and nothing of the request is stored.
Strings are cut to 8192 characters (message, exception value) or 2048 (others),
structures to 8 levels and 200 entries; secrets are scrubbed before storage.
"""

import math
import uuid
from datetime import UTC, datetime

from incidents.ingest.decoding import decode_json
from incidents.ingest.errors import IngestError

LEVELS = ("fatal", "error", "warning", "info", "debug")
LEVEL_ALIASES = {"warn": "warning", "critical": "fatal", "err": "error", "exception": "error", "trace": "debug"}

_STRING_FIELDS = ("message", "logger", "component", "environment", "release", "server_name", "transaction", "platform")
_OBJECT_FIELDS = ("request", "context", "contexts", "sdk")
_FRAME_STRING_FIELDS = ("filename", "abs_path", "module", "function", "context_line")


def parse_native(body: bytes, *, max_events: int) -> list[dict]:
    """Return the validated events of a native request body: one object, a list, or {"events": [...]}."""
    payload = decode_json(body, "body")
    if isinstance(payload, dict) and "events" in payload:
        events = payload["events"]
        if not isinstance(events, list):
            raise IngestError(400, "events", "must be a list of event objects")
    elif isinstance(payload, dict):
        events = [payload]
    elif isinstance(payload, list):
        events = payload
    else:
        raise IngestError(400, "body", 'must be an event object, a list of events or {"events": [...]}')
    if not events:
        raise IngestError(400, "events", f"at least one event is required (and at most {max_events})")
    if len(events) > max_events:
        raise IngestError(400, "events", f"{len(events)} events is over the limit of {max_events} per request")
    # Validate everything before returning anything: a batch is accepted whole or not at all.
    batch = len(events) > 1
    for index, event in enumerate(events):
        validate_native_event(event, f"events[{index}]." if batch else "")
    return events


def validate_native_event(raw: object, prefix: str = "") -> None:
    """Raise IngestError naming `<prefix><field>` when a native event breaks the schema."""
    if not isinstance(raw, dict):
        raise IngestError(400, prefix.rstrip(".") or "body", "an event must be a JSON object")
    for name in _STRING_FIELDS:
        _expect(raw.get(name), str, "a string", prefix + name)
    for name in _OBJECT_FIELDS:
        _expect(raw.get(name), dict, "an object", prefix + name)
    _check_event_id(raw.get("event_id"), prefix + "event_id")
    _check_timestamp(raw.get("timestamp"), prefix + "timestamp")
    _check_level(raw.get("level"), prefix + "level")
    _check_http_status(raw.get("http_status"), prefix + "http_status")
    _check_tags(raw.get("tags"), prefix + "tags")
    _expect(raw.get("user"), (str, dict), "a string or an object", prefix + "user")
    _check_string_list(raw.get("fingerprint"), prefix + "fingerprint")
    if raw.get("exception") is not None:
        for path, entry in _exception_entries(raw["exception"], prefix + "exception"):
            _check_exception(entry, path)
    if not raw.get("message") and not raw.get("exception"):
        raise IngestError(400, prefix + "message", "an event needs a message or an exception")


def parse_timestamp(value: object) -> datetime | None:
    """Return an aware UTC datetime from ISO 8601 text or epoch seconds, or None when it is neither."""
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, tz=UTC)
        if isinstance(value, str) and value:
            return _parse_timestamp_text(value.strip())
    except (ValueError, OverflowError, OSError):
        return None
    return None


def _parse_timestamp_text(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return datetime.fromtimestamp(float(text), tz=UTC)  # epoch seconds sent as a string
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def canonical_level(value: object) -> str | None:
    """Return the level a name stands for, case-insensitively, or None when it is not one."""
    if not isinstance(value, str):
        return None
    level = value.strip().lower()
    level = LEVEL_ALIASES.get(level, level)
    return level if level in LEVELS else None


def _expect(value, types, expected: str, field: str) -> None:
    # bool is an int in Python but never what a field of ours means.
    if value is not None and (not isinstance(value, types) or isinstance(value, bool)):
        raise IngestError(400, field, f"must be {expected}, not {_json_type(value)}")


def _json_type(value) -> str:
    if isinstance(value, bool):
        return "a boolean"
    return {str: "a string", int: "a number", float: "a number", dict: "an object", list: "a list"}.get(
        type(value), type(value).__name__
    )


def _check_event_id(value, field: str) -> None:
    _expect(value, str, "32 hex digits or a UUID", field)
    if value is None:
        return
    try:
        uuid.UUID(value)
    except ValueError as error:
        raise IngestError(400, field, "must be 32 hex digits or a UUID") from error


def _check_timestamp(value, field: str) -> None:
    if value is None:
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise IngestError(400, field, "must be a finite number of epoch seconds")
    if parse_timestamp(value) is None:
        raise IngestError(400, field, "must be an ISO 8601 string or epoch seconds")


def _check_level(value, field: str) -> None:
    if value is not None and canonical_level(value) is None:
        raise IngestError(400, field, f"must be one of {', '.join(LEVELS)}")


def _check_http_status(value, field: str) -> None:
    _expect(value, int, "an integer", field)
    if value is not None and not 100 <= value <= 599:
        raise IngestError(400, field, f"must be between 100 and 599, not {value}")


def _check_tags(value, field: str) -> None:
    _expect(value, dict, "an object of string, number or boolean values", field)
    for key, tag_value in (value or {}).items():
        if tag_value is not None and not isinstance(tag_value, str | int | float):
            raise IngestError(400, f"{field}.{str(key)[:128]}", "must be a string, number or boolean")


def _check_string_list(value, field: str) -> None:
    _expect(value, list, "a list of strings", field)
    for index, item in enumerate(value or ()):
        if not isinstance(item, str):
            raise IngestError(400, f"{field}[{index}]", f"must be a string, not {_json_type(item)}")


def _exception_entries(value, path: str) -> list[tuple[str, object]]:
    if isinstance(value, dict) and "values" in value:
        values = value["values"]
        if not isinstance(values, list):
            raise IngestError(400, f"{path}.values", "must be a list of exception objects")
        return [(f"{path}.values[{index}]", entry) for index, entry in enumerate(values)]
    if isinstance(value, dict):
        return [(path, value)]
    if isinstance(value, list):
        return [(f"{path}[{index}]", entry) for index, entry in enumerate(value)]
    raise IngestError(400, path, 'must be an exception object, a list of them or {"values": [...]}')


def _check_exception(entry, path: str) -> None:
    if not isinstance(entry, dict):
        raise IngestError(400, path, f"must be an exception object, not {_json_type(entry)}")
    if not isinstance(entry.get("type"), str) or not entry["type"].strip():
        raise IngestError(400, f"{path}.type", "must be a non-empty string: the exception class name")
    _expect(entry.get("value"), str, "a string", f"{path}.value")
    _expect(entry.get("module"), str, "a string", f"{path}.module")
    _expect(entry.get("mechanism"), dict, "an object", f"{path}.mechanism")
    _check_string_list(entry.get("bases"), f"{path}.bases")
    stacktrace = entry.get("stacktrace")
    _expect(stacktrace, dict, "an object {frames: [...]}", f"{path}.stacktrace")
    frames = (stacktrace or {}).get("frames")
    _expect(frames, list, "a list of frame objects", f"{path}.stacktrace.frames")
    for index, frame in enumerate(frames or ()):
        _check_frame(frame, f"{path}.stacktrace.frames[{index}]")


def _check_frame(frame, path: str) -> None:
    if not isinstance(frame, dict):
        raise IngestError(400, path, f"must be a frame object, not {_json_type(frame)}")
    for name in _FRAME_STRING_FIELDS:
        _expect(frame.get(name), str, "a string", f"{path}.{name}")
    for name in ("lineno", "colno"):
        _expect(frame.get(name), int, "an integer", f"{path}.{name}")
    in_app = frame.get("in_app")
    if in_app is not None and not isinstance(in_app, bool):
        raise IngestError(400, f"{path}.in_app", f"must be a boolean, not {_json_type(in_app)}")
    _check_string_list(frame.get("pre_context"), f"{path}.pre_context")
    _check_string_list(frame.get("post_context"), f"{path}.post_context")
    _expect(frame.get("vars"), dict, "an object", f"{path}.vars")
