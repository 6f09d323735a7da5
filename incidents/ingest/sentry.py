"""Sentry's wire formats: the auth header, DSNs, envelopes and the legacy store body."""

import base64
import binascii
import zlib
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from incidents.ingest.decoding import decode_json
from incidents.ingest.errors import IngestError


def parse_auth_header(value: str) -> dict[str, str]:
    """Split `Sentry sentry_key=..., sentry_version=7` into its parameters."""
    _, _, params = value.partition(" ")
    result = {}
    for part in params.split(","):
        name, sep, param_value = part.strip().partition("=")
        if sep:
            result[name.strip()] = param_value.strip()
    return result


def key_from_dsn(dsn: str) -> tuple[str, str] | None:
    """Return (public key, project id) from a DSN, or None when it is not one."""
    if not isinstance(dsn, str) or "@" not in dsn:
        return None
    parts = urlsplit(dsn)
    project_id = parts.path.rstrip("/").rsplit("/", 1)[-1]
    if not parts.username or not project_id:
        return None
    return parts.username, project_id


@dataclass
class Envelope:
    headers: dict
    events: list[dict] = field(default_factory=list)
    skipped_item_types: list[str] = field(default_factory=list)


def parse_envelope(body: bytes, *, max_events: int) -> Envelope:
    """Parse an envelope, keeping its event items and noting the types of the others."""
    header_line, position = _line(body, 0)
    headers = decode_json(header_line, "envelope header")
    if not isinstance(headers, dict):
        raise IngestError(400, "envelope header", "must be a JSON object")
    envelope = Envelope(headers=headers)
    number = 0
    while position < len(body):
        item_line, position = _line(body, position)
        if not item_line.strip():
            continue  # blank lines between or after items are harmless
        number += 1
        item_header = decode_json(item_line, f"envelope item {number} header")
        if not isinstance(item_header, dict):
            raise IngestError(400, f"envelope item {number} header", "must be a JSON object")
        payload, position = _payload(body, position, item_header, number)
        _take_item(envelope, item_header.get("type"), payload, number, max_events)
    return envelope


def _line(body: bytes, start: int) -> tuple[bytes, int]:
    end = body.find(b"\n", start)
    if end == -1:
        return body[start:], len(body)
    return body[start:end], end + 1


def _payload(body: bytes, position: int, item_header: dict, number: int) -> tuple[bytes, int]:
    length = item_header.get("length")
    if length is None:
        return _line(body, position)
    if not isinstance(length, int) or length < 0 or position + length > len(body):
        raise IngestError(400, f"envelope item {number} header", f"length {length!r} runs past the end of the body")
    payload = body[position : position + length]
    position += length
    if body[position : position + 1] == b"\n":
        position += 1
    return payload, position


def _take_item(envelope: Envelope, item_type, payload: bytes, number: int, max_events: int) -> None:
    if item_type != "event":
        envelope.skipped_item_types.append(str(item_type))
        return
    event = decode_json(payload, f"envelope item {number} payload")
    if not isinstance(event, dict):
        raise IngestError(400, f"envelope item {number} payload", "an event must be a JSON object")
    if len(envelope.events) >= max_events:
        raise IngestError(400, "envelope", f"more than {max_events} events in one envelope")
    event.setdefault("event_id", envelope.headers.get("event_id"))
    envelope.events.append(event)


def parse_store(body: bytes, *, max_decompressed: int) -> dict:
    """Parse a store body: JSON, or the very old base64 of zlib-compressed JSON."""
    stripped = body.lstrip()
    if stripped and not stripped.startswith(b"{"):
        stripped = _inflate_legacy(stripped, max_decompressed)
    event = decode_json(stripped, "body")
    if not isinstance(event, dict):
        raise IngestError(400, "body", "an event must be a JSON object")
    return event


def _inflate_legacy(data: bytes, max_decompressed: int) -> bytes:
    inflater = zlib.decompressobj()
    try:
        inflated = inflater.decompress(base64.b64decode(data), max_decompressed + 1)
    except (binascii.Error, zlib.error, ValueError) as error:
        raise IngestError(400, "body", "store body is neither JSON nor base64 zlib") from error
    if len(inflated) > max_decompressed or inflater.unconsumed_tail:
        raise IngestError(413, "body", f"decompressed body is over the limit of {max_decompressed} bytes")
    return inflated
