"""Reading bodies within limits and inflating them while streaming."""

import base64
import gzip
import io
import zlib

import brotli
import pytest

from incidents.ingest.decoding import read_body
from incidents.ingest.errors import IngestError
from incidents.ingest.sentry import parse_envelope, parse_store

MIB = 1024 * 1024


def read(body: bytes, encoding=None, *, length="auto", max_compressed=MIB, max_decompressed=20 * MIB) -> bytes:
    return read_body(
        io.BytesIO(body),
        content_length=len(body) if length == "auto" else length,
        content_encoding=encoding,
        max_compressed=max_compressed,
        max_decompressed=max_decompressed,
    )


@pytest.mark.parametrize(
    "encoding, compress",
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, as some clients send it
        ("br", brotli.compress),
        (None, lambda data: data),
    ],
)
def test_it_inflates_every_supported_encoding(encoding, compress):
    payload = b'{"message": "hello"}' * 1000
    assert read(compress(payload), encoding) == payload


def test_it_refuses_a_declared_length_over_the_limit_before_reading():
    with pytest.raises(IngestError) as caught:
        read(b"", length=2 * MIB)
    assert (caught.value.status, caught.value.field) == (413, "body")
    assert str(MIB) in caught.value.message


def test_it_counts_bytes_when_the_length_header_lies():
    with pytest.raises(IngestError) as caught:
        read(b"x" * (MIB + 10), length=10)
    assert caught.value.status == 413


@pytest.mark.parametrize(
    "encoding, compress",
    [("gzip", gzip.compress), ("deflate", zlib.compress), ("br", lambda data: brotli.compress(data, quality=5))],
)
def test_it_stops_a_decompression_bomb_at_the_limit(encoding, compress):
    bomb = compress(b"\0" * (200 * MIB))
    assert len(bomb) < MIB
    with pytest.raises(IngestError) as caught:
        read(bomb, encoding, max_decompressed=20 * MIB)
    assert caught.value.status == 413
    assert "decompressed" in caught.value.message


def test_it_names_the_encoding_of_a_corrupt_body():
    with pytest.raises(IngestError) as caught:
        read(b"definitely not gzip", "gzip")
    assert (caught.value.status, caught.value.field) == (400, "Content-Encoding")


def test_it_refuses_a_truncated_stream():
    with pytest.raises(IngestError) as caught:
        read(gzip.compress(b"x" * 10000)[:-20], "gzip")
    assert caught.value.status == 400


def test_it_refuses_an_unknown_encoding_with_415():
    with pytest.raises(IngestError) as caught:
        read(b"{}", "zstd")
    assert caught.value.status == 415


def test_the_legacy_store_format_is_inflated_within_the_limit():
    event = base64.b64encode(zlib.compress(b'{"message": "old sdk"}'))
    assert parse_store(event, max_decompressed=MIB) == {"message": "old sdk"}
    bomb = base64.b64encode(zlib.compress(b" " * (5 * MIB)))
    with pytest.raises(IngestError) as caught:
        parse_store(bomb, max_decompressed=MIB)
    assert caught.value.status == 413


def test_an_envelope_item_length_past_the_end_is_a_400_naming_the_item():
    body = b'{"event_id": "' + b"a" * 32 + b'"}\n{"type": "event", "length": 500}\n{"message": "short"}\n'
    with pytest.raises(IngestError) as caught:
        parse_envelope(body, max_events=10)
    assert (caught.value.status, caught.value.field) == (400, "envelope item 1 header")


def test_an_envelope_keeps_events_and_lists_what_it_skipped():
    body = (
        b'{"event_id": "' + b"b" * 32 + b'"}\n'
        b'{"type": "session"}\n{"sid": "x"}\n'
        b'{"type": "event", "length": 20}\n{"message": "hello"}\n'
        b'{"type": "attachment", "length": 3}\nabc\n'
    )
    envelope = parse_envelope(body, max_events=10)
    assert envelope.events == [{"message": "hello", "event_id": "b" * 32}]
    assert envelope.skipped_item_types == ["session", "attachment"]
