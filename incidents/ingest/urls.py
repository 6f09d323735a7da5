"""Ingest endpoints: the Sentry-compatible store and envelope, and heartbeats.

The native JSON ingest (POST /api/v1/events/) shares its URL with the event list: incidents/api/urls.py.
"""

from django.urls import path

from incidents.ingest import endpoints, heartbeat

urlpatterns = [
    path("api/<int:source_id>/envelope/", endpoints.sentry_envelope, name="ingest-envelope"),
    path("api/<int:source_id>/store/", endpoints.sentry_store, name="ingest-store"),
    path("api/v1/heartbeat/", heartbeat.heartbeat, name="heartbeat"),
]
