"""The resilience reporting API: breakers (state, config, switches), ingest quota, system health, degradation."""

import json
import time
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from incidents.fleet.reports import windows_record
from incidents.ingest import quotas
from incidents.models import ErrorType
from resilience import process_runtime
from resilience.config_watcher import config_version
from resilience.models import Breaker, BreakerState, BreakerTransition, DegradationFeature, DegradationRule
from tests.api_support import patch_json, post_json
from tests.support import native_event, refuse_connection

# The console's runtime records its reports in the test's transaction (console_inline), as it makes them.
pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("console_inline"),
]

BREAKERS = "/api/v1/circuit-breakers/"
PAYMENTS = f"{BREAKERS}payments-api/"
ENDPOINTS = [BREAKERS, PAYMENTS, "/api/v1/rate-limit-status/", "/api/v1/system-health/", "/api/v1/degradation-mode/"]


@pytest.fixture
def payments(source):
    return Breaker.objects.create(
        name="payments-api", source=source, window_size=20, minimum_calls=5, failure_rate_threshold=40
    )


def report(process: str, breaker: Breaker, *, calls: int, failures: int, slow_calls: int = 0, ago=timedelta(0)):
    """A window report from a process of the service that runs `breaker`."""
    window = {"breaker": breaker.name, "state": "closed", "mode": "auto", "slow_calls": slow_calls, "not_permitted": 0}
    windows_record(
        source=breaker.source,
        process=process,
        windows=[{**window, "calls": calls, "failures": failures}],
        at=timezone.now() - ago,
    )


def ingest(client, key, **fields):
    body = json.dumps(native_event(**fields))
    return client.post("/api/v1/events/", body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}")


# Breakers


def test_the_list_keys_every_breaker_by_name_with_its_shared_state_and_summed_windows(api_as, payments, settings):
    settings.RESILIENCE_WINDOW_REPORT_SECONDS = 60  # reports older than a few intervals no longer count
    Breaker.objects.create(name="search-api")
    process_runtime.breaker("payments-api").force_open(reason="maintenance")
    report("web-1:10", payments, calls=10, failures=4, slow_calls=1)
    report("web-2:20", payments, calls=6, failures=2)
    report("gone:1", payments, calls=90, failures=90, ago=timedelta(hours=1))  # stopped reporting

    response = api_as("viewer").get(BREAKERS)

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "success" and body["timestamp"]
    assert list(body["circuit_breakers"]) == ["payments-api", "redis", "search-api"]  # redis: seeded
    shown = body["circuit_breakers"]["payments-api"]
    assert (shown["name"], shown["state"], shown["mode"], shown["last_reason"]) == (
        "payments-api",
        "open",
        "forced_open",
        "maintenance",
    )
    assert (shown["calls"], shown["failure_count"], shown["success_count"], shown["slow_count"]) == (16, 6, 10, 1)
    assert shown["failure_rate"] == 37.5
    assert shown["last_failure_time"] is not None and shown["opened_at"] is not None
    assert shown["open_until"] is None  # a forced opening lasts until it is released
    assert shown["generation"] == BreakerState.objects.get(name="payments-api").generation
    idle = body["circuit_breakers"]["search-api"]
    assert (idle["state"], idle["mode"], idle["calls"], idle["failure_rate"], idle["generation"]) == (
        "closed",
        "auto",
        0,
        None,
        0,
    )
    assert idle["last_failure_time"] is None and idle["opened_at"] is None


def test_an_automatic_opening_shows_when_it_lets_a_probe_through(api_as, payments):
    runtime = process_runtime.runtime()
    process_runtime.apply_saved_config(runtime)
    breaker = runtime.breaker("payments-api")
    for _ in range(5):
        with pytest.raises(ConnectionError):
            breaker.call(refuse_connection)

    shown = api_as("viewer").get(BREAKERS).json()["circuit_breakers"]["payments-api"]

    assert (shown["state"], shown["mode"]) == ("open", "auto")
    opened, until = (datetime.fromisoformat(shown[key]) for key in ("opened_at", "open_until"))
    assert until - opened == timedelta(seconds=payments.wait_duration)


