"""Turning raw Sentry and native events into the canonical, storable, scrubbed ErrorEvent fields."""

import io
import json
import logging
import math
import random
import uuid
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest
import sentry_sdk
from sentry_sdk.integrations.logging import LoggingIntegration

from incidents.ingest.decoding import decode_json, read_body
from incidents.ingest.errors import IngestError
from incidents.ingest.normalize import (
    DEPTH_LIMIT,
    TRIMMED_KEY,
    normalize_native_event,
    normalize_sentry_event,
)
from incidents.ingest.sentry import parse_envelope
from incidents.models import ErrorEvent
from tests.incidents.ingest.sdk import capture_one_event

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
CANONICAL = {
    "event_id",
    "timestamp",
    "level",
    "message",
    "exception",
    "http_status",
    "logger",
    "component",
    "platform",
    "server_name",
    "release",
    "environment",
    "transaction",
    "tags",
    "user",
    "request",
    "contexts",
    "extra",
    "sdk",
    "client_fingerprint",
}
EXCEPTION_KEYS = {"type", "value", "module", "bases", "mechanism", "stacktrace"}
FRAME_KEYS = {
    "filename",
    "abs_path",
    "module",
    "function",
    "lineno",
    "colno",
    "in_app",
    "context_line",
    "pre_context",
    "post_context",
    "vars",
}


def sentry(raw: dict, **options) -> dict:
    return normalize_sentry_event(raw, received_at=NOW, **options)


def native(raw: dict, **options) -> dict:
    return normalize_native_event(raw, received_at=NOW, **options)


def storable(event: dict) -> str:
    """Serialise as the JSON columns will be, failing on NaN and on what UTF-8 cannot hold."""
    text = json.dumps(event, default=str, allow_nan=False)
    text.encode("utf-8")
    assert "\\u0000" not in text
    return text


class Repository:
    def load(self, order_id):
        refresh_token = "rt-live-5f3a9c"  # noqa: F841 - a local the SDK reports and the console must scrub
        raise TimeoutError(f"read timed out after 30s loading order {order_id} paid with 4111 1111 1111 1111")


def load_order():
    try:
        Repository().load(7)
    except TimeoutError as error:
        raise RuntimeError("could not load order 7") from error


def raise_http_error():
    request = httpx.Request("GET", "https://api.example.com/v1/items/123")
    httpx.Response(404, request=request).raise_for_status()


