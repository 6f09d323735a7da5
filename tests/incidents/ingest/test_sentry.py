"""Sentry's wire formats, read from what the real sentry-sdk sends."""

import base64
import io
import json
import uuid
import zlib

import pytest
import sentry_sdk
from sentry_sdk import crons
from sentry_sdk.envelope import Envelope

from incidents.ingest.decoding import read_body
from incidents.ingest.errors import IngestError
from incidents.ingest.sentry import key_from_dsn, parse_auth_header, parse_envelope, parse_store
from tests.incidents.ingest.sdk import (
    DSN,
    auth_header,
    capture,
    capture_one_event,
    combined_envelope,
    json_item,
    raise_timeout,
)

MIB = 1024 * 1024


def parse_error(body: bytes, max_events: int = 10) -> IngestError:
    with pytest.raises(IngestError) as caught:
        parse_envelope(body, max_events=max_events)
    return caught.value


def envelope_header(**fields) -> bytes:
    return json.dumps({"event_id": uuid.uuid4().hex, **fields}).encode() + b"\n"


class TestAuth:
    def test_it_reads_the_header_the_sdk_sends(self):
        header = auth_header()
        assert header.startswith("Sentry ")
        params = parse_auth_header(header)
        assert params["sentry_key"] == "abc123"
        assert params["sentry_version"] == "7"
        assert params["sentry_client"].startswith("sentry.python/")

    @pytest.mark.parametrize(
        "value",
        [
            "Sentry sentry_key=abc123, sentry_version=7",
            "sentry sentry_version=7,sentry_key=abc123",
            'Sentry sentry_key="abc123", sentry_version=7',
            "sentry_key=abc123, sentry_version=7",
            "Sentry  sentry_key = abc123 ,sentry_secret=, junk, =x",
        ],
    )
    def test_it_tolerates_the_variants_clients_send(self, value):
        assert parse_auth_header(value)["sentry_key"] == "abc123"

    @pytest.mark.parametrize("value", ["", "Bearer abc123", "Sentry", None, 42])
    def test_it_finds_nothing_in_other_headers(self, value):
        assert "sentry_key" not in parse_auth_header(value)


class TestDsn:
    @pytest.mark.parametrize(
        "dsn, expected",
        [
            (DSN, ("abc123", "42")),
            ("https://abc123:oldsecret@sentry.example.com/7", ("abc123", "7")),
            ("https://abc123@example.com/console/path/9/", ("abc123", "9")),
            ("http://abc123@[::1]:8000/3", ("abc123", "3")),
        ],
    )
    def test_it_takes_the_key_and_project_from_a_dsn(self, dsn, expected):
        assert key_from_dsn(dsn) == expected

    @pytest.mark.parametrize(
        "dsn",
        [
            "",
            "https://example.com/7",
            "https://abc123@example.com/",
            "https://abc123@example.com/project",
            "https://abc123@example.com/\u00b2",
            "ftp://abc123@example.com/7",
            "http://abc123@[::1/3",
            "not a url",
            None,
            {"dsn": 1},
        ],
    )
    def test_it_returns_none_for_what_is_not_a_dsn(self, dsn):
        assert key_from_dsn(dsn) is None


