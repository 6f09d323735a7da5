"""Grouping: the fingerprint that decides which incident an event belongs to, and its title."""

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

# Order matters: wider patterns first, so an email or UUID is not half-eaten by the number rule.
_SUBSTITUTIONS = [
    (re.compile(r"'[^'\n]{0,200}'|\"[^\"\n]{0,200}\""), "<quoted>"),
    (re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"), "<email>"),
    (re.compile(r"\b[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\b", re.IGNORECASE), "<uuid>"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?\b"), "<date>"),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b"), "<ip>"),
    (re.compile(r"\b(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}\b", re.IGNORECASE), "<ip>"),
    (re.compile(r"\b0x[0-9a-f]+\b", re.IGNORECASE), "<hex>"),
    (re.compile(r"\b(?=[0-9a-f]*\d)[0-9a-f]{8,}\b", re.IGNORECASE), "<hex>"),
    (re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?\b"), "<num>"),
]
_DEFAULT_MARKER = re.compile(r"^\{\{\s*default\s*\}\}$", re.IGNORECASE)


def normalize_message(text: str) -> str:
    """Replace the parts of a message that vary between occurrences with placeholders."""
    for pattern, placeholder in _SUBSTITUTIONS:
        text = pattern.sub(placeholder, text)
    return text.strip()


@dataclass(frozen=True)
class Grouping:
    fingerprint: str
    title: str
    culprit: str


def _frame_key(frame: Mapping) -> str:
    where = frame.get("module") or frame.get("filename") or frame.get("abs_path") or "?"
    return f"{where}:{frame.get('function') or '?'}"


def _call_site(exception: Mapping) -> list[str]:
    """The in-app frames (or all frames when none is in-app), without line numbers."""
    frames = (exception.get("stacktrace") or {}).get("frames") or []
    in_app = [frame for frame in frames if frame.get("in_app")]
    return [_frame_key(frame) for frame in (in_app or frames)]


def default_components(event: Mapping) -> list[str]:
    chain = event.get("exception") or []
    if chain:
        surfaced = chain[-1]
        components = [exception.get("type") or "" for exception in chain]
        site = _call_site(surfaced)
        if site:
            return ["exception", *components, *site]
        return ["exception", *components, normalize_message(surfaced.get("value") or "")]
    return ["message", normalize_message(event.get("message") or ""), event.get("logger") or ""]


def _components(event: Mapping) -> list[str]:
    client = event.get("client_fingerprint")
    if not client:
        return default_components(event)
    components = ["client"]
    for part in client:
        if _DEFAULT_MARKER.match(str(part).strip()):
            components += default_components(event)
        else:
            components.append(str(part))
    return components


def _title(event: Mapping) -> str:
    chain = event.get("exception") or []
    if chain:
        surfaced = chain[-1]
        value = (surfaced.get("value") or "").split("\n", 1)[0]
        title = f"{surfaced.get('type')}: {value}" if value else surfaced.get("type") or ""
    else:
        title = (event.get("message") or "").split("\n", 1)[0]
    title = title.strip() or "<no message>"
    return title if len(title) <= 255 else title[:254] + "…"


def _culprit(event: Mapping) -> str:
    chain = event.get("exception") or []
    frames = ((chain[-1].get("stacktrace") or {}).get("frames") or []) if chain else []
    in_app = [frame for frame in frames if frame.get("in_app")]
    frame = (in_app or frames or [None])[-1]
    if frame:
        where = frame.get("module") or frame.get("filename") or "?"
        culprit = f"{where} in {frame.get('function') or '?'}"
    else:
        culprit = event.get("transaction") or event.get("logger") or ""
    return culprit[:255]


def group(event: Mapping) -> Grouping:
    """Compute the fingerprint, title and culprit of an event."""
    digest = hashlib.sha256("\x1f".join(_components(event)).encode("utf-8", "replace")).hexdigest()
    return Grouping(fingerprint=digest, title=_title(event), culprit=_culprit(event))
