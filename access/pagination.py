"""Cursor pagination that refuses a malformed cursor or an out-of-range limit with a 400 naming it."""

from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination

from access.errors import FieldError

MAX_LIMIT = 500


class StrictCursorPagination(CursorPagination):
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = MAX_LIMIT
    ordering = "-id"

    def get_page_size(self, request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        try:
            limit = int(raw)
        except ValueError:
            raise FieldError("limit", f"must be a whole number from 1 to {MAX_LIMIT}") from None
        if not 1 <= limit <= MAX_LIMIT:
            raise FieldError("limit", f"must be from 1 to {MAX_LIMIT}, got {limit}")
        return limit

    def decode_cursor(self, request):
        try:
            return super().decode_cursor(request)
        except NotFound:
            raise FieldError("cursor", "is not a cursor this API gave out (use the next/previous links)") from None