class TestSdkEvents:
    def test_an_envelope_from_the_sdk_becomes_exactly_the_event_fields(self):
        sent = capture_one_event(load_order, release="shop@1.2.3", environment="staging", server_name="web-1")
        [raw] = parse_envelope(sent.body, max_events=10).events
        event = normalize_sentry_event(raw, received_at=datetime.now(UTC))
        assert set(event) == CANONICAL
        assert {field.name for field in ErrorEvent._meta.concrete_fields} >= CANONICAL
        assert event["event_id"] == uuid.UUID(raw["event_id"])
        assert event["timestamp"].tzinfo == UTC
        assert abs(event["timestamp"] - datetime.now(UTC)) < timedelta(minutes=1)
        assert (event["level"], event["platform"]) == ("error", "python")
        assert (event["release"], event["environment"], event["server_name"]) == ("shop@1.2.3", "staging", "web-1")
        assert event["sdk"] == {"name": "sentry.python", "version": sentry_sdk.VERSION}
        assert event["contexts"]["trace"]["trace_id"] == raw["contexts"]["trace"]["trace_id"]
        storable(event)

    def test_a_chained_exception_is_kept_oldest_cause_first(self):
        event = sentry(capture_one_event(load_order).event)
        assert [exception["type"] for exception in event["exception"]] == ["TimeoutError", "RuntimeError"]
        assert event["exception"][-1]["value"] == "could not load order 7"
        assert event["exception"][0]["mechanism"] == {"type": "generic", "handled": True}

    def test_exceptions_and_frames_keep_only_the_canonical_keys(self):
        event = sentry(capture_one_event(load_order).event)
        for exception in event["exception"]:
            assert set(exception) <= EXCEPTION_KEYS
            assert exception["bases"] == []
            for frame in exception["stacktrace"]["frames"]:
                assert set(frame) <= FRAME_KEYS
                assert isinstance(frame["in_app"], bool)
                assert isinstance(frame["lineno"], int)
        crash_site = event["exception"][0]["stacktrace"]["frames"][-1]
        assert (crash_site["function"], crash_site["in_app"]) == ("load", True)
        assert "raise TimeoutError" in crash_site["context_line"]

    def test_locals_and_card_numbers_from_the_sdk_are_scrubbed(self):
        event = sentry(capture_one_event(load_order).event)
        crash_site = event["exception"][0]["stacktrace"]["frames"][-1]
        assert crash_site["vars"]["refresh_token"] == "[Filtered]"
        assert crash_site["vars"]["order_id"] == "7"
        assert event["exception"][0]["value"] == "read timed out after 30s loading order 7 paid with [Filtered]"
        assert "rt-live-5f3a9c" not in storable(event)

    def test_a_logging_event_takes_its_message_and_logger(self):
        def log():
            logging.getLogger("shop.payments").error("charge %s failed for %s", 42, "bob")

        sent = capture_one_event(log, integrations=[LoggingIntegration(event_level=logging.ERROR)])
        event = sentry(sent.event)
        assert (event["message"], event["logger"], event["exception"]) == (
            "charge 42 failed for bob",
            "shop.payments",
            [],
        )

    def test_a_captured_message_keeps_its_text_and_level(self):
        sent = capture_one_event(lambda: sentry_sdk.capture_message("disk almost full", level="warning"))
        event = sentry(sent.event)
        assert (event["message"], event["level"]) == ("disk almost full", "warning")

    def test_an_httpx_status_error_gives_the_status(self):
        event = sentry(capture_one_event(raise_http_error).event)
        assert event["exception"][-1]["type"] == "HTTPStatusError"
        assert event["http_status"] == 404

    def test_a_gzipped_envelope_goes_through_the_whole_pipeline(self):
        sent = capture_one_event(load_order, compression="gzip")
        body = read_body(
            io.BytesIO(sent.body),
            content_length=None,
            content_encoding=sent.content_encoding,
            max_compressed=1 << 20,
            max_decompressed=1 << 24,
        )
        [raw] = parse_envelope(body, max_events=1).events
        assert sentry(raw)["exception"][-1]["type"] == "RuntimeError"


