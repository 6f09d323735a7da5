"""Turn a raw Sentry or native event into the canonical dict stored as an ErrorEvent.

The result has exactly the ErrorEvent field names as keys. Every string in it is
storable (no NUL, no lone surrogate) and bounded (message and exception value 8192
characters, other strings 2048, dict keys 128, short columns their own length), cut
with a visible "…[truncated N chars]" marker. Free-form structures (tags, user, request,
contexts, extra, mechanism, frame vars) keep 8 levels of nesting, counting the field's
own object as level 1, and at most 200 keys or items per level; stack traces keep
their first and last 50 frames. Secrets are scrubbed last, so nothing leaves this
module unscrubbed: a string is scrubbed before it is cut (a card or token cut in half is no
longer recognisable), a value under a key longer than 128 characters is judged by the
whole key, and the short columns are cut again after scrubbing ("[Filtered]" can be
longer than what it replaced).
"""

import math
import re
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from incidents.ingest.errors import IngestError
from incidents.ingest.native import canonical_level, parse_timestamp, validate_native_event
from incidents.ingest.scrub import FILTERED, key_is_sensitive, scrub_event, scrub_string

MAX_MESSAGE = 8192
MAX_STRING = 2048
MAX_KEY = 128
MAX_DEPTH = 8
MAX_ITEMS = 200
MAX_FRAMES = 100
MAX_EXCEPTIONS = 20
MAX_TAG_VALUE = 200  # Sentry's own limit for tag values
MAX_NAME = 256  # exception types and modules
DEPTH_LIMIT = "[depth limit]"
TRIMMED_KEY = "[trimmed]"
# Column sizes of ErrorEvent's short text fields (and the message's bound).
COLUMNS = {
    "message": MAX_MESSAGE,
    "logger": 200,
    "component": 200,
    "platform": 32,
    "server_name": 200,
    "release": 200,
    "environment": 64,
    "transaction": 200,
}
# A secret straddling a cut is scrubbed whole when it is shorter than this.
_SCRUB_MARGIN = 512

_INT64 = 2**63
_PAST = timedelta(days=30)
_FUTURE = timedelta(minutes=1)
_SURROGATE = re.compile("[\ud800-\udfff]")
# An HTTP status in an exception's text: three digits standing alone, once URLs are taken out.
_URL = re.compile(r"(?<![\w+.-])[A-Za-z][\w+.-]*+://\S*+")  # starts only where a word begins: linear time
_STATUS_IN_TEXT = re.compile(r"(?<![\w.])([1-5][0-9][0-9])(?![\w]|\.[0-9])")
_HTTP_ERROR_NAMES = ("HTTP", "Status", "ClientResponseError")
_FRAME_TEXT_KEYS = ("filename", "abs_path", "module", "function")
_FRAME_CONTEXT_KEYS = ("pre_context", "post_context")


def normalize_sentry_event(
    raw: dict, *, received_at: datetime, field_prefix: str = "", scrub_extra_keys: Iterable[str] | None = None
) -> dict:
    """Return the canonical, scrubbed form of an event as a Sentry SDK sends it, coercing or dropping odd fields."""
    if not isinstance(raw, dict):
        raise IngestError(400, field_prefix.rstrip(".") or "event", "an event must be a JSON object")
    event = _canonical(raw, received_at, user=raw.get("user"), extra=raw.get("extra"))
    return _fit_columns(scrub_event(event, extra_keys=_scrub_keys(scrub_extra_keys)))


def normalize_native_event(
    raw: dict, *, received_at: datetime, field_prefix: str = "", scrub_extra_keys: Iterable[str] | None = None
) -> dict:
    """Check a native event against its schema, then return its canonical, scrubbed form."""
    validate_native_event(raw, field_prefix)
    event = _canonical(raw, received_at, user=raw.get("user"), extra=raw.get("context"))
    return _fit_columns(scrub_event(event, extra_keys=_scrub_keys(scrub_extra_keys)))


def _scrub_keys(given: Iterable[str] | None) -> Iterable[str]:
    if given is not None:
        return given
    from django.conf import settings  # imported late: the parsers stay usable without configured Django

    return getattr(settings, "SCRUB_EXTRA_KEYS", ())


def _fit_columns(event: dict) -> dict:
    for name, limit in COLUMNS.items():
        if len(event[name]) > limit:
            event[name] = _truncate(event[name], limit)
    return event


