"""Classification: from what an event looks like to an error type, category and severity.

Rules are tried in (position, id) order; every filled-in condition of a rule must match
(AND); the first matching rule wins; an event no rule matches is UNEXPECTED. Everything
here is pure: the rules are read from the database elsewhere (classification.py), once per
second, and events are classified from memory. The grammar of a rule's conditions is
rule_grammar.py's. Message patterns run on RE2
(incidents/patterns.py), so no pattern an operator saves can make a match backtrack.
"""

import asyncio
import builtins
import concurrent.futures
import logging
import select
import socket
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache

from incidents.ingest.rule_grammar import parse_http_status, split_exception_types
from incidents.patterns import Pattern, compile_pattern, encode_text
from resilience.exceptions import Severity
from resilience.runtime.catalog import FALLBACK_CODE, Category

logger = logging.getLogger(__name__)

FALLBACK_TYPE = FALLBACK_CODE
# Stored ranks, from the pure definitions rather than the models, so this module needs no app registry.
CRITICAL = Severity.CRITICAL.rank
HIGH = Severity.HIGH.rank


@dataclass(frozen=True)
class ErrorTypeInfo:
    """What classification needs from an ErrorType row: plain data, so a catalog can be cached."""

    code: str
    category: str
    default_severity: int


@dataclass(frozen=True)
class Classification:
    error_type: str
    category: str
    severity: int


# Used only if the catalog lacks a code, so a half-seeded database still classifies.
_MISSING_INFO = ErrorTypeInfo(code=FALLBACK_TYPE, category=Category.UNKNOWN.value, default_severity=HIGH)


# Exception hierarchies.
#
# Sentry SDKs send an exception's class name and module but not its base classes, so a
# rule written against a base class ("ConnectionError", "requests.Timeout") would miss
# every subclass. Builtins are read from the interpreter; well-known libraries come from
# this table, keyed by the module their classes report (`__module__`). A parent is a
# name in the same module, a builtin, "builtins.X" when a module reuses a builtin's
# name, or a dotted name of another table entry.

_DBAPI = {
    "Error": ("Exception",),
    "Warning": ("Exception",),
    "InterfaceError": ("Error",),
    "DatabaseError": ("Error",),
    "DataError": ("DatabaseError",),
    "OperationalError": ("DatabaseError",),
    "IntegrityError": ("DatabaseError",),
    "InternalError": ("DatabaseError",),
    "ProgrammingError": ("DatabaseError",),
    "NotSupportedError": ("DatabaseError",),
}


def _sqlstate_errors(base: str) -> dict[str, tuple[str, ...]]:
    """Return the psycopg/psycopg2 per-SQLSTATE classes the rules care about."""
    return {
        "UniqueViolation": (f"{base}.IntegrityError",),
        "ForeignKeyViolation": (f"{base}.IntegrityError",),
        "NotNullViolation": (f"{base}.IntegrityError",),
        "CheckViolation": (f"{base}.IntegrityError",),
        "QueryCanceled": (f"{base}.OperationalError",),
        "TransactionRollback": (f"{base}.OperationalError",),
        "SerializationFailure": ("TransactionRollback",),
        "DeadlockDetected": ("TransactionRollback",),
    }


