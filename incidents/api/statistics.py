"""Summary, statistics and notifications, read from the rollups (never by scanning raw events).

The JSON shapes of `summary` and `notifications` use the error API's envelope
(status / data / timestamp), extended with the window and per-severity figures.
"""

from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from access.errors import FieldError
from access.roles import Role
from incidents import selectors, services
from incidents.api.serializers import SEVERITY_BY_NAME, SEVERITY_NAMES, IncidentSerializer
from incidents.models import MAX_WINDOW_MINUTES, Category, ErrorType, Incident, Source

# Minute buckets are for charts of up to a day; longer windows are drawn per hour.
MAX_MINUTE_BUCKETS = 1440


class SelectionQuery(serializers.Serializer):
    """Which events to count, by the names people use (slugs and codes)."""

    minutes = serializers.IntegerField(required=False, min_value=1, max_value=MAX_WINDOW_MINUTES, default=1440)
    source = serializers.SlugField(required=False)
    error_type = serializers.CharField(required=False, max_length=64)
    category = serializers.ChoiceField(required=False, choices=Category.values)
    min_severity = serializers.ChoiceField(required=False, choices=list(SEVERITY_BY_NAME))
    environment = serializers.CharField(required=False, max_length=64)

    def validate_source(self, slug: str) -> int:
        source = Source.objects.filter(slug=slug).values_list("id", flat=True).first()
        if source is None:
            raise serializers.ValidationError(f"no source {slug!r}")
        return source

    def validate_error_type(self, code: str) -> int:
        error_type = ErrorType.objects.filter(code=code).values_list("id", flat=True).first()
        if error_type is None:
            raise serializers.ValidationError(f"no error type {code!r}")
        return error_type

    def selection(self) -> selectors.EventSelection:
        data = self.validated_data
        return selectors.EventSelection(
            source_id=data.get("source"),
            error_type_id=data.get("error_type"),
            category=data.get("category", ""),
            min_severity=SEVERITY_BY_NAME.get(data.get("min_severity", "")),
            environment=data.get("environment", ""),
        )


class StatsQuery(SelectionQuery):
    interval = serializers.ChoiceField(required=False, choices=["minute", "hour"], default="minute")
    minutes = serializers.IntegerField(required=False, min_value=1, max_value=MAX_WINDOW_MINUTES, default=60)

    def validate(self, data):
        if data["interval"] == "minute" and data["minutes"] > MAX_MINUTE_BUCKETS:
            raise serializers.ValidationError(
                {"minutes": f"per-minute series cover at most {MAX_MINUTE_BUCKETS} minutes; use interval=hour"}
            )
        return data


class NotificationsQuery(serializers.Serializer):
    severity = serializers.ChoiceField(required=False, choices=list(SEVERITY_BY_NAME))
    limit = serializers.IntegerField(required=False, min_value=1, max_value=100, default=20)


def parsed_query(request, query_class) -> serializers.Serializer:
    """The request's query parameters validated by `query_class`; unknown ones are refused."""
    query = query_class(data=request.query_params.dict())
    for name in request.query_params:
        if name not in query.fields and name != "format":
            raise FieldError(name, f"is not a parameter here; use any of {', '.join(sorted(query.fields))}")
    query.is_valid(raise_exception=True)
    return query


def _now_iso() -> str:
    return timezone.now().isoformat()


def _parameters(query_class) -> list[OpenApiParameter]:
    return [OpenApiParameter(name, str, required=False) for name in query_class().fields]


