"""/healthz, /readyz and /metrics: probes that say what fails, and metrics that reflect the data."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest
from django.db.models import Sum
from django.utils import timezone
from django_q.brokers import get_broker
from prometheus_client.parser import text_string_to_metric_families

from incidents import services
from incidents.ingest import pipeline
from incidents.ingest.normalize import normalize_native_event
from incidents.models import (
    Alert,
    AlertRule,
    Incident,
    Notification,
    NotificationChannel,
    Severity,
    SourceHour,
    SourceMinute,
)
from resilience import process_runtime
from tests.e2e.captured_server import ROOT, stop_process
from tests.support import FastPathClient, database_url_for_processes, native_event, wait_until

pytestmark = pytest.mark.django_db


@pytest.fixture
def cluster_name(settings) -> str:
    """A cluster name of this test's own, so that no other console's workers or queue count here."""
    name = f"health-{uuid.uuid4().hex[:8]}"
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "name": name}
    return name


def metric(text: str, name: str, **labels) -> float | None:
    """The value of one sample in a Prometheus text exposition, or None if it is absent."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(key) == value for key, value in labels.items()):
                return sample.value
    return None


def scrape(api_as) -> str:
    response = api_as("admin").get("/metrics")
    assert response.status_code == 200, response.content
    return response.content.decode()


def post_events(client, key, events: list[dict]):
    body = json.dumps({"events": events}) if len(events) > 1 else json.dumps(events[0])
    return client.post(
        "/api/v1/events/", data=body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key.public_key}"
    )


# /healthz


def test_healthz_answers_ok_to_anyone(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_healthz_only_answers_reads(client):
    assert client.post("/healthz").status_code == 405


# /readyz


def test_readyz_names_the_workers_when_no_cluster_is_running(client, settings, cluster_name):
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready"
    assert body["failing"] == ["workers"]
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"] == ("ok" if settings.REDIS_URL else "not configured")
    assert body["checks"]["workers"] != "ok" and body["error"].startswith("workers: ")


def test_readyz_reports_an_unreachable_redis_without_its_address(client, settings, cluster_name):
    settings.REDIS_URL = "redis://:s3cret-password@127.0.0.1:1/0"  # nothing listens on port 1
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert "redis" in body["failing"] and body["checks"]["redis"].startswith("unreachable")
    assert "s3cret" not in response.content.decode() and "127.0.0.1" not in response.content.decode()


@contextlib.contextmanager
def database_read_only():
    """New sessions of the test database start read-only, as on a standby or a server set so."""
    import psycopg
    from django.db import connection

    def alter(statement: str) -> None:
        # Its own session, outside the test's transaction; read-write even once the default is read-only.
        options = "-c default_transaction_read_only=off"
        with psycopg.connect(database_url_for_processes(), autocommit=True, options=options) as admin:
            admin.execute(statement.format(name=psycopg.sql.Identifier(connection.settings_dict["NAME"]).as_string()))

    alter("ALTER DATABASE {name} SET default_transaction_read_only = on")
    connection.pool.drain()  # the pool's sessions started before: replace them with read-only ones
    try:
        yield
    finally:
        alter("ALTER DATABASE {name} RESET default_transaction_read_only")
        connection.pool.drain()


def test_readyz_reports_a_database_that_refuses_writes(client, cluster_name):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("read-only sessions are a PostgreSQL setting")
    with database_read_only():
        response = client.get("/readyz")
    assert response.status_code == 503
    assert "database" in response.json()["failing"]
    assert response.json()["checks"]["database"] == "read-only"


@pytest.fixture
def cluster_env(cluster_name, transactional_db) -> dict:
    """The environment of a worker process of this test's cluster name, sharing the test database."""
    return {
        **os.environ,
        "DATABASE_URL": database_url_for_processes(),
        "Q_CLUSTER_NAME": cluster_name,
        "PYTHONPATH": str(ROOT),
    }


@pytest.mark.live
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_readyz_is_ready_while_a_real_cluster_runs_and_not_after_it_stops(client, settings, cluster_env):
    assert client.get("/readyz").status_code == 503
    # In its own process group, so that stopping it also stops its workers.
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=cluster_env, start_new_session=True
    )
    try:
        ready = wait_until(lambda: client.get("/readyz").status_code == 200, timeout=60, interval=0.2)
        assert ready, client.get("/readyz").json()
        redis = "ok" if settings.REDIS_URL else "not configured"
        assert client.get("/readyz").json() == {
            "status": "ready",
            "checks": {"database": "ok", "redis": redis, "workers": "ok"},
        }
        stop_process(worker)
        # Its last heartbeat expires within seconds of it stopping.
        assert wait_until(lambda: client.get("/readyz").status_code == 503, timeout=15, interval=0.2)
        assert client.get("/readyz").json()["failing"] == ["workers"]
    finally:
        stop_process(worker)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)


