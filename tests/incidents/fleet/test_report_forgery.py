"""Breaker reports belong to the key's source: no key can forge another source's breakers or the console's
own, one source's reports never overwrite or outweigh another's, and each service gets only its config."""

import json
import time

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from incidents.fleet.reports import console_source, windows_record
from incidents.models import ErrorEvent
from resilience.config_snapshot import config_snapshot
from resilience.models import Breaker, BreakerTransition, BreakerWindow, DegradationFeature
from tests.api_support import patch_json
from tests.incidents.fleet.payloads import BREAKERS, CONFIG, TRANSITIONS, WINDOWS

# The console's runtime records its reports in the test's transaction (console_inline), as it makes them.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("console_inline")]


def key_of(source) -> str:
    return source.keys.get().public_key


def window(breaker: str, **fields) -> dict:
    return {
        "breaker": breaker,
        "state": "open",
        "mode": "auto",
        "calls": 50,
        "failures": 50,
        "slow_calls": 0,
        "not_permitted": 0,
        **fields,
    }


def transition(breaker: str, **fields) -> dict:
    return {
        "breaker": breaker,
        "from_state": "closed",
        "to_state": "open",
        "mode": "forced_open",
        "generation": 7,
        "reason": "forged",
        "process": "web-1:10",
        "at": time.time(),
        **fields,
    }


def post(client, source, url, payload):
    body = json.dumps(payload)
    return client.post(url, body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key_of(source)}")


def post_windows(client, source, *windows, process="web-1:10"):
    return post(client, source, WINDOWS, {"process": process, "windows": list(windows)})


def post_transitions(client, source, *transitions):
    return post(client, source, TRANSITIONS, {"transitions": list(transitions)})


def assert_forbidden(response, field: str) -> None:
    assert response.status_code == 403, response.content
    assert response.json()["field"] == field


# The console's own breakers


def test_no_key_can_report_figures_for_the_consoles_redis_breaker(client, api_as, shop):
    response = post_windows(client, shop, window("payments-api"), window("redis"))

    assert_forbidden(response, "windows[1].breaker")
    assert "console's own" in response.json()["error"]
    assert not BreakerWindow.objects.exists()  # refused whole: not even its own payments-api figures
    shown = api_as("viewer").get(BREAKERS).json()["circuit_breakers"]["redis"]
    assert (shown["failure_rate"], shown["calls"], shown["state"]) == (None, 0, "closed")


def test_no_key_can_record_transitions_of_the_consoles_breakers_registered_or_not(client, shop):
    for name in ("redis", "notify:ops-hook"):
        response = post_transitions(client, shop, transition("payments-api"), transition(name))
        assert_forbidden(response, "transitions[1].breaker")
    assert not BreakerTransition.objects.exists() and not ErrorEvent.objects.exists()


def test_the_consoles_own_source_key_reports_nothing_over_the_api(client):
    own = console_source()
    assert_forbidden(post_windows(client, own, window("payments-api")), "windows[0].breaker")
    assert_forbidden(post_transitions(client, own, transition("payments-api")), "transitions[0].breaker")
    assert not BreakerWindow.objects.exists() and not BreakerTransition.objects.exists()


def test_console_processes_still_report_their_own_breakers_directly(api_as, db):
    windows_record(process="console-1:5", windows=[window("redis", calls=10, failures=5)], at=timezone.now())

    shown = api_as("viewer").get(BREAKERS).json()["circuit_breakers"]["redis"]
    assert (shown["calls"], shown["failure_rate"]) == (10, 50.0)
    assert BreakerWindow.objects.get().source == console_source()


# Other sources' breakers


def test_a_key_cannot_report_a_breaker_another_source_runs(client, shop, warehouse):
    Breaker.objects.create(name="inventory", source=warehouse)

    response = post_windows(client, shop, window("inventory"))
    assert_forbidden(response, "windows[0].breaker")
    assert "another source" in response.json()["error"]
    assert_forbidden(post_transitions(client, shop, transition("inventory")), "transitions[0].breaker")
    assert not BreakerWindow.objects.exists() and not BreakerTransition.objects.exists()


def test_a_key_reports_the_breakers_its_source_runs(client, api_as, shop):
    Breaker.objects.create(name="payments-api", source=shop)

    assert post_windows(client, shop, window("payments-api", calls=10, failures=2)).status_code == 200
    assert post_transitions(client, shop, transition("payments-api")).status_code == 200

    detail = api_as("viewer").get(f"{BREAKERS}payments-api/").json()
    assert (detail["circuit_breaker"]["calls"], detail["circuit_breaker"]["failure_rate"]) == (10, 20.0)
    assert [(p["source"], p["process"]) for p in detail["processes"]] == [(shop.slug, "web-1:10")]
    assert [(t["source"], t["to_state"]) for t in detail["transitions"]] == [(shop.slug, "open")]
    assert detail["config"]["source"] == shop.slug
    assert BreakerTransition.objects.get().breaker.name == "payments-api"