def _canonical(raw: dict, received_at: datetime, *, user, extra) -> dict:
    event = {
        "event_id": _event_id(raw.get("event_id")),
        "timestamp": _timestamp(raw.get("timestamp"), received_at),
        "level": canonical_level(raw.get("level")) or "error",
        "message": _message(raw),
        "exception": _exceptions(raw.get("exception")),
        "http_status": None,
        "logger": _text(raw.get("logger"), COLUMNS["logger"]),
        "component": "",
        "platform": _text(raw.get("platform"), COLUMNS["platform"]),
        "server_name": _text(raw.get("server_name"), COLUMNS["server_name"]),
        "release": _text(raw.get("release"), COLUMNS["release"]),
        "environment": _text(raw.get("environment"), COLUMNS["environment"]),
        "transaction": _text(raw.get("transaction") or raw.get("culprit"), COLUMNS["transaction"]),
        "tags": _tags(raw.get("tags")),
        "user": _user(user),
        "request": _object(raw.get("request")),
        "contexts": _object(raw.get("contexts")),
        "extra": _object(extra),
        "sdk": _sdk(raw.get("sdk")),
        "client_fingerprint": _fingerprint(raw.get("fingerprint")),
    }
    event["http_status"] = _http_status(event, raw.get("http_status"))
    event["component"] = _component(event, raw.get("component"))
    return event


# Making values storable


def clean_string(value: str, limit: int = MAX_STRING) -> str:
    """Return the string without NULs or lone surrogates, cut to `limit` characters with a visible marker."""
    if not value.isascii():
        value = _storable(value)
    elif "\x00" in value:
        value = value.replace("\x00", "")
    if len(value) > limit:
        value = _truncate(value, limit)
    return value


def _storable(value: str) -> str:
    if "\x00" in value:
        value = value.replace("\x00", "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # only lone surrogates fail: UTF-8 and PostgreSQL cannot hold them
        value = _SURROGATE.sub("\ufffd", value)
    return value


def _truncate(value: str, limit: int) -> str:
    # Size the marker for the longest count it could show, so the result never exceeds the limit.
    keep = max(limit - len(f"…[truncated {len(value)} chars]"), 0)
    head = scrub_string(value[: keep + _SCRUB_MARGIN])  # before the cut; the event's own scrub runs again later
    return f"{head[:keep]}…[truncated {len(value) - keep} chars]"


def clean_value(value, depth: int = 1):
    """Return a JSON-safe copy of a free-form value, bounded in depth, width and string length."""
    kind = type(value)
    if kind is str:
        if len(value) <= MAX_STRING and value.isascii() and "\x00" not in value:
            return value  # the common case, kept cheap: this runs for every string of every event
        return clean_string(value)
    if kind is dict:
        return _clean_dict(value, depth) if depth <= MAX_DEPTH else DEPTH_LIMIT
    if kind is list:
        return _clean_list(value, depth) if depth <= MAX_DEPTH else DEPTH_LIMIT
    if value is None or kind is bool:
        return value
    if kind is int:
        return value if -_INT64 <= value < _INT64 else str(value)  # beyond int64 many JSON readers lose digits
    if kind is float:
        return value if math.isfinite(value) else str(value)  # NaN and Infinity are not JSON
    return _clean_other(value, depth)


def _clean_other(value, depth: int):
    """Coerce what only Python callers pass (subclasses, tuples, sets, objects) to JSON types."""
    if isinstance(value, str):
        return clean_value(str(value), depth)
    if isinstance(value, dict):
        return clean_value(dict(value), depth)
    if isinstance(value, list | tuple | set | frozenset):
        return clean_value(list(value), depth)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int | float):
        return clean_value(float(value) if isinstance(value, float) else int(value), depth)
    return clean_string(_printable(value))


def _printable(value) -> str:
    try:
        return str(value)
    except Exception:  # a broken __str__ must not fail ingest
        return f"<unprintable {type(value).__name__}>"


def _clean_key(key) -> str:
    if type(key) is str and len(key) <= MAX_KEY and key.isascii() and "\x00" not in key:
        return key
    return clean_string(key if isinstance(key, str) else _printable(key), MAX_KEY)


