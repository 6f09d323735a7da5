"""Serializers of the resilience reporting API: the answers' shapes, and breaker config changes.

Every answer is rendered through these serializers, so the OpenAPI schema drf-spectacular
derives from them is the shape clients actually get, nullability included.
"""

import copy
import math

from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from resilience.models import Breaker, BreakerState, BreakerTransition, BreakerWindow
from resilience.runtime.degradation import Level

FEATURE_STATUSES = ["degraded", "unavailable"]


class CircuitBreakerStatusSerializer(serializers.Serializer):
    """One breaker's shared state and its window figures summed over every process reporting them."""

    name = serializers.CharField()
    state = serializers.ChoiceField(choices=BreakerState.State.choices)
    mode = serializers.ChoiceField(choices=BreakerState.Mode.choices)
    failure_count = serializers.IntegerField(help_text="Failed calls in the windows of the processes reporting.")
    success_count = serializers.IntegerField(help_text="Calls that did not fail, in the same windows.")
    slow_count = serializers.IntegerField(help_text="Slow calls, in the same windows.")
    calls = serializers.IntegerField(help_text="Calls in the same windows.")
    failure_rate = serializers.FloatField(allow_null=True, help_text="Percent of calls that failed; null: no calls.")
    last_failure_time = serializers.DateTimeField(
        allow_null=True, help_text="Latest report of a process whose window held failures; null: none lately."
    )
    opened_at = serializers.DateTimeField(allow_null=True, help_text="When it last opened; null: never.")
    open_until = serializers.DateTimeField(
        allow_null=True, help_text="When an automatic opening lets a probe through; null unless open in auto mode."
    )
    generation = serializers.IntegerField(help_text="Goes up with every change of state or mode.")
    last_reason = serializers.CharField(allow_blank=True)


class BreakerConfigSerializer(serializers.ModelSerializer):
    """A breaker's config; a PATCH is checked by the model's own validation, as the admin form is."""

    # Error types and sources are the incidents app's: reached through the breaker's relations, not imported.
    error_type = serializers.SlugRelatedField(
        slug_field="code",
        queryset=Breaker._meta.get_field("error_type").related_model.objects.all(),
        allow_null=True,
        required=False,
    )
    source = serializers.SlugRelatedField(
        slug_field="slug",
        queryset=Breaker._meta.get_field("source").related_model.objects.all(),
        allow_null=True,
        required=False,
        help_text="The slug of the source whose services run it and alone may report it; null: the first source to "
        "report it takes it (the console's own breakers, redis and notify:*, have none).",
    )

    class Meta:
        model = Breaker
        fields = [
            "name",
            "source",
            "description",
            "component",
            "error_type",
            "window_kind",
            "window_size",
            "minimum_calls",
            "failure_rate_threshold",
            "slow_call_rate_threshold",
            "slow_call_duration",
            "consecutive_failures",
            "wait_duration",
            "wait_multiplier",
            "max_wait_duration",
            "automatic_half_open",
            "max_half_open_duration",
            "permitted_calls_in_half_open",
            "success_threshold",
            "call_timeout",
            "record_exceptions",
            "ignore_exceptions",
            "failure_statuses",
            "updated_at",
        ]
        # The name is what code calls the breaker by, and its state and history are kept under it.
        read_only_fields = ["name", "updated_at"]

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError({"body": ["must be a JSON object of config fields"]})
        writable = sorted(name for name, field in self.fields.items() if not field.read_only)
        for name in data:
            if name not in writable:
                raise serializers.ValidationError(
                    {name: [f"is not a config field you can change; use any of {', '.join(writable)}"]}
                )
        values = super().to_internal_value(data)
        for name, value in values.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise serializers.ValidationError({name: ["must be a finite number"]})
        return values

    def validate(self, attrs):
        """Refuse what the admin form refuses: the model's full_clean on the breaker as it would be saved."""
        changed = copy.copy(self.instance)
        for name, value in attrs.items():
            setattr(changed, name, value)
        try:
            changed.full_clean()
        except DjangoValidationError as error:
            raise serializers.ValidationError(
                {
                    "non_field_errors" if name == NON_FIELD_ERRORS else name: messages
                    for name, messages in error.message_dict.items()
                }
            ) from error
        return attrs

    def update(self, instance: Breaker, validated_data: dict) -> Breaker:
        if not validated_data:
            return instance  # nothing changed: running processes have nothing to apply
        for name, value in validated_data.items():
            setattr(instance, name, value)
        # Only the fields sent are written; the post_save signal bumps the live config version.
        instance.save(update_fields=[*validated_data, "updated_at"])
        return instance


class BreakerSwitchSerializer(serializers.Serializer):
    """An optional note kept with the transition, after who made it."""

    reason = serializers.CharField(required=False, allow_blank=True, max_length=200)

    def to_internal_value(self, data):
        if hasattr(data, "keys"):
            for name in data:
                if name not in self.fields:
                    raise serializers.ValidationError({name: ["is not a parameter here; use reason"]})
        return super().to_internal_value(data)


class BreakerTransitionSerializer(serializers.ModelSerializer):
    source = serializers.SlugRelatedField(
        slug_field="slug", read_only=True, allow_null=True, help_text="Whose key reported it; null: before attribution."
    )

    class Meta:
        model = BreakerTransition
        fields = ["at", "from_state", "to_state", "mode", "reason", "source", "process", "generation"]


class BreakerProcessWindowSerializer(serializers.ModelSerializer):
    """One process's latest window report for the breaker."""

    source = serializers.SlugRelatedField(slug_field="slug", read_only=True, help_text="Whose key reported it.")

    class Meta:
        model = BreakerWindow
        fields = [
            "source",
            "process",
            "reported_at",
            "state",
            "mode",
            "calls",
            "failures",
            "slow_calls",
            "not_permitted",
        ]


class CircuitBreakerListSerializer(serializers.Serializer):
    status = serializers.CharField()
    circuit_breakers = serializers.DictField(child=CircuitBreakerStatusSerializer(), help_text="Keyed by name.")
    timestamp = serializers.DateTimeField()


class CircuitBreakerDetailSerializer(serializers.Serializer):
    status = serializers.CharField()
    circuit_breaker = CircuitBreakerStatusSerializer()
    config = BreakerConfigSerializer()
    processes = BreakerProcessWindowSerializer(many=True, help_text="Fresh window reports, one per process.")
    transitions = BreakerTransitionSerializer(many=True, help_text="The latest transitions, newest first.")
    timestamp = serializers.DateTimeField()


class CircuitBreakerSwitchedSerializer(serializers.Serializer):
    status = serializers.CharField()
    circuit_breaker = CircuitBreakerStatusSerializer()
    timestamp = serializers.DateTimeField()


class AffectedFeatureSerializer(serializers.Serializer):
    feature = serializers.CharField()
    status = serializers.ChoiceField(
        choices=FEATURE_STATUSES, help_text="degraded: its fallback serves it; unavailable: it has none."
    )
    message = serializers.CharField()
    fallback = serializers.CharField(allow_null=True)
    reason = serializers.CharField()


class DegradationModeSerializer(serializers.Serializer):
    status = serializers.CharField()
    is_degraded = serializers.BooleanField()
    level = serializers.ChoiceField(choices=[level.name for level in Level])
    open_circuits = serializers.ListField(child=serializers.CharField())
    affected_features = AffectedFeatureSerializer(many=True)
    fallback_available = serializers.BooleanField(help_text="Every affected feature has a fallback.")
    timestamp = serializers.DateTimeField()
