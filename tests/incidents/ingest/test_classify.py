"""Classification of events built from real exceptions, as sentry-sdk captures them and ingest stores them."""

import importlib
import importlib.util
import itertools
import json
import logging
import socket
import sqlite3
import sys
from types import SimpleNamespace

import httpx
import psycopg.errors
import psycopg_pool
import pytest
import urllib3.exceptions
import websockets.exceptions
from django.core.exceptions import NON_FIELD_ERRORS, ImproperlyConfigured, PermissionDenied, ValidationError
from django.db.utils import IntegrityError, OperationalError
from django.utils import timezone
from sentry_sdk.utils import event_from_exception

from incidents.ingest.classification import load_ruleset_and_catalog
from incidents.ingest.classify import (
    KNOWN_HIERARCHY,
    ErrorTypeInfo,
    classify,
    compile_rules,
    exception_names,
)
from incidents.ingest.normalize import normalize_native_event, normalize_sentry_event
from incidents.ingest.rule_grammar import parse_http_status, validate_rule
from incidents.models import ClassificationRule, ErrorType, Severity

SEED = importlib.import_module("incidents.migrations.0002_seed_catalog")
ALERT_SEED = importlib.import_module("incidents.migrations.0009_seed_alerting")


# Events as the SDK sends them


def sdk_event(exc: BaseException, **raw_fields) -> dict:
    """Raise the exception, capture it as sentry-sdk does, and normalise it as ingest does."""
    try:
        raise exc
    except BaseException:
        raw, _hint = event_from_exception(sys.exc_info())
    return normalize_sentry_event({**raw, **raw_fields}, received_at=timezone.now())


def message_event(message: str, **raw_fields) -> dict:
    return normalize_sentry_event({"message": message, **raw_fields}, received_at=timezone.now())


def chained(*exceptions: BaseException) -> BaseException:
    """Link exceptions as `raise ... from ...` would, oldest cause first; return the one that surfaces."""
    for cause, effect in itertools.pairwise(exceptions):
        effect.__cause__ = cause
    return exceptions[-1]


def library_error(qualified_name: str, *args) -> Exception:
    """An exception of a library that is not installed here: the SDK sends only its name and module."""
    module, _, name = qualified_name.rpartition(".")
    return type(name, (Exception,), {"__module__": module})(*args)


def httpx_status_error(status: int) -> httpx.HTTPStatusError:
    request = httpx.Request("GET", "https://api.example.com/v1/rates?symbol=BTCUSDT")
    try:
        httpx.Response(status, request=request).raise_for_status()
    except httpx.HTTPStatusError as error:
        return error
    raise AssertionError(f"{status} did not raise")


def requests_http_error(status: int, reason: str) -> Exception:
    kind = "Client" if status < 500 else "Server"
    return library_error(
        "requests.exceptions.HTTPError", f"{status} {kind} Error: {reason} for url: https://api.example.com/v1/account"
    )


def dns_failure_chain() -> BaseException:
    """What requests raises for an unknown host: gaierror -> NameResolutionError -> MaxRetryError -> ConnectionError."""
    lookup = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    resolution = urllib3.exceptions.NameResolutionError("api.example.com", None, lookup)
    retries = urllib3.exceptions.MaxRetryError(None, "/v1/rates", reason=resolution)
    surfaced = library_error("requests.exceptions.ConnectionError", str(retries))
    return chained(lookup, resolution, retries, surfaced)


def json_error() -> json.JSONDecodeError:
    try:
        json.loads('{"price": ')
    except json.JSONDecodeError as error:
        return error
    raise AssertionError("parsed")


def missing_file() -> FileNotFoundError:
    try:
        open("/nonexistent/snapshots/2026-11-22.parquet")  # noqa: SIM115 - the real error is the point
    except FileNotFoundError as error:
        return error
    raise AssertionError("opened")


