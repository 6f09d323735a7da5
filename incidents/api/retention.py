"""The retention policy and what it governs: read by viewers, changed by admins.

    GET   /api/v1/retention/   the policy's fields, table sizes, the oldest event per source, the last purge
    PATCH /api/v1/retention/   policy fields; the model's clean() refuses a bad value naming the field

A source's own event retention is its `event_retention_days`, changed through the sources API.
Figures come from incidents.retention.sizes, cached for a few seconds per process.
"""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from access.errors import FieldError
from access.roles import Role
from incidents.api.alerting import ModelCleanMixin, api_validation_error
from incidents.models import ErrorEvent, PurgeRun, RetentionPolicy
from incidents.retention import sizes
from incidents.retention.services import EDITABLE_FIELDS, retention_policy_update
from resilience.api.views import refuse_parameters

# A plain string in the schema: PurgeRun.Status as an enum would collide with the other "status" enums' names.
STATUS_HELP = "finished, partial (stopped at its time budget: the next run goes on), interrupted or failed"


class TableSizeSerializer(serializers.Serializer):
    table = serializers.CharField()
    label = serializers.CharField()
    bytes = serializers.IntegerField(allow_null=True, help_text="On disk, indexes included; null: unknown.")
    rows = serializers.IntegerField(
        allow_null=True, help_text="PostgreSQL's estimate (exact on SQLite); null: unknown."
    )


class OldestEventSerializer(serializers.Serializer):
    source = serializers.CharField(source="slug", help_text="The source's slug.")
    received_at = serializers.DateTimeField(allow_null=True, help_text="Null: the source stores no event.")
    age_seconds = serializers.SerializerMethodField()
    retention_days = serializers.IntegerField(help_text="Days this source's events are kept.")
    past_retention = serializers.BooleanField(
        source="due",
        help_text="True when the next purge removes it (on PostgreSQL events go with their whole day, so "
        "up to a day after their retention).",
    )

    def get_age_seconds(self, oldest: sizes.OldestEvent) -> int | None:
        if oldest.received_at is None:
            return None
        return int((timezone.now() - oldest.received_at).total_seconds())


class PurgeSummarySerializer(serializers.Serializer):
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    trigger = serializers.CharField(help_text="schedule or command")
    status = serializers.CharField(help_text=STATUS_HELP)
    removed = serializers.DictField(child=serializers.IntegerField(), help_text="Rows removed per policy step.")
    rows_removed = serializers.IntegerField()
    partitions_dropped = serializers.IntegerField()
    bytes_freed = serializers.IntegerField(help_text="Estimated from the sizes of what went.")
    duration_seconds = serializers.SerializerMethodField()

    def get_duration_seconds(self, run: PurgeRun) -> float | None:
        return None if run.duration is None else run.duration.total_seconds()


class RetentionSerializer(ModelCleanMixin, serializers.ModelSerializer):
    """The policy's fields (writable by admins) and, read-only, what it governs now."""

    tables = serializers.SerializerMethodField()
    oldest_events = serializers.SerializerMethodField()
    last_purge = serializers.SerializerMethodField()
    purge_running = serializers.SerializerMethodField(help_text="True while a purge holds the claim.")

    class Meta:
        model = RetentionPolicy
        fields = (*EDITABLE_FIELDS, "updated_at", "tables", "oldest_events", "last_purge", "purge_running")
        read_only_fields = ("updated_at",)

    def to_internal_value(self, data):
        # A misspelt or read-only field must not be silently ignored.
        if isinstance(data, dict):
            for name in data:
                if name not in EDITABLE_FIELDS:
                    raise FieldError(str(name), "is not a policy field that can be changed")
        return super().to_internal_value(data)

    @extend_schema_field(TableSizeSerializer(many=True))
    def get_tables(self, policy) -> list:
        return TableSizeSerializer(sizes.table_sizes(), many=True).data

    @extend_schema_field(OldestEventSerializer(many=True))
    def get_oldest_events(self, policy) -> list:
        return OldestEventSerializer(sizes.oldest_events(), many=True).data

    @extend_schema_field(PurgeSummarySerializer(allow_null=True))
    def get_last_purge(self, policy) -> dict | None:
        run = sizes.last_purge()
        return None if run is None else PurgeSummarySerializer(run).data

    def get_purge_running(self, policy) -> bool:
        return sizes.running_purge() is not None


class RetentionView(APIView):
    """The retention policy in force, table sizes and row estimates, the oldest event per source and the last purge.

    PATCH changes policy fields (admins): the whole change is checked with the policy's own rules
    and saved at once, or refused with a 400 naming the field and the limit, nothing changed.
    The next purge applies it; no restart is needed.
    """

    write_role = Role.ADMIN
    http_method_names = ["get", "patch", "head", "options"]

    @extend_schema(responses=RetentionSerializer)
    def get(self, request):
        refuse_parameters(request)
        return Response(RetentionSerializer(RetentionPolicy.current()).data)

    @extend_schema(request=RetentionSerializer, responses=RetentionSerializer)
    def patch(self, request):
        refuse_parameters(request)
        form = RetentionSerializer(RetentionPolicy.current(), data=request.data, partial=True)
        form.is_valid(raise_exception=True)
        try:
            policy = retention_policy_update(changes=dict(form.validated_data))
        except DjangoValidationError as error:  # an alert rule's window changed between the check and the save
            raise api_validation_error(error) from None
        return Response(RetentionSerializer(policy).data)


def health_section() -> dict:
    """What system health says about retention: bytes stored, the events table, oldest events, the last purge."""
    tables = sizes.table_sizes()
    events = next(t for t in tables if t.table == ErrorEvent._meta.db_table)
    run = sizes.last_purge()
    return {
        "total_bytes": sum(t.bytes or 0 for t in tables),
        "events_bytes": events.bytes,
        "events_rows_estimate": events.rows,
        "oldest_events": sizes.oldest_events(),
        "last_purge": run,
        "purge_running": sizes.running_purge() is not None,
    }


class HealthPurgeSerializer(serializers.Serializer):
    finished_at = serializers.DateTimeField(allow_null=True)
    status = serializers.CharField(help_text=STATUS_HELP)
    duration_seconds = serializers.SerializerMethodField()
    rows_removed = serializers.IntegerField()
    partitions_dropped = serializers.IntegerField()

    def get_duration_seconds(self, run: PurgeRun) -> float | None:
        return None if run.duration is None else run.duration.total_seconds()


class HealthOldestEventSerializer(serializers.Serializer):
    source = serializers.CharField(source="slug", help_text="The source's slug.")
    age_seconds = serializers.SerializerMethodField(help_text="Age of its oldest stored event; null: none stored.")
    retention_days = serializers.IntegerField()

    def get_age_seconds(self, oldest: sizes.OldestEvent) -> int | None:
        return OldestEventSerializer().get_age_seconds(oldest)


class HealthRetentionSerializer(serializers.Serializer):
    total_bytes = serializers.IntegerField(help_text="Bytes the tables retention governs take, indexes included.")
    events_bytes = serializers.IntegerField(allow_null=True)
    events_rows_estimate = serializers.IntegerField(allow_null=True)
    oldest_events = HealthOldestEventSerializer(many=True)
    last_purge = HealthPurgeSerializer(allow_null=True, help_text="The last purge that is not running; null: none yet.")
    purge_running = serializers.BooleanField()
