"""Sources and their ingest keys, for admins only: other roles get 403 on the list and 404 on anything under a source.

A key's public key is shown (it is part of every DSN, as in Sentry); nothing else about a key is secret.
"""

from datetime import timedelta

import django_filters as filters
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404
from rest_framework.response import Response
from rest_framework.validators import UniqueValidator

from access.errors import FieldError
from access.filters import StrictBooleanFilter
from access.roles import Role
from incidents import services
from incidents.api.alerting import ModelCleanMixin, api_validation_error, conflict
from incidents.models import IngestKey, Source

# How long a rotated key keeps working at most: 30 days.
MAX_GRACE_HOURS = 30 * 24


class IngestKeySerializer(serializers.ModelSerializer):
    """An ingest key: its public key and DSN (not secret, as in Sentry), and whether it is accepted now."""

    dsn = serializers.CharField(read_only=True, help_text="The DSN to configure in the application's SDK.")
    usable = serializers.SerializerMethodField(help_text="Accepted now: not revoked, not expired.")

    class Meta:
        model = IngestKey
        fields = ("id", "label", "public_key", "dsn", "usable", "created_at", "expires_at", "revoked_at")
        read_only_fields = ("id", "public_key", "dsn", "usable", "created_at", "expires_at", "revoked_at")

    def get_usable(self, key: IngestKey) -> bool:
        return key.is_usable()


class SourceSerializer(ModelCleanMixin, serializers.ModelSerializer):
    """An application that reports events; admins may change its name, environments, rate limit, activity and
    event retention (null: the retention policy's default)."""

    environments = serializers.ListField(
        child=serializers.CharField(min_length=1, max_length=64),
        required=False,
        help_text="Environments this source may report from; empty accepts any.",
    )
    effective_rate_limit = serializers.IntegerField(
        read_only=True, help_text="Events accepted per minute (0: unlimited)."
    )

    class Meta:
        model = Source
        fields = (
            "id",
            "name",
            "slug",
            "environments",
            "rate_limit_per_minute",
            "effective_rate_limit",
            "is_active",
            "event_retention_days",
            "created_at",
            "last_heartbeat_at",
            "last_event_at",
        )
        read_only_fields = ("id", "slug", "created_at", "last_heartbeat_at", "last_event_at")


class SourceCreateSerializer(serializers.ModelSerializer):
    slug = serializers.SlugField(
        max_length=100,
        required=False,
        allow_blank=True,
        validators=[UniqueValidator(Source.objects.all())],
        help_text="Defaults to the name, slugified.",
    )
    environments = serializers.ListField(
        child=serializers.CharField(min_length=1, max_length=64),
        required=False,
        help_text="Environments this source may report from; empty accepts any.",
    )

    class Meta:
        model = Source
        fields = ("name", "slug", "environments", "rate_limit_per_minute")


class SourceCreatedSerializer(SourceSerializer):
    """A new source with its first ingest key."""

    key = IngestKeySerializer(read_only=True, help_text="The source's first ingest key.")

    class Meta(SourceSerializer.Meta):
        fields = (*SourceSerializer.Meta.fields, "key")


class SourceFilter(filters.FilterSet):
    is_active = StrictBooleanFilter()
    slug = filters.CharFilter()

    class Meta:
        model = Source
        fields = ()


class SourceViewSet(
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Sources by name, for admins; creating one also makes its first ingest key, whose DSN the answer shows."""

    queryset = Source.objects.all()
    serializer_class = SourceSerializer
    filterset_class = SourceFilter
    search_fields = ("name", "slug")
    ordering_fields = ("name", "id")
    ordering = ("name",)
    read_role = Role.ADMIN
    write_role = Role.ADMIN
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_serializer_class(self):
        return SourceCreateSerializer if self.action == "create" else super().get_serializer_class()

    @extend_schema(request=SourceCreateSerializer, responses={201: SourceCreatedSerializer})
    def create(self, request, *args, **kwargs):
        form = self.get_serializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            source, key = services.source_create(**form.validated_data)
        except DjangoValidationError as error:
            raise api_validation_error(error) from None
        except IntegrityError:  # a concurrent create took the name or slug after the checks
            raise FieldError("name", "a source with this name or slug already exists") from None
        source.key = key
        return Response(SourceCreatedSerializer(source).data, status=status.HTTP_201_CREATED)


class IngestKeyCreateSerializer(serializers.ModelSerializer):
    class Meta:
        model = IngestKey
        fields = ("label",)


class RotateSerializer(serializers.Serializer):
    grace_hours = serializers.IntegerField(
        required=False,
        default=24,
        min_value=0,
        max_value=MAX_GRACE_HOURS,
        help_text="How long the old key keeps working (0: stops at once).",
    )


class RotatedSerializer(serializers.Serializer):
    key = IngestKeySerializer(help_text="The new key.")
    previous = IngestKeySerializer(help_text="The rotated key, now expiring.")


SOURCE_ID = OpenApiParameter("source_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The source's id.")


@extend_schema_view(
    list=extend_schema(parameters=[SOURCE_ID]),
    retrieve=extend_schema(parameters=[SOURCE_ID]),
    create=extend_schema(parameters=[SOURCE_ID], request=IngestKeyCreateSerializer),
)
class IngestKeyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """A source's ingest keys, newest first, for admins: add, rotate (old key works for a grace period), revoke."""

    serializer_class = IngestKeySerializer
    ordering_fields = ("id",)
    ordering = ("-id",)
    read_role = Role.ADMIN
    write_role = Role.ADMIN

    def permission_denied(self, request, message=None, code=None):
        # Keys are details of a source: a role that may not see sources learns nothing about which exist.
        if request.authenticators and not request.successful_authenticator:
            raise exceptions.NotAuthenticated()
        raise exceptions.NotFound()

    def source(self) -> Source:
        if not hasattr(self, "_source"):
            self._source = get_object_or_404(Source.objects.all(), pk=self.kwargs["source_id"])
        return self._source

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no source id
            return IngestKey.objects.none()
        return IngestKey.objects.filter(source=self.source()).select_related("source")

    def create(self, request, *args, **kwargs):
        form = IngestKeyCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        key = services.ingest_key_create(source=self.source(), label=form.validated_data.get("label", ""))
        return Response(IngestKeySerializer(key).data, status=status.HTTP_201_CREATED)

    @extend_schema(parameters=[SOURCE_ID], request=RotateSerializer, responses={201: RotatedSerializer})
    @action(detail=True, methods=["post"])
    def rotate(self, request, *args, **kwargs):
        """Issue a replacement key; this one keeps working for `grace_hours` (default 24), then expires."""
        key = self.get_object()
        form = RotateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            new = services.ingest_key_rotate(key=key, grace=timedelta(hours=form.validated_data["grace_hours"]))
        except ValueError as error:
            return conflict("key", str(error))
        key.refresh_from_db()
        return Response(RotatedSerializer({"key": new, "previous": key}).data, status=status.HTTP_201_CREATED)

    @extend_schema(parameters=[SOURCE_ID], request=None, responses=IngestKeySerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request, *args, **kwargs):
        """Stop accepting this key at once (revoking a revoked key changes nothing)."""
        key = self.get_object()
        services.ingest_key_revoke(key=key)
        key.refresh_from_db()
        return Response(IngestKeySerializer(key).data)