# Every seeded rule, with the events it exists for: (rule that must match, event, expected type).
SEEDED_CASES = [
    ("Timeouts", lambda: sdk_event(TimeoutError("read timed out")), "NETWORK_TIMEOUT"),
    # As Python < 3.10 and < 3.11 report them, before they became the builtin TimeoutError.
    ("Timeouts", lambda: sdk_event(library_error("socket.timeout")), "NETWORK_TIMEOUT"),
    ("Timeouts", lambda: sdk_event(library_error("asyncio.exceptions.TimeoutError")), "NETWORK_TIMEOUT"),
    ("Library timeouts", lambda: sdk_event(httpx.ReadTimeout("The read operation timed out")), "NETWORK_TIMEOUT"),
    (
        "Library timeouts",
        lambda: sdk_event(library_error("requests.exceptions.ReadTimeout", "Read timed out. (read timeout=5)")),
        "NETWORK_TIMEOUT",
    ),
    (
        # A bare name matches a class of that name in any module: urllib3 has its own TimeoutError.
        "Timeouts",
        lambda: sdk_event(urllib3.exceptions.ReadTimeoutError(None, "/v1/rates", "Read timed out.")),
        "NETWORK_TIMEOUT",
    ),
    ("DNS failures", lambda: sdk_event(socket.gaierror(-2, "Name or service not known")), "NETWORK_DNS"),
    ("DNS failures", lambda: sdk_event(dns_failure_chain()), "NETWORK_DNS"),
    (
        "DNS failure messages",
        lambda: sdk_event(
            library_error(
                "requests.exceptions.ConnectionError",
                "HTTPSConnectionPool(host='api.example.com', port=443): Max retries exceeded (Caused by "
                "NameResolutionError(\"Failed to resolve 'api.example.com' ([Errno -3] Temporary failure in name "
                'resolution)"))',
            )
        ),
        "NETWORK_DNS",
    ),
    ("Timeout messages", lambda: sdk_event(RuntimeError("payment provider timed out after 30 s")), "NETWORK_TIMEOUT"),
    (
        "WebSocket errors",
        lambda: sdk_event(websockets.exceptions.ConnectionClosedError(None, None)),
        "WEBSOCKET_ERROR",
    ),
    ("Connection errors", lambda: sdk_event(ConnectionRefusedError(111, "Connection refused")), "NETWORK_CONNECTION"),
    ("Connection errors", lambda: sdk_event(BrokenPipeError(32, "Broken pipe")), "NETWORK_CONNECTION"),
    (
        "Connection errors",
        lambda: sdk_event(httpx.ConnectError("[Errno 111] Connection refused")),
        "NETWORK_CONNECTION",
    ),
    (
        "Connection errors",
        # urllib3 makes this a ConnectTimeoutError subclass; it must still not count as a timeout.
        lambda: sdk_event(
            urllib3.exceptions.NewConnectionError(None, "Failed to establish a new connection: [Errno 111]")
        ),
        "NETWORK_CONNECTION",
    ),
    (
        "Connection errors",
        lambda: sdk_event(library_error("src.error_handling.exceptions.NetworkException", "API call failed")),
        "NETWORK_CONNECTION",
    ),
    (
        "Connection messages",
        lambda: sdk_event(RuntimeError("upstream: connection reset by peer")),
        "NETWORK_CONNECTION",
    ),
    ("Rate limited (429)", lambda: sdk_event(httpx_status_error(429)), "API_RATE_LIMIT"),
    (
        "Rate limit exceptions",
        lambda: sdk_event(
            library_error("crypto_pipeline.exceptions.RateLimitError", "Rate limit exceeded for binance")
        ),
        "API_RATE_LIMIT",
    ),
    ("Unauthorized (401)", lambda: sdk_event(requests_http_error(401, "Unauthorized")), "API_AUTH"),
    ("Forbidden (403)", lambda: sdk_event(requests_http_error(403, "Forbidden")), "API_PERMISSION"),
    ("Not found (404)", lambda: sdk_event(httpx_status_error(404)), "API_NOT_FOUND"),
    ("Bad request (400)", lambda: sdk_event(requests_http_error(400, "Bad Request")), "API_BAD_REQUEST"),
    ("Unprocessable request (422)", lambda: sdk_event(httpx_status_error(422)), "VALIDATION_ERROR"),
    ("Server errors (5xx)", lambda: sdk_event(httpx_status_error(503)), "API_SERVER_ERROR"),
    ("Server errors (5xx)", lambda: sdk_event(requests_http_error(500, "Internal Server Error")), "API_SERVER_ERROR"),
    ("Authentication exceptions", lambda: sdk_event(authentication_failed()), "API_AUTH"),
    ("Permission denied", lambda: sdk_event(PermissionDenied("not your order")), "API_PERMISSION"),
    (
        "Empty data",
        lambda: message_event("No data for BTCUSDT 1m", extra={"empty_reason": "date_range"}),
        "DATA_EMPTY",
    ),
    (
        "Empty data",
        lambda: normalize_native_event(
            {"message": "API returned empty response", "context": {"empty_reason": "api_response"}},
            received_at=timezone.now(),
        ),
        "DATA_EMPTY",
    ),
    (
        "Schema exceptions",
        lambda: sdk_event(library_error("pandera.errors.SchemaError", "column 'close' not in dataframe")),
        "DATA_SCHEMA",
    ),
    (
        "Schema mismatch messages",
        lambda: sdk_event(ValueError("schema mismatch: expected 6 columns, got 5")),
        "DATA_SCHEMA",
    ),
    (
        "Data feed errors",
        lambda: sdk_event(library_error("src.error_handling.exceptions.DataFeedException", "Data unavailable for ETH")),
        "DATA_MISSING",
    ),
    (
        "Unreadable API responses",
        lambda: sdk_event(library_error("requests.exceptions.JSONDecodeError", "Expecting value: line 1 column 1")),
        "API_FORMAT",
    ),
    ("Parse failures", lambda: sdk_event(json_error()), "DATA_TRANSFORMATION"),
    (
        "Parse failures",
        lambda: sdk_event(library_error("pandas.errors.ParserError", "Error tokenizing data. C error")),
        "DATA_TRANSFORMATION",
    ),
    (
        "Errors during validation",
        lambda: sdk_event(ValueError("price must be positive"), extra={"during_validation": True}),
        "DATA_VALIDATION",
    ),
    (
        "Errors during validation",
        lambda: sdk_event(KeyError("close"), contexts={"pipeline": {"during_validation": "ohlcv"}}),
        "DATA_VALIDATION",
    ),
    ("Validation exceptions", lambda: sdk_event(ValidationError("Enter a valid date.")), "DATA_VALIDATION"),
    (
        "Validation exceptions",
        lambda: sdk_event(library_error("pydantic_core._pydantic_core.ValidationError", "1 validation error")),
        "DATA_VALIDATION",
    ),
    (
        "Unique violations",
        lambda: sdk_event(psycopg.errors.UniqueViolation('duplicate key value violates unique constraint "order_no"')),
        "DATA_DUPLICATE",
    ),
    (
        "Duplicate key messages",
        lambda: sdk_event(sqlite3.IntegrityError("UNIQUE constraint failed: shop_order.number")),
        "DATA_DUPLICATE",
    ),
    ("Integrity errors", lambda: sdk_event(IntegrityError("FOREIGN KEY constraint failed")), "DATA_INTEGRITY"),
    ("Database errors", lambda: sdk_event(OperationalError("database is locked")), "DATABASE_ERROR"),
    (
        "Database errors",
        lambda: sdk_event(psycopg_pool.PoolTimeout("couldn't get a connection after 30.00 sec")),
        "DATABASE_ERROR",
    ),
    (
        "Database errors",
        lambda: sdk_event(
            library_error("sqlalchemy.exc.OperationalError", "server closed the connection unexpectedly")
        ),
        "DATABASE_ERROR",
    ),
    (
        "Disk full",
        lambda: sdk_event(OSError(28, "No space left on device"), extra={"storage_operation": "write"}),
        "STORAGE_SPACE",
    ),
    (
        "Storage permission",
        lambda: sdk_event(
            PermissionError(13, "Permission denied"), contexts={"storage": {"storage_operation": "write"}}
        ),
        "STORAGE_PERMISSION",
    ),
    ("Storage reads", lambda: sdk_event(missing_file(), extra={"storage_operation": "read"}), "STORAGE_READ"),
    (
        "Storage writes",
        lambda: sdk_event(OSError(5, "Input/output error"), tags={"storage_operation": "write"}),
        "STORAGE_WRITE",
    ),
    (
        "Publish failures",
        lambda: sdk_event(library_error("crypto_pipeline.exceptions.PublishError", "upload to the hub failed")),
        "STORAGE_WRITE",
    ),
    (
        "File permission errors",
        lambda: sdk_event(PermissionError(13, "Permission denied", "/var/data/x")),
        "STORAGE_PERMISSION",
    ),
    ("Missing files", lambda: sdk_event(missing_file()), "STORAGE_READ"),
    ("Configuration errors", lambda: sdk_event(ImproperlyConfigured("SECRET_KEY is empty")), "CONFIGURATION_ERROR"),
    (
        "Configuration errors",
        lambda: sdk_event(library_error("src.error_handling.exceptions.ConfigurationException", "no broker")),
        "CONFIGURATION_ERROR",
    ),
    ("System failures", lambda: sdk_event(MemoryError()), "SYSTEM_ERROR"),
    ("Process stopped", lambda: sdk_event(KeyboardInterrupt()), "SYSTEM_ERROR"),
    ("Broken invariants", lambda: sdk_event(AssertionError("balance went negative")), "INTERNAL"),
    ("HTTP errors", lambda: sdk_event(httpx_status_error(409)), "API_ERROR"),
    (
        "HTTP errors",
        lambda: sdk_event(library_error("src.error_handling.exceptions.BrokerException", "Insufficient funds")),
        "API_ERROR",
    ),
    ("Processing errors", lambda: sdk_event(RuntimeError("strategy produced no signal")), "PROCESSING_ERROR"),
    (None, lambda: sdk_event(KeyError("customer_17")), "UNEXPECTED"),
    (None, lambda: sdk_event(ValueError("amount -5 must be positive")), "UNEXPECTED"),
]