class TestSentryFields:
    @pytest.mark.parametrize(
        "value, expected",
        [
            ("0123456789abcdef0123456789abcdef", uuid.UUID("0123456789abcdef0123456789abcdef")),
            ("01234567-89ab-cdef-0123-456789abcdef", uuid.UUID("0123456789abcdef0123456789abcdef")),
        ],
    )
    def test_the_event_id_is_read_as_a_uuid(self, value, expected):
        assert sentry({"event_id": value})["event_id"] == expected

    @pytest.mark.parametrize("value", [None, "", "not-hex", 42, ["a"]])
    def test_a_missing_or_unusable_event_id_is_generated(self, value):
        first, second = sentry({"event_id": value})["event_id"], sentry({"event_id": value})["event_id"]
        assert isinstance(first, uuid.UUID)
        assert first != second

    @pytest.mark.parametrize(
        "value, expected",
        [
            (NOW.timestamp() - 60.5, NOW - timedelta(seconds=60.5)),
            (int(NOW.timestamp()) - 60, NOW - timedelta(seconds=60)),
            ("2024-05-01T11:59:00Z", NOW - timedelta(minutes=1)),
            ("2024-05-01T11:59:00.250000Z", NOW - timedelta(seconds=59.75)),
            ("2024-05-01T13:59:00+02:00", NOW - timedelta(minutes=1)),
            ("2024-05-01T11:59:00", NOW - timedelta(minutes=1)),
            (str(NOW.timestamp() - 60), NOW - timedelta(seconds=60)),
            (None, NOW),
            ("garbage", NOW),
            (True, NOW),
            (float("nan"), NOW),
            (1e300, NOW),
            ({"t": 1}, NOW),
        ],
    )
    def test_the_timestamp_is_read_as_aware_utc(self, value, expected):
        timestamp = sentry({"timestamp": value})["timestamp"]
        assert timestamp == expected
        assert timestamp.tzinfo is UTC

    def test_the_timestamp_is_kept_within_30_days_before_and_1_minute_after_receipt(self):
        assert sentry({"timestamp": (NOW - timedelta(days=40)).isoformat()})["timestamp"] == NOW - timedelta(days=30)
        assert sentry({"timestamp": (NOW + timedelta(hours=1)).timestamp()})["timestamp"] == NOW + timedelta(minutes=1)
        assert sentry({"timestamp": (NOW - timedelta(days=29)).timestamp()})["timestamp"] == NOW - timedelta(days=29)

    def test_a_received_at_in_another_zone_still_gives_utc(self):
        received = NOW.astimezone(timezone(timedelta(hours=5)))
        for raw in ({}, {"timestamp": NOW.timestamp() - 60}, {"timestamp": "2020-01-01T00:00:00Z"}):
            assert normalize_sentry_event(raw, received_at=received)["timestamp"].tzinfo is UTC

    @pytest.mark.parametrize(
        "value, expected",
        [
            ("fatal", "fatal"),
            ("ERROR", "error"),
            ("warning", "warning"),
            ("warn", "warning"),
            ("critical", "fatal"),
            ("info", "info"),
            ("debug", "debug"),
            ("loud", "error"),
            (None, "error"),
            (40, "error"),
        ],
    )
    def test_levels_and_their_aliases(self, value, expected):
        assert sentry({"level": value})["level"] == expected

    @pytest.mark.parametrize(
        "raw, expected",
        [
            ({"logentry": {"formatted": "charge 42 failed", "message": "charge %s failed"}}, "charge 42 failed"),
            ({"logentry": {"message": "charge %s failed"}}, "charge %s failed"),
            ({"message": "plain"}, "plain"),
            ({"message": {"formatted": "from dict"}}, "from dict"),
            ({"message": {"message": "template"}}, "template"),
            ({"sentry.interfaces.Message": {"message": "very old"}}, "very old"),
            ({"logentry": {"formatted": ""}, "message": "fallback"}, "fallback"),
            ({"message": 42}, "42"),
            ({"message": ["no"]}, ""),
            ({}, ""),
        ],
    )
    def test_the_message_comes_from_logentry_or_message(self, raw, expected):
        assert sentry(raw)["message"] == expected

    @pytest.mark.parametrize(
        "exception",
        [
            {"values": [{"type": "OSError"}, {"type": "TimeoutError"}]},
            [{"type": "OSError"}, {"type": "TimeoutError"}],
            {"values": [{"type": "OSError"}, "junk", {"type": "TimeoutError"}]},
        ],
    )
    def test_the_exception_may_be_values_or_a_list(self, exception):
        assert [entry["type"] for entry in sentry({"exception": exception})["exception"]] == ["OSError", "TimeoutError"]

    def test_a_long_chain_keeps_the_exception_that_surfaced(self):
        chain = [{"type": f"Error{n}"} for n in range(50)]
        kept = sentry({"exception": chain})["exception"]
        assert len(kept) == 20
        assert kept[-1]["type"] == "Error49"

    def test_an_exception_entry_gets_every_canonical_key(self):
        [entry] = sentry({"exception": {"values": [{"type": "E", "extra_key": 1, "mechanism": {"handled": False}}]}})[
            "exception"
        ]
        assert entry == {
            "type": "E",
            "value": "",
            "module": "",
            "bases": [],
            "mechanism": {"handled": False},
            "stacktrace": {"frames": []},
        }

    @pytest.mark.parametrize(
        "tags",
        [
            {"region": "eu", "attempt": 3, "retry": True, "nested": {"no": 1}, "gone": None},
            [["region", "eu"], ["attempt", 3], ["retry", True], ["nested", {"no": 1}], ["bad"], "junk"],
        ],
    )
    def test_tags_become_strings_from_a_dict_or_pairs(self, tags):
        assert sentry({"tags": tags})["tags"] == {"region": "eu", "attempt": "3", "retry": "true"}

    @pytest.mark.parametrize(
        "raw, expected",
        [
            ({"contexts": {"response": {"status_code": 503}}}, 503),
            ({"contexts": {"response": {"status_code": "502"}}}, 502),
            ({"tags": {"http.status_code": "429"}}, 429),
            ({"tags": {"status_code": 401}}, 401),
            ({"tags": {"status_code": "abc"}}, None),
            ({"tags": {"status_code": "²"}}, None),
            ({"contexts": {"response": {"status_code": "4" + "0" * 5000}}}, None),
            ({"tags": {"status_code": "700"}}, None),
            ({"contexts": {"response": {"status_code": True}}}, None),
            ({}, None),
        ],
    )
    def test_the_http_status_comes_from_the_response_context_or_tags(self, raw, expected):
        assert sentry(raw)["http_status"] == expected

    @pytest.mark.parametrize(
        "exception_type, value, expected",
        [
            ("HTTPError", "429 Client Error: Too Many Requests for url: https://api.example.com/v1/items/123", 429),
            ("HTTPError", "HTTP Error 401: Unauthorized", 401),
            ("ClientResponseError", "503, message='Service Unavailable', url='http://api/500'", 503),
            ("HTTPStatusError", "Server error '500 Internal Server Error' for url 'https://x/y'", 500),
            ("UpstreamStatusError", "upstream answered 502", 502),
            ("HTTPError", "request to https://api.example.com/items/404 failed", None),
            ("HTTPError", "gave up after 3.500 seconds", None),
            ("HTTPError", "600 is not a status", None),
            ("HTTPError", "no code here", None),
            ("KeyError", "404", None),
            ("ValueError", "got 500 rows", None),
        ],
    )
    def test_the_http_status_is_read_from_http_error_messages_only(self, exception_type, value, expected):
        assert sentry({"exception": [{"type": exception_type, "value": value}]})["http_status"] == expected

    def test_a_status_after_a_long_run_of_dotted_words_is_still_found(self):
        # bench/regex.py times this input: a backtracking URL pattern took 80 ms on it.
        value = "a." * 4000 + " https://example.com/ 503"
        assert sentry({"exception": [{"type": "HTTPError", "value": value}]})["http_status"] == 503

    def test_the_status_in_the_response_context_wins_over_the_message(self):
        raw = {"contexts": {"response": {"status_code": 503}}, "exception": [{"type": "HTTPError", "value": "404"}]}
        assert sentry(raw)["http_status"] == 503

    @pytest.mark.parametrize(
        "raw",
        [
            {"tags": {"component": "billing"}},
            {"extra": {"component": "billing"}},
            {"contexts": {"component": "billing"}},
            {"contexts": {"component": {"name": "billing"}}},
        ],
    )
    def test_the_component_comes_from_tags_extra_or_contexts(self, raw):
        assert sentry(raw)["component"] == "billing"

    def test_the_sdk_keeps_its_name_and_version_only(self):
        sdk = {"name": "sentry.javascript.browser", "version": "8.1.0", "integrations": ["a"], "packages": []}
        assert sentry({"sdk": sdk})["sdk"] == {"name": "sentry.javascript.browser", "version": "8.1.0"}

    @pytest.mark.parametrize(
        "value, expected",
        [(["{{ default }}", "db", 3], ["{{ default }}", "db", "3"]), ([], None), ("x", None), (None, None)],
    )
    def test_the_client_fingerprint_is_a_list_of_strings_or_none(self, value, expected):
        assert sentry({"fingerprint": value})["client_fingerprint"] == expected

    def test_the_culprit_stands_in_for_a_missing_transaction(self):
        assert sentry({"culprit": "app.views.checkout"})["transaction"] == "app.views.checkout"

    @pytest.mark.parametrize(
        "raw",
        [
            {"tags": "a,b"},
            {"user": ["x"]},
            {"request": "GET /"},
            {"contexts": [1]},
            {"extra": "x"},
            {"sdk": "sentry.python"},
            {"exception": "boom"},
            {"exception": {"values": "boom"}},
            {"exception": [{"type": ["A"], "value": {"v": 1}, "stacktrace": {"frames": "none"}}]},
            {"exception": [{"type": "A", "stacktrace": {"frames": [{"lineno": "x", "in_app": "yes", "vars": []}]}}]},
            {"exception": [{"type": "A", "stacktrace": {"frames": [{"lineno": "²", "colno": "9" * 5000}]}}]},
            {"logger": {"name": "x"}, "release": ["1"], "environment": 5, "platform": None, "server_name": True},
        ],
    )
    def test_wrong_types_in_optional_fields_are_coerced_or_dropped(self, raw):
        event = sentry(raw)
        assert set(event) == CANONICAL
        for name in ("tags", "user", "request", "contexts", "extra", "sdk"):
            assert isinstance(event[name], dict)
        for name in ("message", "logger", "platform", "server_name", "release", "environment", "transaction"):
            assert isinstance(event[name], str)
        storable(event)

    @pytest.mark.parametrize("raw", [[], "event", None, 42])
    def test_only_a_non_object_event_is_a_400(self, raw):
        with pytest.raises(IngestError) as caught:
            normalize_sentry_event(raw, received_at=NOW, field_prefix="envelope item 1 payload.")
        assert (caught.value.status, caught.value.field) == (400, "envelope item 1 payload")


