"""Breakers in admin: validated config, state badges, operator switches, the change form's help, live application
in this process."""

import re
from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from incidents.fleet.reports import windows_record
from incidents.models import ErrorEvent
from resilience import process_runtime
from resilience.config_watcher import config_version
from resilience.models import Breaker, BreakerState, BreakerTransition
from resilience.runtime.breaker import CallNotPermitted
from resilience.runtime.state import State
from tests.support import refuse_connection, wait_until

# The console's runtime records its reports in the test's transaction (console_inline), as it makes them.
pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("console_inline"),
]

CHANGELIST = reverse("admin:resilience_breaker_changelist")
ADD = reverse("admin:resilience_breaker_add")


def form_data(**overrides) -> dict:
    data = {
        "name": "payments-api",
        "window_kind": "count",
        "window_size": 20,
        "minimum_calls": 5,
        "failure_rate_threshold": 50,
        "slow_call_rate_threshold": 100,
        "consecutive_failures": 0,
        "wait_duration": 30,
        "wait_multiplier": 1,
        "permitted_calls_in_half_open": 1,
        "success_threshold": 1,
        "transitions-TOTAL_FORMS": 0,
        "transitions-INITIAL_FORMS": 0,
    }
    return {**data, **overrides}


def test_a_valid_breaker_is_saved_and_bumps_the_config_version(admin_client):
    before = config_version()
    response = admin_client.post(ADD, form_data())
    assert response.status_code == 302
    assert Breaker.objects.get(name="payments-api").to_config().window_size == 20
    assert config_version() > before


@pytest.mark.parametrize(
    "field, value, limit",
    [
        ("failure_rate_threshold", 120, "(0, 100]"),
        ("window_size", 0, "at least 1"),
        ("wait_multiplier", 0.5, "at least 1"),
        ("record_exceptions", "nowhere.MadeUpError", "unknown exception"),
        ("failure_statuses", "6xx", "class like '5xx'"),
    ],
)
def test_an_invalid_config_is_refused_naming_the_field(admin_client, field, value, limit):
    response = admin_client.post(ADD, form_data(**{field: value}))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert field in errors and limit in " ".join(errors[field])
    assert not Breaker.objects.filter(name="payments-api").exists()


def test_a_half_open_cap_shorter_than_the_call_timeout_is_refused(admin_client):
    response = admin_client.post(ADD, form_data(call_timeout=10, max_half_open_duration=5))
    assert "max_half_open_duration" in response.context["adminform"].form.errors


def test_the_database_refuses_what_the_form_would(db):
    with pytest.raises(IntegrityError), transaction.atomic():
        Breaker.objects.create(name="broken", failure_rate_threshold=0)


def test_the_list_shows_each_breakers_shared_state(admin_client):
    Breaker.objects.create(name="payments-api")
    Breaker.objects.create(name="search-api")
    process_runtime.breaker("payments-api").force_open(reason="maintenance")
    page = admin_client.get(CHANGELIST).content.decode()
    assert 'breaker-badge breaker-open">Open · forced open<' in page
    assert 'breaker-badge breaker-closed">Closed<' in page
    assert "maintenance" in page


def test_operator_actions_switch_the_shared_state_and_leave_a_history(admin_client, admin_user):
    breaker = Breaker.objects.create(name="payments-api")
    admin_client.post(CHANGELIST, {"action": "force_open", "_selected_action": [breaker.pk]})
    assert BreakerState.objects.get(name="payments-api").state == State.OPEN
    admin_client.post(CHANGELIST, {"action": "back_to_auto", "_selected_action": [breaker.pk]})
    assert BreakerState.objects.get(name="payments-api").state == State.HALF_OPEN
    admin_client.post(CHANGELIST, {"action": "reset", "_selected_action": [breaker.pk]})
    assert BreakerState.objects.get(name="payments-api").state == State.CLOSED
    process_runtime.flush_reports()
    history = list(BreakerTransition.objects.order_by("at", "id").values_list("to_state", "reason", "breaker"))
    who = f"admin: {admin_user.username}"
    assert history == [
        ("open", who, breaker.pk),
        ("half_open", who, breaker.pk),
        ("closed", who, breaker.pk),
    ]
    page = admin_client.get(reverse("admin:resilience_breaker_change", args=[breaker.pk])).content.decode()
    assert page.count(who) == 3  # the transitions inline


def test_a_saved_config_applies_without_losing_the_window(db):
    row = Breaker.objects.create(name="payments-api", window_size=20, minimum_calls=10, failure_rate_threshold=50)
    runtime = process_runtime.runtime()
    process_runtime.apply_saved_config(runtime)
    breaker = runtime.breaker("payments-api")
    for _ in range(6):
        with pytest.raises(ConnectionError):
            breaker.call(refuse_connection)
    assert breaker.state == State.CLOSED  # 6 calls: under the minimum of 10
    row.minimum_calls = 5
    row.save()
    assert process_runtime.apply_saved_config(runtime) == []
    assert breaker.metrics().calls == 6  # the window survived the new config
    with pytest.raises(ConnectionError):
        breaker.call(refuse_connection)
    assert breaker.state == State.OPEN  # and the new minimum applies at once