KNOWN_HIERARCHY: dict[str, dict[str, tuple[str, ...]]] = {
    "requests.exceptions": {
        "RequestException": ("OSError",),
        "HTTPError": ("RequestException",),
        "ConnectionError": ("RequestException",),
        "ProxyError": ("ConnectionError",),
        "SSLError": ("ConnectionError",),
        "Timeout": ("RequestException",),
        "ConnectTimeout": ("ConnectionError", "Timeout"),
        "ReadTimeout": ("Timeout",),
        "TooManyRedirects": ("RequestException",),
        "InvalidJSONError": ("RequestException",),
        "JSONDecodeError": ("InvalidJSONError", "json.decoder.JSONDecodeError"),
    },
    "urllib3.exceptions": {
        "HTTPError": ("Exception",),
        "PoolError": ("HTTPError",),
        "RequestError": ("PoolError",),
        "MaxRetryError": ("RequestError",),
        "TimeoutError": ("HTTPError",),
        "ReadTimeoutError": ("TimeoutError", "RequestError"),
        "ConnectTimeoutError": ("TimeoutError",),
        # urllib3 derives NewConnectionError from ConnectTimeoutError only for backwards
        # compatibility; a refused connection is not a timeout, so that edge is left out.
        "NewConnectionError": ("HTTPError",),
        "NameResolutionError": ("NewConnectionError",),
        "ProtocolError": ("HTTPError",),
        "SSLError": ("HTTPError",),
        "ProxyError": ("HTTPError",),
    },
    "httpx": {
        "HTTPError": ("Exception",),
        "RequestError": ("HTTPError",),
        "TransportError": ("RequestError",),
        "TimeoutException": ("TransportError",),
        "ConnectTimeout": ("TimeoutException",),
        "ReadTimeout": ("TimeoutException",),
        "WriteTimeout": ("TimeoutException",),
        "PoolTimeout": ("TimeoutException",),
        "NetworkError": ("TransportError",),
        "ConnectError": ("NetworkError",),
        "ReadError": ("NetworkError",),
        "WriteError": ("NetworkError",),
        "CloseError": ("NetworkError",),
        "ProtocolError": ("TransportError",),
        "RemoteProtocolError": ("ProtocolError",),
        "LocalProtocolError": ("ProtocolError",),
        "ProxyError": ("TransportError",),
        "UnsupportedProtocol": ("TransportError",),
        "DecodingError": ("RequestError",),
        "TooManyRedirects": ("RequestError",),
        "HTTPStatusError": ("HTTPError",),
    },
    "aiohttp.client_exceptions": {
        "ClientError": ("Exception",),
        "ClientResponseError": ("ClientError",),
        "ContentTypeError": ("ClientResponseError",),
        "ClientConnectionError": ("ClientError",),
        "ClientOSError": ("ClientConnectionError", "OSError"),
        "ClientConnectorError": ("ClientOSError",),
        "ClientConnectorDNSError": ("ClientConnectorError",),
        "ServerConnectionError": ("ClientConnectionError",),
        "ServerDisconnectedError": ("ServerConnectionError",),
        "ServerTimeoutError": ("ServerConnectionError", "TimeoutError"),
        "ClientPayloadError": ("ClientError",),
    },
    # Events from Python < 3.10/3.11, where these were not yet the builtin TimeoutError.
    "socket": {"gaierror": ("OSError",), "herror": ("OSError",), "timeout": ("TimeoutError",)},
    "asyncio.exceptions": {"TimeoutError": ("builtins.TimeoutError",)},
    "concurrent.futures._base": {"TimeoutError": ("builtins.TimeoutError",)},
    "json.decoder": {"JSONDecodeError": ("ValueError",)},
    "ssl": {"SSLError": ("OSError",), "SSLCertVerificationError": ("SSLError", "ValueError")},
    "django.core.exceptions": {
        "ValidationError": ("Exception",),
        "ImproperlyConfigured": ("Exception",),
        "PermissionDenied": ("Exception",),
        "ObjectDoesNotExist": ("Exception",),
        "SuspiciousOperation": ("Exception",),
    },
    "django.db.utils": _DBAPI,
    "psycopg": _DBAPI,
    "psycopg.errors": _sqlstate_errors("psycopg"),
    "psycopg_pool": {"PoolTimeout": ("psycopg.OperationalError",)},
    "psycopg2": _DBAPI,
    "psycopg2.errors": _sqlstate_errors("psycopg2"),
    "sqlite3": _DBAPI,
    "sqlalchemy.exc": {
        "SQLAlchemyError": ("Exception",),
        "StatementError": ("SQLAlchemyError",),
        "DBAPIError": ("StatementError",),
        "InterfaceError": ("DBAPIError",),
        "DatabaseError": ("DBAPIError",),
        "DataError": ("DatabaseError",),
        "OperationalError": ("DatabaseError",),
        "IntegrityError": ("DatabaseError",),
        "InternalError": ("DatabaseError",),
        "ProgrammingError": ("DatabaseError",),
        "NotSupportedError": ("DatabaseError",),
    },
    "pydantic_core._pydantic_core": {"ValidationError": ("ValueError",)},
    "pydantic.error_wrappers": {"ValidationError": ("ValueError",)},  # pydantic 1
    "websockets.exceptions": {
        "WebSocketException": ("Exception",),
        "ConnectionClosed": ("WebSocketException",),
        "ConnectionClosedOK": ("ConnectionClosed",),
        "ConnectionClosedError": ("ConnectionClosed",),
        "InvalidURI": ("WebSocketException",),
        "InvalidHandshake": ("WebSocketException",),
        "InvalidMessage": ("InvalidHandshake",),
        "InvalidStatus": ("InvalidHandshake",),
        "InvalidStatusCode": ("InvalidHandshake",),  # websockets < 14
        "InvalidHeader": ("InvalidHandshake",),
        "ProtocolError": ("WebSocketException",),
        "PayloadTooBig": ("WebSocketException",),
        "InvalidState": ("WebSocketException", "AssertionError"),
    },
}