def test_an_unregistered_breaker_is_recorded_against_the_reporting_source(client, shop, warehouse):
    assert post_windows(client, shop, window("search", calls=4, failures=1)).status_code == 200
    assert post_windows(client, warehouse, window("search", calls=9, failures=9)).status_code == 200

    # The same breaker name and process from two sources: two rows, neither overwrote the other.
    rows = BreakerWindow.objects.order_by("source__name").values_list("source__name", "process", "calls")
    assert list(rows) == [("Shop", "web-1:10", 4), ("Warehouse", "web-1:10", 9)]


def test_one_sources_transition_cannot_pre_empt_anothers_with_the_same_process_and_generation(client, shop, warehouse):
    assert post_transitions(client, warehouse, transition("search")).status_code == 200
    assert post_transitions(client, shop, transition("search", reason="real")).status_code == 200

    history = BreakerTransition.objects.order_by("source__name").values_list("source__name", "reason")
    assert list(history) == [("Shop", "real"), ("Warehouse", "forged")]


def test_a_breakers_figures_and_history_are_only_those_of_the_source_that_runs_it(client, api_as, shop, warehouse):
    # Reported by the warehouse while nobody had registered the name, then registered as the shop's.
    post_windows(client, warehouse, window("search", calls=40, failures=40))
    post_transitions(client, warehouse, transition("search"))
    Breaker.objects.create(name="search", source=shop)
    post_windows(client, shop, window("search", state="closed", calls=10, failures=1), process="shop-1:7")

    statuses = api_as("viewer").get(BREAKERS).json()["circuit_breakers"]
    assert (statuses["search"]["calls"], statuses["search"]["failure_rate"]) == (10, 10.0)
    detail = api_as("viewer").get(f"{BREAKERS}search/").json()
    assert [p["process"] for p in detail["processes"]] == ["shop-1:7"]
    assert detail["transitions"] == []


# The config a service gets


def test_the_config_holds_only_the_keys_own_breakers_and_the_shared_policies(client, shop, warehouse):
    Breaker.objects.create(name="payments-api", source=shop)
    Breaker.objects.create(name="inventory", source=warehouse)
    Breaker.objects.create(name="notify:ops-hook")
    DegradationFeature.objects.create(
        name="checkout", breakers="payments-api\ninventory\nredis\nnotify:pager\nunregistered"
    )

    snapshot = client.get(CONFIG, HTTP_AUTHORIZATION=f"Bearer {key_of(shop)}").json()

    assert list(snapshot["breakers"]) == ["payments-api"]
    [checkout] = snapshot["degradation"]["features"]
    assert checkout["breakers"] == ["payments-api", "unregistered"]
    assert "server_error" in snapshot["retry_policies"] and snapshot["recovery_policies"]
    assert snapshot["error_types"]


def test_one_sources_config_tag_does_not_match_anothers_snapshot(client, shop, warehouse):
    Breaker.objects.create(name="payments-api", source=shop)
    tag = client.get(CONFIG, HTTP_AUTHORIZATION=f"Bearer {key_of(shop)}")["ETag"]

    other = client.get(CONFIG, HTTP_IF_NONE_MATCH=tag, HTTP_AUTHORIZATION=f"Bearer {key_of(warehouse)}")

    assert other.status_code == 200 and other.json()["breakers"] == {}
    assert other["Vary"] == "Authorization"


# Who may own a breaker


def test_a_console_breaker_cannot_be_given_to_a_source(shop):
    for name in ("redis", "notify:ops-hook"):
        with pytest.raises(ValidationError) as refused:
            Breaker(name=name, source=shop).full_clean()
        assert "source" in refused.value.message_dict


def test_an_admin_gives_a_breaker_to_a_source_over_the_api_but_never_a_console_one(api_as, shop):
    Breaker.objects.create(name="payments-api")
    answer = patch_json(api_as("admin"), f"{BREAKERS}payments-api/", {"source": shop.slug})
    assert answer.status_code == 200 and answer.json()["config"]["source"] == shop.slug
    assert Breaker.objects.get(name="payments-api").source == shop

    refused = patch_json(api_as("admin"), f"{BREAKERS}redis/", {"source": shop.slug})
    assert refused.status_code == 400 and refused.json()["field"] == "source"
    assert Breaker.objects.get(name="redis").source is None


def test_the_consoles_own_processes_still_get_every_breaker_and_feature_whole(shop):
    Breaker.objects.create(name="payments-api", source=shop)
    DegradationFeature.objects.create(name="alerting", breakers="redis\nnotify:pager")

    snapshot = config_snapshot()

    assert {"payments-api", "redis"} <= set(snapshot["breakers"])
    assert snapshot["degradation"]["features"][0]["breakers"] == ["redis", "notify:pager"]
