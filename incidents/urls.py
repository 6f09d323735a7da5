"""Ingest endpoints: the native JSON API and the Sentry-compatible store and envelope."""

from django.urls import path

from incidents.api import heartbeat, ingest

urlpatterns = [
    path("api/v1/events/", ingest.native_events, name="ingest-native"),
    path("api/<int:source_id>/envelope/", ingest.sentry_envelope, name="ingest-envelope"),
    path("api/<int:source_id>/store/", ingest.sentry_store, name="ingest-store"),
    path("api/v1/heartbeat/", heartbeat.heartbeat, name="heartbeat"),
]
