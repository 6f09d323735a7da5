"""A JSON parser that refuses oversized bodies with a 400 naming the body and the limit."""

from django.conf import settings
from rest_framework.parsers import JSONParser

from access.errors import FieldError


class BoundedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        request = (parser_context or {}).get("request")
        limit = settings.API_MAX_BODY_BYTES
        length = int(request.META.get("CONTENT_LENGTH") or 0) if request is not None else 0
        if length > limit:
            raise FieldError("body", f"is {length} bytes; the limit is {limit}")
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise FieldError("body", "is nested too deeply") from None
