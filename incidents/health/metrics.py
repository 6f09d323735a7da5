"""Prometheus metrics at /metrics: the console's state, read from the database at scrape time.

    GET /metrics   Authorization: Bearer <an admin's API token>, or from an address in METRICS_ALLOWED_IPS

Database figures are the same whichever process answers. `console_ingest_latency_seconds` and
the process_* metrics are of the answering process only: scrape each web process directly
(Prometheus service discovery), not through a load balancer. Every database figure is one
grouped query over rollups or small tables; no event is read, except the oldest of each source
(one index probe each), which with the table sizes is read at most every 30 s (retention.sizes).
"""

import ipaddress
import logging
from collections.abc import Iterator

import redis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Count, Sum
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from django_q.models import OrmQ
from prometheus_client import CollectorRegistry, Counter, GCCollector, Histogram, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from rest_framework.exceptions import AuthenticationFailed

from access.authentication import TokenAuthentication
from access.roles import Role, role_of
from incidents.health.probes import redis_client
from incidents.models import (
    Alert,
    AlertRule,
    ErrorType,
    Incident,
    Notification,
    NotificationChannel,
    Severity,
    Source,
    SourceHour,
)
from incidents.retention import sizes
from resilience.models import Breaker, BreakerState

logger = logging.getLogger(__name__)

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

INGEST_LATENCY = Histogram(
    "console_ingest_latency_seconds",
    "Time to answer an ingest request (body read, checks, durable insert), in this process.",
    ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
LIVE_CATCH_UPS = Counter(
    "console_live_catch_ups",
    "Websocket connections of this process whose client fell so far behind that their waiting "
    "messages were dropped, to be read from the table when the client reads again.",
    registry=REGISTRY,
)


class ConsoleCollector(Collector):
    """Reads the console's state from the database (and the task queue's length) at each scrape."""

    def collect(self):
        yield self._events_ingested()
        yield self._incidents_open()
        yield self._breaker_state()
        yield self._alerts_firing()
        yield self._notification_failures()
        yield from self._retention()
        depth = self._task_queue_depth()
        if depth is not None:
            yield depth

    @staticmethod
    def _events_ingested() -> CounterMetricFamily:
        family = CounterMetricFamily(
            "console_events_ingested",
            "Events digested, by source, category and severity.",
            labels=["source", "category", "severity"],
        )
        # From the hour rollup, whose expired rows are folded rather than deleted: a counter must never
        # go down, and minute rollups are purged. Grouped on the rollup's own columns, without joins;
        # the few names are mapped afterwards.
        rows = SourceHour.objects.values_list("source_id", "error_type_id", "severity").annotate(n=Sum("count"))
        sources = dict(Source.objects.values_list("pk", "slug").order_by())
        categories = dict(ErrorType.objects.values_list("pk", "category").order_by())
        totals: dict[tuple[str, str, str], int] = {}
        for source_id, error_type_id, severity, count in rows.order_by():
            key = (sources.get(source_id, str(source_id)), categories.get(error_type_id, "UNKNOWN"), _label(severity))
            totals[key] = totals.get(key, 0) + count
        for key, count in sorted(totals.items()):
            family.add_metric(list(key), count)
        return family

    @staticmethod
    def _incidents_open() -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "console_incidents_open", "Incidents with status open, by severity.", labels=["severity"]
        )
        counts = dict(
            Incident.objects.filter(status=Incident.Status.OPEN)
            .values_list("severity")
            .annotate(n=Count("id"))
            .order_by()
        )
        for severity in Severity:
            family.add_metric([severity.label], counts.get(severity.value, 0))
        return family

    @staticmethod
    def _breaker_state() -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "console_breaker_state",
            "Circuit breakers' shared state: 1 for the state each breaker is in, 0 for the others.",
            labels=["breaker", "state"],
        )
        states = dict(BreakerState.objects.values_list("name", "state").order_by())
        for name in Breaker.objects.values_list("name", flat=True).order_by():
            states.setdefault(name, BreakerState.State.CLOSED)  # configured, never used yet
        for name, current in sorted(states.items()):
            for state in BreakerState.State.values:
                family.add_metric([name, state], 1 if state == current else 0)
        return family

    @staticmethod
    def _alerts_firing() -> GaugeMetricFamily:
        family = GaugeMetricFamily("console_alerts_firing", "Firing alerts per alert rule.", labels=["rule"])
        firing = dict(
            Alert.objects.filter(state=Alert.State.FIRING).values_list("rule_id").annotate(n=Count("id")).order_by()
        )
        for rule_id, name in AlertRule.objects.values_list("pk", "name").order_by("name"):
            family.add_metric([name], firing.get(rule_id, 0))
        return family

    @staticmethod
    def _notification_failures() -> CounterMetricFamily:
        family = CounterMetricFamily(
            "console_notification_failures",
            "Notifications that failed for good (no attempt left), per channel.",
            labels=["channel"],
        )
        failed = dict(
            Notification.objects.filter(status=Notification.Status.FAILED)
            .values_list("channel_id")
            .annotate(n=Count("id"))
            .order_by()
        )
        for channel_id, name in NotificationChannel.objects.values_list("pk", "name").order_by("name"):
            family.add_metric([name], failed.get(channel_id, 0))
        return family

    @staticmethod
    def _retention() -> Iterator[GaugeMetricFamily]:
        """Table sizes, the oldest event per source and the last purge, as retention.sizes caches them."""
        tables = sizes.table_sizes()
        on_disk = GaugeMetricFamily("console_table_bytes", "Bytes a table takes, indexes included.", labels=["table"])
        rows = GaugeMetricFamily(
            "console_table_rows_estimate", "Rows of a table (PostgreSQL's estimate).", labels=["table"]
        )
        for table in tables:
            if table.bytes is not None:
                on_disk.add_metric([table.table], table.bytes)
            if table.rows is not None:
                rows.add_metric([table.table], table.rows)
        yield on_disk
        yield rows
        yield ConsoleCollector._oldest_event_age()
        yield from ConsoleCollector._last_purge()

    @staticmethod
    def _oldest_event_age() -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "console_oldest_event_age_seconds",
            "Age of the oldest stored event, per source (sources storing none are left out).",
            labels=["source"],
        )
        now = timezone.now()
        for oldest in sizes.oldest_events():
            if oldest.received_at is not None:
                family.add_metric([oldest.slug], (now - oldest.received_at).total_seconds())
        return family

    @staticmethod
    def _last_purge() -> Iterator[GaugeMetricFamily]:
        """The last purge that is not running; no samples before the first one."""
        run = sizes.last_purge()
        figures = {
            "console_last_purge_timestamp_seconds": ("When the last purge finished (Unix time).", "finished"),
            "console_last_purge_duration_seconds": ("How long the last purge took.", "duration"),
            "console_last_purge_rows_removed": ("Rows the last purge removed, every step together.", "rows"),
            "console_last_purge_partitions_dropped": ("Event partitions the last purge dropped whole.", "partitions"),
        }
        values = {}
        if run is not None and run.finished_at is not None:
            values = {
                "finished": run.finished_at.timestamp(),
                "duration": run.duration.total_seconds(),
                "rows": run.rows_removed,
                "partitions": run.partitions_dropped,
            }
        for name, (documentation, key) in figures.items():
            family = GaugeMetricFamily(name, documentation)
            if key in values:
                family.add_metric([], values[key])
            yield family

    @staticmethod
    def _task_queue_depth() -> GaugeMetricFamily | None:
        """Tasks waiting in django-q2's queue (those a worker holds are not counted), or None if unknown."""
        q_cluster = settings.Q_CLUSTER
        queue = q_cluster.get("cluster_name", q_cluster.get("name", "default"))  # django-q2's Conf.CLUSTER_NAME
        try:
            if q_cluster.get("redis"):
                # What django_q.brokers.redis_broker.Redis.queue_size() reads, with a short timeout.
                depth = redis_client(q_cluster["redis"]).llen(f"django_q:{queue}:q")
            else:
                # What django_q.brokers.orm.ORM.queue_size() counts, without its close_old_connections().
                orm = OrmQ.objects.using(q_cluster.get("orm", "default"))
                depth = orm.filter(key=queue, lock__lte=timezone.now()).count()
        except redis.RedisError:
            logger.warning("metrics: reading the task queue's length failed", exc_info=True)
            return None
        family = GaugeMetricFamily("console_task_queue_depth", "Tasks waiting in the django-q2 queue.")
        family.add_metric([], depth)
        return family


