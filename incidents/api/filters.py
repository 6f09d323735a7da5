"""Filters of the incident and event lists (django-filter); unknown names are refused by the backend."""

import django_filters as filters
from drf_spectacular.utils import extend_schema_field

from access.filters import StrictBooleanFilter
from incidents.api.serializers import SEVERITY_BY_NAME
from incidents.models import Category, ErrorEvent, Incident, Level

SEVERITY_CHOICES = [(name, name) for name in SEVERITY_BY_NAME]


@extend_schema_field({"type": "string", "enum": list(SEVERITY_BY_NAME)})
class SeverityFilter(filters.ChoiceFilter):
    """`severity=high` (exactly) and `min_severity=high` (at or above) by name."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("choices", SEVERITY_CHOICES)
        super().__init__(*args, **kwargs)

    def filter(self, qs, value):
        return super().filter(qs, SEVERITY_BY_NAME[value] if value else value)


class IncidentFilter(filters.FilterSet):
    status = filters.MultipleChoiceFilter(choices=Incident.Status.choices)
    severity = SeverityFilter(field_name="severity")
    min_severity = SeverityFilter(field_name="severity", lookup_expr="gte")
    category = filters.ChoiceFilter(choices=Category.choices)
    source = filters.CharFilter(field_name="source__slug")
    error_type = filters.CharFilter(field_name="error_type__code")
    environment = filters.CharFilter(field_name="environments__environment")
    regressed = StrictBooleanFilter()
    last_seen_after = filters.IsoDateTimeFilter(field_name="last_seen", lookup_expr="gte")
    last_seen_before = filters.IsoDateTimeFilter(field_name="last_seen", lookup_expr="lt")

    class Meta:
        model = Incident
        fields = ()


class EventFilter(filters.FilterSet):
    incident = filters.NumberFilter(field_name="incident_id")
    source = filters.CharFilter(field_name="source__slug")
    level = filters.ChoiceFilter(choices=Level.choices)
    severity = SeverityFilter(field_name="severity")
    min_severity = SeverityFilter(field_name="severity", lookup_expr="gte")
    error_type = filters.CharFilter(field_name="error_type__code")
    environment = filters.CharFilter()
    release = filters.CharFilter()
    received_after = filters.IsoDateTimeFilter(field_name="received_at", lookup_expr="gte")
    received_before = filters.IsoDateTimeFilter(field_name="received_at", lookup_expr="lt")

    class Meta:
        model = ErrorEvent
        fields = ()
