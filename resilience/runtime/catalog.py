"""What the runtime knows about error types: which category each belongs to and whether retrying can help.

A `Catalog` maps the console's error-type codes (NETWORK_TIMEOUT, API_AUTH, ...) to a category and a
transient flag. The built-in default reproduces the console's seeded ErrorType table; the console
builds one from its rows and a remote client from pulled JSON, both through `Catalog.from_data`.

`classify()` is the small built-in classifier from an exception or HTTP status to a code, so the
runtime can decide transient vs permanent without the console's rule engine. Its order:
an `error_type` the exception instance carries explicitly, then the HTTP status it carries, then the
exception's MRO (so subclasses count), including the `error_type` of resilience.exceptions classes.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from resilience.exceptions import ConfigError

FALLBACK_CODE = "UNEXPECTED"


class Category(StrEnum):
    """The console's error categories."""

    NETWORK = "NETWORK"
    DATABASE = "DATABASE"
    API = "API"
    RATE_LIMIT = "RATE_LIMIT"
    AUTH = "AUTH"
    VALIDATION = "VALIDATION"
    DATA = "DATA"
    STORAGE = "STORAGE"
    PROCESSING = "PROCESSING"
    WEBSOCKET = "WEBSOCKET"
    CONFIGURATION = "CONFIGURATION"
    SYSTEM = "SYSTEM"
    UNKNOWN = "UNKNOWN"


@dataclass(frozen=True)
class ErrorTypeEntry:
    """One error type: its code, its category, and whether a retry may succeed."""

    code: str
    category: str
    transient: bool


# code: (category, transient) — the console's seeded ErrorType table (incidents migration 0002).
DEFAULT_ERROR_TYPES: dict[str, tuple[str, bool]] = {
    "NETWORK_TIMEOUT": ("NETWORK", True),
    "NETWORK_CONNECTION": ("NETWORK", True),
    "NETWORK_DNS": ("NETWORK", True),
    "API_RATE_LIMIT": ("RATE_LIMIT", True),
    "API_AUTH": ("AUTH", False),
    "API_PERMISSION": ("AUTH", False),
    "API_FORMAT": ("API", False),
    "API_BAD_REQUEST": ("API", False),
    "API_NOT_FOUND": ("API", False),
    "API_SERVER_ERROR": ("API", True),
    "API_ERROR": ("API", False),
    "DATA_EMPTY": ("DATA", False),
    "DATA_VALIDATION": ("VALIDATION", False),
    "DATA_INTEGRITY": ("DATA", False),
    "DATA_TRANSFORMATION": ("DATA", False),
    "DATA_SCHEMA": ("DATA", False),
    "DATA_DUPLICATE": ("DATA", False),
    "DATA_MISSING": ("DATA", True),
    "STORAGE_READ": ("STORAGE", False),
    "STORAGE_WRITE": ("STORAGE", True),
    "STORAGE_SPACE": ("STORAGE", False),
    "STORAGE_PERMISSION": ("STORAGE", False),
    "DATABASE_ERROR": ("DATABASE", True),
    "WEBSOCKET_ERROR": ("WEBSOCKET", True),
    "CONFIGURATION_ERROR": ("CONFIGURATION", False),
    "VALIDATION_ERROR": ("VALIDATION", False),
    "PROCESSING_ERROR": ("PROCESSING", False),
    "SYSTEM_ERROR": ("SYSTEM", False),
    # Retrying into an open breaker defeats failing fast; the breaker itself decides when to probe.
    "CIRCUIT_OPEN": ("SYSTEM", False),
    "INTERNAL": ("SYSTEM", False),
    "UNEXPECTED": ("UNKNOWN", False),
}


class Catalog:
    """Error-type codes mapped to category and transient flag; unknown codes are permanent and UNKNOWN."""

    def __init__(self, entries: Iterable[ErrorTypeEntry]) -> None:
        self._entries = {entry.code: entry for entry in entries}

    @classmethod
    def default(cls) -> Catalog:
        """Return the catalog of the console's seeded error types."""
        return cls(
            ErrorTypeEntry(code, category, transient) for code, (category, transient) in DEFAULT_ERROR_TYPES.items()
        )

    @classmethod
    def from_data(cls, rows: Iterable[Mapping[str, Any]]) -> Catalog:
        """Build a catalog from rows with code, category and transient (extra keys, e.g. severity, are ignored)."""
        return cls(_entry_from_row(index, row) for index, row in enumerate(rows))

    def to_data(self) -> list[dict[str, Any]]:
        """Return the rows `from_data` accepts, sorted by code."""
        return [
            {"code": entry.code, "category": entry.category, "transient": entry.transient}
            for entry in sorted(self._entries.values(), key=lambda entry: entry.code)
        ]

    def entry(self, code: str) -> ErrorTypeEntry:
        """Return the entry for a code; an unknown code gets an UNKNOWN, permanent entry."""
        known = self._entries.get(code)
        return known if known is not None else ErrorTypeEntry(code, Category.UNKNOWN.value, False)

    def category(self, code: str) -> str:
        """Return the category of a code."""
        return self.entry(code).category

    def is_transient(self, code: str) -> bool:
        """Return whether errors of this code may succeed when retried."""
        return self.entry(code).transient

    def __contains__(self, code: object) -> bool:
        return code in self._entries

    def __iter__(self) -> Iterator[ErrorTypeEntry]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)