def test_the_detail_shows_config_state_each_processs_window_and_the_latest_twenty_transitions(api_as, payments):
    payments.error_type = ErrorType.objects.get(code="API_SERVER_ERROR")
    payments.failure_statuses = "5xx, 429"
    payments.save()
    report("web-1:10", payments, calls=10, failures=1)
    now = timezone.now()
    BreakerTransition.objects.bulk_create(
        BreakerTransition(
            breaker_name="payments-api",
            breaker=payments,
            from_state="closed" if n % 2 else "open",
            to_state="open" if n % 2 else "closed",
            mode="auto",
            generation=n,
            process="web-1:10",
            reason=f"transition {n}",
            at=now - timedelta(minutes=30 - n),
        )
        for n in range(25)
    )

    response = api_as("viewer").get(PAYMENTS)

    assert response.status_code == 200
    body = response.json()
    config = body["config"]
    assert (config["name"], config["window_size"], config["minimum_calls"], config["failure_rate_threshold"]) == (
        "payments-api",
        20,
        5,
        40.0,
    )
    assert (config["error_type"], config["failure_statuses"], config["slow_call_duration"]) == (
        "API_SERVER_ERROR",
        "5xx, 429",
        None,
    )
    assert body["circuit_breaker"]["state"] == "closed" and body["circuit_breaker"]["calls"] == 10
    assert [(p["process"], p["calls"], p["failures"]) for p in body["processes"]] == [("web-1:10", 10, 1)]
    assert [t["reason"] for t in body["transitions"]] == [f"transition {n}" for n in range(24, 4, -1)]


def test_with_the_redis_state_store_the_state_shown_is_the_one_kept_in_redis(api_as, settings):
    if not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL")
    import redis

    name = "reporting-api-redis-probe"  # its own key: the Redis server may be shared
    Breaker.objects.create(name=name)
    settings.RESILIENCE_STATE_STORE = "redis"
    process_runtime.reset()  # saving the breaker started a runtime on the database store
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(f"resilience:breaker:{name}")
    try:
        response = api_as("admin").post(f"{BREAKERS}{name}/force-open/")
        assert (response.json()["circuit_breaker"]["state"], response.status_code) == ("open", 200)
        shown = api_as("viewer").get(BREAKERS).json()["circuit_breakers"][name]
        assert (shown["state"], shown["mode"]) == ("open", "forced_open")
        assert not BreakerState.objects.filter(name=name).exists()  # the database store was never used
    finally:
        process_runtime.reset()
        client.delete(f"resilience:breaker:{name}")


def test_an_unknown_breaker_is_not_found_whatever_the_method(api_as):
    admin = api_as("admin")
    assert admin.get(f"{BREAKERS}nowhere/").status_code == 404
    assert patch_json(admin, f"{BREAKERS}nowhere/", {"window_size": 10}).status_code == 404
    assert admin.post(f"{BREAKERS}nowhere/force-open/").status_code == 404
    assert not BreakerState.objects.filter(name="nowhere").exists()  # no breaker was made up on the way


@pytest.mark.parametrize("url", ENDPOINTS)
def test_every_endpoint_needs_credentials(client, payments, url):
    response = client.get(url, HTTP_ACCEPT="application/json")
    assert response.status_code == 401


@pytest.mark.parametrize("role", ["none", "viewer", "triager"])
def test_only_an_admin_may_change_or_switch_a_breaker(api_as, payments, role):
    before = config_version()
    assert patch_json(api_as(role), PAYMENTS, {"window_size": 50}).status_code == 403
    for switch in ("force-open", "force-closed", "reset", "auto"):
        assert api_as(role).post(f"{PAYMENTS}{switch}/").status_code == 403
    payments.refresh_from_db()
    assert payments.window_size == 20 and config_version() == before
    assert not BreakerState.objects.filter(name="payments-api").exists()


def test_a_role_less_user_cannot_even_read(api_as, payments):
    assert api_as("none").get(BREAKERS).status_code == 403


