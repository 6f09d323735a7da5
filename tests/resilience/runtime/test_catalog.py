"""The error-type catalog and the built-in classifier from exceptions and HTTP statuses to codes."""

import errno
import json
import socket
from types import SimpleNamespace

import httpx
import pytest

from resilience.exceptions import (
    ApiError,
    CircuitOpenError,
    ConfigError,
    DataValidationError,
    NetworkError,
    NetworkTimeoutError,
    RateLimitError,
    StorageError,
)
from resilience.runtime.catalog import (
    DEFAULT_CATALOG,
    Catalog,
    category_of,
    classify,
    classify_status,
    is_transient,
    status_of,
)


@pytest.mark.parametrize(
    ("code", "category", "transient"),
    [
        ("NETWORK_TIMEOUT", "NETWORK", True),
        ("NETWORK_CONNECTION", "NETWORK", True),
        ("NETWORK_DNS", "NETWORK", True),
        ("API_RATE_LIMIT", "RATE_LIMIT", True),
        ("API_AUTH", "AUTH", False),
        ("API_PERMISSION", "AUTH", False),
        ("API_FORMAT", "API", False),
        ("API_NOT_FOUND", "API", False),
        ("API_SERVER_ERROR", "API", True),
        ("DATA_EMPTY", "DATA", False),
        ("DATA_VALIDATION", "VALIDATION", False),
        ("DATA_INTEGRITY", "DATA", False),
        ("DATA_TRANSFORMATION", "DATA", False),
        ("STORAGE_READ", "STORAGE", False),
        ("STORAGE_WRITE", "STORAGE", True),
        ("STORAGE_SPACE", "STORAGE", False),
        ("STORAGE_PERMISSION", "STORAGE", False),
        ("UNEXPECTED", "UNKNOWN", False),
        ("INTERNAL", "SYSTEM", False),
    ],
)
def test_the_default_catalog_reproduces_the_seeded_error_types(code, category, transient):
    assert code in DEFAULT_CATALOG
    assert DEFAULT_CATALOG.category(code) == category
    assert DEFAULT_CATALOG.is_transient(code) is transient


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (TimeoutError(), "NETWORK_TIMEOUT"),  # also asyncio.TimeoutError and socket.timeout: aliases on 3.11
        (type("GatewayTimeout", (Exception,), {})(), "NETWORK_TIMEOUT"),
        (httpx.ReadTimeout("slow"), "NETWORK_TIMEOUT"),
        (ConnectionRefusedError(), "NETWORK_CONNECTION"),
        (ConnectionResetError(), "NETWORK_CONNECTION"),
        (httpx.ConnectError("refused"), "NETWORK_CONNECTION"),
        (socket.gaierror(-2, "Name or service not known"), "NETWORK_DNS"),
        (json.JSONDecodeError("bad", "{", 0), "DATA_TRANSFORMATION"),
        (PermissionError(), "STORAGE_PERMISSION"),
        (FileNotFoundError(), "STORAGE_READ"),
        (OSError(errno.ENOSPC, "No space left on device"), "STORAGE_SPACE"),
        (ValueError("?"), "UNEXPECTED"),
        (RuntimeError("?"), "UNEXPECTED"),
    ],
)
def test_it_classifies_exceptions_along_their_mro(error, code):
    assert classify(error) == code


def test_it_classifies_subclasses_of_known_exceptions():
    class BrokerUnreachable(ConnectionRefusedError):
        pass

    class FeedDecodeError(json.JSONDecodeError):
        pass

    assert classify(BrokerUnreachable()) == "NETWORK_CONNECTION"
    assert classify(FeedDecodeError("bad", "", 0)) == "DATA_TRANSFORMATION"


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "API_BAD_REQUEST"),
        (401, "API_AUTH"),
        (403, "API_PERMISSION"),
        (404, "API_NOT_FOUND"),
        (408, "NETWORK_TIMEOUT"),
        (418, "API_ERROR"),
        (429, "API_RATE_LIMIT"),
        (500, "API_SERVER_ERROR"),
        (503, "API_SERVER_ERROR"),
        (599, "API_SERVER_ERROR"),
    ],
)
def test_it_classifies_http_statuses(status, code):
    assert classify(status) == code
    assert classify_status(status) == code


