"""Classification: from what an event looks like to an error type, category and severity.

Rules are tried in order; every filled-in condition of a rule must match; the first
matching rule wins; an event no rule matches is UNEXPECTED.
"""

import builtins
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from django.core.exceptions import ValidationError

FALLBACK_TYPE = "UNEXPECTED"
CRITICAL = 50

# Base classes of well-known library exceptions: SDKs send only the class name and module,
# so rules written against a base class ("ConnectionError") would miss subclasses without this.
KNOWN_BASES: dict[str, tuple[str, ...]] = {
    # requests
    "ConnectTimeout": ("ConnectionError", "Timeout", "RequestException"),
    "ReadTimeout": ("Timeout", "RequestException"),
    "Timeout": ("RequestException",),
    "HTTPError": ("RequestException",),
    "RequestException": ("OSError",),
    "SSLError": ("ConnectionError", "OSError"),
    # urllib3
    "NewConnectionError": ("ConnectTimeoutError", "ConnectionError", "HTTPError"),
    "NameResolutionError": ("NewConnectionError", "ConnectionError", "HTTPError"),
    "MaxRetryError": ("RequestError", "PoolError", "HTTPError"),
    "ReadTimeoutError": ("TimeoutError", "RequestError", "HTTPError"),
    "ConnectTimeoutError": ("TimeoutError", "HTTPError"),
    "ProtocolError": ("HTTPError", "ConnectionError"),
    # httpx
    "ConnectError": ("NetworkError", "TransportError", "RequestError", "HTTPError"),
    "TimeoutException": ("TransportError", "RequestError", "HTTPError", "TimeoutError"),
    "PoolTimeout": ("TimeoutException", "TimeoutError"),
    "WriteTimeout": ("TimeoutException", "TimeoutError"),
    "NetworkError": ("TransportError", "RequestError", "HTTPError"),
    "HTTPStatusError": ("HTTPError",),
    # aiohttp
    "ClientConnectorError": ("ClientOSError", "ClientConnectionError", "ClientError", "ConnectionError"),
    "ServerTimeoutError": ("ServerConnectionError", "ClientConnectionError", "TimeoutError", "ClientError"),
    "ClientResponseError": ("ClientError",),
    # socket, json, asyncio, ssl
    "gaierror": ("OSError",),
    "timeout": ("TimeoutError", "OSError"),
    "JSONDecodeError": ("ValueError",),
    "CancelledError": ("BaseException",),
    # databases: Django, psycopg, SQLAlchemy
    "OperationalError": ("DatabaseError",),
    "IntegrityError": ("DatabaseError",),
    "ProgrammingError": ("DatabaseError",),
    "InterfaceError": ("DatabaseError",),
    "DBAPIError": ("SQLAlchemyError",),
    # websockets
    "ConnectionClosedError": ("ConnectionClosed", "WebSocketException"),
    "ConnectionClosedOK": ("ConnectionClosed", "WebSocketException"),
    "InvalidStatus": ("InvalidHandshake", "WebSocketException"),
}


def _builtin_bases() -> dict[str, tuple[str, ...]]:
    bases = {}
    for name, obj in vars(builtins).items():
        if isinstance(obj, type) and issubclass(obj, BaseException):
            names = tuple(cls.__name__ for cls in obj.__mro__[1:] if cls not in (object,))
            bases[name] = names
    bases["IOError"] = bases["OSError"]
    return bases


BUILTIN_BASES = _builtin_bases()


def exception_names(exception: Mapping) -> set[str]:
    """Return every name a rule may use for this exception: its type, qualified names and bases."""
    name = exception.get("type") or ""
    module = exception.get("module") or ""
    names = {name}
    if module:
        names.add(f"{module}.{name}")
        names.add(f"{module.split('.')[0]}.{name}")
    pending = [*(exception.get("bases") or []), *KNOWN_BASES.get(name, ()), *BUILTIN_BASES.get(name, ())]
    while pending:
        base = pending.pop()
        if base and base not in names:
            names.add(base)
            pending.extend(KNOWN_BASES.get(base, ()) + BUILTIN_BASES.get(base, ()))
    return names


@dataclass(frozen=True)
class ErrorTypeInfo:
    code: str
    category: str
    default_severity: int


@dataclass(frozen=True)
class Classification:
    error_type: str
    category: str
    severity: int


# Parsing the rule conditions

_STATUS_TOKEN = re.compile(r"^(?:([1-5])xx|(\d{3})(?:-(\d{3}))?)$", re.IGNORECASE)


def parse_statuses(spec: str) -> list[tuple[int, int]]:
    """Turn "429", "401,403", "500-599" or "5xx" into inclusive ranges, or raise ValueError."""
    ranges = []
    for token in (part.strip() for part in spec.split(",")):
        found = _STATUS_TOKEN.match(token)
        if not found:
            raise ValueError(f"{token!r} is not a status; use forms like 429, 401,403, 500-599 or 5xx")
        if found.group(1):
            low = int(found.group(1)) * 100
            ranges.append((low, low + 99))
            continue
        low = int(found.group(2))
        high = int(found.group(3) or low)
        if not (100 <= low <= high <= 599):
            raise ValueError(f"{token!r} must lie within 100-599 with the low end first")
        ranges.append((low, high))
    return ranges