def test_a_config_this_process_cannot_apply_keeps_the_last_good_one(db):
    row = Breaker.objects.create(name="payments-api", failure_rate_threshold=50)
    runtime = process_runtime.runtime()
    process_runtime.apply_saved_config(runtime)
    # As a process with another set of installed libraries saved it.
    Breaker.objects.filter(pk=row.pk).update(record_exceptions="nowhere.MadeUpError", failure_rate_threshold=10)
    Breaker.objects.create(name="search-api", failure_rate_threshold=30)
    errors = process_runtime.apply_saved_config(runtime)
    assert [error.field for error in errors] == ["breakers.payments-api.record_exceptions"]
    assert runtime.breaker("payments-api").config.failure_rate_threshold == 50
    assert runtime.breaker("search-api").config.failure_rate_threshold == 30  # the others still apply
    process_runtime.flush_reports()
    reported = ErrorEvent.objects.get(logger="resilience.config")  # operators see it, not just the log
    assert (reported.source.slug, reported.tags["field"]) == ("console", "breakers.payments-api.record_exceptions")
    assert "nowhere.MadeUpError" in reported.message


def test_the_list_shows_failure_rate_and_calls_summed_over_the_processes_reporting(admin_client, settings):
    settings.RESILIENCE_WINDOW_REPORT_SECONDS = 5  # reports older than a few intervals no longer count
    # One of the console's own breakers: this process runs it and reports its window as console processes do.
    name = "notify:payments-hook"
    Breaker.objects.create(name=name, window_size=100, minimum_calls=50, failure_rate_threshold=50)
    runtime = process_runtime.runtime()
    process_runtime.apply_saved_config(runtime)
    breaker = runtime.breaker(name)
    for _ in range(3):
        breaker.call(lambda: "ok")
        with pytest.raises(ConnectionError):
            breaker.call(refuse_connection)
    process_runtime.report_windows(runtime)
    process_runtime.flush_reports()
    window = {"breaker": name, "state": "closed", "mode": "auto", "slow_calls": 1, "not_permitted": 0}
    now = timezone.now()
    windows_record(process="web-2:77", windows=[{**window, "calls": 4, "failures": 0}], at=now)
    # A process that stopped reporting an hour ago no longer counts.
    windows_record(process="gone:1", windows=[{**window, "calls": 90, "failures": 90}], at=now - timedelta(hours=1))
    row = admin_client.get(CHANGELIST).content.decode()
    assert "30.0 %" in row  # 3 failures in 6 + 4 calls
    assert "10 (3 failed, 1 slow)" in row


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # the housekeeping thread needs committed rows
def test_a_due_half_open_happens_without_waiting_for_a_call(db):
    Breaker.objects.create(
        name="payments-api", window_size=1, minimum_calls=1, wait_duration=0.2, automatic_half_open=True
    )
    runtime = process_runtime.runtime()
    process_runtime.apply_saved_config(runtime)
    breaker = runtime.breaker("payments-api")
    with pytest.raises(ConnectionError):
        breaker.call(refuse_connection)
    assert BreakerState.objects.get(name="payments-api").state == State.OPEN
    # No call is made from here on: the console's housekeeping thread makes the move when it is due.
    assert wait_until(lambda: BreakerState.objects.get(name="payments-api").state == State.HALF_OPEN)


def test_a_recovery_alert_becomes_an_incident_of_its_error_type(digest):
    from incidents.models import Incident
    from resilience.exceptions import ApiError

    runtime = process_runtime.runtime()
    process_runtime.apply_saved_config(runtime)  # the seeded auth-failure-alert policy

    def fetch_prices():
        raise ApiError("unauthorized", status_code=401)

    with pytest.raises(ApiError):
        runtime.recovery.execute(fetch_prices, component="prices")
    process_runtime.flush_reports()
    digest()
    alert = Incident.objects.get(source__slug="console", title__contains="alert for")
    assert (alert.error_type.code, alert.severity) == ("API_AUTH", 50)  # critical, as the policy says
    failed = Incident.objects.get(source__slug="console", title__contains="failed for")
    assert failed.error_type.code == "API_AUTH"  # the error still reached the application


def test_transitions_become_one_incident_per_breaker_and_state_with_the_breakers_error_type(digest):
    from incidents.models import ErrorType, Incident

    server_errors = ErrorType.objects.get(code="API_SERVER_ERROR")
    Breaker.objects.create(name="payments-api", component="payments", error_type=server_errors)
    breaker = process_runtime.breaker("payments-api")
    for _ in range(2):
        breaker.force_open(reason="maintenance")
        breaker.reset(reason="maintenance over")
    process_runtime.flush_reports()
    digest()
    opened = Incident.objects.get(source__slug="console", title__contains="opened")
    assert (opened.error_type, opened.category, opened.event_count) == (server_errors, server_errors.category, 2)
    assert opened.events.first().component == "payments"
    assert Incident.objects.filter(source__slug="console").count() == 2  # opened, and closed again


