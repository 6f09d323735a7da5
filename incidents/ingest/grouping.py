"""Grouping: the fingerprint that decides which incident an event joins, and its title and culprit.

The default fingerprint is, in order of preference: the exception chain's types plus the
call site (in-app frames as module and function, without line numbers); the exception
types plus the normalised exception value when there are no frames; the normalised
message plus the logger when there is no exception. An SDK's own fingerprint wins, with
"{{ default }}" standing for the default components.
"""

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

MAX_TEXT = 255
NO_MESSAGE = "<no message>"

# Order matters: the specific shapes go first, so that the number rule cannot eat part of
# an email, a UUID, a date or an address, and quotes go just before numbers.
_SUBSTITUTIONS = [
    (re.compile(r"(?<=[?&])([\w.\-\[\]%]+)=[^\s&#'\"]*"), r"\1=<value>"),  # URL query values
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "<email>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.IGNORECASE), "<uuid>"),
    (
        re.compile(r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?(?!\d)"),
        "<date>",
    ),
    (re.compile(r"\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b"), "<time>"),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?\b"), "<ip>"),
    (
        re.compile(
            r"(?<![\w:])(?:(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}"
            r"|(?:[0-9a-f]{1,4}(?::[0-9a-f]{1,4})*)?::(?:[0-9a-f]{1,4}(?::[0-9a-f]{1,4})*)?)(?![\w:])",
            re.IGNORECASE,
        ),
        "<ip>",
    ),
    (re.compile(r"\b0x[0-9a-f]+\b", re.IGNORECASE), "<hex>"),
    # Long hex runs with both a digit and a letter: hashes and ids, not words or plain numbers.
    (re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b", re.IGNORECASE), "<hex>"),
    # A single quote next to a letter is an apostrophe ("can't"), not a quotation.
    (re.compile(r"(?<!\w)'[^'\n]*'(?!\w)|\"[^\"\n]*\""), "<quoted>"),
    (re.compile(r"\d+(?:[.,]\d+)*"), "<num>"),
]
_DEFAULT_MARKER = re.compile(r"\{\{\s*default\s*\}\}", re.IGNORECASE)
_OMITTED_FRAMES = re.compile(r"\[\d+ frames omitted\]")  # placeholder ingest puts in a cut stack trace
_LINE_SUFFIX = re.compile(r"(?::\d+)+$")  # "app.js:120:17": bundlers put positions in names


@dataclass(frozen=True)
class Grouping:
    fingerprint: str
    title: str
    culprit: str


def normalize_message(text: str) -> str:
    """Replace the parts of a message that vary between occurrences (ids, numbers, addresses) with placeholders."""
    for pattern, placeholder in _SUBSTITUTIONS:
        text = pattern.sub(placeholder, text)
    return text.strip()


def group(event: Mapping) -> Grouping:
    """Compute the fingerprint, title and culprit of an event."""
    fingerprint = hashlib.sha256("\n".join(_components(event)).encode("utf-8", "replace")).hexdigest()
    return Grouping(fingerprint=fingerprint, title=_title(event), culprit=_culprit(event))


def default_components(event: Mapping) -> list[str]:
    """Return what the default fingerprint is made of, each part tagged with what it is."""
    chain = _chain(event)
    if not chain:
        return [f"message:{normalize_message(_text(event.get('message')))}", f"logger:{_text(event.get('logger'))}"]
    types = [f"type:{_qualified_type(entry)}" for entry in chain]
    site = _call_site(_frames(chain))
    if site:
        return [*types, *(f"frame:{frame}" for frame in site)]
    return [*types, f"value:{normalize_message(_text(chain[-1].get('value')))}"]


def _components(event: Mapping) -> list[str]:
    client = event.get("client_fingerprint")
    if not client or not isinstance(client, list):
        return default_components(event)
    components: list[str] = []
    for part in client:
        if _DEFAULT_MARKER.fullmatch(str(part).strip()):
            components += default_components(event)
        else:
            # Tagged, so a client value can never collide with a default component.
            components.append(f"client:{part}")
    return components


def _text(value) -> str:
    return value if isinstance(value, str) else ""


def _chain(event: Mapping) -> list[Mapping]:
    return [entry for entry in event.get("exception") or [] if isinstance(entry, Mapping)]


def _qualified_type(entry: Mapping) -> str:
    module = _text(entry.get("module"))
    name = _text(entry.get("type"))
    return f"{module}.{name}" if module and module != "builtins" else name


def _frames(chain: list[Mapping]) -> list[Mapping]:
    """Return the surfaced exception's real frames, or those of the nearest cause that has any."""
    for entry in reversed(chain):
        stacktrace = entry.get("stacktrace")
        frames = stacktrace.get("frames") if isinstance(stacktrace, Mapping) else None
        real = [frame for frame in frames or [] if isinstance(frame, Mapping) and not _is_placeholder(frame)]
        if real:
            return real
    return []


def _is_placeholder(frame: Mapping) -> bool:
    return bool(_OMITTED_FRAMES.fullmatch(_text(frame.get("function"))))


def _call_site(frames: list[Mapping]) -> list[str]:
    """Return the in-app frames (all frames if none is in-app) as "where:function", recursion collapsed."""
    chosen = [frame for frame in frames if frame.get("in_app") is True] or frames
    site: list[str] = []
    for frame in chosen:
        key = f"{_where(frame)}:{_text(frame.get('function'))}"
        if not site or site[-1] != key:  # a deeper recursion is the same failure
            site.append(key)
    return site


def _where(frame: Mapping) -> str:
    module = _text(frame.get("module"))
    if module:
        return module
    return _LINE_SUFFIX.sub("", _text(frame.get("filename")) or _text(frame.get("abs_path")))


def _truncate(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _title(event: Mapping) -> str:
    chain = _chain(event)
    if chain:
        name = _text(chain[-1].get("type"))
        value = _first_line(_text(chain[-1].get("value")))
        title = f"{name}: {value}" if name and value else name or value
    else:
        title = _first_line(_text(event.get("message")))
    return _truncate(title or NO_MESSAGE)


def _culprit(event: Mapping) -> str:
    frames = _frames(_chain(event))
    in_app = [frame for frame in frames if frame.get("in_app") is True]
    if frames:
        frame = (in_app or frames)[-1]  # Sentry order: the last frame is where it was raised
        where, function = _where(frame), _text(frame.get("function"))
        culprit = f"{where} in {function}" if where and function else where or function
        if culprit:
            return _truncate(culprit)
    return _truncate(_text(event.get("transaction")) or _text(event.get("logger")))
