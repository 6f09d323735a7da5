"""Breakers in admin: the force-closed action, and the help the change form gives operators."""

import re

import pytest
from django.urls import reverse

from resilience.models import Breaker, BreakerState, BreakerTransition
from resilience.runtime.breaker import CallNotPermitted
from tests.support import refuse_connection

# The console's runtime records its reports in the test's transaction (console_inline), as it makes them.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("console_inline")]

CHANGELIST = reverse("admin:resilience_breaker_changelist")


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
