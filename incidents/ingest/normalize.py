"""Turn a raw Sentry or native event into the canonical dict stored as an ErrorEvent.

Every string is made storable (no NUL, no lone surrogate), long strings are cut with a
visible marker, deep or wide structures are trimmed, and secrets are scrubbed, so what
leaves this module can be stored as it is.
"""

import math
import re
import uuid
from datetime import UTC, datetime, timedelta

from django.conf import settings

from incidents.ingest.errors import IngestError
from incidents.scrub import scrub_event

LEVELS = ("fatal", "error", "warning", "info", "debug")
_LEVEL_ALIASES = {"warn": "warning", "critical": "fatal", "err": "error", "log": "info"}
MAX_MESSAGE = 8192
MAX_STRING = 2048
MAX_KEY = 128
MAX_DEPTH = 8
MAX_ITEMS = 200
MAX_FRAMES = 100
_FRAME_KEYS = (
    "filename",
    "abs_path",
    "module",
    "function",
    "lineno",
    "colno",
    "in_app",
    "context_line",
    "pre_context",
    "post_context",
    "vars",
)
_STATUS_IN_TEXT = re.compile(r"\b([1-5]\d\d)\b")
_PAST = timedelta(days=30)
_FUTURE = timedelta(minutes=1)


# Making values storable