def authentication_failed() -> Exception:
    from rest_framework.exceptions import AuthenticationFailed

    return AuthenticationFailed("Invalid token.")


@pytest.fixture
def seeded(db):
    """The rules and catalog the seed migration put in the test database."""
    return load_ruleset_and_catalog()


@pytest.mark.parametrize(
    "rule_name, build, expected",
    SEEDED_CASES,
    ids=[f"{index}-{rule or 'no rule'}" for index, (rule, _, _) in enumerate(SEEDED_CASES)],
)
def test_each_seeded_rule_classifies_the_events_it_was_written_for(seeded, rule_name, build, expected):
    rules, catalog = seeded
    event = build()
    matched = rules.first_match(event)
    assert (matched.name if matched else None, classify(event, rules, catalog).error_type) == (rule_name, expected)


def test_every_seeded_rule_has_a_case_in_the_table(seeded):
    rules, _ = seeded
    assert {rule.name for rule in rules} == {name for name, _, _ in SEEDED_CASES if name}
    assert len(rules) == len(SEED.RULES)


@pytest.mark.django_db
def test_the_seeded_catalog_and_rules_pass_their_own_validation():
    assert set(ErrorType.objects.values_list("code", flat=True)) == set(SEED.ERROR_TYPES)
    for error_type in ErrorType.objects.all():
        error_type.full_clean()
        assert error_type.suggested_action and error_type.description
    for rule in ClassificationRule.objects.all():
        rule.full_clean()
    assert list(ClassificationRule.objects.values_list("position", flat=True)) == list(
        range(10, 10 * len(SEED.RULES) + 1, 10)
    )