def nested(levels: int) -> dict:
    value = {"leaf": "bottom"}
    for _ in range(levels - 1):
        value = {"down": value}
    return value


def depth_of(value) -> int:
    depth = 0
    while isinstance(value, dict) and "down" in value:
        value, depth = value["down"], depth + 1
    return depth + 1 if isinstance(value, dict) else depth


class TestSafety:
    def test_nul_characters_are_removed_everywhere(self):
        raw = {
            "message": "nul\x00byte",
            "tags": {"k\x00": "v\x00"},
            "extra": {"a\x00b": ["x\x00y", {"deep\x00": "z\x00"}]},
            "exception": [{"type": "E\x00", "value": "v\x00", "stacktrace": {"frames": [{"vars": {"v": "\x00"}}]}}],
        }
        text = storable(sentry(raw))
        assert "\\u0000" not in text
        assert sentry(raw)["extra"] == {"ab": ["xy", {"deep": "z"}]}

    def test_lone_surrogates_are_replaced(self):
        raw = decode_json(b'{"message": "half \\ud83d pair", "extra": {"k\\udc00": "\\udfff"}}', "body")
        event = sentry(raw)
        assert event["message"] == "half \ufffd pair"
        assert event["extra"] == {"k\ufffd": "\ufffd"}
        storable(event)

    def test_a_real_surrogate_pair_is_kept(self):
        assert sentry(decode_json(b'{"message": "smile \\ud83d\\ude00"}', "body"))["message"] == "smile \U0001f600"

    @pytest.mark.parametrize(
        "raw, path, limit",
        [
            ({"message": "m" * 20_000}, ("message",), 8192),
            ({"exception": [{"type": "E", "value": "v" * 20_000}]}, ("exception", 0, "value"), 8192),
            ({"extra": {"note": "n" * 20_000}}, ("extra", "note"), 2048),
            ({"exception": [{"type": "E", "stacktrace": {"frames": [{"context_line": "c" * 5000}]}}]}, None, 2048),
            ({"environment": "e" * 500}, ("environment",), 64),
            ({"logger": "l" * 500}, ("logger",), 200),
            ({"platform": "p" * 500}, ("platform",), 32),
            ({"tags": {"t": "v" * 500}}, ("tags", "t"), 200),
        ],
    )
    def test_long_strings_are_cut_with_a_visible_marker(self, raw, path, limit):
        event = sentry(raw)
        if path is None:
            path = ("exception", 0, "stacktrace", "frames", 0, "context_line")
        value = event
        for step in path:
            value = value[step]
        assert len(value) <= limit
        kept = value.index("…[truncated ")
        original = len(next(text for text in _strings_in(raw) if len(text) > limit))
        assert value.endswith(f"…[truncated {original - kept} chars]")

    def test_long_keys_are_cut_to_128_characters(self):
        [key] = sentry({"extra": {"k" * 1000: 1}})["extra"]
        assert len(key) <= 128
        assert "…[truncated" in key

    def test_structures_keep_eight_levels(self):
        for field in ("extra", "contexts", "request", "user"):
            kept = sentry({field: nested(20)})[field]
            assert depth_of(kept) == 8
            value = kept
            for _ in range(7):
                value = value["down"]
            assert value == {"down": DEPTH_LIMIT}
        assert sentry({"extra": nested(8)})["extra"] == nested(8)

    def test_frame_vars_keep_eight_levels_too(self):
        frame = {"function": "f", "vars": nested(20)}
        [exception] = sentry({"exception": [{"type": "E", "stacktrace": {"frames": [frame]}}]})["exception"]
        assert depth_of(exception["stacktrace"]["frames"][0]["vars"]) == 8

    def test_wide_dicts_and_lists_are_trimmed_to_200_entries(self):
        wide = {f"k{n}": n for n in range(500)}
        extra = sentry({"extra": {"wide": wide, "long": list(range(500)), "exact": list(range(200))}})["extra"]
        assert len(extra["wide"]) == 200
        assert extra["wide"][TRIMMED_KEY] == "301 more keys trimmed"
        assert extra["wide"]["k0"] == 0
        assert len(extra["long"]) == 200
        assert extra["long"][-1] == "[301 more items trimmed]"
        assert extra["exact"] == list(range(200))

    def test_a_deep_stack_keeps_its_first_and_last_50_frames(self):
        frames = [{"function": f"f{n}", "lineno": n} for n in range(300)]
        kept = sentry({"exception": [{"type": "RecursionError", "stacktrace": {"frames": frames}}]})["exception"][0]
        functions = [frame["function"] for frame in kept["stacktrace"]["frames"]]
        assert functions[:50] == [f"f{n}" for n in range(50)]
        assert functions[50] == "[200 frames omitted]"
        assert functions[51:] == [f"f{n}" for n in range(250, 300)]

    def test_nan_infinity_and_huge_integers_become_strings(self):
        raw = decode_json(
            b'{"extra": {"nan": NaN, "inf": Infinity, "neg": -Infinity, "big": 1' + b"0" * 30 + b"}}", "body"
        )
        extra = sentry(raw)["extra"]
        assert extra == {"nan": "nan", "inf": "inf", "neg": "-inf", "big": "1" + "0" * 30}
        storable(sentry(raw))

    def test_python_objects_from_callers_become_json_types(self):
        class Unprintable:
            def __str__(self):
                raise RuntimeError("no")

        raw = {"extra": {"when": datetime(2024, 1, 1), "ids": (1, 2), "set": {3}, "odd": Unprintable(), 7: "int key"}}
        extra = sentry(raw)["extra"]
        assert extra["when"] == "2024-01-01 00:00:00"
        assert extra["ids"] == [1, 2]
        assert extra["set"] == [3]
        assert extra["odd"] == "<unprintable Unprintable>"
        assert extra["7"] == "int key"

    def test_random_garbage_never_fails_and_always_stores(self):
        generator = random.Random(20240501)
        for _ in range(300):
            raw = {field: _garbage(generator, 0) for field in generator.sample(_SENTRY_FIELDS, 8)}
            event = sentry(raw)
            assert set(event) == CANONICAL
            storable(event)