def clean_string(value: str, limit: int = MAX_STRING) -> str:
    """Remove what PostgreSQL cannot store and cut what is too long, saying so."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")  # lone surrogates become "?"
    if len(value) > limit:
        value = f"{value[:limit]}…[truncated {len(value) - limit} chars]"
    return value


def clean(value, depth: int = 0):
    """Return a JSON-safe copy with bounded depth, width and string length."""
    if isinstance(value, str):
        return clean_string(value)
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if depth >= MAX_DEPTH:
        return "[depth limit]"
    if isinstance(value, dict):
        items = list(value.items())
        cleaned = {clean_string(str(k), MAX_KEY): clean(v, depth + 1) for k, v in items[:MAX_ITEMS]}
        if len(items) > MAX_ITEMS:
            cleaned["…"] = f"[{len(items) - MAX_ITEMS} more keys trimmed]"
        return cleaned
    if isinstance(value, list | tuple):
        cleaned = [clean(v, depth + 1) for v in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            cleaned.append(f"[{len(value) - MAX_ITEMS} more items trimmed]")
        return cleaned
    return clean_string(str(value))


def _text(value, limit: int) -> str:
    """Coerce a scalar to a short single-purpose string; anything else becomes empty."""
    if value is None or isinstance(value, dict | list):
        return ""
    return clean_string(str(value), limit)[:limit]


def _object(value) -> dict:
    return clean(value) if isinstance(value, dict) else {}


# Fields


def _event_id(value, field: str) -> uuid.UUID:
    if value in (None, ""):
        return uuid.uuid4()
    try:
        return uuid.UUID(str(value))
    except ValueError as error:
        raise IngestError(400, field, "must be 32 hex digits or a UUID") from error


def _timestamp(value, received_at: datetime) -> datetime:
    """Read epoch seconds or ISO 8601, keeping it within 30 days before and 1 minute after receipt."""
    moment = None
    try:
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            moment = datetime.fromtimestamp(value, tz=UTC)
        elif isinstance(value, str) and value:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        moment = None
    if moment is None:
        return received_at
    return min(max(moment, received_at - _PAST), received_at + _FUTURE)


def _level(value) -> str:
    level = str(value or "error").lower()
    level = _LEVEL_ALIASES.get(level, level)
    return level if level in LEVELS else "error"


def _message(raw: dict) -> str:
    logentry = raw.get("logentry") or raw.get("sentry.interfaces.Message")
    candidates = []
    if isinstance(logentry, dict):
        candidates += [logentry.get("formatted"), logentry.get("message")]
    message = raw.get("message")
    if isinstance(message, dict):
        candidates += [message.get("formatted"), message.get("message")]
    else:
        candidates.append(message)
    for candidate in candidates:
        if isinstance(candidate, str) and candidate:
            return clean_string(candidate, MAX_MESSAGE)
    return ""


def _frames(stacktrace) -> list[dict]:
    frames = stacktrace.get("frames") if isinstance(stacktrace, dict) else None
    if not isinstance(frames, list):
        return []
    frames = [frame for frame in frames if isinstance(frame, dict)]
    if len(frames) > MAX_FRAMES:
        half = MAX_FRAMES // 2
        omitted = {"function": f"[{len(frames) - MAX_FRAMES} frames omitted]", "in_app": False}
        frames = [*frames[:half], omitted, *frames[-half:]]
    return [{key: clean(frame[key], 1) for key in _FRAME_KEYS if key in frame} for frame in frames]


def _exception(entry: dict) -> dict:
    bases = entry.get("bases")
    result = {
        "type": _text(entry.get("type"), 200),
        "value": clean_string(str(entry.get("value") or ""), MAX_MESSAGE),
        "module": _text(entry.get("module"), 200),
        "bases": [_text(base, 200) for base in bases[:20]] if isinstance(bases, list) else [],
        "stacktrace": {"frames": _frames(entry.get("stacktrace"))},
    }
    if isinstance(entry.get("mechanism"), dict):
        result["mechanism"] = clean(entry["mechanism"], 1)
    return result


def _exceptions(value) -> list[dict]:
    if isinstance(value, dict):
        value = value.get("values", [value] if "type" in value else [])
    if not isinstance(value, list):
        return []
    return [_exception(entry) for entry in value[:20] if isinstance(entry, dict)]


def _tags(value) -> dict[str, str]:
    pairs = value.items() if isinstance(value, dict) else value if isinstance(value, list) else []
    tags = {}
    for pair in pairs:
        if isinstance(value, list) and not (isinstance(pair, list | tuple) and len(pair) == 2):
            continue
        key, tag_value = pair
        if tag_value is None or isinstance(tag_value, dict | list):
            continue
        tags[_text(key, MAX_KEY)] = _text(tag_value, 200)
        if len(tags) >= MAX_ITEMS:
            break
    return tags


def _http_status(event: dict, raw_status=None) -> int | None:
    """Find the HTTP status: given, in the response context, in tags, or in an HTTP error's text."""
    response = event["contexts"].get("response")
    candidates = [
        raw_status,
        response.get("status_code") if isinstance(response, dict) else None,
        event["tags"].get("http.status_code"),
        event["tags"].get("status_code"),
    ]
    for candidate in candidates:
        if isinstance(candidate, int | str) and str(candidate).isdigit() and 100 <= int(candidate) <= 599:
            return int(candidate)
    for exception in reversed(event["exception"]):
        name = exception["type"]
        if "HTTP" in name or "Status" in name or name == "ClientResponseError":
            found = _STATUS_IN_TEXT.search(exception["value"])
            if found:
                return int(found.group(1))
    return None


def _component(event: dict, given=None) -> str:
    for candidate in (given, event["tags"].get("component"), event["extra"].get("component")):
        if isinstance(candidate, str) and candidate:
            return candidate[:200]
    component = event["contexts"].get("component")
    return component[:200] if isinstance(component, str) else ""


def _sdk(value) -> dict:
    if not isinstance(value, dict):
        return {}
    return {key: _text(value.get(key), 100) for key in ("name", "version") if value.get(key)}


def _fingerprint(value) -> list[str] | None:
    if not isinstance(value, list) or not value:
        return None
    return [_text(part, 200) for part in value[:20] if isinstance(part, str | int | float)]