@pytest.mark.django_db
def test_the_seed_migration_removes_what_it_created_when_reversed():
    from django.apps import apps

    ALERT_SEED.unseed(apps, None)  # a rollback reverses the later seed of alert rules first
    SEED.unseed(apps, None)
    assert not ErrorType.objects.exists()
    assert not ClassificationRule.objects.exists()
    SEED.seed(apps, None)
    assert ErrorType.objects.count() == len(SEED.ERROR_TYPES)


# Base classes


class PaymentGatewayDown(ConnectionError):
    """An application's own subclass of ConnectionError, which no rule names."""


def test_a_builtin_subclass_matches_through_the_interpreters_hierarchy(seeded):
    rules, catalog = seeded
    assert classify(sdk_event(ConnectionAbortedError(103, "Software caused abort")), rules, catalog).error_type == (
        "NETWORK_CONNECTION"
    )


def test_an_application_subclass_matches_a_base_class_rule_once_the_event_names_its_bases(seeded):
    rules, catalog = seeded
    # sentry-sdk sends no base classes, so the subclass is unknown to the rules...
    assert classify(sdk_event(PaymentGatewayDown("gateway went away")), rules, catalog).error_type == "UNEXPECTED"
    # ...while a native event that lists them (as the console's client does) matches the ConnectionError rule.
    bases = [cls.__name__ for cls in PaymentGatewayDown.__mro__[1:-1]]
    native = normalize_native_event(
        {"exception": {"type": "PaymentGatewayDown", "module": "shop.payments", "value": "gone", "bases": bases}},
        received_at=timezone.now(),
    )
    assert classify(native, rules, catalog).error_type == "NETWORK_CONNECTION"


