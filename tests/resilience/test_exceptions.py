"""The exception hierarchy: context, serialised shape, severities, causes, pickling, no Django."""

import datetime as dt
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from resilience.exceptions import (
    ApiError,
    ApplicationError,
    BrokerError,
    CircuitOpenError,
    ConfigError,
    ConfigurationError,
    DataFeedError,
    DataValidationError,
    DnsResolutionError,
    NetworkError,
    NetworkTimeoutError,
    RateLimitError,
    RecoveryError,
    RetryError,
    Severity,
    StorageError,
    StrategyError,
)
from resilience.runtime.catalog import DEFAULT_CATALOG

PROJECT = Path(__file__).resolve().parents[2]
ALL_CLASSES = [
    ApplicationError,
    NetworkError,
    NetworkTimeoutError,
    DnsResolutionError,
    ApiError,
    BrokerError,
    RateLimitError,
    DataFeedError,
    DataValidationError,
    StrategyError,
    StorageError,
    ConfigurationError,
    RecoveryError,
    CircuitOpenError,
    RetryError,
]


def test_context_holds_the_named_fields_and_the_component():
    error = NetworkError("API call failed", url="https://api.example.com")
    assert error.context == {
        "url": "https://api.example.com",
        "status_code": None,
        "timeout": None,
        "component": "network",
    }
    assert error.url == "https://api.example.com"
    assert str(error) == "API call failed"


def test_to_dict_has_the_seeds_shape():
    moment = dt.datetime(2024, 1, 1, 12, 0, tzinfo=dt.UTC)
    error = NetworkError("API call failed", url="https://api.example.com", timestamp=moment)
    assert error.to_dict() == {
        "message": "API call failed",
        "error_code": "NETWORK_ERROR",
        "error_type": "NETWORK_CONNECTION",
        "severity": "HIGH",
        "context": {"url": "https://api.example.com", "status_code": None, "timeout": None, "component": "network"},
        "timestamp": "2024-01-01T12:00:00Z",
        "cause": None,
    }


def test_timestamps_in_other_zones_serialise_as_utc():
    moment = dt.datetime(2024, 1, 1, 14, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert ApiError("x", timestamp=moment).to_dict()["timestamp"] == "2024-01-01T12:00:00Z"


def test_extra_context_and_keyword_fields_are_merged():
    error = BrokerError(
        "Insufficient funds for BTC",
        broker_type="binance",
        symbol="BTC",
        order_type="market",
        context={"user_id": "user123"},
        account="main",
    )
    assert error.context == {
        "broker_type": "binance",
        "symbol": "BTC",
        "order_type": "market",
        "status_code": None,
        "user_id": "user123",
        "account": "main",
        "component": "broker",
    }
    assert isinstance(error, ApiError)


def test_a_given_component_overrides_the_class_default():
    assert DataFeedError("x", component="coinbase_feed").context["component"] == "coinbase_feed"


def test_severity_defaults_per_class_and_accepts_the_seeds_names():
    assert NetworkError("x").severity is Severity.HIGH
    assert NetworkTimeoutError("x").severity is Severity.MEDIUM
    assert ApiError("x", severity="WARNING").severity is Severity.MEDIUM
    assert ApiError("x", severity="error").severity is Severity.HIGH
    assert ApiError("x", severity=Severity.CRITICAL).to_dict()["severity"] == "CRITICAL"
    with pytest.raises(ValueError, match="severity must be one of"):
        ApiError("x", severity="LOUD")


def test_severity_levels_rank_lowest_first():
    assert [(level.value, level.rank) for level in Severity] == [
        ("INFO", 10),
        ("LOW", 20),
        ("MEDIUM", 30),
        ("HIGH", 40),
        ("CRITICAL", 50),
    ]
    assert pickle.loads(pickle.dumps(Severity.HIGH)) is Severity.HIGH


def test_the_cause_comes_from_the_argument_or_raise_from():
    root = ConnectionResetError("reset by peer")
    given = NetworkError("fetch failed", cause=root)
    assert given.cause is root and given.__cause__ is root
    assert given.to_dict()["cause"] == "ConnectionResetError: reset by peer"
    with pytest.raises(NetworkError) as caught:
        try:
            raise root
        except ConnectionResetError as error:
            raise NetworkError("fetch failed") from error
    assert caught.value.cause is root


def test_codes_can_be_overridden_per_instance():
    error = ApiError("x", error_code="EXCHANGE_DOWN", error_type="API_SERVER_ERROR")
    assert (error.error_code, error.error_type) == ("EXCHANGE_DOWN", "API_SERVER_ERROR")
    assert ApiError("y").error_type == "API_ERROR"  # the class default is untouched


def test_rate_limit_errors_carry_429_and_retry_after():
    error = RateLimitError("Rate limit exceeded for binance", service="binance", retry_after=30)
    assert (error.status_code, error.retry_after, error.service) == (429, 30, "binance")


def test_storage_errors_pick_their_type_from_the_operation():
    assert StorageError("x", operation="read", path="/data").error_type == "STORAGE_READ"
    assert StorageError("x", operation="write").error_type == "STORAGE_WRITE"


def test_config_error_names_the_field_and_is_a_value_error():
    error = ConfigError("max_attempts", "must be an integer >= 1, not 0")
    assert str(error) == "max_attempts: must be an integer >= 1, not 0"
    assert (error.field, error.reason) == ("max_attempts", "must be an integer >= 1, not 0")
    assert isinstance(error, ValueError) and isinstance(error, ConfigurationError)


def test_circuit_open_and_retry_errors_describe_themselves():
    assert str(CircuitOpenError(breaker="payments", retry_after=12.5)) == "Circuit 'payments' is open"
    retry = RetryError("gave up", last_result=[], policy="feeds", attempts=3)
    assert retry.last_result == [] and retry.context["attempts"] == 3


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_every_class_defaults_to_a_code_the_catalog_knows(cls):
    error = cls("message") if cls is not CircuitOpenError else cls(breaker="b")
    assert error.error_type in DEFAULT_CATALOG
    assert isinstance(error, ApplicationError)
    assert set(error.to_dict()) == {"message", "error_code", "error_type", "severity", "context", "timestamp", "cause"}


def test_errors_survive_pickling_with_their_context():
    error = RateLimitError("slow down", service="okx", retry_after=5, severity="LOW")
    restored = pickle.loads(pickle.dumps(error))
    assert type(restored) is RateLimitError
    assert restored.to_dict() == error.to_dict()
    assert restored.retry_after == 5
    config = pickle.loads(pickle.dumps(ConfigError("limit", "must be >= 1")))
    assert config.field == "limit" and str(config) == "limit: must be >= 1"


def test_the_runtime_imports_without_django():
    code = (
        "import sys\n"
        "import resilience.exceptions, resilience.runtime.catalog, resilience.runtime.retry, "
        "resilience.runtime.ratelimit\n"
        "assert not [name for name in sys.modules if name.split('.')[0] == 'django'], 'django imported'\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT, env=env, capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stderr
