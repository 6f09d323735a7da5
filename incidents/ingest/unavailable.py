"""503 with Retry-After, never a 500, when the database is unavailable.

A database that is down, restarting or refusing connections surfaces as Django's
OperationalError or InterfaceError (psycopg_pool's PoolTimeout is wrapped as the former):
the client did nothing wrong and should come back, which is what 503 and Retry-After say.
Sentry SDKs drop an event answered 500; on `X-Sentry-Rate-Limits` they pause sending.
"""

import logging

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.deprecation import MiddlewareMixin

from incidents.ingest.errors import IngestError

logger = logging.getLogger(__name__)

DATABASE_ERRORS = (OperationalError, InterfaceError)
MESSAGE = "the database is unavailable; the request was not processed, retry later"


def unavailable_headers(*, sentry: bool) -> dict[str, str]:
    """Retry-After, and the Sentry SDKs' own back-off header for their endpoints."""
    retry_after = str(settings.DATABASE_RETRY_AFTER_SECONDS)
    headers = {"Retry-After": retry_after}
    if sentry:
        headers["X-Sentry-Rate-Limits"] = f"{retry_after}::organization:database_unavailable"
    return headers


def database_unavailable(exc: BaseException, *, where: str) -> None:
    # One line, not a traceback: during an outage every request comes here.
    logger.warning("database unavailable during %s: %s: %s", where, type(exc).__name__, exc)


def unavailable_error(exc: BaseException, *, where: str) -> IngestError:
    """The ingest endpoints' 503 for a database failure (their answer adds Retry-After)."""
    database_unavailable(exc, where=where)
    return IngestError(503, None, MESSAGE, retry_after=settings.DATABASE_RETRY_AFTER_SECONDS)


class DatabaseUnavailableMiddleware(MiddlewareMixin):  # the mixin: sync and async, no thread hop under ASGI
    """Answer a view's database failure with 503 and Retry-After: JSON under /api/, text elsewhere."""

    def process_exception(self, request: HttpRequest, exception: Exception):
        if not isinstance(exception, DATABASE_ERRORS):
            return None
        database_unavailable(exception, where=request.path)
        headers = unavailable_headers(sentry=False)
        if request.path.startswith("/api/"):
            return JsonResponse({"error": MESSAGE, "field": None}, status=503, headers=headers)
        return HttpResponse(MESSAGE + ".\n", status=503, content_type="text/plain; charset=utf-8", headers=headers)