@pytest.mark.parametrize(
    "rule_name, exc, matches",
    [
        ("requests.HTTPError", library_error("requests.exceptions.HTTPError", "418"), True),
        ("requests.exceptions.HTTPError", library_error("requests.exceptions.HTTPError", "418"), True),
        ("requests.HTTPError", urllib3.exceptions.ProtocolError("Connection aborted."), False),
        ("requests.exceptions.RequestException", library_error("requests.exceptions.ConnectTimeout", "slow"), True),
        ("requests.ConnectionError", library_error("requests.exceptions.ConnectTimeout", "slow"), True),
        ("IOError", missing_file(), True),
        ("EnvironmentError", PermissionError(13, "Permission denied"), True),
        ("OSError", library_error("requests.exceptions.ReadTimeout", "slow"), True),
        ("json.JSONDecodeError", json_error(), True),
        ("ValueError", json_error(), True),
        ("psycopg.IntegrityError", psycopg.errors.UniqueViolation("duplicate key"), True),
        ("DatabaseError", psycopg.errors.UniqueViolation("duplicate key"), True),
        ("asyncio.TimeoutError", TimeoutError("slow"), True),
        ("TimeoutError", urllib3.exceptions.NewConnectionError(None, "refused"), False),
        ("ConnectionError", library_error("myapp.ConnectionResetError", "not the builtin"), False),
    ],
)
def test_rule_names_match_qualified_names_aliases_and_base_classes(rule_name, exc, matches):
    rules = compile_rules([make_rule(exception_type=rule_name)])
    assert (rules.first_match(sdk_event(exc)) is not None) is matches


def test_a_rule_matches_any_exception_of_the_chain_not_only_the_surfaced_one():
    rules = compile_rules([make_rule(exception_type="socket.gaierror")])
    surfaced_only = library_error("requests.exceptions.ConnectionError", "Max retries exceeded")
    assert rules.first_match(sdk_event(surfaced_only)) is None
    assert rules.first_match(sdk_event(dns_failure_chain())) is not None


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


INSTALLED_TABLE = {module: classes for module, classes in KNOWN_HIERARCHY.items() if installed(module)}


@pytest.mark.parametrize("module, classes", list(INSTALLED_TABLE.items()), ids=list(INSTALLED_TABLE))
def test_the_library_table_agrees_with_the_installed_libraries(module, classes):
    found = importlib.import_module(module)
    # Left out on purpose: urllib3's refused connections are not timeouts.
    omitted = {"ConnectTimeoutError", "TimeoutError"} if module == "urllib3.exceptions" else set()
    for name in classes:
        cls = vars(found).get(name)  # not getattr: that would import deprecated aliases
        if cls is None:
            continue  # a class of another version of the library
        real = {base.__name__ for base in cls.__mro__[:-1]}
        if name in ("NewConnectionError", "NameResolutionError"):
            real -= omitted
        assert real <= exception_names(cls.__name__, cls.__module__), (module, name)


# Severity


def test_a_fatal_event_is_critical_whatever_its_type(seeded):
    rules, catalog = seeded
    error = classify(sdk_event(TimeoutError("slow")), rules, catalog)
    fatal = classify(sdk_event(TimeoutError("slow"), level="fatal"), rules, catalog)
    assert (error.severity, fatal.severity) == (Severity.MEDIUM, Severity.CRITICAL)
    assert fatal.error_type == "NETWORK_TIMEOUT"


