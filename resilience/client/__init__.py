"""The console client for services that do not share the console's database.

A service configures its resilience runtime with the console's URL and an ingest key:

    client = configure("https://console.example.com", "<ingest key>", environment="production")
    logging.getLogger().addHandler(ConsoleLogHandler(client))

One daemon thread then pulls the breaker, retry and recovery config (`GET /api/v1/resilience/config/`
with If-None-Match, every `poll_seconds`) and applies it to the runtime, and sends what the service
reports in batches: breaker transitions to `/api/v1/resilience/transitions/`, recovery outcomes,
refused config entries and captured errors as native events to `/api/v1/events/`. Every
`windows_seconds` it posts its breakers' window figures to `/api/v1/resilience/windows/`, and on
every turn it makes the breakers' time-driven moves (automatic half-open) that are due.

Reporting sits in the application's path (a breaker's transition, a logging call), so `report()`
and `capture_event()` only append to a bounded buffer: they never block on the network and never
raise. When the buffer is full the oldest entries are dropped and counted. A batch that fails for
a reason that may pass (console down, 5xx, timeout, 429) is kept and retried with capped
exponential backoff (or after Retry-After); one the console refuses (any other 4xx) is dropped,
since sending it again cannot succeed. Delivery is at least once: a batch whose answer was lost
(a timeout) is sent again; the console stores it once (events by event_id, transitions by
breaker, process and generation).

Pure standard library: no Django, no HTTP client package.
"""

from __future__ import annotations

import atexit
import collections
import email.utils
import gzip
import json
import linecache
import logging
import math
import os
import re
import socket
import sysconfig
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from types import TracebackType
from typing import Any

from resilience.exceptions import ConfigError
from resilience.runtime.events import config_refused_event, recovery_event, window_reports
from resilience.runtime.runtime import Runtime, get_runtime, set_runtime

__all__ = ["ConsoleClient", "ConsoleLogHandler", "configure", "event_from_record", "exception_chain"]

logger = logging.getLogger(__name__)

CONFIG_PATH = "/api/v1/resilience/config/"
TRANSITIONS_PATH = "/api/v1/resilience/transitions/"
WINDOWS_PATH = "/api/v1/resilience/windows/"
EVENTS_PATH = "/api/v1/events/"

# The console's per-request limits (incidents/fleet/endpoints.py, INGEST_MAX_BATCH_EVENTS, INGEST_MAX_COMPRESSED_BYTES).
MAX_TRANSITIONS_PER_REQUEST = 100
MAX_EVENTS_PER_REQUEST = 500
MAX_EVENTS_BODY_BYTES = 900 * 1024  # under the 1 MiB compressed limit, with room for headers
MAX_BACKOFF_SECONDS = 30.0
MAX_CHAIN = 10  # exceptions in a cause chain
MAX_FRAMES = 100  # frames per exception: the outermost and innermost halves
MAX_DEPTH = 8  # the console keeps structures 8 levels deep

PROCESS = f"{socket.gethostname()}:{os.getpid()}"
SDK = {"name": "resilience.client", "version": "1.0"}

_TRANSITION = "transition"
_EVENT = "event"
_INDEXED_FIELD = re.compile(r"^(?:events|transitions)\[(\d+)\]")
_WINDOW_BREAKER_FIELD = re.compile(r"^windows\[(\d+)\]\.breaker$")


@dataclass(frozen=True, slots=True)
class _Entry:
    kind: str  # _TRANSITION or _EVENT
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Answer:
    """What one request got: a status (0 when the console could not be reached) and its parts."""

    status: int
    body: bytes = b""
    headers: Message | None = None  # looked up without regard to case
    error: str = ""


class Backoff:
    """Delays that double from `base` up to `cap` after each failure, and start over after a success."""

    def __init__(self, base: float, cap: float = MAX_BACKOFF_SECONDS) -> None:
        self.base = base
        self.cap = max(cap, base)
        self.failures = 0

    def next_delay(self) -> float:
        """Count a failure; return how long to wait before the next attempt."""
        self.failures += 1
        return min(self.cap, self.base * 2 ** min(self.failures - 1, 32))

    def reset(self) -> None:
        self.failures = 0


