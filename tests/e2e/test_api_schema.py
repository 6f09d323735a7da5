"""schemathesis against the live OpenAPI schema: generated requests to every operation, as an admin.

No request may get a 5xx, and every response must match the schema (status code, content
type and body), errors included: they are documented with the one error shape.
"""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from access.services import api_token_create
from incidents import services

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def admin_token(db, django_user_model):
    user = django_user_model.objects.create_superuser(username="schema-admin", password="unused-password")
    _token, raw = api_token_create(user=user, name="schemathesis")
    services.source_create(name="Checkout service")  # something for the endpoints to find
    return raw


@pytest.fixture
def keep_test_connection():
    """Let the WSGI handler run inside the test's transaction, as Django's test client does:
    it would otherwise close the database connection at the end of each request."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(admin_token, keep_test_connection):
    return schemathesis.openapi.from_wsgi(
        "/api/schema/?format=json", get_wsgi_application(), headers={"Authorization": f"Bearer {admin_token}"}
    )


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_no_generated_request_gets_a_server_error_and_every_answer_matches_the_schema(case, admin_token):
    case.call_and_validate(headers={"Authorization": f"Bearer {admin_token}"}, checks=CHECKS)
