"""Reading bodies within limits, inflating them while streaming, and decoding JSON."""

import gzip
import io
import json
import random
import tracemalloc
import zlib

import brotli
import pytest
from django.http.request import UnreadablePostError
from django.test import RequestFactory

from incidents.ingest.decoding import CHUNK_SIZE, decode_json, read_body
from incidents.ingest.errors import IngestError
from tests.incidents.ingest.sdk import capture_one_event, raise_timeout

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB


def read(body: bytes, encoding=None, *, length="auto", max_compressed=MIB, max_decompressed=20 * MIB) -> bytes:
    return read_body(
        io.BytesIO(body),
        content_length=len(body) if length == "auto" else length,
        content_encoding=encoding,
        max_compressed=max_compressed,
        max_decompressed=max_decompressed,
    )


def refused(*args, **kwargs) -> IngestError:
    with pytest.raises(IngestError) as caught:
        read(*args, **kwargs)
    return caught.value


class EndlessStream:
    """A body that never ends, counting what was read from it."""

    def __init__(self, chunk: bytes = b"x" * CHUNK_SIZE):
        self.chunk = chunk
        self.bytes_read = 0

    def read(self, size: int) -> bytes:
        data = self.chunk[:size]
        self.bytes_read += len(data)
        return data


@pytest.fixture(scope="module")
def zeros_deflated():
    """256 MiB of zeros as raw deflate, compressed once and wrapped per encoding below."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    zeros = bytes(MIB)
    raw = b"".join(compressor.compress(zeros) for _ in range(256)) + compressor.flush()
    crc, adler = 0, 1
    for _ in range(256):
        crc, adler = zlib.crc32(zeros, crc), zlib.adler32(zeros, adler)
    return {
        "deflate": b"\x78\xda" + raw + adler.to_bytes(4, "big"),
        "gzip": b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
        + raw
        + crc.to_bytes(4, "little")
        + (256 * MIB).to_bytes(4, "little"),
    }


class TestEncodings:
    @pytest.mark.parametrize("compression", ["gzip", "br"])
    def test_it_inflates_what_the_sentry_sdk_compressed(self, compression):
        sent = capture_one_event(raise_timeout, compression=compression)
        assert sent.content_encoding == compression
        assert read(sent.body, sent.content_encoding) == sent.envelope.serialize()

    @pytest.mark.parametrize(
        "encoding, compress",
        [
            (None, lambda data: data),
            ("identity", lambda data: data),
            ("gzip", gzip.compress),
            ("x-gzip", gzip.compress),
            (" GZIP ", gzip.compress),
            ("deflate", zlib.compress),
            ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, as some clients send it
            ("br", brotli.compress),
        ],
    )
    def test_it_inflates_every_supported_encoding(self, encoding, compress):
        payload = json.dumps([{"message": f"event {n}", "level": "error"} for n in range(3000)]).encode()
        assert len(payload) > 2 * CHUNK_SIZE  # so the stream arrives in several chunks
        assert read(compress(payload), encoding) == payload

    def test_it_accepts_gzip_members_back_to_back(self):
        assert read(gzip.compress(b'{"a": ') + gzip.compress(b"1}"), "gzip") == b'{"a": 1}'

    @pytest.mark.parametrize("encoding", [None, "gzip", "deflate", "br"])
    def test_an_empty_body_reads_as_empty(self, encoding):
        assert read(b"", encoding) == b""

    def test_a_one_byte_deflate_body_is_refused_as_truncated(self):
        error = refused(b"\x78", "deflate")
        assert (error.status, error.field) == (400, "Content-Encoding")

    @pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
    def test_it_names_the_encoding_of_a_corrupt_body(self, encoding):
        error = refused(b"definitely not compressed at all", encoding)
        assert (error.status, error.field) == (400, "Content-Encoding")
        assert encoding in error.message

    @pytest.mark.parametrize(
        "encoding, compress", [("gzip", gzip.compress), ("deflate", zlib.compress), ("br", brotli.compress)]
    )
    def test_it_refuses_a_truncated_stream(self, encoding, compress):
        body = compress(json.dumps(list(range(5000))).encode())
        error = refused(body[: len(body) // 2], encoding)
        assert (error.status, error.field) == (400, "Content-Encoding")
        assert "truncated" in error.message

    def test_it_refuses_data_after_the_end_of_a_deflate_stream(self):
        error = refused(zlib.compress(b"{}") + b"junk", "deflate")
        assert (error.status, error.field) == (400, "Content-Encoding")

    def test_it_refuses_data_after_the_end_of_a_brotli_stream(self):
        assert refused(brotli.compress(b"{}") + b"junk", "br").status == 400

    @pytest.mark.parametrize("encoding", ["zstd", "compress", "gzip, br"])
    def test_it_refuses_an_unknown_encoding_with_415(self, encoding):
        error = refused(b"{}", encoding)
        assert (error.status, error.field) == (415, "Content-Encoding")
        assert "gzip, deflate, br" in error.message

    @pytest.mark.parametrize(
        "encoding, compress", [("gzip", gzip.compress), ("deflate", zlib.compress), ("br", brotli.compress)]
    )
    def test_damaged_streams_only_ever_raise_ingest_errors(self, encoding, compress):
        generator = random.Random(7)
        original = compress(json.dumps([{"message": f"event {n}"} for n in range(200)]).encode())
        for _ in range(300):
            damaged = bytearray(original)
            for _ in range(generator.randint(1, 4)):
                damaged[generator.randrange(len(damaged))] = generator.randrange(256)
            try:
                read(bytes(damaged), encoding, max_decompressed=64 * KIB)
            except IngestError as error:
                assert error.status in (400, 413)


class TestLimits:
    def test_it_refuses_a_declared_length_over_the_limit_without_reading(self):
        stream = EndlessStream()
        with pytest.raises(IngestError) as caught:
            read_body(stream, content_length=MIB + 1, content_encoding=None, max_compressed=MIB, max_decompressed=MIB)
        assert (caught.value.status, caught.value.field) == (413, "body")
        assert f"over the limit of {MIB} bytes" in caught.value.message
        assert stream.bytes_read == 0

    @pytest.mark.parametrize("content_length", [None, 10])
    def test_it_stops_reading_a_body_whose_length_is_absent_or_false(self, content_length):
        stream = EndlessStream()
        with pytest.raises(IngestError) as caught:
            read_body(
                stream, content_length=content_length, content_encoding=None, max_compressed=MIB, max_decompressed=MIB
            )
        assert caught.value.status == 413
        assert stream.bytes_read <= MIB + CHUNK_SIZE

    def test_a_body_exactly_at_the_limit_is_accepted(self):
        assert len(read(b"x" * MIB, length=None, max_compressed=MIB, max_decompressed=MIB)) == MIB

    def test_an_identity_body_over_the_decompressed_limit_is_refused(self):
        error = refused(b"x" * (2 * KIB), max_compressed=MIB, max_decompressed=KIB)
        assert error.status == 413
        assert f"decompressed body is over the limit of {KIB} bytes" == error.message

    def test_a_compressed_body_inflating_exactly_to_the_limit_is_accepted(self):
        for encoding, compress in (("gzip", gzip.compress), ("deflate", zlib.compress), ("br", brotli.compress)):
            assert read(compress(bytes(MIB)), encoding, max_decompressed=MIB) == bytes(MIB)

    def test_it_stops_a_brotli_bomb_while_streaming(self):
        compressor = brotli.Compressor(quality=1)
        zeros = bytes(MIB)
        bomb = b"".join(compressor.process(zeros) for _ in range(1024)) + compressor.finish()  # 1 GiB of zeros
        assert len(bomb) < MIB
        error, peak = self.read_measuring_memory(bomb, "br")
        assert error.status == 413
        assert error.message == f"decompressed body is over the limit of {MIB} bytes"
        assert peak < 8 * MIB  # inflating it whole would take 1 GiB

    @pytest.mark.parametrize("encoding", ["gzip", "deflate"])
    def test_it_stops_a_zlib_bomb_while_streaming(self, zeros_deflated, encoding):
        bomb = zeros_deflated[encoding]
        assert len(bomb) < MIB
        error, peak = self.read_measuring_memory(bomb, encoding)
        assert (error.status, error.field) == (413, "body")
        assert peak < 8 * MIB  # inflating it whole would take 256 MiB

    def test_a_bomb_is_stopped_even_when_it_arrives_in_tiny_chunks(self, zeros_deflated):
        class Trickle(io.BytesIO):
            def read(self, size=-1):
                return super().read(min(size, 7))

        with pytest.raises(IngestError) as caught:
            read_body(
                Trickle(zeros_deflated["gzip"]),
                content_length=None,
                content_encoding="gzip",
                max_compressed=MIB,
                max_decompressed=MIB,
            )
        assert caught.value.status == 413

    @staticmethod
    def read_measuring_memory(bomb: bytes, encoding: str) -> tuple[IngestError, int]:
        tracemalloc.start()
        try:
            with pytest.raises(IngestError) as caught:
                read(bomb, encoding, max_compressed=MIB, max_decompressed=MIB)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        return caught.value, peak


class TestStreams:
    def test_it_reads_a_django_request(self):
        body = gzip.compress(b'{"message": "from a request"}')
        request = RequestFactory().post(
            "/api/1/store/", data=body, content_type="application/json", HTTP_CONTENT_ENCODING="gzip"
        )
        assert (
            read_body(
                request, content_length=len(body), content_encoding="gzip", max_compressed=MIB, max_decompressed=MIB
            )
            == b'{"message": "from a request"}'
        )

    def test_a_client_that_goes_away_mid_body_is_a_400(self):
        class Broken:
            def read(self, size):
                raise UnreadablePostError("connection reset")

        with pytest.raises(IngestError) as caught:
            read_body(Broken(), content_length=None, content_encoding=None, max_compressed=MIB, max_decompressed=MIB)
        assert (caught.value.status, caught.value.field) == (400, "body")


class TestDecodeJson:
    def test_it_decodes_json(self):
        assert decode_json(b'{"a": [1, 2.5, "x"]}', "body") == {"a": [1, 2.5, "x"]}

    def test_malformed_json_is_a_400_naming_the_field_and_the_place(self):
        with pytest.raises(IngestError) as caught:
            decode_json(b'{"a": 1,\n "b": }', "envelope item 2 payload")
        assert (caught.value.status, caught.value.field) == (400, "envelope item 2 payload")
        assert caught.value.message.startswith("malformed JSON: ")
        assert "line 2 column 7" in caught.value.message

    def test_invalid_utf8_is_replaced_rather_than_refused(self):
        assert decode_json(b'{"message": "bad \xff\xfe bytes"}', "body") == {"message": "bad \ufffd\ufffd bytes"}

    def test_a_byte_order_mark_is_ignored(self):
        assert decode_json(b'\xef\xbb\xbf{"a": 1}', "body") == {"a": 1}

    def test_too_deep_nesting_is_a_400(self):
        with pytest.raises(IngestError) as caught:
            decode_json(b"[" * 100_000 + b"]" * 100_000, "body")
        assert (caught.value.status, caught.value.field) == (400, "body")
        assert "nested too deeply" in caught.value.message

    def test_an_integer_too_long_to_convert_is_a_400(self):
        with pytest.raises(IngestError) as caught:
            decode_json(b'{"n": ' + b"9" * 5000 + b"}", "body")
        assert caught.value.status == 400

    def test_an_empty_body_is_malformed_json(self):
        with pytest.raises(IngestError) as caught:
            decode_json(b"", "body")
        assert "malformed JSON" in caught.value.message
