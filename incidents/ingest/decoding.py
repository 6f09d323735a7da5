"""Read request bodies within limits, inflate them while streaming, and decode JSON.

Limits are enforced as bytes arrive: a missing or lying Content-Length cannot let a
bigger body through, and a decompression bomb is stopped as soon as its output passes
the limit, never inflated whole in memory.
"""

import json
import zlib

import brotli

from incidents.ingest.errors import IngestError

CHUNK_SIZE = 64 * 1024
# Inflate at most this much per call, so memory stays near the limit even for a bomb.
OUTPUT_STEP = 256 * 1024
# What read_body callers pass by default (config.settings.INGEST_MAX_DECOMPRESSED_BYTES).
DEFAULT_MAX_DECOMPRESSED = 20 * 1024 * 1024
# Runtime reports and config pulls (incidents/fleet/endpoints.py) are small JSON, compressed or not.
MAX_REPORT_BODY_BYTES = 256 * 1024

_GZIP_WBITS = 16 + zlib.MAX_WBITS
_ZLIB_WBITS = zlib.MAX_WBITS
_RAW_WBITS = -zlib.MAX_WBITS


def read_body(
    stream, *, content_length: int | None, content_encoding: str | None, max_compressed: int, max_decompressed: int
) -> bytes:
    """Read the body in chunks, refusing it once it passes either limit, and return it decompressed."""
    check_declared_length(content_length, max_compressed)
    inflater = _inflater(content_encoding, max_decompressed)
    received = 0
    while chunk := _read_chunk(stream):
        received += len(chunk)
        if received > max_compressed:
            raise body_too_long(max_compressed)
        inflater.feed(chunk)
    return inflater.finish()


def check_declared_length(content_length: int | None, limit: int) -> None:
    """Refuse (413) a body whose Content-Length already says it is over the limit, before reading any of it."""
    if content_length is not None and content_length > limit:
        raise IngestError(413, "body", f"body of {content_length} bytes is over the limit of {limit} bytes")


def body_too_long(limit: int) -> IngestError:
    """The 413 for a body that passed the limit while it was read (chunked, or longer than it said)."""
    return IngestError(413, "body", f"body is over the limit of {limit} bytes")


def _read_chunk(stream) -> bytes:
    try:
        return stream.read(CHUNK_SIZE)
    except OSError as error:  # Django's UnreadablePostError: the client went away mid-body
        raise IngestError(400, "body", f"the body could not be read: {error}") from error


def inflate_zlib(data: bytes, *, max_decompressed: int, field: str = "body") -> bytes:
    """Inflate zlib-wrapped (or raw) deflate data in one go, refusing output over the limit."""
    inflater = _Zlib("deflate", max_decompressed, field=field)
    inflater.feed(data)
    return inflater.finish()


def _too_big(max_decompressed: int) -> IngestError:
    return IngestError(413, "body", f"decompressed body is over the limit of {max_decompressed} bytes")


class _Identity:
    """No encoding: the body only has to stay within the decompressed limit too."""

    def __init__(self, max_decompressed: int):
        self.max = max_decompressed
        self.output = bytearray()

    def feed(self, chunk: bytes) -> None:
        self.output += chunk
        if len(self.output) > self.max:
            raise _too_big(self.max)

    def finish(self) -> bytes:
        return bytes(self.output)