# /metrics: who may read them


def test_metrics_refuse_a_request_without_credentials(client, settings):
    settings.METRICS_ALLOWED_IPS = []
    response = client.get("/metrics")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert response.json()["error"].startswith("an admin's API token is required")


@pytest.mark.parametrize("role", ["viewer", "triager", "none"])
def test_metrics_refuse_a_token_of_anyone_but_an_admin(api_as, settings, role):
    settings.METRICS_ALLOWED_IPS = []
    response = api_as(role).get("/metrics")
    assert response.status_code == 403
    assert response.json() == {"error": "metrics need an admin's API token", "field": None}


def test_metrics_refuse_an_unknown_token(client, settings):
    settings.METRICS_ALLOWED_IPS = []
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer ict_not-a-real-token")
    assert response.status_code == 401


def test_metrics_answer_an_admin_token_in_prometheus_text_format(api_as, settings):
    settings.METRICS_ALLOWED_IPS = []
    response = api_as("admin").get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    text = response.content.decode()
    for name in ("console_incidents_open", "console_breaker_state", "console_task_queue_depth"):
        assert f"# TYPE {name} gauge" in text
    assert "# TYPE console_ingest_latency_seconds histogram" in text


def test_metrics_answer_openmetrics_to_a_scraper_asking_for_it(api_as):
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    response = api_as("admin").get("/metrics", HTTP_ACCEPT=accept)
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.decode().endswith("# EOF\n")


def test_metrics_answer_an_allowed_address_and_refuse_others(client, settings):
    settings.METRICS_ALLOWED_IPS = ["10.20.0.0/16", "192.0.2.7", "2001:db8::/32"]
    assert client.get("/metrics", REMOTE_ADDR="10.20.3.4").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.7").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="2001:db8::1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::ffff:10.20.0.9").status_code == 200
    refused = client.get("/metrics", REMOTE_ADDR="10.21.0.1")
    assert refused.status_code == 403
    assert "10.21.0.1 is not in METRICS_ALLOWED_IPS" in refused.json()["error"]