class TestEnvelope:
    def test_it_reads_an_exception_envelope_from_the_sdk(self):
        sent = capture_one_event(raise_timeout, release="shop@1.2.3")
        envelope = parse_envelope(sent.body, max_events=10)
        assert envelope.headers["event_id"] == sent.event["event_id"]
        assert "sent_at" in envelope.headers
        assert envelope.events == [json.loads(json.dumps(sent.event))]
        assert envelope.events[0]["exception"]["values"][-1]["type"] == "TimeoutError"
        assert envelope.skipped_item_types == []

    @pytest.mark.parametrize("compression", ["gzip", "br"])
    def test_it_reads_a_compressed_envelope_from_the_sdk(self, compression):
        sent = capture_one_event(raise_timeout, compression=compression)
        body = read_body(
            io.BytesIO(sent.body),
            content_length=len(sent.body),
            content_encoding=sent.content_encoding,
            max_compressed=MIB,
            max_decompressed=20 * MIB,
        )
        assert parse_envelope(body, max_events=10).events[0]["event_id"] == sent.event["event_id"]

    def test_it_keeps_events_and_records_every_other_item_type(self):
        def attach_and_fail():
            with sentry_sdk.new_scope() as scope:
                scope.add_attachment(bytes=b"\x00\xffbinary\nlines\n", filename="dump.bin")
                try:
                    raise_timeout()
                except TimeoutError:
                    sentry_sdk.capture_exception()

        def trace():
            with sentry_sdk.start_transaction(name="checkout"):
                pass

        sent = capture(
            attach_and_fail,
            trace,
            lambda: crons.capture_checkin(monitor_slug="nightly", status="ok"),
            traces_sample_rate=1.0,
        )
        [with_event] = [item.envelope for item in sent if item.event]
        others = [item.envelope for item in sent if not item.event]
        body = combined_envelope(
            with_event,
            *others,
            extra_items=[json_item("client_report", {"discarded_events": []}), json_item("made_up_type", {})],
        )
        envelope = parse_envelope(body, max_events=10)
        assert [event["event_id"] for event in envelope.events] == [with_event.get_event()["event_id"]]
        assert envelope.skipped_item_types == ["attachment", "transaction", "check_in", "client_report", "made_up_type"]

    def test_it_reads_items_without_a_length_up_to_the_next_newline(self):
        body = (
            envelope_header()
            + b'{"type": "session"}\n{"sid": "x", "status": "ok"}\n'
            + b'{"type": "event"}\n{"message": "no length", "level": "error"}'
        )
        envelope = parse_envelope(body, max_events=10)
        assert [event["message"] for event in envelope.events] == ["no length"]
        assert envelope.skipped_item_types == ["session"]

    def test_a_length_lets_a_payload_hold_newlines_and_end_without_one(self):
        event = b'{\n"message": "spread\\nover lines"\n}'
        body = envelope_header() + b'{"type": "event", "length": %d}\n' % len(event) + event
        assert parse_envelope(body, max_events=10).events[0]["message"] == "spread\nover lines"

    def test_the_event_takes_its_id_from_the_envelope_when_it_has_none(self):
        event_id = uuid.uuid4().hex
        body = envelope_header(event_id=event_id) + b'{"type": "event"}\n{"message": "m", "event_id": null}\n'
        assert parse_envelope(body, max_events=10).events[0]["event_id"] == event_id

    @pytest.mark.parametrize("bad", ["not-a-uuid", "", "0123456789abcdef", 42, ["a"], True])
    def test_an_envelope_header_event_id_that_is_not_a_uuid_is_a_400_naming_it(self, bad):
        error = parse_error(json.dumps({"event_id": bad}).encode() + b'\n{"type": "event"}\n{"message": "m"}\n')
        assert (error.status, error.field) == (400, "envelope header.event_id")
        assert "32 hex digits or a UUID" in error.message

    @pytest.mark.parametrize("bad", ["not-a-uuid", 42, {"id": 1}])
    def test_an_event_payload_id_that_is_not_a_uuid_is_a_400_naming_it(self, bad):
        payload = json.dumps({"message": "m", "event_id": bad}).encode()
        error = parse_error(envelope_header() + b'{"type": "event"}\n' + payload + b"\n")
        assert (error.status, error.field) == (400, "envelope item 1 payload.event_id")

    @pytest.mark.parametrize("form", [lambda u: u.hex, str, lambda u: str(u).upper()])
    def test_the_hex_and_dashed_forms_the_sdk_sends_are_kept(self, form):
        event_id = form(uuid.uuid4())
        body = envelope_header(event_id=event_id) + b'{"type": "event"}\n{"event_id": "%s"}\n' % event_id.encode()
        assert parse_envelope(body, max_events=10).events[0]["event_id"] == event_id

    def test_an_envelope_without_an_event_id_is_still_read(self):
        assert parse_envelope(b'{}\n{"type": "event"}\n{"message": "m"}\n', max_events=10).events == [{"message": "m"}]

    def test_an_envelope_with_only_a_header_and_blank_lines_is_empty(self):
        envelope = parse_envelope(envelope_header() + b"\n\n\r\n", max_events=10)
        assert (envelope.events, envelope.skipped_item_types) == ([], [])

    @pytest.mark.parametrize(
        "body, field",
        [
            (b"", "envelope header"),
            (b"\n", "envelope header"),
            (b"not json\n", "envelope header"),
            (b"[1, 2]\n", "envelope header"),
            (b'{}\n{"type": "event"}\n{}\nnot json\n{}\n', "envelope item 2 header"),
            (b'{}\n"event"\n{}\n', "envelope item 1 header"),
            (b'{}\n{"length": 2}\n{}\n', "envelope item 1 header"),
            (b'{}\n{"type": "event", "length": 500}\n{"message": "short"}\n', "envelope item 1 header"),
            (b'{}\n{"type": "event", "length": -1}\n{}\n', "envelope item 1 header"),
            (b'{}\n{"type": "event", "length": true}\n{}\n', "envelope item 1 header"),
            (b'{}\n{"type": "event", "length": "2"}\n{}\n', "envelope item 1 header"),
            (b'{}\n{"type": "session"}\n{}\n{"type": "event"}\n[1]\n', "envelope item 2 payload"),
            (b'{}\n{"type": "event"}\n{"message": \n', "envelope item 1 payload"),
        ],
    )
    def test_a_malformed_envelope_is_a_400_naming_the_part(self, body, field):
        error = parse_error(body)
        assert (error.status, error.field) == (400, field)

    def test_a_length_past_the_end_says_how_much_was_left(self):
        error = parse_error(b'{}\n{"type": "event", "length": 500}\n{"message": "short"}\n')
        assert "length 500" in error.message
        assert "21 bytes left" in error.message

    def test_more_events_than_the_limit_is_a_400(self):
        body = b"{}\n" + b'{"type": "event"}\n{"message": "m"}\n' * 3
        assert len(parse_envelope(body, max_events=3).events) == 3
        error = parse_error(body, max_events=2)
        assert (error.status, error.field) == (400, "envelope")
        assert "limit of 2" in error.message

    def test_a_cut_envelope_only_ever_raises_ingest_errors(self):
        sent = capture_one_event(raise_timeout)
        for end in range(0, len(sent.body), 13):
            try:
                parse_envelope(sent.body[:end], max_events=10)
            except IngestError as error:
                assert 400 <= error.status < 500