class _Zlib:
    """gzip (possibly multi-member) or deflate, zlib-wrapped or raw, inflated one bounded step at a time."""

    def __init__(self, encoding: str, max_decompressed: int, *, field: str = "Content-Encoding"):
        self.encoding = encoding
        self.max = max_decompressed
        self.field = field
        self.output = bytearray()
        self.pending = b""  # deflate only: the first bytes, until they tell zlib-wrapped from raw
        self.inflater = zlib.decompressobj(_GZIP_WBITS) if encoding == "gzip" else None
        self.fed = False

    def feed(self, chunk: bytes) -> None:
        self.fed = self.fed or bool(chunk)
        if self.inflater is None:
            self.pending += chunk
            if len(self.pending) < 2:
                return
            self._choose_deflate_flavour()
            chunk, self.pending = self.pending, b""
        self._inflate(chunk)

    def _choose_deflate_flavour(self) -> None:
        # RFC 1950: method 8 in the low nibble, window <= 32 KiB, header a multiple of 31.
        first, second = self.pending[0], self.pending[1]
        wrapped = first & 0x0F == 8 and first >> 4 <= 7 and (first << 8 | second) % 31 == 0
        self.inflater = zlib.decompressobj(_ZLIB_WBITS if wrapped else _RAW_WBITS)

    def _inflate(self, data: bytes) -> None:
        while True:
            out = self._step(data)
            data = self.inflater.unconsumed_tail
            if self.inflater.eof:
                data = self._after_end_of_stream()
                if not data:
                    return
            elif not data and len(out) < OUTPUT_STEP:
                return  # a full step may leave output pending inside zlib: only a short one ends the input

    def _step(self, data: bytes) -> bytes:
        # max_length bounds each call: a bomb grows the output one step at a time, up to the limit.
        room = self.max - len(self.output)
        try:
            out = self.inflater.decompress(data, min(room + 1, OUTPUT_STEP))
        except zlib.error as error:
            raise IngestError(400, self.field, f"body is not valid {self.encoding}: {error}") from error
        self.output += out
        if len(self.output) > self.max:
            raise _too_big(self.max)
        return out

    def _after_end_of_stream(self) -> bytes:
        rest = self.inflater.unused_data
        if not rest:
            return b""
        if self.encoding != "gzip":
            raise IngestError(400, self.field, f"body has data after the end of the {self.encoding} stream")
        self.inflater = zlib.decompressobj(_GZIP_WBITS)  # gzip allows several members back to back
        return rest

    def finish(self) -> bytes:
        if self.inflater is None and self.pending:
            self._inflate_single_byte()
        if self.fed and not self.inflater.eof:
            raise IngestError(400, self.field, f"body is a truncated {self.encoding} stream")
        return bytes(self.output)

    def _inflate_single_byte(self) -> None:
        self.inflater = zlib.decompressobj(_RAW_WBITS)
        self._inflate(self.pending)


class _Brotli:
    """Brotli, asking the decoder for one bounded step of output at a time so a bomb never expands in memory."""

    def __init__(self, max_decompressed: int):
        self.max = max_decompressed
        self.output = bytearray()
        self.decompressor = brotli.Decompressor()
        self.fed = False

    def feed(self, chunk: bytes) -> None:
        self.fed = True
        self._process(chunk)
        # With output pending the decoder takes no input: drain it, still within the limit.
        while not self.decompressor.can_accept_more_data():
            if not self._process(b""):
                break

    def _process(self, data: bytes) -> int:
        room = self.max - len(self.output)
        try:
            out = self.decompressor.process(data, output_buffer_limit=min(room + 1, OUTPUT_STEP))
        except brotli.error as error:
            raise IngestError(400, "Content-Encoding", f"body is not valid br: {error}") from error
        self.output += out
        if len(self.output) > self.max:
            raise _too_big(self.max)
        return len(out)

    def finish(self) -> bytes:
        if not self.fed:
            return b""
        # Input the decoder kept back may still hold output.
        while not self.decompressor.is_finished() and self._process(b""):
            pass
        if not self.decompressor.is_finished():
            raise IngestError(400, "Content-Encoding", "body is a truncated br stream")
        return bytes(self.output)


def _inflater(content_encoding: str | None, max_decompressed: int):
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        return _Identity(max_decompressed)
    if encoding in ("gzip", "x-gzip"):
        return _Zlib("gzip", max_decompressed)
    if encoding == "deflate":
        return _Zlib("deflate", max_decompressed)
    if encoding == "br":
        return _Brotli(max_decompressed)
    raise IngestError(
        415, "Content-Encoding", f"unsupported encoding {encoding[:40]!r}; use gzip, deflate, br or identity"
    )


def decode_json(data: bytes, field: str) -> object:
    """Parse JSON, replacing invalid UTF-8 so odd input is stored rather than lost."""
    text = data.decode("utf-8", errors="replace")
    if text.startswith("\ufeff"):
        text = text[1:]  # a byte order mark is not JSON, but some clients send one
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise IngestError(
            400, field, f"malformed JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from error
    except RecursionError as error:
        raise IngestError(400, field, "JSON is nested too deeply") from error
    except ValueError as error:  # e.g. an integer over Python's 4300-digit conversion limit
        raise IngestError(400, field, f"malformed JSON: {error}") from error