def validate_rule(rule) -> None:
    """Raise ValidationError naming each field of the rule that cannot work."""
    errors = {}
    conditions = [rule.exception_type, rule.message_pattern, rule.http_status, rule.logger, rule.component]
    if not any(conditions) and not rule.context_match:
        errors["__all__"] = "A rule needs at least one condition."
    if rule.message_pattern:
        try:
            re.compile(rule.message_pattern)
        except re.error as error:
            errors["message_pattern"] = f"Not a valid regular expression: {error}."
    if rule.http_status:
        try:
            parse_statuses(rule.http_status)
        except ValueError as error:
            errors["http_status"] = str(error)
    if not isinstance(rule.context_match, dict) or not all(
        isinstance(v, str | int | float | bool) for v in rule.context_match.values()
    ):
        errors["context_match"] = 'Must be a JSON object of keys and scalar values, e.g. {"storage_operation": "read"}.'
    if errors:
        raise ValidationError(errors)


@dataclass(frozen=True)
class _Rule:
    exception_types: frozenset[str]
    message: re.Pattern | None
    statuses: tuple[tuple[int, int], ...]
    logger: str
    component: str
    context: tuple[tuple[str, str], ...]
    error_type: str
    severity: int | None

    def matches(self, event: Mapping, names: list[set[str]], texts: list[str]) -> bool:
        if self.exception_types and not any(self.exception_types & chain_names for chain_names in names):
            return False
        if self.message and not any(self.message.search(text) for text in texts):
            return False
        if self.statuses:
            status = event.get("http_status")
            if status is None or not any(low <= status <= high for low, high in self.statuses):
                return False
        if self.logger:
            logger = event.get("logger") or ""
            if logger != self.logger and not logger.startswith(self.logger + "."):
                return False
        if self.component and event.get("component") != self.component:
            return False
        return all(_context_has(event, key, expected) for key, expected in self.context)


def _as_text(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _context_has(event: Mapping, key: str, expected: str) -> bool:
    """Look for the key in extra, then tags, then inside each contexts entry."""
    sources = [event.get("extra") or {}, event.get("tags") or {}]
    sources += [ctx for ctx in (event.get("contexts") or {}).values() if isinstance(ctx, dict)]
    for source in sources:
        if key in source:
            return expected == "*" or _as_text(source[key]).lower() == expected.lower()
    return False


class RuleSet:
    """Enabled rules, compiled once, in the order they are tried."""

    def __init__(self, rules: list[_Rule]):
        self.rules = rules


def compile_rules(rules: Iterable) -> RuleSet:
    """Compile enabled rules in (position, id) order."""
    compiled = []
    for rule in sorted((r for r in rules if r.enabled), key=lambda r: (r.position, r.id or 0)):
        compiled.append(
            _Rule(
                exception_types=frozenset(n.strip() for n in rule.exception_type.split(",") if n.strip()),
                message=re.compile(rule.message_pattern, re.IGNORECASE) if rule.message_pattern else None,
                statuses=tuple(parse_statuses(rule.http_status)) if rule.http_status else (),
                logger=rule.logger,
                component=rule.component,
                context=tuple((k, _as_text(v)) for k, v in (rule.context_match or {}).items()),
                error_type=rule.error_type.code,
                severity=rule.severity_override,
            )
        )
    return RuleSet(compiled)


def classify(event: Mapping, rules: RuleSet, catalog: Mapping[str, ErrorTypeInfo]) -> Classification:
    """Return the classification of the first rule that matches, or UNEXPECTED."""
    chain = list(reversed(event.get("exception") or []))  # the surfaced exception first
    names = [exception_names(exception) for exception in chain]
    texts = [event.get("message") or "", *(exception.get("value") or "" for exception in chain)]
    error_type, severity = FALLBACK_TYPE, None
    for rule in rules.rules:
        if rule.matches(event, names, texts):
            error_type, severity = rule.error_type, rule.severity
            break
    info = catalog[error_type]
    severity = severity or info.default_severity
    if event.get("level") == "fatal":
        severity = CRITICAL
    return Classification(error_type=error_type, category=info.category, severity=severity)


def load_ruleset_and_catalog() -> tuple[RuleSet, dict[str, ErrorTypeInfo]]:
    """Read the enabled rules and the error-type catalog from the database."""
    from incidents.models import ClassificationRule, ErrorType

    rules = compile_rules(ClassificationRule.objects.filter(enabled=True).select_related("error_type"))
    catalog = {
        row.code: ErrorTypeInfo(code=row.code, category=row.category, default_severity=row.default_severity)
        for row in ErrorType.objects.all()
    }
    return rules, catalog
