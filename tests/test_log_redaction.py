"""Credentials in logged request targets are redacted, however the access-log format lays them out."""

import pytest

from config.logging_filters import redact


@pytest.mark.parametrize(
    "line, expected",
    [
        ("GET /ws/live/?token=ict_abcdefghijkl", "GET /ws/live/?token=[redacted]"),
        ("POST /api/4/store/?v=7&sentry_key=3f0c", "POST /api/4/store/?v=7&sentry_key=[redacted]"),
        # A format of `%(path)s %(query_string)s` logs the query string without its `?`.
        ("GET /healthz sentry_key=abc123&token=x", "GET /healthz sentry_key=[redacted]&token=[redacted]"),
        ("sentry_key=abc123", "sentry_key=[redacted]"),
        ('"GET /x?key=abc HTTP/1.1"', '"GET /x?key=[redacted] HTTP/1.1"'),
        ("monkey=3 turkey=4", "monkey=3 turkey=4"),  # only whole parameter names
        ("Authorization: Bearer ict_0123456789abcdef", "Authorization: Bearer ict_[redacted]"),
    ],
)
def test_credentials_are_redacted(line, expected):
    assert redact(line) == expected