def _entry_from_row(index: int, row: Mapping[str, Any]) -> ErrorTypeEntry:
    """Return one validated entry; errors name the row and the field."""
    code, category, transient = row.get("code"), row.get("category"), row.get("transient")
    if not isinstance(code, str) or not code:
        raise ConfigError(f"rows[{index}].code", f"must be a non-empty string, not {code!r}")
    if not isinstance(category, str) or not category:
        raise ConfigError(f"rows[{index}].category", f"must be a non-empty string, not {category!r}")
    if not isinstance(transient, bool):
        raise ConfigError(f"rows[{index}].transient", f"must be true or false, not {transient!r}")
    return ErrorTypeEntry(code, category, transient)


DEFAULT_CATALOG = Catalog.default()


# Classification.

# Checked along the exception's MRO, so subclasses (ConnectionRefusedError, requests' JSONDecodeError) count.
_CODES_BY_CLASS: dict[type[BaseException], str] = {
    TimeoutError: "NETWORK_TIMEOUT",  # also socket.timeout and asyncio.TimeoutError on 3.11
    ConnectionError: "NETWORK_CONNECTION",
    json.JSONDecodeError: "DATA_TRANSFORMATION",
    UnicodeDecodeError: "DATA_TRANSFORMATION",
    PermissionError: "STORAGE_PERMISSION",
    FileNotFoundError: "STORAGE_READ",
    IsADirectoryError: "STORAGE_READ",
    NotADirectoryError: "STORAGE_READ",
    FileExistsError: "STORAGE_WRITE",
}

# Library classes by "module.qualname", so the runtime needs none of these libraries installed.
_CODES_BY_NAME: dict[str, str] = {
    "socket.gaierror": "NETWORK_DNS",
    "socket.herror": "NETWORK_DNS",
    "urllib3.exceptions.NameResolutionError": "NETWORK_DNS",
    "aiohttp.client_exceptions.ClientConnectorDNSError": "NETWORK_DNS",
    "requests.exceptions.ConnectionError": "NETWORK_CONNECTION",
    "urllib3.exceptions.NewConnectionError": "NETWORK_CONNECTION",
    "urllib3.exceptions.ProtocolError": "NETWORK_CONNECTION",
    "httpx.NetworkError": "NETWORK_CONNECTION",
    "httpx.ProtocolError": "NETWORK_CONNECTION",
    "aiohttp.client_exceptions.ClientConnectionError": "NETWORK_CONNECTION",
    "httpx.DecodingError": "DATA_TRANSFORMATION",
}

_STATUS_CODES = {
    400: "API_BAD_REQUEST",
    401: "API_AUTH",
    403: "API_PERMISSION",
    404: "API_NOT_FOUND",
    408: "NETWORK_TIMEOUT",
    422: "DATA_VALIDATION",
    429: "API_RATE_LIMIT",
}

_NO_SPACE_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


def status_of(obj: object) -> int | None:
    """Return the HTTP status an exception or response carries (status_code, status, response.status_code)."""
    for holder in (obj, getattr(obj, "response", None)):
        if holder is None:
            continue
        for attribute in ("status_code", "status"):
            value = getattr(holder, attribute, None)
            # bool is an int; a `status: bool` flag is not an HTTP status.
            if isinstance(value, int) and not isinstance(value, bool):
                return value
    return None


def classify_status(status: int) -> str | None:
    """Return the error-type code of an HTTP status, or None for statuses that are not errors."""
    if status in _STATUS_CODES:
        return _STATUS_CODES[status]
    if 500 <= status <= 599:
        return "API_SERVER_ERROR"
    if 400 <= status <= 499:
        return "API_ERROR"
    return None


def classify(error: BaseException | int) -> str:
    """Return the error-type code of an exception or an HTTP status; UNEXPECTED when nothing matches."""
    if isinstance(error, int):
        return classify_status(error) or FALLBACK_CODE
    explicit = vars(error).get("error_type")
    if isinstance(explicit, str):
        return explicit
    status = status_of(error)
    by_status = classify_status(status) if status is not None else None
    return by_status or _classify_by_mro(error)


def _classify_by_mro(error: BaseException) -> str:
    """Return the code of the most specific class in the exception's MRO that says anything."""
    for klass in type(error).__mro__:
        code = _code_of_class(klass, error)
        if code is not None:
            return code
    return FALLBACK_CODE


def _code_of_class(klass: type, error: BaseException) -> str | None:
    """Return what one class of the MRO says about the error, or None."""
    declared = klass.__dict__.get("error_type")
    if isinstance(declared, str):
        return declared
    if klass is OSError and getattr(error, "errno", None) in _NO_SPACE_ERRNOS:
        return "STORAGE_SPACE"
    if klass in _CODES_BY_CLASS:
        return _CODES_BY_CLASS[klass]
    by_name = _CODES_BY_NAME.get(f"{klass.__module__}.{klass.__qualname__}")
    if by_name is not None:
        return by_name
    # Libraries name their timeouts *Timeout* without deriving from TimeoutError (requests, httpx).
    if "timeout" in klass.__name__.lower():
        return "NETWORK_TIMEOUT"
    return None


def category_of(error: BaseException | int, catalog: Catalog | None = None) -> str:
    """Return the category of an exception or HTTP status."""
    return _or_default(catalog).category(classify(error))


def is_transient(error: BaseException | int, catalog: Catalog | None = None) -> bool:
    """Return whether retrying may help with this exception or HTTP status."""
    return _or_default(catalog).is_transient(classify(error))


def _or_default(catalog: Catalog | None) -> Catalog:
    # Not `catalog or ...`: an empty catalog is falsy (len 0) yet deliberately chosen.
    return catalog if catalog is not None else DEFAULT_CATALOG