_SENTRY_FIELDS = [
    "event_id",
    "timestamp",
    "level",
    "message",
    "logentry",
    "exception",
    "tags",
    "user",
    "request",
    "contexts",
    "extra",
    "sdk",
    "fingerprint",
    "logger",
    "platform",
    "release",
    "environment",
    "server_name",
    "transaction",
    "culprit",
]
_SCALARS = [None, True, 0, -1, 2**70, 1.5, math.nan, math.inf, "", "x" * 3000, "\x00", "\ud800", "4111111111111111"]


def _garbage(generator: random.Random, depth: int):
    choice = generator.random()
    if depth > 3 or choice < 0.4:
        return generator.choice(_SCALARS)
    if choice < 0.6:
        return [_garbage(generator, depth + 1) for _ in range(generator.randint(0, 4))]
    if choice < 0.8:
        keys = ["type", "value", "values", "frames", "stacktrace", "vars", "formatted", "status_code", "x"]
        return {generator.choice(keys): _garbage(generator, depth + 1) for _ in range(generator.randint(0, 4))}
    return {"values": [{"type": "E", "stacktrace": {"frames": [_garbage(generator, depth + 1)]}}]}


def _strings_in(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings_in(item)


class TestNative:
    def test_a_native_event_becomes_the_event_fields(self):
        raw = {
            "event_id": "0123456789abcdef0123456789abcdef",
            "timestamp": "2024-05-01T11:00:00Z",
            "level": "warning",
            "message": "rates are stale",
            "http_status": 504,
            "user": "user-42",
            "context": {"provider": "ecb"},
            "component": "rates",
            "exception": {"type": "TimeoutError", "bases": ["OSError"], "value": "slow"},
        }
        event = native(raw)
        assert set(event) == CANONICAL
        assert event["event_id"] == uuid.UUID(raw["event_id"])
        assert event["timestamp"] == NOW - timedelta(hours=1)
        assert (event["level"], event["message"], event["http_status"]) == ("warning", "rates are stale", 504)
        assert event["user"] == {"id": "user-42"}
        assert event["extra"] == {"provider": "ecb"}
        assert event["component"] == "rates"
        assert event["exception"][0]["bases"] == ["OSError"]

    def test_the_native_extra_field_is_not_read_context_is(self):
        assert native({"message": "m", "extra": {"a": 1}})["extra"] == {}

    def test_a_schema_error_is_named_with_the_field_prefix(self):
        with pytest.raises(IngestError) as caught:
            native({"message": "m", "level": 3}, field_prefix="events[3].")
        assert (caught.value.status, caught.value.field) == (400, "events[3].level")

    def test_a_native_event_is_scrubbed_too(self):
        event = native({"message": "token=abc123 used", "context": {"password": "hunter2"}})
        assert event["message"] == "token=[Filtered] used"
        assert event["extra"] == {"password": "[Filtered]"}


class TestScrubKeys:
    def test_the_extra_keys_setting_is_honoured(self, settings):
        settings.SCRUB_EXTRA_KEYS = ["tenant_pin"]
        assert sentry({"extra": {"tenant-pin": "1234", "tenant": "acme"}})["extra"] == {
            "tenant-pin": "[Filtered]",
            "tenant": "acme",
        }

    def test_extra_keys_can_be_passed_directly(self, settings):
        settings.SCRUB_EXTRA_KEYS = []
        event = native({"message": "m", "context": {"ref": "1234"}}, scrub_extra_keys=["REF"])
        assert event["extra"] == {"ref": "[Filtered]"}
        assert native({"message": "m", "context": {"ref": "1234"}})["extra"] == {"ref": "1234"}


class TestScrubbingAroundCuts:
    def test_a_value_under_a_long_key_ending_in_password_is_filtered(self):
        key = "k" * 200 + "_password"
        event = sentry({"extra": {key: "MARKER-long-key"}, "tags": {key: "MARKER-long-tag"}})
        assert "MARKER" not in storable(event)
        [stored_key] = event["extra"]
        assert len(stored_key) <= 128
        assert event["extra"][stored_key] == "[Filtered]"

    def test_a_native_value_under_a_long_sensitive_key_is_filtered(self):
        event = native({"message": "m", "context": {"nested": {"x" * 150 + "ApiToken": "MARKER-native"}}})
        assert "MARKER" not in storable(event)

    def test_a_card_number_across_the_cut_of_a_long_message_is_filtered_whole(self):
        card = "4111 1111 1111 1111"
        message = "x" * 8155 + f" {card} and more text after the limit"
        event = sentry({"message": message})
        assert len(event["message"]) <= 8192
        assert "1111" not in event["message"]

    def test_a_jwt_across_the_cut_of_a_long_value_is_filtered_whole(self):
        token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJNQVJLRVIifQ." + "s" * 60
        event = sentry({"extra": {"note": "y" * 2000 + f" {token} and more"}})
        assert "eyJ" not in event["extra"]["note"]

    def test_short_columns_are_scrubbed_and_still_fit(self):
        event = sentry({"platform": "x" * 26 + " pw=a1", "environment": "e" * 50 + " token=abc123x"})
        assert "pw=a1" not in event["platform"] and len(event["platform"]) <= 32
        assert "abc123x" not in event["environment"] and len(event["environment"]) <= 64