def test_an_admin_patch_saves_only_the_fields_sent_and_bumps_the_config_version(api_as, payments):
    before = config_version()

    response = patch_json(
        api_as("admin"), PAYMENTS, {"failure_rate_threshold": 25, "error_type": "API_SERVER_ERROR", "description": "x"}
    )

    assert response.status_code == 200, response.json()
    assert response.json()["config"]["failure_rate_threshold"] == 25.0
    payments.refresh_from_db()
    assert (payments.failure_rate_threshold, payments.error_type.code, payments.window_size) == (
        25.0,
        "API_SERVER_ERROR",
        20,
    )
    assert config_version() > before  # running processes apply it live
    runtime = process_runtime.runtime()
    process_runtime.apply_saved_config(runtime)
    assert runtime.breaker("payments-api").config.failure_rate_threshold == 25.0


@pytest.mark.parametrize(
    "change, field, says",
    [
        ({"failure_rate_threshold": 150}, "failure_rate_threshold", "(0, 100]"),
        ({"window_size": 0}, "window_size", "at least 1"),
        ({"minimum_calls": 30}, "minimum_calls", "must not exceed window_size (20)"),
        ({"max_wait_duration": 5}, "max_wait_duration", "at least wait_duration"),
        ({"record_exceptions": "nowhere.MadeUpError"}, "record_exceptions", "unknown exception"),
        ({"failure_statuses": "6xx"}, "failure_statuses", "class like '5xx'"),
        ({"window_size": "many"}, "window_size", "integer"),
        ({"window_kind": "forever"}, "window_kind", "not a valid choice"),
        ({"error_type": "NO_SUCH_TYPE"}, "error_type", "does not exist"),
        ({"colour": "red"}, "colour", "is not a config field you can change"),
        ({"name": "renamed"}, "name", "is not a config field you can change"),
        ({"description": "fine", "wait_multiplier": 0.5}, "wait_multiplier", "at least 1"),
    ],
)
def test_an_invalid_patch_is_refused_whole_naming_the_field(api_as, payments, change, field, says):
    before = config_version()

    response = patch_json(api_as("admin"), PAYMENTS, change)

    assert response.status_code == 400
    body = response.json()
    assert body["field"] == field and says in body["error"], body
    assert Breaker.objects.get(pk=payments.pk).description == ""  # nothing of it was saved
    assert config_version() == before


def test_a_patch_body_must_be_an_object(api_as, payments):
    response = patch_json(api_as("admin"), PAYMENTS, [{"window_size": 10}])
    assert response.status_code == 400 and response.json()["field"] == "body"


def test_force_open_opens_the_shared_state_and_records_the_transition(api_as, payments):
    response = post_json(api_as("admin"), f"{PAYMENTS}force-open/", {"reason": "maintenance"})

    assert response.status_code == 200
    shown = response.json()["circuit_breaker"]
    assert (shown["state"], shown["mode"]) == ("open", "forced_open")
    shared = BreakerState.objects.get(name="payments-api")
    assert (shared.state, shared.mode, shared.last_reason) == ("open", "forced_open", "api: admin-user: maintenance")
    process_runtime.flush_reports()
    transition = BreakerTransition.objects.get(breaker_name="payments-api")
    assert (transition.from_state, transition.to_state, transition.breaker) == ("closed", "open", payments)
    assert transition.reason == "api: admin-user: maintenance"


def test_the_switches_move_the_breaker_as_the_admin_actions_do(api_as, payments):
    admin = api_as("admin")
    states = []
    for switch in ("force-open", "auto", "force-closed", "reset"):
        response = admin.post(f"{PAYMENTS}{switch}/")
        assert response.status_code == 200
        shown = response.json()["circuit_breaker"]
        states.append((shown["state"], shown["mode"]))
    # Leaving a forced opening probes first; a reset closes it in automatic mode.
    assert states == [("open", "forced_open"), ("half_open", "auto"), ("closed", "forced_closed"), ("closed", "auto")]
    process_runtime.flush_reports()
    history = BreakerTransition.objects.order_by("at", "id").values_list("to_state", "mode")
    assert list(history) == [
        ("open", "forced_open"),
        ("half_open", "auto"),
        ("closed", "forced_closed"),
        ("closed", "auto"),
    ]


