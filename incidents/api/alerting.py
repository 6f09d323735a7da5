"""Alerting API: rules, alerts and their actions, silences; read-only channels (secrets masked) and notification log.

Rules and silences are validated by their models' own `clean()` (the admin's rules), run on the
instance the request would make before anything is saved, so a bad PATCH changes nothing.
Alerts change only through `services`; what a service queues is delivered once the change commits.
"""

import copy
import math
from datetime import timedelta

import django_filters as filters
from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.db.models import Count, Max, Q
from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from access.filters import StrictBooleanFilter
from access.roles import Role
from incidents.alerting import services
from incidents.alerting.delivery import deliver_after_commit
from incidents.alerting.transports.base import EVENTS, masked_config
from incidents.api.filters import SeverityFilter
from incidents.api.serializers import SEVERITY_BY_NAME, SeverityField
from incidents.models import Alert, AlertRule, ErrorType, Notification, NotificationChannel, Silence, Source

ACTIVE_STATES = (Alert.State.FIRING, Alert.State.PENDING)
# The longest silence an alert's "silence" action sets: 30 days.
MAX_SILENCE_MINUTES = 30 * 24 * 60


# Shared by the alerting and source serializers


def api_validation_error(error: DjangoValidationError) -> serializers.ValidationError:
    """A model's validation errors as the API's 400 naming each field."""
    return serializers.ValidationError(
        {
            "non_field_errors" if field == NON_FIELD_ERRORS else field: messages
            for field, messages in error.message_dict.items()
        }
    )


def model_validation(instance, *, exclude=()) -> None:
    """Run the model's full_clean(); its errors become a 400 naming each field."""
    try:
        instance.full_clean(exclude=list(exclude))
    except DjangoValidationError as error:
        raise api_validation_error(error) from None


class ModelCleanMixin:
    """Validate the instance the validated data would make (a copy when updating) with the model's own rules."""

    clean_exclude: tuple[str, ...] = ()

    def validate(self, attrs):
        attrs = super().validate(attrs)
        model = self.Meta.model
        instance = copy.copy(self.instance) if self.instance is not None else model()
        many = {field.name for field in model._meta.many_to_many}
        for name, value in attrs.items():
            if name not in many:
                setattr(instance, name, value)
        model_validation(instance, exclude=self.clean_exclude)
        return attrs


class NamedRelatedField(serializers.SlugRelatedField):
    """A related object by its name (slug, code); anything but a short clean string is refused before a query."""

    def to_internal_value(self, data):
        if not isinstance(data, str) or len(data) > 200 or "\x00" in data:
            self.fail("invalid")
        return super().to_internal_value(data)


def json_problem(value) -> str | None:
    """Why `value` cannot be stored as JSON in every database (NUL, lone surrogates, non-finite numbers), or None."""
    if isinstance(value, str):
        if "\x00" in value:
            return "text may not contain NUL characters"
        if any("\ud800" <= char <= "\udfff" for char in value):
            return "text may not contain lone surrogate characters"
    elif isinstance(value, float) and not math.isfinite(value):
        return "numbers must be finite"
    elif isinstance(value, dict):
        for key, item in value.items():
            problem = json_problem(key) or json_problem(item)
            if problem:
                return problem
    elif isinstance(value, list):
        for item in value:
            problem = json_problem(item)
            if problem:
                return problem
    return None


def conflict(field: str, message: str) -> Response:
    """409 in the API's error shape: the change does not apply in the object's current state."""
    return Response({"error": message, "field": field, "errors": {field: [message]}}, status=status.HTTP_409_CONFLICT)


# Rules


class RuleAlertsSerializer(serializers.Serializer):
    """How many of the rule's alerts are firing and pending now, and the worst severity among them."""

    firing = serializers.IntegerField()
    pending = serializers.IntegerField()
    severity = SeverityField(allow_null=True, help_text="The worst severity of those alerts; null when none is active.")


