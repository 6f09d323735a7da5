"""System health and a source's ingest rate-limit status for the reporting API.

They answer in the circuit breakers' envelope ("status": "success", ..., "timestamp") beside
them in resilience/api/, and read the breakers' statuses from there; what they add is the
incidents side: events' rollups, firing alerts and ingest quotas. Readable by viewers.
"""

from django.db.models import Count, Max
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.views import APIView

from incidents import selectors
from incidents.api.retention import HealthRetentionSerializer, health_section
from incidents.api.statistics import parsed_query
from incidents.ingest import quotas
from incidents.models import Alert, Severity, Source
from resilience.api.serializers import CircuitBreakerStatusSerializer
from resilience.api.views import HALF_OPEN, OPEN, breaker_statuses, refuse_parameters, success

HEALTH_WINDOW_MINUTES = 60
HEALTH_VERDICTS = ["healthy", "warning", "critical"]


# Ingest quota


class RateLimitQuery(serializers.Serializer):
    source = serializers.SlugField(help_text="The source's slug.")

    def validate_source(self, slug: str) -> Source:
        source = Source.objects.filter(slug=slug).first()
        if source is None:
            raise serializers.ValidationError(f"no source {slug!r}")
        return source


class RateLimitStatusSerializer(serializers.Serializer):
    status = serializers.CharField()
    source = serializers.CharField()
    is_rate_limited = serializers.BooleanField(help_text="True when the next event this minute would be refused.")
    retry_after_seconds = serializers.IntegerField(
        allow_null=True, help_text="Until the quota renews; null: not limited."
    )
    limit_per_minute = serializers.IntegerField(help_text="Events accepted per minute; 0: unlimited (and uncounted).")
    used = serializers.IntegerField(help_text="Events counted this minute, refused ones included.")
    timestamp = serializers.DateTimeField()


class RateLimitStatusView(APIView):
    """A source's ingest quota this minute, read from the counters ingest uses without consuming any.

    is_rate_limited is true once the minute's events reach the limit: the next one would be refused.
    """

    @extend_schema(
        parameters=[OpenApiParameter("source", str, required=True, description="The source's slug.")],
        responses=RateLimitStatusSerializer,
    )
    def get(self, request):
        source = parsed_query(request, RateLimitQuery).validated_data["source"]
        limit = source.effective_rate_limit
        used, retry_after = quotas.quota_usage(source_id=source.pk, limit_per_minute=limit)
        return success(
            RateLimitStatusSerializer,
            source=source.slug,
            is_rate_limited=retry_after is not None,
            retry_after_seconds=retry_after,
            limit_per_minute=limit,
            used=used,
        )


# Health


class HealthMetricsSerializer(serializers.Serializer):
    total_errors = serializers.IntegerField(help_text="Events in the last hour, every severity.")
    critical_errors = serializers.IntegerField(help_text="Events of CRITICAL severity in the last hour.")
    high_errors = serializers.IntegerField(help_text="Events of HIGH severity in the last hour.")
    open_circuits = serializers.IntegerField()
    half_open_circuits = serializers.IntegerField()
    firing_alerts = serializers.IntegerField()


class SystemHealthSerializer(serializers.Serializer):
    status = serializers.CharField()
    health = serializers.ChoiceField(choices=HEALTH_VERDICTS)
    metrics = HealthMetricsSerializer()
    circuit_breakers = serializers.DictField(
        child=CircuitBreakerStatusSerializer(), help_text="The breakers that are not closed, keyed by name."
    )
    retention = HealthRetentionSerializer(help_text="Stored data and the last purge (figures cached for 30 s).")
    timestamp = serializers.DateTimeField()


class SystemHealthView(APIView):
    """Overall health from the last hour's rollups, the breakers' shared state and the alerts.

    critical: a circuit is open, an event of CRITICAL severity arrived in the last hour, or a
    CRITICAL alert is firing. warning: otherwise, a circuit is half-open, an alert is firing, or
    an event of HIGH severity arrived in the last hour. healthy: none of these; lower-severity
    events are counted in total_errors but do not change the verdict. Cheap: one grouped query
    on the minute rollups, one on the breakers, one on the alerts; raw events are never read.
    retention: table sizes and the oldest event per source, read at most every 30 seconds per
    process (one index probe per source), and the last purge.
    """

    @extend_schema(responses=SystemHealthSerializer)
    def get(self, request):
        refuse_parameters(request)
        since = selectors.window_start(HEALTH_WINDOW_MINUTES)
        by_severity = selectors.error_counts(selectors.EventSelection(), since)["by_severity"]
        statuses = breaker_statuses()
        alerts = Alert.objects.filter(state=Alert.State.FIRING).aggregate(count=Count("id"), worst=Max("severity"))
        metrics = {
            "total_errors": sum(by_severity.values()),
            "critical_errors": by_severity.get(Severity.CRITICAL, 0),
            "high_errors": by_severity.get(Severity.HIGH, 0),
            "open_circuits": sum(status["state"] == OPEN for status in statuses.values()),
            "half_open_circuits": sum(status["state"] == HALF_OPEN for status in statuses.values()),
            "firing_alerts": alerts["count"],
        }
        return success(
            SystemHealthSerializer,
            health=_verdict(metrics, alerts["worst"]),
            metrics=metrics,
            circuit_breakers={name: status for name, status in statuses.items() if status["state"] != "closed"},
            retention=health_section(),
        )


def _verdict(metrics: dict, worst_alert: int | None) -> str:
    if metrics["open_circuits"] or metrics["critical_errors"] or (worst_alert or 0) >= Severity.CRITICAL:
        return "critical"
    if metrics["half_open_circuits"] or metrics["firing_alerts"] or metrics["high_errors"]:
        return "warning"
    return "healthy"
