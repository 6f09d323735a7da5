"""The console's own JSON format: the three body shapes, limits and strict field checks."""

import json
import uuid

import pytest

from incidents.ingest import native
from incidents.ingest.errors import IngestError
from incidents.ingest.native import parse_native, validate_native_event


def event(**fields) -> dict:
    """A native event with a real-looking exception, as an application would send it."""
    return {
        "event_id": uuid.uuid4().hex,
        "timestamp": "2024-05-01T12:00:00Z",
        "level": "error",
        "exception": {
            "type": "TimeoutError",
            "value": "read timed out after 30s",
            "module": "builtins",
            "bases": ["OSError"],
            "stacktrace": {
                "frames": [
                    {"filename": "app/rates.py", "function": "fetch_rates", "lineno": 42, "in_app": True},
                ]
            },
        },
        "environment": "production",
        **fields,
    }


def body(payload) -> bytes:
    return json.dumps(payload).encode()


def refused(payload, max_events: int = 10) -> IngestError:
    with pytest.raises(IngestError) as caught:
        parse_native(payload if isinstance(payload, bytes) else body(payload), max_events=max_events)
    assert caught.value.status == 400
    return caught.value


class TestShapes:
    def test_it_accepts_one_event_object(self):
        sent = event()
        assert parse_native(body(sent), max_events=10) == [sent]

    def test_it_accepts_a_list_of_events(self):
        sent = [event(), event(message="second")]
        assert parse_native(body(sent), max_events=10) == sent

    def test_it_accepts_an_events_wrapper(self):
        sent = [event(), event()]
        assert parse_native(body({"events": sent}), max_events=10) == sent

    def test_it_accepts_exactly_the_limit(self):
        assert len(parse_native(body([event() for _ in range(5)]), max_events=5)) == 5

    @pytest.mark.parametrize("payload", [[], {"events": []}])
    def test_no_events_is_a_400_naming_events(self, payload):
        error = refused(payload)
        assert error.field == "events"
        assert "at least one" in error.message

    def test_more_events_than_the_limit_is_a_400_naming_the_limit(self):
        error = refused([event() for _ in range(6)], max_events=5)
        assert error.field == "events"
        assert "6 events is over the limit of 5" in error.message

    @pytest.mark.parametrize("payload", ["just text", 42, None, True])
    def test_a_body_that_is_no_event_is_a_400(self, payload):
        assert refused(payload).field == "body"

    def test_events_that_is_not_a_list_is_a_400(self):
        assert refused({"events": {"message": "m"}}).field == "events"

    def test_a_batch_entry_that_is_not_an_object_names_its_index(self):
        error = refused([event(), "oops"])
        assert error.field == "events[1]"

    def test_malformed_json_is_a_400_naming_the_body(self):
        error = refused(b'{"message": "m",}')
        assert error.field == "body"
        assert error.message.startswith("malformed JSON")