def test_a_switch_refuses_an_unknown_parameter(api_as, payments):
    response = post_json(api_as("admin"), f"{PAYMENTS}force-open/", {"why": "maintenance"})
    assert response.status_code == 400 and response.json()["field"] == "why"
    assert not BreakerState.objects.filter(name="payments-api").exists()


# Ingest quota


@pytest.fixture
def early_in_the_minute():
    """Quotas read a clock standing 5 s into a minute: the counts read must be those of the minute the events
    went into, and no minute turns during the test."""
    start = time.time() // quotas.WINDOW_SECONDS * quotas.WINDOW_SECONDS + 5
    quotas.reset(clock=lambda: start)


def test_rate_limit_status_follows_the_quota_ingest_consumes_without_consuming_any(
    api_as, client, source, early_in_the_minute
):
    source.rate_limit_per_minute = 3
    source.save()
    key = source.keys.get().public_key
    viewer = api_as("viewer")
    fresh = viewer.get("/api/v1/rate-limit-status/", {"source": source.slug}).json()
    assert (fresh["is_rate_limited"], fresh["retry_after_seconds"], fresh["used"]) == (False, None, 0)

    assert [ingest(client, key).status_code for _ in range(4)] == [200, 200, 200, 429]

    for _ in range(2):  # reading twice: the first read took nothing from the quota
        body = viewer.get("/api/v1/rate-limit-status/", {"source": source.slug}).json()
        assert (body["status"], body["source"], body["limit_per_minute"], body["used"]) == (
            "success",
            source.slug,
            3,
            4,
        )
        assert body["is_rate_limited"] is True and 1 <= body["retry_after_seconds"] <= 60


def test_a_source_at_its_limit_is_rate_limited_before_anything_is_refused(api_as, client, source, early_in_the_minute):
    source.rate_limit_per_minute = 2
    source.save()
    key = source.keys.get().public_key
    assert [ingest(client, key).status_code for _ in range(2)] == [200, 200]
    body = api_as("viewer").get("/api/v1/rate-limit-status/", {"source": source.slug}).json()
    assert (body["used"], body["is_rate_limited"]) == (2, True)  # the next event would be refused


@pytest.mark.parametrize(
    "query, field",
    [({}, "source"), ({"source": "nowhere"}, "source"), ({"source": "x", "sauce": "x"}, "sauce")],
)
def test_rate_limit_status_needs_a_known_source(api_as, source, query, field):
    response = api_as("viewer").get("/api/v1/rate-limit-status/", query)
    assert response.status_code == 400 and response.json()["field"] == field


# System health


def test_system_health_is_healthy_with_closed_breakers_and_critical_once_one_opens(api_as, payments):
    Breaker.objects.create(name="search-api")
    viewer = api_as("viewer")
    healthy = viewer.get("/api/v1/system-health/").json()
    assert (healthy["status"], healthy["health"], healthy["circuit_breakers"]) == ("success", "healthy", {})
    assert healthy["metrics"] == {
        "total_errors": 0,
        "critical_errors": 0,
        "high_errors": 0,
        "open_circuits": 0,
        "half_open_circuits": 0,
        "firing_alerts": 0,
    }

    process_runtime.breaker("payments-api").force_open(reason="maintenance")
    body = viewer.get("/api/v1/system-health/").json()

    assert body["health"] == "critical" and body["metrics"]["open_circuits"] == 1
    assert list(body["circuit_breakers"]) == ["payments-api"]  # only the breakers that are not closed
    assert body["circuit_breakers"]["payments-api"]["state"] == "open"


def test_a_half_open_breaker_is_a_warning(api_as, payments):
    breaker = process_runtime.breaker("payments-api")
    breaker.force_open(reason="maintenance")
    breaker.set_auto(reason="probing")
    body = api_as("viewer").get("/api/v1/system-health/").json()
    assert (body["health"], body["metrics"]["half_open_circuits"]) == ("warning", 1)