def rule_alert_counts(queryset):
    """The rules with their firing and pending alert counts and the worst active severity, in the list's query."""
    return queryset.annotate(
        firing_alerts=Count("alerts", filter=Q(alerts__state=Alert.State.FIRING)),
        pending_alerts=Count("alerts", filter=Q(alerts__state=Alert.State.PENDING)),
        worst_severity=Max("alerts__severity", filter=Q(alerts__state__in=ACTIVE_STATES)),
    )


class AlertRuleSerializer(ModelCleanMixin, serializers.ModelSerializer):
    """An alert rule: a windowed value of a selection compared with warning and critical thresholds."""

    source = NamedRelatedField(
        slug_field="slug", queryset=Source.objects.all(), allow_null=True, required=False, help_text="Source slug."
    )
    error_type = NamedRelatedField(
        slug_field="code",
        queryset=ErrorType.objects.all(),
        allow_null=True,
        required=False,
        help_text="Error type code.",
    )
    min_severity = SeverityField(allow_null=True, required=False)
    group_by = serializers.ListField(
        child=serializers.CharField(max_length=32),
        required=False,
        help_text='Any of "source", "error_type", "incident".',
    )
    channels = serializers.PrimaryKeyRelatedField(
        many=True, queryset=NotificationChannel.objects.all(), required=False, help_text="Notification channel ids."
    )
    alerts = serializers.SerializerMethodField(help_text="The rule's alerts now: firing and pending counts.")

    class Meta:
        model = AlertRule
        fields = (
            "id",
            "name",
            "enabled",
            "description",
            "target",
            "source",
            "error_type",
            "category",
            "min_severity",
            "environment",
            "breaker",
            "heartbeat",
            "value",
            "window_minutes",
            "comparator",
            "warning_threshold",
            "critical_threshold",
            "resolve_threshold",
            "pending_for",
            "keep_firing_for",
            "cooldown",
            "group_by",
            "send_resolved",
            "channels",
            "summary_template",
            "runbook_template",
            "evaluated_at",
            "alerts",
        )
        read_only_fields = ("id", "evaluated_at", "alerts")

    @extend_schema_field(RuleAlertsSerializer)
    def get_alerts(self, rule: AlertRule) -> dict:
        if not hasattr(rule, "firing_alerts"):
            rule = rule_alert_counts(AlertRule.objects.filter(pk=rule.pk)).get()
        counts = {"firing": rule.firing_alerts, "pending": rule.pending_alerts, "severity": rule.worst_severity}
        return RuleAlertsSerializer(counts).data


class AlertRuleFilter(filters.FilterSet):
    enabled = StrictBooleanFilter()
    target = filters.ChoiceFilter(choices=AlertRule.Target.choices)
    source = filters.CharFilter(field_name="source__slug")

    class Meta:
        model = AlertRule
        fields = ()


class AlertRuleViewSet(viewsets.ModelViewSet):
    """Alert rules by name; viewers read them, admins change them (validated as in the admin)."""

    queryset = AlertRule.objects.select_related("source", "error_type").prefetch_related("channels")
    serializer_class = AlertRuleSerializer
    filterset_class = AlertRuleFilter
    search_fields = ("name", "description")
    ordering_fields = ("name", "id")
    ordering = ("name",)

    def get_queryset(self):
        return rule_alert_counts(super().get_queryset())

    def perform_create(self, serializer):
        with transaction.atomic():
            serializer.save()

    def perform_update(self, serializer):
        with transaction.atomic():
            serializer.save()


# Silences


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": {"oneOf": [{"type": "string"}, {"type": "number"}]},
        "example": {"source": "3"},
    }
)
class MatchersField(serializers.JSONField):
    """Alert labels that must all match; only values every database can store get as far as the model's check."""

    def to_internal_value(self, data):
        data = super().to_internal_value(data)
        problem = json_problem(data)
        if problem:
            raise serializers.ValidationError(problem)
        return data