def test_a_rules_severity_override_replaces_the_types_default(seeded):
    rules, catalog = seeded
    stopped = classify(sdk_event(KeyboardInterrupt()), rules, catalog)
    out_of_memory = classify(sdk_event(MemoryError()), rules, catalog)
    assert (stopped.error_type, stopped.severity) == ("SYSTEM_ERROR", Severity.MEDIUM)
    assert (out_of_memory.error_type, out_of_memory.severity) == ("SYSTEM_ERROR", Severity.CRITICAL)
    assert classify(sdk_event(KeyboardInterrupt(), level="fatal"), rules, catalog).severity == Severity.CRITICAL


def test_an_unmatched_event_takes_the_catalogs_unexpected_entry(seeded):
    rules, catalog = seeded
    result = classify(sdk_event(KeyError("customer_17")), rules, catalog)
    assert (result.error_type, result.category, result.severity) == ("UNEXPECTED", "UNKNOWN", Severity.HIGH)


# Rules in the database


@pytest.mark.django_db
def test_the_first_matching_rule_wins_by_position():
    ClassificationRule.objects.create(
        name="payments timeouts are integrity problems",
        position=1,
        exception_type="TimeoutError",
        component="payments",
        error_type=ErrorType.objects.get(code="DATA_INTEGRITY"),
        severity_override=Severity.LOW,
    )
    ClassificationRule.objects.create(
        name="too late to matter",
        position=10_000,
        exception_type="TimeoutError",
        error_type=ErrorType.objects.get(code="INTERNAL"),
    )
    rules, catalog = load_ruleset_and_catalog()
    paying = classify(sdk_event(TimeoutError("slow"), tags={"component": "payments"}), rules, catalog)
    other = classify(sdk_event(TimeoutError("slow")), rules, catalog)
    assert (paying.error_type, paying.severity) == ("DATA_INTEGRITY", Severity.LOW)
    assert other.error_type == "NETWORK_TIMEOUT"


@pytest.mark.django_db
def test_disabled_rules_are_skipped():
    event = sdk_event(asyncio_timeout())
    ClassificationRule.objects.filter(name="Timeouts").update(enabled=False)
    rules, catalog = load_ruleset_and_catalog()
    assert "Timeouts" not in {rule.name for rule in rules}
    assert classify(event, rules, catalog).error_type == "UNEXPECTED"


def asyncio_timeout() -> TimeoutError:
    return TimeoutError()  # no message, so only the exception rule can call it a timeout


@pytest.mark.django_db
def test_a_rule_edited_in_the_database_applies_on_the_next_load():
    event = sdk_event(OperationalError("database is locked"))
    before, catalog = load_ruleset_and_catalog()
    rule = ClassificationRule.objects.get(name="Database errors")
    rule.error_type = ErrorType.objects.get(code="SYSTEM_ERROR")
    rule.save()
    after, catalog = load_ruleset_and_catalog()
    assert classify(event, before, catalog).error_type == "DATABASE_ERROR"  # a loaded rule set is a snapshot
    assert classify(event, after, catalog).error_type == "SYSTEM_ERROR"


@pytest.mark.django_db
def test_a_rule_stored_around_validation_is_skipped_not_fatal(caplog):
    ClassificationRule.objects.filter(name="Timeouts").update(message_pattern="(unclosed")
    with caplog.at_level(logging.WARNING, logger="incidents.ingest.classify"):
        rules, catalog = load_ruleset_and_catalog()
    assert "Timeouts" not in {rule.name for rule in rules}
    assert "Timeouts" in caplog.text
    assert classify(sdk_event(TimeoutError("read timed out")), rules, catalog).error_type == "NETWORK_TIMEOUT"


# Conditions, on rules that are plain objects

CATALOG = {
    "MATCHED": ErrorTypeInfo(code="MATCHED", category="API", default_severity=Severity.MEDIUM),
    "OTHER": ErrorTypeInfo(code="OTHER", category="DATA", default_severity=Severity.LOW),
    "UNEXPECTED": ErrorTypeInfo(code="UNEXPECTED", category="UNKNOWN", default_severity=Severity.HIGH),
}