def _common(raw: dict, received_at: datetime, prefix: str) -> dict:
    event = {
        "event_id": _event_id(raw.get("event_id"), f"{prefix}event_id"),
        "timestamp": _timestamp(raw.get("timestamp"), received_at),
        "level": _level(raw.get("level")),
        "message": _message(raw),
        "exception": _exceptions(raw.get("exception")),
        "logger": _text(raw.get("logger"), 200),
        "platform": _text(raw.get("platform"), 32),
        "server_name": _text(raw.get("server_name"), 200),
        "release": _text(raw.get("release"), 200),
        "environment": _text(raw.get("environment"), 64),
        "transaction": _text(raw.get("transaction") or raw.get("culprit"), 200),
        "tags": _tags(raw.get("tags")),
        "user": _object(raw.get("user")),
        "request": _object(raw.get("request")),
        "contexts": _object(raw.get("contexts")),
        "extra": _object(raw.get("extra")),
        "sdk": _sdk(raw.get("sdk")),
        "client_fingerprint": _fingerprint(raw.get("fingerprint")),
    }
    event["http_status"] = _http_status(event, raw.get("http_status"))
    event["component"] = _component(event, raw.get("component"))
    return scrub_event(event, extra_keys=settings.SCRUB_EXTRA_KEYS)


def normalize_sentry_event(raw: dict, *, received_at: datetime, field_prefix: str = "") -> dict:
    """Normalise an event as a Sentry SDK sends it, leniently: odd optional fields are dropped."""
    if not isinstance(raw, dict):
        raise IngestError(400, field_prefix.rstrip(".") or "event", "an event must be a JSON object")
    return _common(raw, received_at, field_prefix)


# The native format is checked strictly: it is ours, so a wrong type is a client bug worth naming.
_NATIVE_TYPES = {
    "event_id": (str,),
    "timestamp": (str, int, float),
    "level": (str,),
    "message": (str,),
    "exception": (dict, list),
    "http_status": (int,),
    "logger": (str,),
    "component": (str,),
    "environment": (str,),
    "release": (str,),
    "server_name": (str,),
    "transaction": (str,),
    "platform": (str,),
    "tags": (dict,),
    "user": (str, dict),
    "request": (dict,),
    "context": (dict,),
    "contexts": (dict,),
    "fingerprint": (list,),
    "sdk": (dict,),
}
_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", dict: "an object", list: "a list"}


def _check_native(raw: dict, prefix: str) -> None:
    for name, types in _NATIVE_TYPES.items():
        value = raw.get(name)
        if value is None:
            continue
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            expected = " or ".join(_TYPE_NAMES[t] for t in types)
            raise IngestError(400, f"{prefix}{name}", f"must be {expected}")
    if raw.get("level") is not None and _LEVEL_ALIASES.get(raw["level"], raw["level"]) not in LEVELS:
        raise IngestError(400, f"{prefix}level", f"must be one of {', '.join(LEVELS)}")
    if raw.get("http_status") is not None and not 100 <= raw["http_status"] <= 599:
        raise IngestError(400, f"{prefix}http_status", "must be between 100 and 599")
    if not raw.get("message") and not raw.get("exception"):
        raise IngestError(400, f"{prefix}message", "an event needs a message or an exception")
    for index, entry in enumerate(_exceptions_raw(raw.get("exception"))):
        if not isinstance(entry, dict) or not isinstance(entry.get("type"), str) or not entry["type"]:
            raise IngestError(400, f"{prefix}exception[{index}].type", "must be a non-empty string")


def _exceptions_raw(value) -> list:
    if isinstance(value, dict):
        return value.get("values", [value]) if "values" in value else [value]
    return value or []


def normalize_native_event(raw: dict, *, received_at: datetime, field_prefix: str = "") -> dict:
    """Check a native event's fields strictly, then normalise it like a Sentry one."""
    if not isinstance(raw, dict):
        raise IngestError(400, field_prefix.rstrip(".") or "event", "an event must be a JSON object")
    _check_native(raw, field_prefix)
    raw = dict(raw)
    if isinstance(raw.get("user"), str):
        raw["user"] = {"id": raw["user"]}
    raw["extra"] = raw.pop("context", None)
    return _common(raw, received_at, field_prefix)