class SummaryView(APIView):
    """Total errors in a window, counts by category and severity, and the most recent errors."""

    @extend_schema(
        parameters=_parameters(SelectionQuery),
        responses=inline_serializer(
            "Summary",
            {
                "status": serializers.CharField(),
                "data": serializers.DictField(),
                "timestamp": serializers.DateTimeField(),
            },
        ),
    )
    def get(self, request):
        query = parsed_query(request, SelectionQuery)
        since = selectors.window_start(query.validated_data["minutes"])
        counts = selectors.error_counts(query.selection(), since)
        data = {
            "window_minutes": query.validated_data["minutes"],
            "total_errors": counts["total"],
            "error_counts": {
                f"{category.lower()}_{SEVERITY_NAMES[severity]}": total
                for (category, severity), total in sorted(counts["by_pair"].items())
            },
            "by_category": counts["by_category"],
            "by_severity": {
                SEVERITY_NAMES[severity]: total for severity, total in sorted(counts["by_severity"].items())
            },
            "recent_errors": [
                {
                    "error_id": str(event.event_id),
                    "incident": event.incident_id,
                    "message": event.message or event.title,
                    "category": (event.error_type.category if event.error_type else "UNKNOWN").lower(),
                    "severity": SEVERITY_NAMES.get(event.severity),
                    "timestamp": event.received_at.isoformat(),
                }
                for event in selectors.recent_events(limit=10)
            ],
        }
        return Response({"status": "success", "data": data, "timestamp": _now_iso()})


class StatsView(APIView):
    """A time series per minute or hour for any selection, the error rate, top error types and incidents."""

    @extend_schema(
        parameters=_parameters(StatsQuery),
        responses=inline_serializer("Stats", {"status": serializers.CharField(), "series": serializers.ListField()}),
    )
    def get(self, request):
        query = parsed_query(request, StatsQuery)
        minutes, hourly = query.validated_data["minutes"], query.validated_data["interval"] == "hour"
        selection, since = query.selection(), selectors.window_start(minutes)
        series = selectors.event_series(selection, since, hourly=hourly)
        total = sum(count for _, count in series)
        return Response(
            {
                "status": "success",
                "interval": query.validated_data["interval"],
                "window_minutes": minutes,
                "series": [{"time": at.isoformat(), "count": count} for at, count in series],
                "total": total,
                "error_rate_per_minute": round(total / minutes, 3),
                "top_error_types": selectors.top_error_types(selection, since),
                "top_incidents": selectors.top_incidents(selection, since),
                "timestamp": _now_iso(),
            }
        )


class NotificationsView(APIView):
    """Open incidents as user-facing notifications, each with the catalog's suggested action."""

    @extend_schema(
        parameters=_parameters(NotificationsQuery),
        responses=inline_serializer(
            "Notifications",
            {
                "status": serializers.CharField(),
                "notifications": serializers.ListField(),
                "total": serializers.IntegerField(),
            },
        ),
    )
    def get(self, request):
        query = parsed_query(request, NotificationsQuery)
        incidents = Incident.objects.filter(status=Incident.Status.OPEN).select_related("error_type")
        if "severity" in query.validated_data:
            incidents = incidents.filter(severity=SEVERITY_BY_NAME[query.validated_data["severity"]])
        total = incidents.count()
        chosen = incidents.order_by("-last_seen", "-id")[: query.validated_data["limit"]]
        return Response(
            {
                "status": "success",
                "notifications": [_notification(incident) for incident in chosen],
                "total": total,
                "timestamp": _now_iso(),
            }
        )


def _notification(incident: Incident) -> dict:
    error_type = incident.error_type
    return {
        "id": str(incident.pk),
        "title": f"{incident.category} Error",
        "message": incident.title,
        "severity": SEVERITY_NAMES[incident.severity],
        "timestamp": incident.last_seen.isoformat(),
        "event_count": incident.event_count,
        "action": {
            "type": (error_type.action_type or "none").lower(),
            "message": error_type.suggested_action or error_type.description,
        },
    }


class AcknowledgeView(APIView):
    """Acknowledge the incident behind a notification (the error API's POST /acknowledge/{error_id})."""

    write_role = Role.TRIAGER

    @extend_schema(request=None, responses=IncidentSerializer)
    def post(self, request, incident_id: int):
        incident = get_object_or_404(Incident, pk=incident_id)
        try:
            changed = services.incident_acknowledge(incident=incident, by=request.user)
        except services.IncidentTransitionError as error:
            return Response({"error": str(error), "field": "status"}, status=409)
        body = {"status": "success", "acknowledged": True, "incident": IncidentSerializer(changed).data}
        return Response({**body, "timestamp": _now_iso()})