def test_the_form_offers_the_source_and_says_what_an_empty_one_means(admin_client, source):
    page = admin_client.get(ADD).content.decode()
    assert 'name="source"' in page and source.name in page
    assert "Empty: the first source to report it takes it" in page

    assert admin_client.post(ADD, form_data(source=source.pk)).status_code == 302
    assert Breaker.objects.get(name="payments-api").source == source


def test_the_list_shows_each_breakers_source_and_filters_by_it(admin_client, source):
    Breaker.objects.create(name="payments-api", source=source)
    Breaker.objects.create(name="search-api")
    Breaker.objects.get_or_create(name="redis")  # seeded

    page = admin_client.get(CHANGELIST).content.decode()
    assert f'<td class="field-runs_on">{source.name}</td>' in page
    # No source means two things, said apart: taken by the first source to report it, or the console's own.
    assert '<td class="field-runs_on">unassigned</td>' in page
    assert '<td class="field-runs_on">the console&#x27;s own</td>' in page
    filtered = admin_client.get(CHANGELIST, {"source__id__exact": source.pk}).content.decode()
    assert "payments-api" in filtered and "search-api" not in filtered
    unassigned = admin_client.get(CHANGELIST, {"source__isnull": "True"}).content.decode()
    assert "search-api" in unassigned and "payments-api" not in unassigned


def test_the_transitions_inline_names_the_source_that_reported_each(admin_client, source):
    breaker = Breaker.objects.create(name="payments-api", source=source)
    BreakerTransition.objects.create(
        breaker_name="payments-api",
        breaker=breaker,
        source=source,
        from_state="closed",
        to_state="open",
        mode="auto",
        generation=1,
        process="shop-1:7",
        reason="failure rate 80%",
        at=timezone.now(),
    )

    page = admin_client.get(reverse("admin:resilience_breaker_change", args=[breaker.pk])).content.decode()

    inline = page[page.index("Transitions (newest first)") :]
    assert "failure rate 80%" in inline and source.name in inline


def test_force_closed_switches_the_shared_state_and_records_the_transition(admin_client, admin_user, console_inline):
    payments = Breaker.objects.create(name="payments-api", window_size=2, minimum_calls=1)
    search = Breaker.objects.create(name="search-api")
    console_inline.breaker("payments-api").force_open(reason="maintenance")
    with pytest.raises(CallNotPermitted):
        console_inline.breaker("payments-api").call(lambda: "ok")

    response = admin_client.post(
        CHANGELIST, {"action": "force_closed", "_selected_action": [payments.pk, search.pk]}, follow=True
    )

    assert "2 breaker(s) forced closed." in [str(message) for message in response.context["messages"]]
    who = f"admin: {admin_user.username}"
    shared = {row.name: (row.state, row.mode, row.last_reason) for row in BreakerState.objects.all()}
    assert shared == {
        "payments-api": ("closed", "forced_closed", who),
        "search-api": ("closed", "forced_closed", who),
    }
    breaker = console_inline.breaker("payments-api")
    for _ in range(3):  # disabled: every call goes through, and failures open nothing
        with pytest.raises(ConnectionError):
            breaker.call(refuse_connection)
    assert BreakerState.objects.get(name="payments-api").state == "closed"
    console_inline.flush_reports()
    history = BreakerTransition.objects.order_by("at", "id").values_list(
        "breaker_name", "from_state", "to_state", "mode", "reason", "breaker"
    )
    assert list(history) == [
        ("payments-api", "closed", "open", "forced_open", "maintenance", payments.pk),
        ("payments-api", "open", "closed", "forced_closed", who, payments.pk),
        ("search-api", "closed", "closed", "forced_closed", who, search.pk),  # a mode change is history too
    ]
    page = admin_client.get(CHANGELIST).content.decode()
    assert page.count('breaker-badge breaker-closed">Closed · forced closed (disabled)<') == 2


@pytest.mark.parametrize(
    "field, help_text",
    [
        ("window_size", "Calls (count window) or seconds (time)."),
        ("permitted_calls_in_half_open", "Probes admitted at once."),
        ("max_half_open_duration", "Seconds half-open may last without a verdict before reopening."),
        ("consecutive_failures", "Failures in a row that open it whatever the rate; 0: off."),
    ],
)
def test_the_change_form_shows_each_fields_help(admin_client, field, help_text, console_inline):
    breaker = Breaker.objects.create(name="payments-api")
    page = admin_client.get(reverse("admin:resilience_breaker_change", args=[breaker.pk])).content.decode()
    shown = re.search(rf'<div class="help" id="id_{field}_helptext">\s*<div>(.*?)</div>', page, re.S)
    assert shown is not None, f"no help under {field}"
    assert shown.group(1).strip() == help_text  # Django renders help texts as written: these need no escaping