class SilenceSerializer(ModelCleanMixin, serializers.ModelSerializer):
    """A silence: holds notifications of matching alerts for a time, or in a recurring daily window."""

    matchers = MatchersField(
        required=False, help_text='Alert labels that must all match, e.g. {"source": "3"}; "rule" is the rule name.'
    )
    weekdays = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=7),
        required=False,
        help_text="Recurring: ISO weekdays (1 = Monday) on which the daily window applies.",
    )
    active = serializers.SerializerMethodField(help_text="In force now: between starts_at and ends_at.")

    class Meta:
        model = Silence
        fields = (
            "id",
            "rule",
            "matchers",
            "starts_at",
            "ends_at",
            "weekdays",
            "daily_start",
            "daily_minutes",
            "comment",
            "created_by",
            "created_at",
            "active",
        )
        read_only_fields = ("id", "created_by", "created_at", "active")

    clean_exclude = ("created_by",)  # set from the requesting user when saved

    def validate_weekdays(self, weekdays: list[int]) -> list[int]:
        return sorted(set(weekdays))

    def get_active(self, silence: Silence) -> bool:
        return silence.starts_at <= timezone.now() < silence.ends_at


class SilenceFilter(filters.FilterSet):
    active = StrictBooleanFilter(method="filter_active", label="In force now (true) or not (false).")
    rule = filters.NumberFilter(field_name="rule_id")

    class Meta:
        model = Silence
        fields = ()

    def filter_active(self, queryset, name, value):
        now = timezone.now()
        in_force = Q(starts_at__lte=now, ends_at__gt=now)
        return queryset.filter(in_force) if value else queryset.exclude(in_force)


class SilenceViewSet(viewsets.ModelViewSet):
    """Silences, newest first; triagers create, change and delete them."""

    queryset = Silence.objects.all()
    serializer_class = SilenceSerializer
    filterset_class = SilenceFilter
    search_fields = ("comment", "created_by")
    ordering_fields = ("id",)
    ordering = ("-id",)
    write_role = Role.TRIAGER

    def perform_create(self, serializer):
        serializer.save(created_by=f"user:{self.request.user.get_username()}")


# Alerts


class AlertSerializer(serializers.ModelSerializer):
    rule_name = serializers.CharField(source="rule.name", read_only=True)
    severity = SeverityField(read_only=True)
    labels = serializers.DictField(read_only=True, help_text="The group's labels: source, error_type, incident ids.")

    class Meta:
        model = Alert
        fields = (
            "id",
            "rule",
            "rule_name",
            "group_key",
            "labels",
            "state",
            "severity",
            "value",
            "active_at",
            "fired_at",
            "last_met_at",
            "last_notified_at",
            "resolved_at",
            "resolved_by",
            "acknowledged_at",
            "acknowledged_by",
            "flapping",
            "history",
        )
        read_only_fields = fields


class AlertSilenceSerializer(serializers.Serializer):
    """Silence this alert (its rule and labels) from now for `minutes`."""

    minutes = serializers.IntegerField(min_value=1, max_value=MAX_SILENCE_MINUTES)
    comment = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


@extend_schema_field({"type": "string", "enum": list(SEVERITY_BY_NAME)})
class SeverityNameFilter(SeverityFilter):
    """The shared severity filter, documented as the names it takes (its model field is an integer)."""


class AlertFilter(filters.FilterSet):
    state = filters.ChoiceFilter(choices=Alert.State.choices)
    severity = SeverityNameFilter(field_name="severity")
    rule = filters.NumberFilter(field_name="rule_id")
    flapping = StrictBooleanFilter()

    class Meta:
        model = Alert
        fields = ()