class ConsoleClient:
    """Pulls resilience config from the console and sends it transitions, recovery outcomes and errors."""

    def __init__(
        self,
        console_url: str,
        token: str,
        *,
        runtime: Runtime | None = None,
        poll_seconds: float = 0.5,
        flush_seconds: float = 1.0,
        windows_seconds: float = 5.0,
        batch_size: int = 100,
        buffer_size: int = 10_000,
        timeout: float = 2.0,
        environment: str | None = None,
        release: str | None = None,
        component: str | None = None,
        on_config: Callable[[int | None], object] | None = None,
    ) -> None:
        for name, value in (
            ("poll_seconds", poll_seconds),
            ("flush_seconds", flush_seconds),
            ("windows_seconds", windows_seconds),
            ("timeout", timeout),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ConfigError(name, f"must be a number of seconds > 0, not {value!r}")
        for name, value in (("batch_size", batch_size), ("buffer_size", buffer_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(name, f"must be an integer >= 1, not {value!r}")
        self.console_url = console_url.rstrip("/")
        self.runtime = runtime  # None: the process's runtime at the time a snapshot is applied
        self.poll_seconds = poll_seconds
        self.flush_seconds = flush_seconds
        self.windows_seconds = windows_seconds
        self.batch_size = batch_size
        self.timeout = timeout
        self.on_config = on_config
        self.last_config_errors: list[ConfigError] = []
        self._headers = {"Authorization": f"Bearer {token}", "User-Agent": f"{SDK['name']}/{SDK['version']}"}
        self._defaults = {
            key: value
            for key, value in (("environment", environment), ("release", release), ("component", component))
            if value
        }
        self._lock = threading.Lock()  # guards the buffer and the counters
        self._buffer: collections.deque[_Entry] = collections.deque()
        self._buffer_size = buffer_size
        self._inflight: list[_Entry] = []  # the batch being sent; only the worker thread touches it
        self._counts = {"sent": 0, "dropped": 0, "failed_sends": 0, "config_pulls": 0, "config_unchanged": 0}
        self._config_version: int | None = None
        self._last_error = ""
        self._etag: str | None = None
        self._logged: set[tuple[Any, ...]] = set()
        self._unreported: set[str] = set()  # breakers the console said are not this source's to report
        self._send_backoff = Backoff(flush_seconds)
        self._poll_backoff = Backoff(poll_seconds, cap=min(MAX_BACKOFF_SECONDS, 5.0))
        self._deadline = math.inf  # requests end by it: close() must keep its timeout
        self._send_not_before = 0.0  # our own backoff (monotonic); a final flush may ignore it
        self._server_not_before = 0.0  # what a 429's Retry-After asked for; always honoured
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    # Reporting: called from the application's threads, so only enqueue.

    def report(self, kind: str, payload: dict) -> None:
        """Queue a runtime report ("breaker.transition", "recovery.outcome", "recovery.alert"); never raises."""
        try:
            if kind == "breaker.transition":
                self._enqueue(_Entry(_TRANSITION, _transition_body(payload)))
            else:
                self._enqueue(_Entry(_EVENT, self._with_defaults(_report_event(kind, payload))))
        except Exception:
            self._count_dropped(1)

    def capture_event(self, event: dict) -> None:
        """Queue a native event (see incidents/ingest/native.py) to send; never blocks, never raises."""
        try:
            if not isinstance(event, Mapping):
                raise TypeError(f"an event must be a mapping, not {type(event).__name__}")
            self._enqueue(_Entry(_EVENT, self._with_defaults(dict(event))))
        except Exception:
            self._count_dropped(1)

    def _with_defaults(self, event: dict[str, Any]) -> dict[str, Any]:
        # The id and time are fixed now: a resend after a lost answer is then stored once, at the right time.
        return {
            "event_id": uuid.uuid4().hex,
            "timestamp": time.time(),
            "server_name": socket.gethostname(),
            "sdk": SDK,
            **self._defaults,
            **event,
        }

    def _enqueue(self, entry: _Entry) -> None:
        with self._lock:
            if len(self._buffer) >= self._buffer_size:
                self._buffer.popleft()
                self._counts["dropped"] += 1
            self._buffer.append(entry)
            # Wake the sender once per batch filled, not on every entry while it is backing off.
            full_batch = len(self._buffer) == self.batch_size
        if full_batch:
            self._wake.set()

    def _count_dropped(self, n: int) -> None:
        with self._lock:
            self._counts["dropped"] += n

    # Lifecycle

    def start(self) -> ConsoleClient:
        """Start the background thread that pulls config and sends reports (once); return self."""
        try:
            with self._lock:
                if self._thread is None and not self._closed:
                    self._thread = threading.Thread(target=self._run, name="resilience-console-client", daemon=True)
                    self._thread.start()
        except Exception:
            logger.warning("could not start the console client", exc_info=True)
        return self

    def close(self, flush: bool = True, timeout: float = 5.0) -> None:
        """Send what can be sent within `timeout` seconds (when `flush`), then stop; what is left is dropped."""
        try:
            deadline = time.monotonic() + timeout
            with self._lock:
                self._closed = True
                thread = self._thread
            self._stopping.set()
            self._wake.set()
            if thread is not None:
                thread.join(max(0.0, deadline - time.monotonic()))
            if flush and (thread is None or not thread.is_alive()):
                self._drain(deadline)
            if thread is None or not thread.is_alive():
                self._drop_leftovers()
        except Exception:
            logger.warning("could not close the console client", exc_info=True)

    def stats(self) -> dict[str, Any]:
        """Return counters: sent, dropped, failed_sends, buffered, config pulls, config_version, last_error."""
        with self._lock:
            return {
                **self._counts,
                "buffered": len(self._buffer) + len(self._inflight),
                "config_version": self._config_version,
                "last_error": self._last_error,
            }

    def _run(self) -> None:
        next_poll = next_flush = time.monotonic()
        next_windows = next_poll + self.windows_seconds
        while not self._stopping.is_set():
            try:
                now = time.monotonic()
                self._current_runtime().breakers.poll()
                if now >= next_poll:
                    next_poll = time.monotonic() + self._pull_config()
                if now >= next_windows:
                    self._send_windows()
                    next_windows = time.monotonic() + self.windows_seconds
                if now >= next_flush or self._buffer_holds_a_batch():
                    # Bounded so that a long backlog never delays the next config pull by much.
                    self._flush(time.monotonic() + self.poll_seconds)
                    next_flush = time.monotonic() + self.flush_seconds
            except Exception:
                # The loop must outlive any surprise: a dead thread would silently stop config and reports.
                logger.warning("console client loop failed", exc_info=True)
                next_poll = next_flush = time.monotonic() + self.flush_seconds
            self._wake.wait(max(0.0, min(next_poll, next_flush, next_windows) - time.monotonic()))
            self._wake.clear()

    def _buffer_holds_a_batch(self) -> bool:
        with self._lock:
            return len(self._buffer) >= self.batch_size

    # Config

    def _pull_config(self) -> float:
        """Fetch and apply the config if it changed; return the seconds until the next pull."""
        headers = {"If-None-Match": self._etag} if self._etag else {}
        answer = self._request("GET", CONFIG_PATH, None, headers)
        with self._lock:
            self._counts["config_pulls"] += 1
        if answer.status == 304:
            with self._lock:
                self._counts["config_unchanged"] += 1
            self._poll_backoff.reset()
            self._forget_failures("config")
            return self.poll_seconds
        if answer.status != 200:
            self._note_failure(("config", answer.status), "could not pull the resilience config: %s", answer)
            return self._poll_backoff.next_delay()
        try:
            snapshot = json.loads(answer.body)
        except ValueError:
            self._note_failure(("config", "json"), "the resilience config is not JSON: %s", answer)
            return self._poll_backoff.next_delay()
        self._poll_backoff.reset()
        self._forget_failures("config")
        self._apply(snapshot, (answer.headers or {}).get("ETag"))
        return self.poll_seconds

    def _current_runtime(self) -> Runtime:
        return self.runtime if self.runtime is not None else get_runtime()

    def _apply(self, snapshot: object, etag: str | None) -> None:
        errors = self._current_runtime().apply(snapshot)  # type: ignore[arg-type]  # apply refuses a non-object
        # Refused entries keep their last good config in the runtime; they are kept here for the service to see.
        self.last_config_errors = errors
        for error in errors:
            logger.error("resilience config entry refused, last good config kept: %s", error)
            self.capture_event(config_refused_event(error))
        self._etag = etag
        version = snapshot.get("version") if isinstance(snapshot, Mapping) else None
        with self._lock:
            self._config_version = version if isinstance(version, int) else self._config_version
        if self.on_config is not None:
            try:
                self.on_config(self._config_version)
            except Exception:
                logger.warning("the on_config callback failed", exc_info=True)

    def _send_windows(self) -> None:
        """Post the breakers' window figures; a failed post is not retried, the next one replaces it."""
        windows = [
            window
            for window in window_reports(self._current_runtime().breakers)
            if window["breaker"] not in self._unreported
        ]
        if not windows:
            return
        body = json.dumps({"process": PROCESS, "windows": windows}).encode()
        answer = self._request("POST", WINDOWS_PATH, body, {"Content-Type": "application/json"})
        if 200 <= answer.status < 300:
            self._forget_failures("windows")
            return
        self._note_failure(("windows", answer.status), "could not report breaker windows: %s", answer)
        match = _WINDOW_BREAKER_FIELD.match(_error_field(answer.body)) if answer.status == 403 else None
        if match and int(match.group(1)) < len(windows):
            # Another source's breaker or the console's own: leave it out, so the rest of the report counts.
            self._unreported.add(windows[int(match.group(1))]["breaker"])

    # Sending

    def _flush(self, deadline: float, *, final: bool = False) -> bool:
        """Send batches until the buffer is empty, a send fails or the deadline passes; return whether all went."""
        self._deadline = deadline
        try:
            while True:
                now = time.monotonic()
                if now < self._server_not_before or (not final and now < self._send_not_before):
                    return False
                if not self._inflight:
                    self._inflight = self._take()
                    if not self._inflight:
                        return True
                if not self._send_inflight() or time.monotonic() >= deadline:
                    return False
        finally:
            self._deadline = math.inf

    def _take(self) -> list[_Entry]:
        with self._lock:
            count = min(self.batch_size, len(self._buffer))
            return [self._buffer.popleft() for _ in range(count)]

    def _send_inflight(self) -> bool:
        """Send the in-flight batch, transitions first; return False to stop flushing for now."""
        for kind in (_TRANSITION, _EVENT):
            while entries := [entry for entry in self._inflight if entry.kind == kind]:
                if not self._send_part(kind, entries):
                    return False
        self._send_backoff.reset()
        return True

    def _send_part(self, kind: str, entries: list[_Entry]) -> bool:
        """Send up to one request's worth of `entries`; settle them in the in-flight batch."""
        if kind == _TRANSITION:
            part = entries[:MAX_TRANSITIONS_PER_REQUEST]
            body, used, oversized = json.dumps({"transitions": [e.body for e in part]}).encode(), len(part), []
            path, headers = TRANSITIONS_PATH, {"Content-Type": "application/json"}
        else:
            body, used, oversized = _encode_events(entries[:MAX_EVENTS_PER_REQUEST])
            path, headers = EVENTS_PATH, {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        self._settle(oversized, dropped=True, reason="an event is too large to send")
        if not used:
            return True
        sent = entries[:used]
        answer = self._request("POST", path, body, headers)
        if 200 <= answer.status < 300:
            self._settle(sent, dropped=False)
            self._forget_failures("send")
            return True
        if answer.status == 429 or answer.status == 0 or answer.status >= 500:
            self._back_off(answer)
            return False
        self._refused(sent, answer, path)
        return True

    def _settle(self, entries: list[_Entry], *, dropped: bool, reason: str = "") -> None:
        if not entries:
            return
        gone = {id(entry) for entry in entries}
        self._inflight = [entry for entry in self._inflight if id(entry) not in gone]
        with self._lock:
            self._counts["dropped" if dropped else "sent"] += len(entries)
            if reason:
                self._last_error = reason

    def _refused(self, sent: list[_Entry], answer: _Answer, path: str) -> None:
        """Drop what the console refused: the one entry its error names, or else the whole batch."""
        field = _error_field(answer.body)
        match = _INDEXED_FIELD.match(field)
        index = int(match.group(1)) if match else None
        refused = [sent[index]] if index is not None and index < len(sent) and len(sent) > 1 else sent
        self._note_failure((path, answer.status, _INDEXED_FIELD.sub("", field)), "the console refused %s", answer)
        self._settle(refused, dropped=True)

    def _back_off(self, answer: _Answer) -> None:
        now = time.monotonic()
        self._send_not_before = now + self._send_backoff.next_delay()
        retry_after = _retry_after_seconds((answer.headers or {}).get("Retry-After"))
        if answer.status == 429 and retry_after is not None:
            self._server_not_before = now + retry_after
        with self._lock:
            self._counts["failed_sends"] += 1
        self._note_failure(("send", answer.status), "could not send reports to the console, will retry: %s", answer)

    def _drain(self, deadline: float) -> None:
        try:
            self._flush(deadline, final=True)
        except Exception:
            logger.warning("the console client's final flush failed", exc_info=True)

    def _drop_leftovers(self) -> None:
        with self._lock:
            left = len(self._buffer) + len(self._inflight)
            self._buffer.clear()
            self._inflight = []
            self._counts["dropped"] += left

    def _note_failure(self, key: tuple[Any, ...], message: str, answer: _Answer) -> None:
        """Keep the error for stats(); log each kind of failure once, so a long outage is not a log flood."""
        text = answer.error or f"HTTP {answer.status}: {answer.body[:300].decode('utf-8', 'replace')}"
        with self._lock:
            self._last_error = text
            first = key not in self._logged
            self._logged.add(key)
        if first:
            logger.warning(message, text)

    def _forget_failures(self, category: str) -> None:
        """Let the next outage of this kind be logged again, once it is over."""
        with self._lock:
            self._logged = {key for key in self._logged if key[0] != category}

    def _request(self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]) -> _Answer:
        request = urllib.request.Request(
            self.console_url + path, data=body, method=method, headers={**self._headers, **headers}
        )
        timeout = max(0.05, min(self.timeout, self._deadline - time.monotonic()))
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return _Answer(response.status, response.read(), response.headers)
        except urllib.error.HTTPError as error:
            with error:
                return _Answer(error.code, error.read(), error.headers)
        except Exception as error:  # refused, reset, timed out, DNS: all mean "not now"
            return _Answer(0, error=f"{type(error).__name__}: {error}")


def _encode_events(entries: list[_Entry]) -> tuple[bytes, int, list[_Entry]]:
    """Return a gzipped {"events": [...]} body of the longest prefix that fits, its length, and oversized events."""
    count = len(entries)
    while count:
        body = gzip.compress(json.dumps({"events": [json_safe(e.body) for e in entries[:count]]}).encode(), 6)
        if len(body) <= MAX_EVENTS_BODY_BYTES:
            return body, count, []
        if count == 1:
            return b"", 0, entries[:1]  # alone and still too large: it can never be sent
        count //= 2
    return b"", 0, []


def _error_field(body: bytes) -> str:
    try:
        field = json.loads(body).get("field")
    except (ValueError, AttributeError):
        return ""
    return field if isinstance(field, str) else ""


def _retry_after_seconds(value: str | None) -> float | None:
    """Read Retry-After as seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


# What runtime reports become.


def _transition_body(payload: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "breaker": str(payload["breaker"]),
        "from_state": str(payload["from_state"]),
        "to_state": str(payload["to_state"]),
        "mode": str(payload.get("mode", "auto")),
        "generation": int(payload.get("generation", 0)),
        "reason": str(payload.get("reason", "")),
        "process": PROCESS,
        "at": float(payload.get("wall_time") or time.time()),
    }


def _report_event(kind: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """A runtime report as a native event: recovery reports as the console makes them, with their payload."""
    if not kind.startswith("recovery."):
        return {"message": kind, "level": "info", "logger": "resilience", "context": dict(payload)}
    return {**recovery_event(kind, payload), "context": dict(payload)}


def json_safe(value: Any, depth: int = 0) -> Any:
    """Return `value` as JSON the console accepts: containers converted, anything else as its repr."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if depth >= MAX_DEPTH:
        return _repr(value)
    if isinstance(value, Mapping):
        return {str(key): json_safe(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(item, depth + 1) for item in value]
    return _repr(value)


def _repr(value: object) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<unrepresentable {type(value).__name__}>"


# Log records and exceptions as native events.

_STANDARD_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
_LEVELS = {logging.CRITICAL: "fatal", logging.ERROR: "error", logging.WARNING: "warning", logging.INFO: "info"}
# Frames from here are the library's, not the service's.
_LIBRARY_PATHS = tuple(
    {str(Path(p).resolve()) for p in (sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib"))}
    | {str(Path(__file__).resolve().parent)}
)


def event_from_record(record: logging.LogRecord) -> dict[str, Any]:
    """Return the native event for a log record: message, level, logger, exception chain and extra context."""
    event: dict[str, Any] = {
        "message": record.getMessage(),
        "level": _level(record.levelno),
        "logger": record.name,
        "timestamp": record.created,
    }
    if record.exc_info and record.exc_info[1] is not None:
        event["exception"] = exception_chain(record.exc_info[1])
    extra = {key: value for key, value in record.__dict__.items() if key not in _STANDARD_RECORD_ATTRIBUTES}
    if extra:
        event["context"] = json_safe(extra)
    return event


def _level(levelno: int) -> str:
    for threshold, name in sorted(_LEVELS.items(), reverse=True):
        if levelno >= threshold:
            return name
    return "debug"


def exception_chain(error: BaseException) -> list[dict[str, Any]]:
    """Return `error` and its causes as native exception entries, oldest cause first."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen and len(chain) < MAX_CHAIN:
        seen.add(id(current))
        chain.append(current)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return [_exception_entry(exc) for exc in reversed(chain)]


def _exception_entry(error: BaseException) -> dict[str, Any]:
    cls = type(error)
    try:
        value = str(error)
    except Exception:
        value = _repr(error)
    return {
        "type": cls.__qualname__,
        "value": value,
        "module": cls.__module__,
        "bases": [base.__name__ for base in cls.__mro__[1:] if base is not object],
        "stacktrace": {"frames": _frames(error.__traceback__)},
    }


def _frames(tb: TracebackType | None) -> list[dict[str, Any]]:
    frames = [
        _frame(frame.f_code.co_filename, frame.f_code.co_name, frame.f_globals, lineno) for frame, lineno in _walk(tb)
    ]
    if len(frames) > MAX_FRAMES:
        half = MAX_FRAMES // 2
        frames = frames[:half] + frames[-half:]
    return frames


def _walk(tb: TracebackType | None) -> Iterator[tuple[Any, int]]:
    while tb is not None:
        yield tb.tb_frame, tb.tb_lineno
        tb = tb.tb_next


def _frame(filename: str, function: str, module_globals: Mapping[str, Any], lineno: int) -> dict[str, Any]:
    return {
        "filename": filename,
        "function": function,
        "module": str(module_globals.get("__name__", "")),
        "lineno": lineno,
        "context_line": linecache.getline(filename, lineno, module_globals).strip(),
        "in_app": _in_app(filename),
    }


def _in_app(filename: str) -> bool:
    """Guess whether a frame is the service's own code: not the standard library, an installed package or this one."""
    if filename.startswith("<"):
        return False
    try:
        path = str(Path(filename).resolve())
    except OSError:
        return False
    return not any(path == root or path.startswith(root + os.sep) for root in _LIBRARY_PATHS)


# Logging


_emitting = threading.local()


class ConsoleLogHandler(logging.Handler):
    """A logging handler that sends records (ERROR and above by default) to the console as events."""

    def __init__(self, client: ConsoleClient, level: int = logging.ERROR) -> None:
        super().__init__(level)
        self.client = client

    def emit(self, record: logging.LogRecord) -> None:
        # The client's own records, and anything logged while a record is being captured, would loop back.
        if record.name == logger.name or record.name.startswith(logger.name + ".") or getattr(_emitting, "on", False):
            return
        _emitting.on = True
        try:
            self.client.capture_event(event_from_record(record))
        except Exception:
            self.handleError(record)
        finally:
            _emitting.on = False


def configure(console_url: str, token: str, **options: Any) -> ConsoleClient:
    """Install a runtime configured and watched by the console at `console_url`; return its started client.

    `options` are ConsoleClient's. The runtime keeps a wall clock (breaker times are compared across
    processes) and reports to the client; the decorators in resilience.runtime.decorators use it.
    """
    client = ConsoleClient(console_url, token, **options)
    runtime = Runtime(clock=time.time, reporter=client.report)
    client.runtime = runtime
    set_runtime(runtime)
    # Daemon threads die with the interpreter; at exit, send what is still buffered.
    atexit.register(client.close)
    return client.start()
