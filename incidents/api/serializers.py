"""Serializers of the reporting API: incidents, events, their actions, statistics."""

from datetime import timedelta

from rest_framework import serializers

from incidents.models import ErrorEvent, Incident, IncidentActivity
from incidents.selectors import incident_timeline
from resilience.exceptions import Severity

# The stored rank of each level and the lower-case name the API shows for it.
SEVERITY_NAMES = {level.rank: level.name.lower() for level in Severity}
SEVERITY_BY_NAME = {name: value for value, name in SEVERITY_NAMES.items()}


class SeverityField(serializers.ChoiceField):
    """A severity on the wire: its lower-case name ("high"), stored as its rank."""

    def __init__(self, **kwargs):
        super().__init__(choices=list(SEVERITY_BY_NAME), **kwargs)

    def to_representation(self, value):
        return SEVERITY_NAMES.get(value) if value is not None else None

    def to_internal_value(self, data):
        return SEVERITY_BY_NAME[super().to_internal_value(data)]


class IncidentSerializer(serializers.ModelSerializer):
    source = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    error_type = serializers.SlugRelatedField(slug_field="code", read_only=True)
    severity = SeverityField(read_only=True)

    class Meta:
        model = Incident
        fields = (
            "id",
            "title",
            "culprit",
            "source",
            "error_type",
            "category",
            "severity",
            "status",
            "regressed",
            "first_seen",
            "last_seen",
            "event_count",
            "user_count",
            "resolved_at",
            "muted_until",
            "unmute_after_events",
            "unmute_window_minutes",
        )
        read_only_fields = fields


class ActivitySerializer(serializers.ModelSerializer):
    class Meta:
        model = IncidentActivity
        fields = ("created_at", "kind", "actor", "from_status", "to_status", "detail")


class IncidentDetailSerializer(IncidentSerializer):
    fingerprint = serializers.CharField(read_only=True)
    timeline = serializers.SerializerMethodField()
    events_expired = serializers.SerializerMethodField(
        help_text="Every stored event is past retention and was purged; the counts are still the totals seen."
    )

    class Meta(IncidentSerializer.Meta):
        fields = (*IncidentSerializer.Meta.fields, "fingerprint", "timeline", "events_expired")
        read_only_fields = fields

    def get_events_expired(self, incident) -> bool:
        return incident.event_count > 0 and not ErrorEvent.objects.filter(incident=incident).exists()

    def get_timeline(self, incident) -> list[dict]:
        return ActivitySerializer(incident_timeline(incident, limit=50), many=True).data


class MuteSerializer(serializers.Serializer):
    """Mute for a time, until N events arrive within M minutes, or both (whichever comes first)."""

    minutes = serializers.IntegerField(required=False, min_value=1, max_value=525_600)
    until_events = serializers.IntegerField(required=False, min_value=1, max_value=1_000_000)
    within_minutes = serializers.IntegerField(required=False, min_value=1, max_value=525_600)

    def validate(self, data):
        if (data.get("until_events") is None) != (data.get("within_minutes") is None):
            field = "within_minutes" if data.get("until_events") is not None else "until_events"
            raise serializers.ValidationError({field: "until_events and within_minutes go together"})
        if not data:
            raise serializers.ValidationError({"minutes": "give minutes, or until_events with within_minutes"})
        return data

    def mute_arguments(self) -> dict:
        minutes = self.validated_data.get("minutes")
        return {
            "duration": timedelta(minutes=minutes) if minutes else None,
            "until_events": self.validated_data.get("until_events"),
            "within_minutes": self.validated_data.get("within_minutes"),
        }


class EventSerializer(serializers.ModelSerializer):
    source = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    error_type = serializers.SlugRelatedField(slug_field="code", read_only=True)
    severity = SeverityField(read_only=True)

    class Meta:
        model = ErrorEvent
        fields = (
            "id",
            "event_id",
            "incident",
            "source",
            "timestamp",
            "received_at",
            "level",
            "title",
            "message",
            "culprit",
            "error_type",
            "severity",
            "http_status",
            "logger",
            "environment",
            "release",
            "server_name",
        )
        read_only_fields = fields


class EventDetailSerializer(EventSerializer):
    class Meta(EventSerializer.Meta):
        fields = (
            *EventSerializer.Meta.fields,
            "exception",
            "component",
            "platform",
            "transaction",
            "tags",
            "request",
            "contexts",
            "extra",
            "sdk",
            "fingerprint",
        )
        read_only_fields = fields