def test_a_bad_allowed_address_fails_loudly(client, settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.METRICS_ALLOWED_IPS = ["10.20.0.0/33"]
    with pytest.raises(ImproperlyConfigured, match="METRICS_ALLOWED_IPS"):
        client.get("/metrics", REMOTE_ADDR="10.20.3.4")


# /metrics: what they say


def test_ingested_events_are_counted_by_source_category_and_severity(client, api_as, source, ingest_key, digest):
    assert post_events(client, ingest_key, [native_event() for _ in range(3)]).status_code == 200
    assert post_events(client, ingest_key, [native_event()]).status_code == 200
    digest()
    incident = Incident.objects.select_related("error_type").get()
    labels = {"source": source.slug, "category": incident.error_type.category}
    text = scrape(api_as)
    assert metric(text, "console_events_ingested_total", **labels, severity=Severity(incident.severity).label) == 4
    assert metric(text, "console_incidents_open", severity=Severity(incident.severity).label) == 1

    services.incident_acknowledge(incident=incident, by="user:ops")
    assert metric(scrape(api_as), "console_incidents_open", severity=Severity(incident.severity).label) == 0


def test_the_ingested_events_counter_stays_when_minute_rollups_are_purged_and_hour_rollups_folded(
    api_as, source, digest
):
    now = timezone.now()
    events = [native_event(timestamp=(now - timedelta(days=days)).isoformat()) for days in (20, 16, 3, 0)]
    pipeline.events_store(
        source=source, events=[normalize_native_event(event, received_at=now) for event in events], received_at=now
    )
    digest()
    incident = Incident.objects.select_related("error_type").get()
    labels = {
        "source": source.slug,
        "category": incident.error_type.category,
        "severity": Severity(incident.severity).label,
    }
    assert metric(scrape(api_as), "console_events_ingested_total", **labels) == 4

    SourceMinute.objects.filter(minute__lt=now - timedelta(days=14)).delete()
    assert SourceMinute.objects.aggregate(n=Sum("count"))["n"] == 2
    assert metric(scrape(api_as), "console_events_ingested_total", **labels) == 4

    # Fold the hour rows older than 10 days into one row per key, as the purge does past the hour retention.
    expired = SourceHour.objects.filter(hour__lt=now - timedelta(days=10))
    keys = ("source_id", "error_type_id", "severity", "environment")
    folded = [
        SourceHour(**{key: row[key] for key in keys}, hour=SourceHour.FOLDED_HOUR, count=row["n"])
        for row in expired.values(*keys).annotate(n=Sum("count")).order_by()
    ]
    assert expired.delete()[0] == 2 and [row.count for row in folded] == [2]
    SourceHour.objects.bulk_create(folded)
    assert metric(scrape(api_as), "console_events_ingested_total", **labels) == 4


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # the fast path's writer commits on its own
def test_ingest_latency_is_observed_on_both_ways_in(client, api_as, ingest_key):
    before = metric(scrape(api_as), "console_ingest_latency_seconds_count", endpoint="native") or 0
    assert post_events(client, ingest_key, [native_event()]).status_code == 200
    assert post_events(FastPathClient(), ingest_key, [native_event()]).status_code == 200
    refused = client.post("/api/v1/events/", data="{}", content_type="application/json")
    assert refused.status_code == 401
    text = scrape(api_as)
    assert metric(text, "console_ingest_latency_seconds_count", endpoint="native") == before + 3
    assert metric(text, "console_ingest_latency_seconds_sum", endpoint="native") > 0


@pytest.mark.django_db
def test_a_forced_open_breaker_shows_state_open(api_as, console_inline):
    name = f"metrics-{uuid.uuid4().hex[:8]}"
    process_runtime.breaker(name).force_open(reason="maintenance")
    text = scrape(api_as)
    assert metric(text, "console_breaker_state", breaker=name, state="open") == 1
    assert metric(text, "console_breaker_state", breaker=name, state="closed") == 0
    assert metric(text, "console_breaker_state", breaker=name, state="half_open") == 0


def test_firing_alerts_and_failed_notifications_are_counted_per_rule_and_channel(api_as):
    firing_rule = AlertRule.objects.create(name="checkout errors", warning_threshold=10)
    quiet_rule = AlertRule.objects.create(name="search errors", warning_threshold=10)
    Alert.objects.create(rule=firing_rule, group_key="a", state=Alert.State.FIRING)
    Alert.objects.create(rule=firing_rule, group_key="b", state=Alert.State.FIRING)
    Alert.objects.create(rule=quiet_rule, group_key="", state=Alert.State.RESOLVED)
    pager = NotificationChannel.objects.create(name="pager", kind="webhook", config={"url": "https://example.com/"})
    chat = NotificationChannel.objects.create(name="chat", kind="webhook", config={"url": "https://example.com/"})
    for status in ("failed", "failed", "retried", "sent"):
        Notification.objects.create(
            channel=pager, event="test", severity=Severity.HIGH, message={}, status=status, finished_at=timezone.now()
        )
    text = scrape(api_as)
    assert metric(text, "console_alerts_firing", rule="checkout errors") == 2
    assert metric(text, "console_alerts_firing", rule="search errors") == 0
    assert metric(text, "console_notification_failures_total", channel=pager.name) == 2
    assert metric(text, "console_notification_failures_total", channel=chat.name) == 0


def test_the_task_queue_depth_counts_tasks_waiting_on_the_broker(api_as, cluster_name):
    broker = get_broker(list_key=cluster_name)  # the broker type the console is configured with
    try:
        assert metric(scrape(api_as), "console_task_queue_depth") == 0
        broker.enqueue("first")
        broker.enqueue("second")
        assert metric(scrape(api_as), "console_task_queue_depth") == 2
    finally:
        broker.delete_queue()