def make_rule(**fields) -> SimpleNamespace:
    """A rule-like object, as compile_rules accepts besides model instances."""
    defaults = {
        "id": 1,
        "name": "rule",
        "position": 100,
        "enabled": True,
        "exception_type": "",
        "message_pattern": "",
        "http_status": "",
        "logger": "",
        "component": "",
        "context_match": {},
        "error_type": SimpleNamespace(code="MATCHED"),
        "severity_override": None,
    }
    return SimpleNamespace(**{**defaults, **fields})


def code(event: dict, *rules: SimpleNamespace) -> str:
    return classify(event, compile_rules(rules), CATALOG).error_type


def test_rules_are_tried_by_position_then_id_whatever_order_they_come_in():
    event = sdk_event(TimeoutError("slow"))
    later = make_rule(id=1, position=20, exception_type="TimeoutError", error_type=SimpleNamespace(code="OTHER"))
    earlier = make_rule(id=2, position=10, exception_type="OSError")
    assert code(event, later, earlier) == "MATCHED"
    tie_low_id = make_rule(id=3, position=5, exception_type="TimeoutError", error_type=SimpleNamespace(code="OTHER"))
    tie_high_id = make_rule(id=4, position=5, exception_type="TimeoutError")
    assert code(event, tie_high_id, tie_low_id) == "OTHER"


def test_a_disabled_rule_object_is_left_out():
    event = sdk_event(TimeoutError("slow"))
    assert code(event, make_rule(exception_type="TimeoutError", enabled=False)) == "UNEXPECTED"


def test_every_filled_in_condition_must_match():
    rule = make_rule(exception_type="ValueError", message_pattern="amount", component="billing")
    assert code(sdk_event(ValueError("bad amount"), tags={"component": "billing"}), rule) == "MATCHED"
    assert code(sdk_event(ValueError("bad amount"), tags={"component": "shipping"}), rule) == "UNEXPECTED"
    assert code(sdk_event(ValueError("bad date"), tags={"component": "billing"}), rule) == "UNEXPECTED"
    assert code(sdk_event(TypeError("bad amount"), tags={"component": "billing"}), rule) == "UNEXPECTED"


def test_the_message_pattern_is_searched_case_insensitively_in_the_message_and_every_exception_value():
    rule = make_rule(message_pattern=r"card\s+declined")
    cause_only = chained(ValueError("Card  DECLINED by issuer"), RuntimeError("charge failed"))
    assert code(sdk_event(cause_only), rule) == "MATCHED"
    assert code(message_event("card declined for order 17"), rule) == "MATCHED"
    assert code(message_event("card accepted"), rule) == "UNEXPECTED"


@pytest.mark.parametrize(
    "spec, inside, outside",
    [
        ("429", [429], [428, 430]),
        ("401,403", [401, 403], [402, 404]),
        ("500-599", [500, 503, 599], [499]),
        ("5xx", [500, 599], [499, 600]),
        ("400, 404 ,500-502", [400, 404, 500, 502], [401, 503]),
        ("4XX", [404], [500]),
    ],
)
def test_http_status_specs_name_codes_lists_ranges_and_classes(spec, inside, outside):
    statuses = parse_http_status(spec)
    assert all(status in statuses for status in inside)
    assert not any(status in statuses for status in outside)


def test_an_http_status_rule_needs_a_status_on_the_event():
    rule = make_rule(http_status="5xx")
    assert code(message_event("upstream failed", contexts={"response": {"status_code": 502}}), rule) == "MATCHED"
    assert code(message_event("upstream failed"), rule) == "UNEXPECTED"


@pytest.mark.parametrize(
    "rule_logger, event_logger, matches",
    [
        ("app.db", "app.db", True),
        ("app.db", "app.db.pool", True),
        ("app.db", "app.dbx", False),
        ("app.db", "app", False),
    ],
)
def test_the_logger_condition_matches_the_name_or_a_dotted_prefix(rule_logger, event_logger, matches):
    event = message_event("pool exhausted", logger=event_logger)
    assert (code(event, make_rule(logger=rule_logger)) == "MATCHED") is matches