class TestValidation:
    def test_a_bad_field_in_a_batch_names_the_event_and_refuses_the_whole_batch(self):
        error = refused({"events": [event(), event(), event(level="loud"), event(level=7)]})
        assert error.field == "events[2].level"
        assert error.message == "must be one of fatal, error, warning, info, debug"

    def test_a_single_event_names_the_field_without_a_prefix(self):
        assert refused(event(level="loud")).field == "level"

    @pytest.mark.parametrize(
        "fields, field, message",
        [
            ({"event_id": "xyz"}, "event_id", "must be 32 hex digits or a UUID"),
            ({"event_id": 12}, "event_id", "must be 32 hex digits or a UUID, not a number"),
            ({"timestamp": "yesterday"}, "timestamp", "must be an ISO 8601 string or epoch seconds"),
            ({"timestamp": True}, "timestamp", "must be an ISO 8601 string or epoch seconds"),
            ({"timestamp": [1]}, "timestamp", "must be an ISO 8601 string or epoch seconds"),
            ({"level": "loud"}, "level", "must be one of fatal, error, warning, info, debug"),
            ({"level": 40}, "level", "must be one of fatal, error, warning, info, debug"),
            ({"message": ["a"]}, "message", "must be a string, not a list"),
            ({"http_status": "404"}, "http_status", "must be an integer, not a string"),
            ({"http_status": True}, "http_status", "must be an integer, not a boolean"),
            ({"http_status": 600}, "http_status", "must be between 100 and 599, not 600"),
            ({"http_status": 99}, "http_status", "must be between 100 and 599, not 99"),
            ({"logger": 1}, "logger", "must be a string, not a number"),
            ({"component": {}}, "component", "must be a string, not an object"),
            ({"environment": 1}, "environment", "must be a string, not a number"),
            ({"release": 1.5}, "release", "must be a string, not a number"),
            ({"server_name": []}, "server_name", "must be a string, not a list"),
            ({"transaction": False}, "transaction", "must be a string, not a boolean"),
            ({"tags": ["a", "b"]}, "tags", "must be an object of string, number or boolean values, not a list"),
            ({"tags": {"region": {"eu": 1}}}, "tags.region", "must be a string, number or boolean"),
            ({"user": 42}, "user", "must be a string or an object, not a number"),
            ({"request": "GET /"}, "request", "must be an object, not a string"),
            ({"context": ["a"]}, "context", "must be an object, not a list"),
            ({"contexts": "x"}, "contexts", "must be an object, not a string"),
            ({"fingerprint": "x"}, "fingerprint", "must be a list of strings, not a string"),
            ({"fingerprint": ["a", 1]}, "fingerprint[1]", "must be a string, not a number"),
            ({"sdk": "x"}, "sdk", "must be an object, not a string"),
        ],
    )
    def test_a_wrong_type_is_a_400_naming_the_field(self, fields, field, message):
        error = refused(event(**fields))
        assert (error.field, error.message) == (field, message)
        batch_error = refused([event(), event(**fields)])
        assert batch_error.field == f"events[1].{field}"

    @pytest.mark.parametrize(
        "exception, field",
        [
            ("boom", "exception"),
            ({"value": "no type"}, "exception.type"),
            ({"type": ""}, "exception.type"),
            ([{"type": "A"}, {"type": 3}], "exception[1].type"),
            ({"values": {"type": "A"}}, "exception.values"),
            ({"values": [{"type": "A"}, "B"]}, "exception.values[1]"),
            ({"type": "A", "value": 5}, "exception.value"),
            ({"type": "A", "module": 5}, "exception.module"),
            ({"type": "A", "bases": "OSError"}, "exception.bases"),
            ({"type": "A", "bases": ["OSError", None]}, "exception.bases[1]"),
            ({"type": "A", "mechanism": "generic"}, "exception.mechanism"),
            ({"type": "A", "stacktrace": []}, "exception.stacktrace"),
            ({"values": [{"type": "A", "stacktrace": {"frames": {}}}]}, "exception.values[0].stacktrace.frames"),
            ({"type": "A", "stacktrace": {"frames": ["f"]}}, "exception.stacktrace.frames[0]"),
            ({"type": "A", "stacktrace": {"frames": [{"lineno": "42"}]}}, "exception.stacktrace.frames[0].lineno"),
            ({"type": "A", "stacktrace": {"frames": [{"colno": 1.5}]}}, "exception.stacktrace.frames[0].colno"),
            ({"type": "A", "stacktrace": {"frames": [{"in_app": "yes"}]}}, "exception.stacktrace.frames[0].in_app"),
            ({"type": "A", "stacktrace": {"frames": [{"function": 1}]}}, "exception.stacktrace.frames[0].function"),
            ({"type": "A", "stacktrace": {"frames": [{"vars": [1]}]}}, "exception.stacktrace.frames[0].vars"),
            (
                {"type": "A", "stacktrace": {"frames": [{}, {"pre_context": [1]}]}},
                "exception.stacktrace.frames[1].pre_context[0]",
            ),
        ],
    )
    def test_a_bad_exception_names_the_path_to_the_fault(self, exception, field):
        assert refused(event(exception=exception)).field == field

    @pytest.mark.parametrize("fields", [{"exception": None}, {"exception": []}, {"exception": None, "message": ""}])
    def test_an_event_needs_a_message_or_an_exception(self, fields):
        error = refused(event(**fields))
        assert (error.field, error.message) == ("message", "an event needs a message or an exception")

    @pytest.mark.parametrize(
        "fields",
        [
            {"exception": None, "message": "only a message"},
            {"event_id": str(uuid.uuid4())},
            {"event_id": uuid.uuid4().hex.upper()},
            {"timestamp": 1714564800},
            {"timestamp": 1714564800.25},
            {"timestamp": "2024-05-01T14:00:00+02:00"},
            {"timestamp": "2024-05-01 12:00:00"},
            {"level": "WARN"},
            {"level": "critical"},
            {"http_status": 429},
            {"tags": {"retry": True, "attempt": 3, "ratio": 0.5, "region": "eu", "gone": None}},
            {"user": "user-42"},
            {"user": {"id": "42", "email": "a@example.com"}},
            {"fingerprint": ["{{ default }}", "rates"]},
            {"exception": [{"type": "OSError"}, {"type": "TimeoutError", "value": "slow"}]},
            {"exception": {"values": [{"type": "TimeoutError"}]}},
            {"unknown_field": {"is": "ignored"}},
            {"message": None, "logger": None, "tags": None},
        ],
    )
    def test_valid_variants_are_accepted(self, fields):
        validate_native_event(event(**fields))

    def test_every_documented_field_is_accepted_together(self):
        full = event(
            message="rates fetch failed",
            http_status=504,
            logger="app.rates",
            component="rates",
            release="shop@1.2.3",
            server_name="web-1",
            transaction="GET /rates",
            platform="python",
            tags={"region": "eu"},
            user={"id": "42"},
            request={"url": "https://shop.example.com/rates", "method": "GET"},
            context={"provider": "ecb"},
            contexts={"runtime": {"name": "CPython"}},
            fingerprint=["rates"],
            sdk={"name": "console-client", "version": "1.0"},
        )
        assert parse_native(body(full), max_events=1) == [full]

    def test_the_module_documents_every_field_it_checks(self):
        documented = native.__doc__
        for field in (*native._STRING_FIELDS, *native._OBJECT_FIELDS, "event_id", "timestamp", "level"):
            assert field in documented
        for field in ("http_status", "tags", "user", "fingerprint", "exception", "bases", "stacktrace", "frames"):
            assert field in documented