def test_system_health_counts_the_last_hours_errors_by_severity_from_the_rollups(api_as, client, source, digest):
    key = source.keys.get().public_key
    viewer = api_as("viewer")
    assert ingest(client, key).status_code == 200  # a timeout: MEDIUM severity
    digest()
    medium = viewer.get("/api/v1/system-health/").json()
    assert (medium["health"], medium["metrics"]["total_errors"], medium["metrics"]["critical_errors"]) == (
        "healthy",
        1,
        0,
    )

    memory = {"type": "MemoryError", "value": "out of memory", "module": "builtins"}
    assert ingest(client, key, exception=memory).status_code == 200  # a system failure: CRITICAL
    digest()
    body = viewer.get("/api/v1/system-health/").json()

    assert (body["health"], body["metrics"]["total_errors"], body["metrics"]["critical_errors"]) == ("critical", 2, 1)


def test_system_health_refuses_parameters(api_as):
    response = api_as("viewer").get("/api/v1/system-health/", {"minutes": 5})
    assert response.status_code == 400 and response.json()["field"] == "minutes"


# Degradation


def test_degradation_mode_is_full_while_every_breaker_is_closed(api_as, payments):
    DegradationFeature.objects.create(name="checkout", breakers="payments-api", critical=True)
    DegradationRule.objects.create(name="critical-open", condition="critical_breaker_open", level=2)

    body = api_as("viewer").get("/api/v1/degradation-mode/").json()

    assert body["status"] == "success"
    assert (body["is_degraded"], body["level"], body["open_circuits"], body["affected_features"]) == (
        False,
        "FULL",
        [],
        [],
    )
    assert body["fallback_available"] is True


def test_an_open_critical_breaker_degrades_the_system_and_names_the_features_it_takes_away(api_as, payments):
    Breaker.objects.create(name="prices-api")
    DegradationFeature.objects.create(name="checkout", breakers="payments-api", critical=True)
    DegradationFeature.objects.create(name="price-chart", breakers="prices-api", fallback="cached-prices")
    DegradationFeature.objects.create(name="search", breakers="search-api", min_level=2)
    DegradationRule.objects.create(name="critical-open", condition="critical_breaker_open", level=2)
    runtime = process_runtime.runtime()
    runtime.fallbacks.register("cached-prices", lambda *args, **kwargs: [])
    process_runtime.apply_saved_config(runtime)

    admin = api_as("admin")
    assert admin.post(f"{PAYMENTS}force-open/").status_code == 200
    body = admin.get("/api/v1/degradation-mode/").json()

    assert (body["is_degraded"], body["level"], body["open_circuits"]) == (True, "MINIMAL", ["payments-api"])
    affected = {entry["feature"]: entry for entry in body["affected_features"]}
    assert set(affected) == {"checkout", "price-chart"}  # search runs down to MINIMAL, and its breaker is closed
    assert affected["checkout"]["status"] == "unavailable" and affected["checkout"]["fallback"] is None
    assert "payments-api" in affected["checkout"]["reason"]
    # Its own breaker is closed, but it only runs down to DEGRADED: at MINIMAL its fallback serves it.
    assert (affected["price-chart"]["status"], affected["price-chart"]["fallback"]) == ("degraded", "cached-prices")
    assert "cached-prices" in affected["price-chart"]["message"]
    assert "MINIMAL" in affected["price-chart"]["reason"]
    assert body["fallback_available"] is False  # checkout has none


def test_the_quota_of_an_unlimited_source_is_never_limited(api_as, client, source):
    source.rate_limit_per_minute = 0
    source.save()
    assert ingest(client, source.keys.get().public_key).status_code == 200
    body = api_as("viewer").get("/api/v1/rate-limit-status/", {"source": source.slug}).json()
    assert (body["limit_per_minute"], body["is_rate_limited"], body["retry_after_seconds"]) == (0, False, None)