class AlertViewSet(viewsets.ReadOnlyModelViewSet):
    """Alerts, newest first; triagers acknowledge, resolve and silence them."""

    queryset = Alert.objects.select_related("rule")
    serializer_class = AlertSerializer
    filterset_class = AlertFilter
    search_fields = ("rule__name", "group_key")
    ordering_fields = ("id",)
    ordering = ("-id",)
    action_roles = {name: Role.TRIAGER for name in ("acknowledge", "resolve", "silence")}

    def _transition(self, service) -> Response:
        alert = self.get_object()
        try:
            queued = service(alert=alert, by=self.request.user)
        except services.AlertTransitionError as error:
            return conflict("state", str(error))
        deliver_after_commit(queued)
        return Response(AlertSerializer(alert).data)

    @extend_schema(request=None, responses=AlertSerializer)
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, pk=None):
        """Stop repeat notifications of a firing alert; channels that got its firing notification are told."""
        return self._transition(services.alert_acknowledge)

    @extend_schema(request=None, responses=AlertSerializer)
    @action(detail=True, methods=["post"])
    def resolve(self, request, pk=None):
        """Resolve a pending or firing alert by hand."""
        return self._transition(services.alert_resolve)

    @extend_schema(request=AlertSilenceSerializer, responses={201: SilenceSerializer})
    @action(detail=True, methods=["post"])
    def silence(self, request, pk=None):
        """Hold this alert's notifications (its rule and labels) for a number of minutes."""
        alert = self.get_object()
        form = AlertSilenceSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        silence = services.alert_silence(
            alert=alert,
            by=request.user,
            duration=timedelta(minutes=form.validated_data["minutes"]),
            comment=form.validated_data["comment"],
        )
        return Response(SilenceSerializer(silence).data, status=status.HTTP_201_CREATED)


# Notification channels


class NotificationChannelSerializer(serializers.ModelSerializer):
    config = serializers.SerializerMethodField(help_text="The kind's settings, secrets masked.")
    min_severity = SeverityField(read_only=True)

    class Meta:
        model = NotificationChannel
        fields = (
            "id",
            "name",
            "kind",
            "enabled",
            "config",
            "min_severity",
            "default_for",
            "disabled_reason",
            "consecutive_permanent_failures",
            "last_error",
            "last_error_at",
        )
        read_only_fields = fields

    def get_config(self, channel: NotificationChannel) -> dict:
        return masked_config(channel.kind, channel.config) if isinstance(channel.config, dict) else {}


class NotificationChannelFilter(filters.FilterSet):
    kind = filters.ChoiceFilter(choices=NotificationChannel.Kind.choices)
    enabled = StrictBooleanFilter()

    class Meta:
        model = NotificationChannel
        fields = ()


class NotificationChannelViewSet(viewsets.ReadOnlyModelViewSet):
    """Notification channels for admins, secrets masked; they are edited in the admin."""

    queryset = NotificationChannel.objects.all()
    serializer_class = NotificationChannelSerializer
    filterset_class = NotificationChannelFilter
    search_fields = ("name",)
    ordering_fields = ("name", "id")
    ordering = ("name",)
    read_role = Role.ADMIN


# The notification log


class NotificationSerializer(serializers.ModelSerializer):
    """One delivery attempt of one alert message to one channel."""

    channel_name = serializers.CharField(source="channel.name", read_only=True)
    severity = SeverityField(read_only=True)

    class Meta:
        model = Notification
        fields = (
            "id",
            "alert",
            "channel",
            "channel_name",
            "event",
            "severity",
            "status",
            "attempt",
            "created_at",
            "next_attempt_at",
            "finished_at",
            "response_code",
            "response",
            "error",
            "duration_ms",
            "message",
        )
        read_only_fields = fields


class NotificationFilter(filters.FilterSet):
    status = filters.ChoiceFilter(choices=Notification.Status.choices)
    event = filters.ChoiceFilter(choices=[(event, event) for event in EVENTS])
    channel = filters.NumberFilter(field_name="channel_id")
    alert = filters.NumberFilter(field_name="alert_id")

    class Meta:
        model = Notification
        fields = ()


class NotificationViewSet(viewsets.ReadOnlyModelViewSet):
    """The notification log for admins, newest first: every delivery attempt and how it went."""

    queryset = Notification.objects.select_related("channel")
    serializer_class = NotificationSerializer
    filterset_class = NotificationFilter
    ordering_fields = ("id",)
    ordering = ("-id",)
    read_role = Role.ADMIN