def _builtin_tree() -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    """Read builtin exception parents, and the other names the same classes go by."""
    parents: dict[str, tuple[str, ...]] = {}
    aliases: dict[str, set[str]] = {}
    for name, obj in vars(builtins).items():
        if isinstance(obj, type) and issubclass(obj, BaseException):
            if name == obj.__name__:
                parents[name] = tuple(base.__name__ for base in obj.__bases__ if base is not object)
            else:
                aliases.setdefault(obj.__name__, set()).add(name)  # IOError, EnvironmentError
    # socket.timeout, asyncio.TimeoutError and friends are the builtin classes nowadays.
    for module in (socket, select, asyncio, concurrent.futures):
        for name, obj in vars(module).items():
            if (
                isinstance(obj, type)
                and parents.get(obj.__name__) is not None
                and getattr(builtins, obj.__name__) is obj
            ):
                aliases.setdefault(obj.__name__, set()).add(f"{module.__name__}.{name}")
    return parents, {name: tuple(sorted(names)) for name, names in aliases.items()}


_BUILTIN_PARENTS, _BUILTIN_ALIASES = _builtin_tree()
_BUILTIN_NAMES = {alias: name for name, names in _BUILTIN_ALIASES.items() for alias in names if "." not in alias}
_BUILTIN_MODULES = {"", "builtins", "__builtin__", "exceptions"}


def _qualified_forms(module: str, name: str) -> list[str]:
    """Return `name` qualified by each prefix of its module: requests.HTTPError, requests.exceptions.HTTPError."""
    parts = module.split(".")
    return [f"{'.'.join(parts[:end])}.{name}" for end in range(1, len(parts) + 1)]


def _library_index() -> dict[str, str]:
    """Map every qualified form of a table entry to the entry's full name."""
    index: dict[str, str] = {}
    for module, classes in KNOWN_HIERARCHY.items():
        for name in classes:
            full = f"{module}.{name}"
            index[full] = full
    for module, classes in KNOWN_HIERARCHY.items():
        for name in classes:
            for form in _qualified_forms(module, name):
                index.setdefault(form, f"{module}.{name}")
    return index


_LIBRARY_INDEX = _library_index()

# A node of the hierarchy: ("builtin", "OSError"), ("library", "requests.exceptions.Timeout"),
# or ("unknown", name) for a class known only by the names the event gives it.
_Node = tuple[str, str]


