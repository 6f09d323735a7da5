"""A bad breaker config is refused whole, naming the field, by the admin change form and the API alike."""

import pytest
from django.urls import reverse

from resilience.config_watcher import config_version
from resilience.models import Breaker
from tests.api_support import patch_json

# Saving config signals the live stream, which may start the console runtime: it records its reports in the
# test's transaction (console_inline).
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("console_inline")]

# (change, field named, what the message says; None: the framework's own wording)
BAD_CHANGES = [
    pytest.param({"window_size": 0}, "window_size", "at least 1", id="zero-window"),
    pytest.param({"window_size": -5}, "window_size", None, id="negative-window"),
    pytest.param({"failure_rate_threshold": 100.5}, "failure_rate_threshold", "(0, 100]", id="rate-over-100"),
    pytest.param({"failure_rate_threshold": 250}, "failure_rate_threshold", "(0, 100]", id="rate-far-over-100"),
    pytest.param({"permitted_calls_in_half_open": 0}, "permitted_calls_in_half_open", "at least 1", id="no-probes"),
    pytest.param(
        {"record_exceptions": "builtins.ValueError\nnowhere.MadeUpError"},
        "record_exceptions",
        "unknown exception 'nowhere.MadeUpError'",
        id="unknown-recorded-exception",
    ),
    pytest.param(
        {"ignore_exceptions": "payments.errors.NoSuchError"},
        "ignore_exceptions",
        "unknown exception 'payments.errors.NoSuchError'",
        id="unknown-ignored-exception",
    ),
    pytest.param(
        {"ignore_exceptions": "builtins.len"}, "ignore_exceptions", "is not an exception class", id="not-an-exception"
    ),
    pytest.param(
        {"call_timeout": 10, "max_half_open_duration": 5},
        "max_half_open_duration",
        "at least call_timeout (10.0)",
        id="half-open-cap-under-timeout",
    ),
]


@pytest.fixture
def payments(console_inline):
    return Breaker.objects.create(
        name="payments-api",
        description="card payments",
        window_size=20,
        minimum_calls=5,
        failure_rate_threshold=40,
        permitted_calls_in_half_open=2,
        call_timeout=2,
        max_half_open_duration=30,
        record_exceptions="builtins.ConnectionError",
    )


def saved(breaker: Breaker) -> dict:
    return Breaker.objects.filter(pk=breaker.pk).values().get()


def change_form(row: dict, **overrides) -> dict:
    """The change form as the admin page posts it: every field, the empty ones blank."""
    fields = [
        "name",
        "description",
        "component",
        "window_kind",
        "window_size",
        "minimum_calls",
        "failure_rate_threshold",
        "slow_call_rate_threshold",
        "slow_call_duration",
        "consecutive_failures",
        "call_timeout",
        "wait_duration",
        "wait_multiplier",
        "max_wait_duration",
        "max_half_open_duration",
        "permitted_calls_in_half_open",
        "success_threshold",
        "record_exceptions",
        "ignore_exceptions",
        "failure_statuses",
    ]
    data = {name: "" if row[name] is None else row[name] for name in fields}
    data["error_type"] = row["error_type_id"] or ""
    if row["automatic_half_open"]:
        data["automatic_half_open"] = "on"
    return {**data, **overrides, "transitions-TOTAL_FORMS": 0, "transitions-INITIAL_FORMS": 0}


def test_the_change_form_as_posted_unchanged_saves(admin_client, payments):
    """The form data the refusals below start from is itself acceptable."""
    url = reverse("admin:resilience_breaker_change", args=[payments.pk])
    response = admin_client.post(url, change_form(saved(payments), description="card payments, EU"))
    assert response.status_code == 302
    assert Breaker.objects.get(pk=payments.pk).description == "card payments, EU"


@pytest.mark.parametrize("change, field, says", BAD_CHANGES)
def test_the_admin_change_form_refuses_naming_the_field(admin_client, payments, change, field, says):
    before, version = saved(payments), config_version()
    url = reverse("admin:resilience_breaker_change", args=[payments.pk])

    response = admin_client.post(url, change_form(before, description="half-written?", **change))

    assert response.status_code == 200  # the form again, not a redirect
    errors = response.context["adminform"].form.errors
    assert field in errors, errors
    if says is not None:
        assert says in " ".join(errors[field])
    assert 'class="errorlist' in response.content.decode()  # the page shows the error to the operator
    assert saved(payments) == before  # nothing of it was written, the description sent along included
    assert config_version() == version


@pytest.mark.parametrize("change, field, says", BAD_CHANGES)
def test_the_api_refuses_naming_the_field(api_as, payments, change, field, says):
    before, version = saved(payments), config_version()

    response = patch_json(api_as("admin"), "/api/v1/circuit-breakers/payments-api/", {**change, "description": "x"})

    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"error", "field", "errors"}
    assert body["field"] == field and field in body["errors"], body
    if says is not None:
        assert says in body["error"]
    assert saved(payments) == before
    assert config_version() == version
