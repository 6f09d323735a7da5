"""Reporting API views for incidents, events and statistics: lookup, role check, one service call."""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from access.roles import Role
from incidents import services
from incidents.api import serializers
from incidents.api.filters import EventFilter, IncidentFilter
from incidents.models import ErrorEvent, Incident


def _transition(request, incident: Incident, service, **arguments) -> Response:
    try:
        changed = service(incident=incident, by=request.user, **arguments)
    except services.IncidentTransitionError as error:
        return Response({"error": str(error), "field": "status"}, status=status.HTTP_409_CONFLICT)
    return Response(serializers.IncidentSerializer(changed).data)


class IncidentViewSet(viewsets.ReadOnlyModelViewSet):
    """Incidents, newest activity first; triagers acknowledge, resolve, reopen and mute them."""

    # Sources and error types are small tables: prefetched, they keep the page query on one table, where
    # the planner cannot misjudge a join (a search matching most incidents made it nest loops over them).
    queryset = Incident.objects.prefetch_related("source", "error_type")
    serializer_class = serializers.IncidentSerializer
    filterset_class = IncidentFilter
    search_fields = ("title", "culprit")
    ordering_fields = ("last_seen", "first_seen", "event_count", "user_count", "severity", "id")
    ordering = ("-last_seen", "-id")
    action_roles = {name: Role.TRIAGER for name in ("acknowledge", "resolve", "reopen", "mute")}
    lookup_value_regex = "[0-9]+"

    def get_serializer_class(self):
        return serializers.IncidentDetailSerializer if self.action == "retrieve" else super().get_serializer_class()

    @extend_schema(request=None, responses=serializers.IncidentSerializer)
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, pk=None):
        return _transition(request, self.get_object(), services.incident_acknowledge)

    @extend_schema(request=None, responses=serializers.IncidentSerializer)
    @action(detail=True, methods=["post"])
    def resolve(self, request, pk=None):
        return _transition(request, self.get_object(), services.incident_resolve)

    @extend_schema(request=None, responses=serializers.IncidentSerializer)
    @action(detail=True, methods=["post"])
    def reopen(self, request, pk=None):
        return _transition(request, self.get_object(), services.incident_reopen)

    @extend_schema(request=serializers.MuteSerializer, responses=serializers.IncidentSerializer)
    @action(detail=True, methods=["post"])
    def mute(self, request, pk=None):
        incident = self.get_object()
        form = serializers.MuteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        return _transition(request, incident, services.incident_mute, **form.mute_arguments())


class EventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Events as clients reported them (scrubbed), newest first; filter by incident, source, level..."""

    queryset = ErrorEvent.objects.prefetch_related("source", "error_type")
    serializer_class = serializers.EventSerializer
    filterset_class = EventFilter
    search_fields = ("message", "title")
    ordering_fields = ("received_at", "timestamp", "id")
    ordering = ("-received_at", "-id")
    lookup_value_regex = "[0-9]+"

    def get_serializer_class(self):
        return serializers.EventDetailSerializer if self.action == "retrieve" else super().get_serializer_class()