def _resolve(name: str, module: str = "", *, builtin_fallback: bool = True) -> _Node:
    """Find the node a class name stands for, reading a bare name in the context of `module`."""
    # A bare name is taken for a builtin only as a parent or a base: the class
    # `myapp.ConnectionError` itself is not the builtin ConnectionError.
    if name.startswith("builtins."):
        module, name = "", name.removeprefix("builtins.")
    elif "." in name:
        return ("library", _LIBRARY_INDEX[name]) if name in _LIBRARY_INDEX else ("unknown", name)
    if module and module not in _BUILTIN_MODULES:
        for form in _qualified_forms(module, name):
            if form in _LIBRARY_INDEX:
                return ("library", _LIBRARY_INDEX[form])
        if not builtin_fallback:
            return ("unknown", f"{module}.{name}")
    name = _BUILTIN_NAMES.get(name, name)
    return ("builtin", name) if name in _BUILTIN_PARENTS else ("unknown", name)


def _node_own_names(node: _Node) -> list[str]:
    kind, name = node
    if kind == "builtin":
        return [name, f"builtins.{name}", *_BUILTIN_ALIASES.get(name, ())]
    module, _, short = name.rpartition(".")
    return [short, *_qualified_forms(module, short)] if module else [short]


def _node_parents(node: _Node) -> list[_Node]:
    kind, name = node
    if kind == "builtin":
        return [("builtin", parent) for parent in _BUILTIN_PARENTS[name]]
    if kind == "library":
        module, _, short = name.rpartition(".")
        return [_resolve(parent, module) for parent in KNOWN_HIERARCHY[module][short]]
    return []


@lru_cache(maxsize=2048)
def _node_names(node: _Node) -> frozenset[str]:
    names = set(_node_own_names(node))
    for parent in _node_parents(node):
        names |= _node_names(parent)
    return frozenset(names)


@lru_cache(maxsize=8192)
def exception_names(type_name: str, module: str = "", bases: tuple[str, ...] = ()) -> frozenset[str]:
    """Return every name a rule may use for an exception: its type, qualified forms and all base classes."""
    module = module or ""
    if "." in type_name and not module:  # a native event may send "requests.exceptions.HTTPError" as the type
        module, _, type_name = type_name.rpartition(".")
    names = set(_node_names(_resolve(type_name, module, builtin_fallback=False)))
    for base in bases:
        names |= _node_names(_resolve(base, module))
    return frozenset(names)


# Rule conditions


