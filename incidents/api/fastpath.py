"""WSGI fast path for the three ingest URLs.

Django's handler, URL resolver and eight middlewares cost about a third of an ingest
request's CPU, and none of them does anything for these endpoints: ingest keys, not
sessions or CSRF tokens, authenticate them, and they answer JSON. This WSGI middleware
answers POSTs to the ingest URLs itself, with the same endpoint code the Django views
run, and hands every other request to Django untouched. Like Django's handler it sends
request_started and request_finished, so database connections are managed alike.
"""

import json
import logging
import re
from http import HTTPStatus

from django.core import signals
from django.core.handlers.wsgi import LimitedStream

from incidents.api.ingest import IngestRequest, error_response, ingest
from incidents.ingest.errors import IngestError

logger = logging.getLogger("django.request")

# Mirrors incidents/urls.py; tests post every ingest case through both paths.
_INGEST_PATH = re.compile(r"/api/(?:(?P<source_id>[0-9]+)/(?P<sentry>envelope|store)|v1/(?P<native>events))/")

_SPECIAL_HEADERS = {"Content-Type": "CONTENT_TYPE", "Content-Length": "CONTENT_LENGTH"}


def _environ_reader(environ: dict):
    def header(name: str) -> str | None:
        key = _SPECIAL_HEADERS.get(name) or "HTTP_" + name.upper().replace("-", "_")
        return environ.get(key)

    return header


def _query_reader(environ: dict):
    from urllib.parse import parse_qs

    parsed = None

    def query(name: str) -> str | None:
        nonlocal parsed
        if parsed is None:
            parsed = parse_qs(environ.get("QUERY_STRING", ""))
        values = parsed.get(name)
        return values[-1] if values else None

    return query


def _content_length(environ: dict) -> int | None:
    length = environ.get("CONTENT_LENGTH") or ""
    return int(length) if length.isdigit() else None


def _body_stream(environ: dict, length: int | None):
    """The body to read: the declared length, or a chunked body to its end where the server marks that end."""
    if length is not None or "chunked" not in (environ.get("HTTP_TRANSFER_ENCODING") or "").lower():
        # As Django does: never read past the declared length, or a keep-alive socket blocks.
        return LimitedStream(environ["wsgi.input"], length or 0)
    if environ.get("wsgi.input_terminated"):
        return environ["wsgi.input"]  # granian: reads end with the body; read_body counts it against the limit
    raise IngestError(411, "Content-Length", "a chunked body needs a server that ends its input; send Content-Length")


class IngestFastPath:
    """Answer ingest POSTs directly; pass everything else to the wrapped WSGI application."""

    def __init__(self, application):
        self.application = application

    def __call__(self, environ, start_response):
        match = environ.get("REQUEST_METHOD") == "POST" and _INGEST_PATH.fullmatch(environ.get("PATH_INFO", ""))
        if not match:
            return self.application(environ, start_response)
        signals.request_started.send(sender=self.__class__, environ=environ)
        try:
            status, body, headers = self._ingest(match, environ)
        finally:
            signals.request_finished.send(sender=self.__class__)
        payload = json.dumps(body).encode()
        response_headers = [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
        start_response(f"{status} {HTTPStatus(status).phrase}", response_headers + list(headers.items()))
        return [payload]

    @staticmethod
    def _ingest(match: re.Match, environ: dict) -> tuple[int, dict, dict]:
        endpoint, source_id = match["sentry"] or "native", match["source_id"]
        length = _content_length(environ)
        try:
            stream = _body_stream(environ, length)
        except IngestError as error:
            response = error_response(endpoint, error)
            return response.status, response.body, response.headers
        request = IngestRequest(
            header=_environ_reader(environ), query=_query_reader(environ), stream=stream, content_length=length
        )
        try:
            response = ingest(endpoint, request, int(source_id) if source_id else None)
        except Exception:
            logger.exception("Internal Server Error: %s", environ.get("PATH_INFO"))
            return 500, {"error": "internal error; the event was not stored", "field": "body"}, {}
        return response.status, response.body, response.headers