def _clean_dict(value: dict, depth: int) -> dict:
    depth += 1
    if len(value) <= MAX_ITEMS:
        return {
            _clean_key(key): clean_value(item, depth)
            if type(key) is str and len(key) <= MAX_KEY
            else _value_under_long_key(key, item, depth)
            for key, item in value.items()
        }
    cleaned = {}
    for key, item in value.items():
        if len(cleaned) == MAX_ITEMS - 1:
            break
        cleaned[_clean_key(key)] = _value_under_long_key(key, item, depth)
    cleaned[TRIMMED_KEY] = f"{len(value) - len(cleaned)} more keys trimmed"
    return cleaned


def _value_under_long_key(key, item, depth: int):
    """Filter a value by its whole key, before the key is cut and the scrubber sees only its start."""
    text = key if isinstance(key, str) else _printable(key)
    if len(text) > MAX_KEY and item is not None and item != "" and key_is_sensitive(text):
        return FILTERED
    return clean_value(item, depth)


def _clean_list(value: list, depth: int) -> list:
    depth += 1
    if len(value) <= MAX_ITEMS:
        return [clean_value(item, depth) for item in value]
    kept = MAX_ITEMS - 1
    return [*(clean_value(item, depth) for item in value[:kept]), f"[{len(value) - kept} more items trimmed]"]


def _text(value, limit: int) -> str:
    """Coerce a scalar to a bounded string; structures become empty."""
    if type(value) is str:
        if len(value) <= limit and value.isascii() and "\x00" not in value:
            return value  # the common case, kept to one call: this runs for every source line
        return clean_string(value, limit)
    if value is None or isinstance(value, dict | list):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return clean_string(str(value), limit)


def _object(value) -> dict:
    return clean_value(value) if isinstance(value, dict) else {}


# Fields


def _event_id(value) -> uuid.UUID:
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass  # Sentry is lenient here: an unusable id is replaced rather than refused
    return uuid.uuid4()


def _timestamp(value, received_at: datetime) -> datetime:
    """Read epoch seconds or ISO 8601, keeping it within 30 days before and 1 minute after receipt."""
    received_at = received_at.replace(tzinfo=UTC) if received_at.tzinfo is None else received_at.astimezone(UTC)
    moment = parse_timestamp(value)
    if moment is None:
        return received_at
    return min(max(moment, received_at - _PAST), received_at + _FUTURE)


def _message(raw: dict) -> str:
    candidates = []
    for container in (raw.get("logentry"), raw.get("sentry.interfaces.Message"), raw.get("message")):
        if isinstance(container, dict):
            candidates += [container.get("formatted"), container.get("message")]
    message = raw.get("message")
    if not isinstance(message, dict):
        candidates.append(message)
    for candidate in candidates:
        if candidate is not None and not isinstance(candidate, dict | list) and candidate != "":
            return _text(candidate, MAX_MESSAGE)
    return ""


def _exceptions(value) -> list[dict]:
    if isinstance(value, dict):
        value = value.get("values") if "values" in value else [value]
    if not isinstance(value, list):
        return []
    # The last entry is the exception that surfaced: when a chain is cut, its oldest causes go.
    entries = [entry for entry in value if isinstance(entry, dict)][-MAX_EXCEPTIONS:]
    return [_exception(entry) for entry in entries]


def _exception(entry: dict) -> dict:
    result = {
        "type": _text(entry.get("type"), MAX_NAME),
        "value": _text(entry.get("value"), MAX_MESSAGE),
        "module": _text(entry.get("module"), MAX_NAME),
        "bases": _strings(entry.get("bases"), 50, MAX_NAME),
    }
    if isinstance(entry.get("mechanism"), dict):
        result["mechanism"] = clean_value(entry["mechanism"])
    result["stacktrace"] = {"frames": _frames(entry.get("stacktrace"))}
    return result


def _strings(value, max_items: int, limit: int) -> list[str]:
    if not isinstance(value, list):
        return []
    return [
        item
        if type(item) is str and len(item) <= limit and item.isascii() and "\x00" not in item
        else _text(item, limit)
        for item in value[:max_items]
        if isinstance(item, str | int | float)
    ]