def _context_text(value) -> str:
    """Return the text a context value is compared as, so that true, "true" and "True" agree."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).casefold()


class _EventView:
    """What rules look at in one event, each part worked out at most once and only when a rule needs it."""

    def __init__(self, event: Mapping):
        self.event = event
        self.status = event.get("http_status")
        self.logger = event.get("logger") or ""
        self.component = event.get("component") or ""

    @cached_property
    def chain(self) -> list[Mapping]:
        # The surfaced exception (last in Sentry order) is looked at first.
        return [entry for entry in reversed(self.event.get("exception") or []) if isinstance(entry, Mapping)]

    @cached_property
    def names(self) -> frozenset[str]:
        # A rule matches if any exception of the chain has the name, so one union serves every rule.
        names: frozenset[str] = frozenset()
        for entry in self.chain:
            bases = tuple(base for base in entry.get("bases") or () if isinstance(base, str))
            names = names | exception_names(entry.get("type") or "", entry.get("module") or "", bases)
        return names

    @cached_property
    def texts(self) -> list[str]:
        texts = [self.event.get("message") or ""]
        texts += [entry.get("value") or "" for entry in self.chain]
        return [text for text in texts if isinstance(text, str) and text]

    @cached_property
    def encoded_texts(self) -> list[bytes]:
        # Encoded once per event, however many pattern rules look at it.
        return [encode_text(text) for text in self.texts]

    @cached_property
    def context_sources(self) -> list[Mapping]:
        sources = [self.event.get("extra"), self.event.get("tags")]
        sources += list((self.event.get("contexts") or {}).values())
        return [source for source in sources if isinstance(source, Mapping)]

    def context_value(self, key: str) -> tuple[bool, object]:
        for source in self.context_sources:
            if key in source:
                return True, source[key]
        return False, None


@dataclass(frozen=True)
class CompiledRule:
    """A rule ready to match: pattern compiled for RE2, statuses expanded, names split."""

    id: int | None
    name: str
    position: int
    error_type: str
    severity_override: int | None
    exception_types: frozenset[str]
    message: Pattern | None
    statuses: frozenset[int]
    logger: str
    component: str
    context: tuple[tuple[str, str | None], ...]  # (key, expected text); None means any value

    def matches(self, view: _EventView) -> bool:
        """Tell whether every filled-in condition holds, trying the cheap ones first."""
        if self.statuses and view.status not in self.statuses:
            return False
        if self.component and view.component != self.component:
            return False
        if self.logger and view.logger != self.logger and not view.logger.startswith(self.logger + "."):
            return False
        if self.context and not all(self._context_holds(view, key, expected) for key, expected in self.context):
            return False
        if self.exception_types and self.exception_types.isdisjoint(view.names):
            return False
        return not self.message or any(self.message.search(text) for text in view.encoded_texts)

    @staticmethod
    def _context_holds(view: _EventView, key: str, expected: str | None) -> bool:
        found, value = view.context_value(key)
        return found and (expected is None or _context_text(value) == expected)


class RuleSet:
    """Enabled rules, compiled once, in the order they are tried."""

    def __init__(self, rules: Iterable[CompiledRule] = ()):
        self.rules = tuple(rules)

    def __iter__(self) -> Iterator[CompiledRule]:
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def first_match(self, event: Mapping) -> CompiledRule | None:
        """Return the first rule every condition of which the event meets."""
        view = _EventView(event)
        return next((rule for rule in self.rules if rule.matches(view)), None)


def _error_type_code(rule, codes_by_id: Mapping[int, str] | None) -> str:
    if codes_by_id is not None and getattr(rule, "error_type_id", None) in codes_by_id:
        return codes_by_id[rule.error_type_id]
    return rule.error_type.code


def compile_rule(rule, codes_by_id: Mapping[int, str] | None = None) -> CompiledRule:
    """Compile one rule-like object, raising ValueError (PatternError among them) if a condition cannot work."""
    return CompiledRule(
        id=rule.id,
        name=getattr(rule, "name", "") or "",
        position=rule.position,
        error_type=_error_type_code(rule, codes_by_id),
        severity_override=rule.severity_override,
        exception_types=split_exception_types(rule.exception_type or ""),
        message=compile_pattern(rule.message_pattern) if rule.message_pattern else None,
        statuses=parse_http_status(rule.http_status) if (rule.http_status or "").strip() else frozenset(),
        logger=rule.logger or "",
        component=rule.component or "",
        context=tuple(
            (key, None if value == "*" else _context_text(value)) for key, value in (rule.context_match or {}).items()
        ),
    )


def compile_rules(rules: Iterable, codes_by_id: Mapping[int, str] | None = None) -> RuleSet:
    """Compile the enabled rules in (position, id) order, skipping (and logging) any that cannot work."""
    # Rules are duck-typed: anything with ClassificationRule's attributes whose error type is
    # `error_type.code`, or `error_type_id` looked up in `codes_by_id`.
    enabled = sorted((rule for rule in rules if rule.enabled), key=lambda rule: (rule.position, rule.id or 0))
    compiled = []
    for rule in enabled:
        try:
            compiled.append(compile_rule(rule, codes_by_id))
        except (ValueError, AttributeError) as error:
            # A rule saved around validation (SQL, a bulk update) must not stop the digest for everyone.
            logger.warning("Skipping classification rule %s (%s): %s", rule.id, getattr(rule, "name", ""), error)
    return RuleSet(compiled)


def classify(event: Mapping, rules: RuleSet, catalog: Mapping[str, ErrorTypeInfo]) -> Classification:
    """Return the error type, category and severity of the first rule the event matches, else UNEXPECTED."""
    rule = rules.first_match(event)
    code = rule.error_type if rule else FALLBACK_TYPE
    info = catalog.get(code) or catalog.get(FALLBACK_TYPE) or _MISSING_INFO
    severity = (rule.severity_override if rule else None) or info.default_severity
    if event.get("level") == "fatal":
        severity = max(severity, CRITICAL)
    return Classification(error_type=info.code, category=info.category, severity=severity)