def _label(severity: int) -> str:
    try:
        return Severity(severity).label
    except ValueError:
        return str(severity)


REGISTRY.register(ConsoleCollector())


@never_cache
@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    """The console's metrics in Prometheus' text format (or OpenMetrics, if the scraper asks for it)."""
    refused = _refusal(request)
    if refused is not None:
        return refused
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encoder(REGISTRY), content_type=content_type)


def _refusal(request: HttpRequest) -> JsonResponse | None:
    """None if the request may read metrics, else the 401 or 403 answer saying why not."""
    address = request.META.get("REMOTE_ADDR", "")
    if _address_allowed(address):
        return None
    try:
        authenticated = TokenAuthentication().authenticate(request)
    except AuthenticationFailed as exc:
        return _refuse(401, str(exc.detail))
    if authenticated is None:
        if settings.METRICS_ALLOWED_IPS:
            return _refuse(403, f"address {address} is not in METRICS_ALLOWED_IPS; or send an admin's API token")
        return _refuse(401, "an admin's API token is required (Authorization: Bearer ict_...)")
    user, _token = authenticated
    if role_of(user) < Role.ADMIN:
        return _refuse(403, "metrics need an admin's API token")
    return None


def _refuse(status: int, message: str) -> JsonResponse:
    response = JsonResponse({"error": message, "field": None}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = TokenAuthentication.keyword
    return response


def _address_allowed(address: str) -> bool:
    networks = _allowed_networks(tuple(settings.METRICS_ALLOWED_IPS))
    if not networks:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)


_networks_cache: dict[tuple[str, ...], list] = {}


def _allowed_networks(entries: tuple[str, ...]) -> list:
    """METRICS_ALLOWED_IPS as networks (a bare address is a /32 or /128); a bad entry fails loudly."""
    networks = _networks_cache.get(entries)
    if networks is None:
        try:
            networks = [ipaddress.ip_network(entry.strip()) for entry in entries if entry.strip()]
        except ValueError as exc:
            raise ImproperlyConfigured(f"METRICS_ALLOWED_IPS: {exc}") from None
        _networks_cache.clear()
        _networks_cache[entries] = networks
    return networks
