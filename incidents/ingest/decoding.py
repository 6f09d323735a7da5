"""Reading request bodies within limits, inflating them while streaming, and decoding JSON."""

import json
import zlib

import brotli

from incidents.ingest.errors import IngestError

CHUNK = 64 * 1024


def read_body(
    stream, *, content_length: int | None, content_encoding: str | None, max_compressed: int, max_decompressed: int
) -> bytes:
    """Read the body, refusing it once it passes the limits, and return it decompressed."""
    if content_length is not None and content_length > max_compressed:
        raise IngestError(413, "body", f"body of {content_length} bytes is over the limit of {max_compressed} bytes")
    inflater = _inflater(content_encoding, max_decompressed)
    output = bytearray()
    received = 0
    # A missing or lying Content-Length must not let a bigger body through, so count as we read.
    while chunk := stream.read(CHUNK):
        received += len(chunk)
        if received > max_compressed:
            raise IngestError(413, "body", f"body is over the limit of {max_compressed} bytes")
        output += inflater.feed(chunk, max_decompressed - len(output))
    output += inflater.finish(max_decompressed - len(output))
    return bytes(output)


def _too_big(limit_left: int, max_decompressed: int) -> None:
    if limit_left < 0:
        raise IngestError(413, "body", f"decompressed body is over the limit of {max_decompressed} bytes")


class _Identity:
    def __init__(self, max_decompressed: int):
        self.max = max_decompressed

    def feed(self, chunk: bytes, room: int) -> bytes:
        _too_big(room - len(chunk), self.max)
        return chunk

    def finish(self, room: int) -> bytes:
        return b""


class _Zlib:
    """gzip or deflate (zlib-wrapped, or raw as some clients send it), inflated at most `room` bytes at a time."""

    def __init__(self, wbits: int, max_decompressed: int, encoding: str):
        self.wbits = wbits
        self.max = max_decompressed
        self.encoding = encoding
        self.inflater = zlib.decompressobj(wbits)
        self.started = False

    def feed(self, chunk: bytes, room: int) -> bytes:
        try:
            out = self._inflate(chunk, room)
        except zlib.error as error:
            if self.encoding == "deflate" and not self.started:
                self.inflater = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate without the zlib header
                out = self._inflate_or_fail(chunk, room)
            else:
                raise IngestError(400, "Content-Encoding", f"body is not valid {self.encoding}: {error}") from error
        self.started = True
        return out

    def _inflate_or_fail(self, chunk: bytes, room: int) -> bytes:
        try:
            return self._inflate(chunk, room)
        except zlib.error as error:
            raise IngestError(400, "Content-Encoding", f"body is not valid {self.encoding}: {error}") from error

    def _inflate(self, data: bytes, room: int) -> bytes:
        out = self.inflater.decompress(data, room + 1)
        _too_big(room - len(out), self.max)
        if self.inflater.unconsumed_tail:
            # The output limit stopped inflation with input left: that input inflates past the limit.
            _too_big(-1, self.max)
        return out

    def finish(self, room: int) -> bytes:
        out = self._inflate_or_fail(b"", room)
        if not self.inflater.eof and self.started:
            raise IngestError(400, "Content-Encoding", f"body is a truncated {self.encoding} stream")
        return out


class _Brotli:
    def __init__(self, max_decompressed: int):
        self.max = max_decompressed
        self.decompressor = brotli.Decompressor()

    def feed(self, chunk: bytes, room: int) -> bytes:
        try:
            out = self.decompressor.process(chunk, output_buffer_limit=room + 1)
        except brotli.error as error:
            raise IngestError(400, "Content-Encoding", f"body is not valid br: {error}") from error
        _too_big(room - len(out), self.max)
        if not self.decompressor.can_accept_more_data():
            _too_big(-1, self.max)  # output is waiting beyond the limit
        return out

    def finish(self, room: int) -> bytes:
        if not self.decompressor.is_finished():
            raise IngestError(400, "Content-Encoding", "body is a truncated br stream")
        return b""


def _inflater(content_encoding: str | None, max_decompressed: int):
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        return _Identity(max_decompressed)
    if encoding in ("gzip", "x-gzip"):
        return _Zlib(16 + zlib.MAX_WBITS, max_decompressed, "gzip")
    if encoding == "deflate":
        return _Zlib(zlib.MAX_WBITS, max_decompressed, "deflate")
    if encoding == "br":
        return _Brotli(max_decompressed)
    raise IngestError(415, "Content-Encoding", f"unsupported encoding {encoding!r}; use gzip, deflate, br or none")


def decode_json(data: bytes, field: str) -> object:
    """Parse JSON, replacing invalid UTF-8 so odd input is stored rather than lost."""
    text = data.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise IngestError(
            400, field, f"malformed JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from error
    except RecursionError as error:
        raise IngestError(400, field, "JSON is nested too deeply") from error