class TestStore:
    def test_it_reads_an_event_as_the_sdk_serialises_it(self):
        sent = capture_one_event(raise_timeout)
        body = json.dumps(sent.event).encode()
        assert parse_store(body) == json.loads(body)

    def test_it_reads_the_old_base64_zlib_format(self):
        event = {"message": "old sdk", "level": "error"}
        assert parse_store(base64.b64encode(zlib.compress(json.dumps(event).encode()))) == event

    def test_it_reads_a_bare_zlib_body(self):
        assert parse_store(zlib.compress(b'{"message": "zlib"}')) == {"message": "zlib"}

    def test_it_ignores_surrounding_whitespace_and_a_byte_order_mark(self):
        assert parse_store(b'\xef\xbb\xbf{"message": "m"}\n') == {"message": "m"}

    @pytest.mark.parametrize("bad", ["not-a-uuid", "", 42])
    def test_an_event_id_that_is_not_a_uuid_is_a_400_naming_it(self, bad):
        with pytest.raises(IngestError) as caught:
            parse_store(json.dumps({"message": "m", "event_id": bad}).encode())
        assert (caught.value.status, caught.value.field) == (400, "event_id")

    def test_a_dashed_event_id_is_kept(self):
        event_id = str(uuid.uuid4())
        assert parse_store(json.dumps({"event_id": event_id}).encode())["event_id"] == event_id

    def test_an_old_format_bomb_is_stopped_at_the_limit(self):
        bomb = base64.b64encode(zlib.compress(b" " * (5 * MIB)))
        with pytest.raises(IngestError) as caught:
            parse_store(bomb, max_decompressed=MIB)
        assert caught.value.status == 413

    @pytest.mark.parametrize(
        "body, message",
        [
            (b"", "empty"),
            (b"   ", "empty"),
            (b"hello world", "neither"),
            (base64.b64encode(b"not zlib at all"), "neither"),
            (b"[1, 2]", "neither"),
            (b'{"message": ', "malformed JSON"),
            (base64.b64encode(zlib.compress(b"[1]")), "JSON object"),
        ],
    )
    def test_a_bad_store_body_is_a_400(self, body, message):
        with pytest.raises(IngestError) as caught:
            parse_store(body)
        assert (caught.value.status, caught.value.field) == (400, "body")
        assert message in caught.value.message


def test_the_capture_helper_returns_real_envelopes():
    sent = capture_one_event(raise_timeout)
    assert isinstance(sent.envelope, Envelope)
    assert sent.body == sent.envelope.serialize()
    assert sent.content_encoding is None
