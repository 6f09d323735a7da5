"""The WSGI fast path and chunked bodies: read to their end where the server marks it, else refused with 411."""

import io

import pytest

from incidents.models import ErrorEvent
from tests.support import FastPathClient, auth_header, envelope_bytes, sentry_event

pytestmark = pytest.mark.django_db


def post_chunked(source, key, body: bytes, *, input_terminated: bool):
    """POST as a WSGI server passes a chunked body: no Content-Length, the decoded body in wsgi.input."""
    server = {"wsgi.input": io.BytesIO(body), "wsgi.input_terminated": input_terminated}
    return FastPathClient().post(
        f"/api/{source.pk}/envelope/", data=body, CONTENT_LENGTH="", HTTP_TRANSFER_ENCODING="chunked",
        **server, **auth_header(key),
    )  # fmt: skip


def test_a_chunked_body_from_a_server_that_ends_its_input_is_read(source, ingest_key):
    response = post_chunked(source, ingest_key, envelope_bytes(sentry_event("chunked")), input_terminated=True)
    assert response.status_code == 200
    assert ErrorEvent.objects.get().message == "chunked"


def test_a_chunked_body_the_server_cannot_end_is_refused_with_411_not_read_as_empty(source, ingest_key):
    response = post_chunked(source, ingest_key, envelope_bytes(sentry_event()), input_terminated=False)
    assert response.status_code == 411
    assert response.json()["field"] == "Content-Length"
    assert ErrorEvent.objects.count() == 0
