"""Classification of events from real exceptions, with the seeded rules from the database."""

import json
import socket
import sys

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from sentry_sdk.utils import event_from_exception

from incidents.classify import classify, load_ruleset_and_catalog
from incidents.ingest.normalize import normalize_native_event, normalize_sentry_event
from incidents.models import ClassificationRule, ErrorType, Severity

pytestmark = pytest.mark.django_db


def sdk_event(exc: BaseException, **fields) -> dict:
    """Build the event the real SDK would send for this exception, then normalise it as ingest does."""
    try:
        raise exc
    except BaseException:
        event, _hint = event_from_exception(sys.exc_info())
    return normalize_sentry_event({**event, **fields}, received_at=timezone.now())


def code_for(event: dict) -> str:
    rules, catalog = load_ruleset_and_catalog()
    return classify(event, rules, catalog).error_type


class HTTPError(OSError):
    """Shaped like requests.HTTPError: the status is in the message."""


class ConnectTimeout(Exception):
    pass


def json_error() -> Exception:
    try:
        json.loads("{not json")
    except json.JSONDecodeError as error:
        return error


@pytest.mark.parametrize(
    "exc, fields, expected",
    [
        (TimeoutError("read timed out"), {}, "NETWORK_TIMEOUT"),
        (ConnectTimeout("Connection to api timed out. (connect timeout=5)"), {}, "NETWORK_TIMEOUT"),
        (socket.gaierror(-2, "Name or service not known"), {}, "NETWORK_DNS"),
        (ConnectionRefusedError(111, "Connection refused"), {}, "NETWORK_CONNECTION"),
        (HTTPError("429 Client Error: Too Many Requests for url: https://api/x"), {}, "API_RATE_LIMIT"),
        (HTTPError("401 Client Error: Unauthorized for url: https://api/x"), {}, "API_AUTH"),
        (HTTPError("403 Client Error: Forbidden for url: https://api/x"), {}, "API_PERMISSION"),
        (HTTPError("404 Client Error: Not Found for url: https://api/x"), {}, "API_NOT_FOUND"),
        (HTTPError("400 Client Error: Bad Request for url: https://api/x"), {}, "API_BAD_REQUEST"),
        (HTTPError("503 Server Error: Service Unavailable for url: https://api/x"), {}, "API_SERVER_ERROR"),
        (json_error(), {}, "DATA_TRANSFORMATION"),
        (ValueError("price must be positive"), {"extra": {"during_validation": True}}, "DATA_VALIDATION"),
        (KeyError("price"), {}, "UNEXPECTED"),
        (FileNotFoundError(2, "No such file"), {"extra": {"storage_operation": "read"}}, "STORAGE_READ"),
        (OSError(5, "I/O error"), {"extra": {"storage_operation": "write"}}, "STORAGE_WRITE"),
        (OSError(28, "No space left on device"), {"extra": {"storage_operation": "write"}}, "STORAGE_SPACE"),
        (PermissionError(13, "Permission denied"), {"extra": {"storage_operation": "write"}}, "STORAGE_PERMISSION"),
        (MemoryError(), {}, "SYSTEM_ERROR"),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else None,
)
def test_the_seeded_rules_classify_real_exceptions(exc, fields, expected):
    assert code_for(sdk_event(exc, **fields)) == expected


def test_a_native_event_sending_its_bases_matches_a_rule_on_a_base_class():
    event = normalize_native_event(
        {"exception": {"type": "PaymentGatewayDown", "value": "gateway went away", "bases": ["ConnectionError"]}},
        received_at=timezone.now(),
    )
    assert code_for(event) == "NETWORK_CONNECTION"


class ReadTimeoutError(Exception):
    """Named like urllib3's, whose bases the SDK does not send."""


def test_a_well_known_library_exception_matches_through_its_known_bases():
    assert code_for(sdk_event(ReadTimeoutError("HTTPSConnectionPool: Read timed out."))) == "NETWORK_TIMEOUT"
    assert code_for(sdk_event(ReadTimeoutError("pool exhausted"))) == "NETWORK_TIMEOUT"


def test_a_message_event_with_an_empty_reason_is_data_empty():
    event = normalize_sentry_event(
        {"message": "no rows for 2026-11-01", "extra": {"empty_reason": "date_range"}}, received_at=timezone.now()
    )
    assert code_for(event) == "DATA_EMPTY"


def test_a_fatal_event_is_critical_whatever_its_type():
    rules, catalog = load_ruleset_and_catalog()
    result = classify(sdk_event(TimeoutError("slow"), level="fatal"), rules, catalog)
    assert (result.error_type, result.severity) == ("NETWORK_TIMEOUT", Severity.CRITICAL)


def test_the_first_matching_rule_wins_and_its_severity_override_applies():
    ClassificationRule.objects.create(
        name="payments timeouts are integrity problems",
        position=1,
        exception_type="TimeoutError",
        component="payments",
        error_type=ErrorType.objects.get(code="DATA_INTEGRITY"),
        severity_override=Severity.LOW,
    )
    rules, catalog = load_ruleset_and_catalog()
    paying = classify(sdk_event(TimeoutError("slow"), tags={"component": "payments"}), rules, catalog)
    other = classify(sdk_event(TimeoutError("slow")), rules, catalog)
    assert (paying.error_type, paying.severity) == ("DATA_INTEGRITY", Severity.LOW)
    assert other.error_type == "NETWORK_TIMEOUT"


def test_disabled_rules_are_skipped():
    ClassificationRule.objects.filter(name="Timeouts").update(enabled=False)
    ClassificationRule.objects.filter(name="Timeout messages").update(enabled=False)
    assert code_for(sdk_event(TimeoutError("slow"))) == "UNEXPECTED"


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"message_pattern": "(unclosed"}, "message_pattern"),
        ({"http_status": "42"}, "http_status"),
        ({"http_status": "5xx,700"}, "http_status"),
        ({"context_match": ["not", "an", "object"]}, "context_match"),
        ({}, "__all__"),
    ],
)
def test_a_rule_that_cannot_work_is_refused_naming_the_field(fields, field):
    rule = ClassificationRule(name="bad", error_type=ErrorType.objects.get(code="INTERNAL"), **fields)
    with pytest.raises(ValidationError) as caught:
        rule.full_clean()
    assert field in caught.value.message_dict
