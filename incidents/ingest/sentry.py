"""Sentry's wire formats: the auth header, DSNs, envelopes and the legacy store body.

An envelope is a JSON header line followed by items. Each item is a JSON header line
and a payload: exactly `length` bytes when the header says so (then an optional
newline), otherwise the rest of the line. Only `event` items are kept; every other
item type (transactions, sessions, attachments, client reports, logs...) is skipped
and its type recorded, so the caller can answer 200 to an SDK that sends them.
An event id that is not a UUID is refused (400), as the native API refuses it.
"""

import base64
import binascii
import contextlib
import re
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from incidents.ingest.decoding import DEFAULT_MAX_DECOMPRESSED, decode_json, inflate_zlib
from incidents.ingest.errors import IngestError

_AUTH_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SENTRY_SCHEME = re.compile(r"(?i)\s*sentry(?:\s+|$)")


def parse_auth_header(value: str) -> dict[str, str]:
    """Split `Sentry sentry_key=abc, sentry_version=7, ...` into its parameters."""
    if not isinstance(value, str):
        return {}
    scheme = _SENTRY_SCHEME.match(value)
    params = value[scheme.end() :] if scheme else value
    result = {}
    for part in params.split(","):
        name, sep, param_value = part.partition("=")
        name = name.strip()
        if sep and _AUTH_NAME.fullmatch(name):
            result[name] = param_value.strip().strip('"')
    return result


def key_from_dsn(dsn: str) -> tuple[str, str] | None:
    """Return (public key, project id) from `http(s)://<key>[:<secret>]@host[/path]/<project id>`, or None."""
    if not isinstance(dsn, str):
        return None
    try:
        parts = urlsplit(dsn.strip())
        public_key = parts.username
    except ValueError:  # e.g. an unbalanced "[" in the host
        return None
    project_id = parts.path.rstrip("/").rpartition("/")[2]
    if parts.scheme not in ("http", "https") or not public_key or not parts.hostname:
        return None
    if not (project_id.isascii() and project_id.isdigit()):
        return None
    return public_key, project_id


@dataclass
class Envelope:
    """The envelope's header, its event payloads in order, and the types of the items skipped."""

    headers: dict
    events: list[dict] = field(default_factory=list)
    skipped_item_types: list[str] = field(default_factory=list)


def parse_envelope(body: bytes, *, max_events: int) -> Envelope:
    """Parse an envelope, keeping its event items and recording the types of the others."""
    header_line, position = _line(body, 0)
    if not header_line.strip():
        raise IngestError(400, "envelope header", "missing: an envelope starts with a JSON header line")
    headers = decode_json(header_line, "envelope header")
    if not isinstance(headers, dict):
        raise IngestError(400, "envelope header", "must be a JSON object")
    _check_event_id(headers.get("event_id"), "envelope header.event_id")
    envelope = Envelope(headers=headers)
    number = 0
    while position < len(body):
        item_line, position = _line(body, position)
        if not item_line.strip():
            continue  # blank lines between or after items are harmless
        number += 1
        item_type, length = _item_header(item_line, number)
        payload, position = _payload(body, position, length, number)
        if item_type == "event":
            _add_event(envelope, payload, number, max_events)
        else:
            envelope.skipped_item_types.append(item_type)
    return envelope


def _line(body: bytes, start: int) -> tuple[bytes, int]:
    end = body.find(b"\n", start)
    if end == -1:
        return body[start:], len(body)
    return body[start:end], end + 1


def _item_header(line: bytes, number: int) -> tuple[str, int | None]:
    field_name = f"envelope item {number} header"
    header = decode_json(line, field_name)
    if not isinstance(header, dict):
        raise IngestError(400, field_name, "must be a JSON object")
    item_type = header.get("type")
    if not isinstance(item_type, str) or not item_type:
        raise IngestError(400, field_name, 'needs a "type" string')
    length = header.get("length")
    if length is not None and (not isinstance(length, int) or isinstance(length, bool) or length < 0):
        raise IngestError(400, field_name, f'"length" must be a non-negative integer, not {length!r:.40}')
    return item_type[:64], length


def _payload(body: bytes, position: int, length: int | None, number: int) -> tuple[bytes, int]:
    if length is None:
        return _line(body, position)
    end = position + length
    if end > len(body):
        raise IngestError(
            400,
            f"envelope item {number} header",
            f"length {length} runs past the end of the body ({len(body) - position} bytes left)",
        )
    if body[end : end + 1] == b"\n":
        return body[position:end], end + 1
    return body[position:end], end


def _add_event(envelope: Envelope, payload: bytes, number: int, max_events: int) -> None:
    field_name = f"envelope item {number} payload"
    event = decode_json(payload, field_name)
    if not isinstance(event, dict):
        raise IngestError(400, field_name, "an event must be a JSON object")
    if len(envelope.events) >= max_events:
        raise IngestError(400, "envelope", f"more than the limit of {max_events} events in one envelope")
    if not event.get("event_id") and envelope.headers.get("event_id"):
        event["event_id"] = envelope.headers["event_id"]
    _check_event_id(event.get("event_id"), f"{field_name}.event_id")
    envelope.events.append(event)


def _check_event_id(value, field_name: str) -> None:
    """Refuse an event id that is not a UUID, as the native API does, rather than store the event under a new one."""
    if value is None:
        return  # absent: the event gets a new id
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            uuid.UUID(value)
            return
    raise IngestError(400, field_name, f"must be 32 hex digits or a UUID, not {value!r:.50}")


def parse_store(body: bytes, *, max_decompressed: int = DEFAULT_MAX_DECOMPRESSED) -> dict:
    """Parse a legacy store body: one JSON event, or the very old base64 of zlib-compressed JSON."""
    data = body.strip()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:].lstrip()
    if not data:
        raise IngestError(400, "body", "is empty; expected a JSON event object")
    if not data.startswith(b"{"):
        data = _legacy_payload(body, data, max_decompressed)
    event = decode_json(data, "body")
    if not isinstance(event, dict):
        raise IngestError(400, "body", "an event must be a JSON object")
    _check_event_id(event.get("event_id"), "event_id")
    return event


def _legacy_payload(body: bytes, stripped: bytes, max_decompressed: int) -> bytes:
    """Undo the old SDKs' base64(zlib(json)); a bare zlib stream is accepted too."""
    candidates = [body]  # unstripped: a zlib checksum may end in bytes that look like whitespace
    with contextlib.suppress(binascii.Error, ValueError):
        candidates.insert(0, base64.b64decode(stripped, validate=False))
    for candidate in candidates:
        try:
            return inflate_zlib(candidate, max_decompressed=max_decompressed)
        except IngestError as error:
            if error.status == 413:
                raise
    raise IngestError(400, "body", "is neither a JSON object nor base64 of zlib-compressed JSON")