@pytest.mark.parametrize(
    "context_match, fields, matches",
    [
        ({"during_validation": True}, {"extra": {"during_validation": True}}, True),
        ({"during_validation": True}, {"extra": {"during_validation": "true"}}, True),
        ({"during_validation": True}, {"tags": {"during_validation": "True"}}, True),
        ({"during_validation": True}, {"extra": {"during_validation": False}}, False),
        ({"storage_operation": "read"}, {"contexts": {"storage": {"storage_operation": "read"}}}, True),
        ({"storage_operation": "read"}, {"contexts": {"storage": {"storage_operation": "write"}}}, False),
        ({"attempt": 5}, {"extra": {"attempt": "5"}}, True),
        ({"empty_reason": "*"}, {"extra": {"empty_reason": "filter_result"}}, True),
        ({"empty_reason": "*"}, {"extra": {"other": "x"}}, False),
    ],
)
def test_context_values_compare_as_text_and_a_star_needs_only_the_key(context_match, fields, matches):
    rule = make_rule(context_match=context_match)
    assert (code(message_event("x", **fields), rule) == "MATCHED") is matches


def test_context_is_looked_up_in_extra_before_tags():
    rule = make_rule(context_match={"storage_operation": "read"})
    event = message_event("x", extra={"storage_operation": "read"}, tags={"storage_operation": "write"})
    assert code(event, rule) == "MATCHED"
    swapped = message_event("x", extra={"storage_operation": "write"}, tags={"storage_operation": "read"})
    assert code(swapped, rule) == "UNEXPECTED"


def test_rules_given_an_error_type_id_take_the_code_from_the_mapping():
    rule = make_rule(exception_type="KeyError", error_type=None, error_type_id=7)
    rules = compile_rules([rule], codes_by_id={7: "OTHER"})
    assert classify(sdk_event(KeyError("x")), rules, CATALOG).error_type == "OTHER"


# Validation


@pytest.mark.django_db
@pytest.mark.parametrize(
    "fields, field, words",
    [
        ({"message_pattern": "(unclosed"}, "message_pattern", ["regular expression", "missing )"]),
        ({"http_status": "42"}, "http_status", ["'42'", "100-599", "5xx"]),
        ({"http_status": "5xx,700"}, "http_status", ["'700'", "100-599"]),
        ({"http_status": "599-500"}, "http_status", ["'599-500'"]),
        ({"http_status": "500-"}, "http_status", ["'500-'"]),
        ({"http_status": "6xx"}, "http_status", ["'6xx'"]),
        ({"context_match": ["not", "an", "object"]}, "context_match", ["JSON object"]),
        ({"context_match": {"storage": {"operation": "read"}}}, "context_match", ["scalar"]),
        ({"exception_type": "TimeoutError, socket timeout"}, "exception_type", ["'socket timeout'"]),
        ({}, NON_FIELD_ERRORS, ["at least one condition"]),
    ],
)
def test_a_rule_that_cannot_work_is_refused_naming_the_field_and_the_problem(fields, field, words):
    rule = ClassificationRule(name="bad", error_type=ErrorType.objects.get(code="INTERNAL"), **fields)
    with pytest.raises(ValidationError) as caught:
        validate_rule(rule)
    message = " ".join(caught.value.message_dict[field])
    assert all(word in message for word in words), message


@pytest.mark.django_db
def test_model_validation_runs_the_rule_checks():
    rule = ClassificationRule(name="bad", http_status="abc", error_type=ErrorType.objects.get(code="INTERNAL"))
    with pytest.raises(ValidationError) as caught:
        rule.full_clean()
    assert "http_status" in caught.value.message_dict


@pytest.mark.parametrize(
    "fields",
    [
        {"http_status": "400,404,500-599"},
        {"http_status": " 401 , 403 "},
        {"context_match": {"during_validation": True, "attempt": 3, "storage_operation": "*"}},
        {"exception_type": "requests.exceptions.HTTPError, TimeoutError"},
        {"logger": "app.db"},
    ],
)
def test_a_sound_rule_passes_validation(fields):
    validate_rule(make_rule(**fields))