def _frames(stacktrace) -> list[dict]:
    frames = stacktrace.get("frames") if isinstance(stacktrace, dict) else None
    if not isinstance(frames, list):
        return []
    frames = [_frame(frame) for frame in _keep_ends(frames) if isinstance(frame, dict)]
    if len(stacktrace["frames"]) > MAX_FRAMES:
        half = MAX_FRAMES // 2
        omitted = len(stacktrace["frames"]) - MAX_FRAMES
        frames.insert(half, {"function": f"[{omitted} frames omitted]", "in_app": False})
    return frames


def _keep_ends(frames: list) -> list:
    if len(frames) <= MAX_FRAMES:
        return frames
    half = MAX_FRAMES // 2
    return frames[:half] + frames[-half:]  # the entry point and the crash site matter most


def _frame(frame: dict) -> dict:
    out = {}
    for key in _FRAME_TEXT_KEYS:
        value = frame.get(key)
        if value is not None and type(value) is not dict and type(value) is not list:
            out[key] = _text(value, MAX_STRING)
    for key in ("lineno", "colno"):
        number = _line_number(frame.get(key))
        if number is not None:
            out[key] = number
    out["in_app"] = frame.get("in_app") is True
    if isinstance(frame.get("context_line"), str):
        out["context_line"] = clean_string(frame["context_line"])
    for key in _FRAME_CONTEXT_KEYS:
        if isinstance(frame.get(key), list):
            out[key] = _strings(frame[key], MAX_ITEMS, MAX_STRING)
    if isinstance(frame.get("vars"), dict):
        out["vars"] = clean_value(frame["vars"])
    return out


def _line_number(value) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < _INT64:
        return value
    if isinstance(value, str):
        return _small_int(value, 9)
    return None


def _small_int(text: str, max_digits: int) -> int | None:
    # isdigit() alone lets through "²", which int() refuses.
    if text.isascii() and text.isdigit() and len(text) <= max_digits:
        return int(text)
    return None


def _tags(value) -> dict[str, str]:
    if isinstance(value, dict):
        pairs = value.items()
    elif isinstance(value, list):
        pairs = (pair for pair in value if isinstance(pair, list | tuple) and len(pair) == 2)
    else:
        return {}
    tags = {}
    for key, tag_value in pairs:
        if tag_value is None or isinstance(tag_value, dict | list) or isinstance(key, dict | list):
            continue
        name = _text(key, MAX_KEY)
        if name:
            text = key if isinstance(key, str) else str(key)
            long_and_sensitive = len(text) > MAX_KEY and tag_value != "" and key_is_sensitive(text)
            tags[name] = FILTERED if long_and_sensitive else _text(tag_value, MAX_TAG_VALUE)
            if len(tags) >= MAX_ITEMS:
                break
    return tags


def _user(value) -> dict:
    if isinstance(value, str | int) and not isinstance(value, bool):
        return {"id": _text(value, MAX_STRING)}  # the native format allows a bare user id
    return _object(value)


def _sdk(value) -> dict:
    if not isinstance(value, dict):
        return {}
    return {key: _text(value[key], 200) for key in ("name", "version") if isinstance(value.get(key), str)}


def _fingerprint(value) -> list[str] | None:
    parts = _strings(value, MAX_ITEMS, MAX_STRING)
    return parts or None


def _http_status(event: dict, given) -> int | None:
    """Find the HTTP status: given, in the response context, in tags, or in an HTTP error's text."""
    response = event["contexts"].get("response")
    candidates = (
        given,
        response.get("status_code") if isinstance(response, dict) else None,
        event["tags"].get("http.status_code"),
        event["tags"].get("status_code"),
    )
    for candidate in candidates:
        status = _status(candidate)
        if status is not None:
            return status
    for exception in reversed(event["exception"]):
        if any(name in exception["type"] for name in _HTTP_ERROR_NAMES):
            found = _STATUS_IN_TEXT.search(_URL.sub(" ", exception["value"]))
            if found:
                return int(found.group(1))
    return None


def _status(value) -> int | None:
    if isinstance(value, str):
        value = _small_int(value.strip(), 3)
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
        return value
    return None


def _component(event: dict, given) -> str:
    contexts_component = event["contexts"].get("component")
    if isinstance(contexts_component, dict):
        contexts_component = contexts_component.get("name")
    for candidate in (given, event["tags"].get("component"), event["extra"].get("component"), contexts_component):
        if isinstance(candidate, str) and candidate:
            return clean_string(candidate, 200)
    return ""
