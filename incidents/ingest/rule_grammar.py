"""The grammar of a classification rule's conditions, and its validation: pure, so models may use it.

The matcher (classify.py) reads conditions with the same functions, so what a rule saves is what
it matches.
"""

import re

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from incidents.patterns import PatternError, compile_pattern

_STATUS_TOKEN = re.compile(r"([1-5])xx|(\d{3})(?:\s*-\s*(\d{3}))?", re.IGNORECASE)
_STATUS_FORMS = "use codes 100-599 such as 429, lists such as 401,403, ranges such as 500-599, or classes such as 5xx"
_EXCEPTION_NAME = re.compile(r"[A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*")


def parse_http_status(spec: str) -> frozenset[int]:
    """Return the statuses a spec like "429", "401,403", "500-599", "5xx" or "400,404,500-599" names."""
    statuses: set[int] = set()
    for token in (part.strip() for part in spec.split(",")):
        found = _STATUS_TOKEN.fullmatch(token)
        if not found:
            raise ValueError(f"{token!r} is not a status: {_STATUS_FORMS}.")
        if found.group(1):
            low = int(found.group(1)) * 100
            high = low + 99
        else:
            low = int(found.group(2))
            high = int(found.group(3) or low)
        if not 100 <= low <= high <= 599:
            raise ValueError(f"{token!r} is outside 100-599 or runs backwards: {_STATUS_FORMS}.")
        statuses.update(range(low, high + 1))
    return frozenset(statuses)


def split_exception_types(spec: str) -> frozenset[str]:
    """Return the class names of a comma-separated exception_type condition."""
    return frozenset(name.strip() for name in spec.split(",") if name.strip())


def _is_scalar(value) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def validate_rule(rule) -> None:
    """Raise ValidationError, keyed by field, for every condition of the rule that cannot work."""
    errors: dict[str, str] = {}
    context = rule.context_match
    conditions = (rule.exception_type, rule.message_pattern, rule.http_status, rule.logger, rule.component)
    if not any(part and str(part).strip() for part in conditions) and not context:
        errors[NON_FIELD_ERRORS] = "A rule needs at least one condition, or it would match every event."
    bad_names = [
        name for name in split_exception_types(rule.exception_type or "") if not _EXCEPTION_NAME.fullmatch(name)
    ]
    if bad_names:
        errors["exception_type"] = f"Not a class name: {', '.join(map(repr, bad_names))}; separate names by commas."
    if rule.message_pattern:
        try:
            compile_pattern(rule.message_pattern)
        except PatternError as error:
            errors["message_pattern"] = f"Not a regular expression the console can run: {error}."
    if rule.http_status and rule.http_status.strip():
        try:
            parse_http_status(rule.http_status)
        except ValueError as error:
            errors["http_status"] = str(error)
    if not isinstance(context, dict) or not all(key and _is_scalar(value) for key, value in context.items()):
        errors["context_match"] = (
            'Must be a JSON object of non-empty keys and scalar values, e.g. {"storage_operation": "read"}; '
            '"*" matches any value.'
        )
    if errors:
        raise ValidationError(errors)