def test_success_statuses_are_not_errors():
    assert classify_status(200) is None
    assert classify_status(302) is None
    assert classify(200) == "UNEXPECTED"


@pytest.mark.parametrize("status", range(400, 500))
def test_client_errors_are_permanent_except_408_and_429(status):
    assert is_transient(status) is (status in (408, 429))


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_transient(status):
    assert is_transient(status)


def test_an_exception_carrying_a_status_is_classified_by_it():
    response = httpx.Response(503, request=httpx.Request("GET", "https://example.test"))
    error = httpx.HTTPStatusError("unavailable", request=response.request, response=response)
    assert classify(error) == "API_SERVER_ERROR"
    assert is_transient(error)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (NetworkError("down"), "NETWORK_CONNECTION"),
        (NetworkTimeoutError("slow"), "NETWORK_TIMEOUT"),
        (RateLimitError(), "API_RATE_LIMIT"),
        (ApiError("boom"), "API_ERROR"),
        (ApiError("boom", status_code=502), "API_SERVER_ERROR"),
        (ApiError("gone", status_code=404), "API_NOT_FOUND"),
        (ApiError("odd", status_code=502, error_type="DATA_SCHEMA"), "DATA_SCHEMA"),
        (DataValidationError("bad row"), "DATA_VALIDATION"),
        (StorageError("cannot read", operation="read"), "STORAGE_READ"),
        (StorageError("cannot write", operation="write"), "STORAGE_WRITE"),
        (CircuitOpenError(breaker="db"), "CIRCUIT_OPEN"),
        (ConfigError("limit", "must be >= 1"), "CONFIGURATION_ERROR"),
    ],
)
def test_it_recognises_the_resilience_exception_hierarchy(error, code):
    assert classify(error) == code


def test_an_open_circuit_is_not_retried_into():
    assert not is_transient(CircuitOpenError(breaker="payments"))


def test_status_is_read_from_status_code_status_or_the_response():
    assert status_of(SimpleNamespace(status_code=429)) == 429
    assert status_of(SimpleNamespace(status=502)) == 502
    assert status_of(SimpleNamespace(response=SimpleNamespace(status_code=404))) == 404
    assert status_of(SimpleNamespace(status=True)) is None  # a flag, not an HTTP status
    assert status_of(SimpleNamespace(response=None)) is None


def test_categories_come_from_the_catalog():
    assert category_of(ConnectionError()) == "NETWORK"
    assert category_of(429) == "RATE_LIMIT"
    assert category_of(ValueError()) == "UNKNOWN"


def test_a_catalog_built_from_console_rows_decides_transience():
    rows = [
        {"code": "API_SERVER_ERROR", "category": "API", "transient": False, "default_severity": 30},
        {"code": "DATA_EMPTY", "category": "DATA", "transient": True, "description": "ignored"},
    ]
    catalog = Catalog.from_data(rows)
    assert len(catalog) == 2
    assert not is_transient(503, catalog)
    assert is_transient(503)  # the default catalog is untouched
    assert catalog.is_transient("DATA_EMPTY")


def test_an_unknown_code_is_permanent_and_unknown():
    catalog = Catalog.from_data([])
    assert catalog.entry("BRAND_NEW").category == "UNKNOWN"
    assert not catalog.is_transient("BRAND_NEW")
    assert not is_transient(ConnectionError(), catalog)


def test_a_catalog_round_trips_through_json():
    pulled = json.loads(json.dumps(DEFAULT_CATALOG.to_data()))
    catalog = Catalog.from_data(pulled)
    assert catalog.to_data() == DEFAULT_CATALOG.to_data()
    assert [entry.code for entry in catalog] == sorted(entry.code for entry in DEFAULT_CATALOG)


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"category": "API", "transient": True}, "rows[1].code"),
        ({"code": "X", "transient": True}, "rows[1].category"),
        ({"code": "X", "category": "API", "transient": "yes"}, "rows[1].transient"),
    ],
)
def test_an_invalid_row_names_its_index_and_field(row, field):
    with pytest.raises(ConfigError) as caught:
        Catalog.from_data([{"code": "OK", "category": "API", "transient": True}, row])
    assert caught.value.field == field
