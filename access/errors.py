"""One JSON error shape for the whole API: {"error": message, "field": name or null, "errors": {...}}.

It is the ingest endpoints' shape ({"error", "field"}) with every field's messages added,
so a client handles errors the same way wherever they come from.
"""

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions
from rest_framework.views import exception_handler as drf_exception_handler


def api_exception_handler(exc, context):
    """DRF's handling (status, headers such as Retry-After and WWW-Authenticate) with our body."""
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    response.data = error_body(exc, response.data)
    return response


def error_body(exc, data) -> dict:
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(data)
        field, messages = next(iter(errors.items()), (None, ["invalid input"]))
        return {"error": messages[0], "field": None if field == "non_field_errors" else field, "errors": errors}
    if isinstance(exc, Http404 | exceptions.NotFound):
        return {"error": "not found", "field": None}
    if isinstance(exc, PermissionDenied | exceptions.PermissionDenied):
        return {"error": str(getattr(exc, "detail", "")) or "permission denied", "field": None}
    detail = data.get("detail", data) if isinstance(data, dict) else data
    body = {"error": str(detail), "field": getattr(exc, "field", None)}
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        body["retry_after"] = int(exc.wait + 0.999)
    return body


def _flatten(data, prefix: str = "") -> dict[str, list[str]]:
    """Nested serializer errors as {"windows[1].calls": ["..."]} (the ingest API names fields so)."""
    if isinstance(data, list) and all(isinstance(item, str) for item in data):
        return {prefix or "non_field_errors": [str(item) for item in data]}
    flat: dict[str, list[str]] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            if value:
                flat.update(_flatten(value, f"{prefix}[{index}]"))
    else:
        flat[prefix or "non_field_errors"] = [str(data)]
    return flat


class FieldError(exceptions.ValidationError):
    """A 400 naming one field: raise FieldError("limit", "must be from 1 to 500")."""

    def __init__(self, field: str, message: str):
        super().__init__({field: [message]})


def not_found(request, exception=None):
    """Django's 404 for URLs no route matches: the API's error shape under /api/, the HTML page elsewhere."""
    from django.http import JsonResponse
    from django.views.defaults import page_not_found

    if request.path.startswith("/api/"):
        return JsonResponse({"error": "not found", "field": None}, status=404)
    return page_not_found(request, exception)


def server_error(request):
    """Django's 500: the API's error shape under /api/, the HTML page elsewhere."""
    from django.http import JsonResponse
    from django.views.defaults import server_error as html_server_error

    if request.path.startswith("/api/"):
        return JsonResponse({"error": "internal error", "field": None}, status=500)
    return html_server_error(request)
