"""uvicorn's httptools protocol with request read deadlines (`uvicorn --http config.servers:TimedHttpToolsProtocol`).

uvicorn has no header or body read timeout: a client that sends its headers a byte at a time
(slowloris), or never finishes its body, holds a connection open for as long as it likes. Of the
ways to bound that, subclassing the protocol uvicorn already uses is the least code of our own:
parsing, keep-alive, pipelining and the websocket upgrade stay uvicorn's, and the parser's own
callbacks say when a request begins, when its headers are complete and when its body is. A
proxy in front (nginx's client_header_timeout) would do too, but `make run` has none; granian,
for production, has `--http1-header-read-timeout`.
"""

import asyncio

from django.conf import settings
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_LATE = b"request headers were not complete in time"
REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n" + (
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_LATE), _LATE)
)


class TimedHttpToolsProtocol(HttpToolsProtocol):
    """Close a connection whose request headers (HTTP_HEADER_TIMEOUT_SECONDS), or whose body after them
    (HTTP_BODY_TIMEOUT_SECONDS), are not complete in time; an idle keep-alive stays uvicorn's to close."""

    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm(settings.HTTP_HEADER_TIMEOUT_SECONDS, self._headers_late)  # a client that sends nothing

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:  # the next request on a kept-alive connection
            self._arm(settings.HTTP_HEADER_TIMEOUT_SECONDS, self._headers_late)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()
        if not (self.parser.should_upgrade() and self._should_upgrade()):  # a websocket has no body
            self._arm(settings.HTTP_BODY_TIMEOUT_SECONDS, self._body_late)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _arm(self, seconds: float, handler) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, handler)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_late(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.write(REQUEST_TIMEOUT)
            self.transport.close()

    def _body_late(self) -> None:
        # The application is reading the body: closing makes its receive() return http.disconnect.
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()
