"""A breaker defined without a source is unassigned: the first source to report it takes it, once, even when
two race; from then on it is that source's alone. The console's own names are never anyone's."""

import json
import logging
import threading
import time

import pytest
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse

from resilience.models import Breaker, BreakerTransition, BreakerWindow, DegradationFeature
from tests.incidents.fleet.payloads import BREAKERS, CONFIG, TRANSITIONS, WINDOWS
from tests.support import wait_until

# The console's runtime records its reports in the test's transaction (console_inline), as it makes them.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("console_inline")]

ADD = reverse("admin:resilience_breaker_add")


def bearer(source) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {source.keys.get().public_key}"}


def window(breaker: str, **fields) -> dict:
    figures = {"state": "closed", "mode": "auto", "calls": 10, "failures": 2, "slow_calls": 0, "not_permitted": 0}
    return {"breaker": breaker, **figures, **fields}


def post_windows(client, source, *windows, process="web-1:10"):
    body = json.dumps({"process": process, "windows": list(windows)})
    return client.post(WINDOWS, body, content_type="application/json", **bearer(source))


def post_transition(client, source, breaker: str):
    entry = {"breaker": breaker, "from_state": "closed", "to_state": "open", "generation": 1, "at": time.time()}
    body = json.dumps({"transitions": [{**entry, "process": "web-1:10"}]})
    return client.post(TRANSITIONS, body, content_type="application/json", **bearer(source))


def owner(name: str):
    return Breaker.objects.get(name=name).source


def test_a_breaker_an_admin_defined_without_a_source_becomes_the_first_reporting_sources(
    admin_client, client, api_as, shop, caplog
):
    form = {
        "name": "payments-api",
        "source": "",
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
    assert admin_client.post(ADD, form).status_code == 302
    assert owner("payments-api") is None

    with caplog.at_level(logging.INFO, logger="resilience.models"):
        response = post_windows(client, shop, window("payments-api", calls=10, failures=2))

    assert response.status_code == 200, response.content
    assert owner("payments-api") == shop
    assert "breaker payments-api now belongs to source shop" in caplog.text
    detail = api_as("viewer").get(f"{BREAKERS}payments-api/").json()
    assert (detail["config"]["source"], detail["circuit_breaker"]["calls"]) == ("shop", 10)  # the claiming report


def test_a_transition_claims_an_unassigned_breaker_and_joins_its_history(client, shop):
    row = Breaker.objects.create(name="payments-api")

    assert post_transition(client, shop, "payments-api").status_code == 200

    assert owner("payments-api") == shop
    assert BreakerTransition.objects.get().breaker == row


def test_once_claimed_another_source_is_refused_naming_the_field(client, shop, warehouse):
    Breaker.objects.create(name="payments-api")
    assert post_windows(client, shop, window("payments-api")).status_code == 200

    refused = post_windows(client, warehouse, window("payments-api"))
    assert (refused.status_code, refused.json()["field"]) == (403, "windows[0].breaker")
    assert "another source" in refused.json()["error"]
    refused = post_transition(client, warehouse, "payments-api")
    assert (refused.status_code, refused.json()["field"]) == (403, "transitions[0].breaker")
    assert owner("payments-api") == shop
    assert not BreakerWindow.objects.filter(source=warehouse).exists()


def test_a_refused_report_claims_nothing(client, shop):
    Breaker.objects.create(name="payments-api")

    response = post_windows(client, shop, window("payments-api"), window("redis"))

    assert (response.status_code, response.json()["field"]) == (403, "windows[1].breaker")
    assert owner("payments-api") is None


@pytest.mark.skipif(connection.vendor != "postgresql", reason="two connections writing at once need PostgreSQL")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # the racing threads need committed rows
def test_two_sources_racing_for_an_unassigned_breaker_claim_it_once(shop, warehouse):
    row = Breaker.objects.create(name="payments-api")
    answers = {}

    def report(source) -> None:
        try:
            answers[source.slug] = post_windows(Client(), source, window("payments-api")).status_code
        finally:
            connection.close()  # this thread's own connection

    with transaction.atomic():
        # Hold the row so both reports reach their claim and wait on it, then let them go at once.
        Breaker.objects.select_for_update().get(pk=row.pk)
        threads = [threading.Thread(target=report, args=(source,)) for source in (shop, warehouse)]
        for thread in threads:
            thread.start()
        assert wait_until(lambda: _waiting_on_locks() == 2)
    for thread in threads:
        thread.join(timeout=30)

    winner = owner("payments-api")
    assert winner in (shop, warehouse)
    loser = warehouse if winner == shop else shop
    assert answers == {winner.slug: 200, loser.slug: 403}
    assert list(BreakerWindow.objects.values_list("source", flat=True)) == [winner.pk]


def _waiting_on_locks() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # the view is otherwise frozen for the transaction
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


def test_a_keys_config_holds_unassigned_breakers_but_never_anothers_nor_the_consoles(client, shop, warehouse):
    Breaker.objects.create(name="payments-api", source=shop)
    Breaker.objects.create(name="search")  # unassigned: the shop may be the first to run it
    Breaker.objects.create(name="inventory", source=warehouse)
    Breaker.objects.create(name="notify:ops-hook")  # the console's own, like the seeded redis
    DegradationFeature.objects.create(name="checkout", breakers="payments-api\nsearch\ninventory\nredis")

    answer = client.get(CONFIG, **bearer(shop))

    snapshot = answer.json()
    assert sorted(snapshot["breakers"]) == ["payments-api", "search"]
    assert snapshot["degradation"]["features"][0]["breakers"] == ["payments-api", "search"]
    # Once the warehouse takes it, the shop's next poll (its old tag) gets a config without it.
    assert post_windows(client, warehouse, window("search")).status_code == 200
    again = client.get(CONFIG, HTTP_IF_NONE_MATCH=answer["ETag"], **bearer(shop))
    assert again.status_code == 200 and sorted(again.json()["breakers"]) == ["payments-api"]
    assert again.json()["degradation"]["features"][0]["breakers"] == ["payments-api"]


def test_the_consoles_own_names_stay_refused_though_they_have_no_source(client, shop):
    Breaker.objects.create(name="notify:ops-hook")

    for name in ("redis", "notify:ops-hook"):
        response = post_windows(client, shop, window(name))
        assert (response.status_code, response.json()["field"]) == (403, "windows[0].breaker")
        assert "console's own" in response.json()["error"]
        assert post_transition(client, shop, name).status_code == 403
        assert owner(name) is None
    assert not BreakerWindow.objects.exists() and not BreakerTransition.objects.exists()


def test_an_unassigned_breaker_counts_no_sources_figures_until_one_claims_it(client, api_as, shop, warehouse):
    # Reported by the warehouse while nobody had defined the name, then defined in admin without a source.
    assert post_windows(client, warehouse, window("search", calls=40, failures=40)).status_code == 200
    Breaker.objects.create(name="search")

    shown = api_as("viewer").get(f"{BREAKERS}search/").json()
    assert (shown["circuit_breaker"]["calls"], shown["processes"]) == (0, [])

    assert post_windows(client, shop, window("search", calls=10, failures=1), process="shop-1:7").status_code == 200
    shown = api_as("viewer").get(f"{BREAKERS}search/").json()
    assert shown["circuit_breaker"]["calls"] == 10
    assert [p["process"] for p in shown["processes"]] == ["shop-1:7"]
