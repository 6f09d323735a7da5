"""Ingest endpoints: the Sentry-compatible store and envelope, and heartbeats.

The native JSON ingest (POST /api/v1/events/) shares its URL with the event list: incidents/api/urls.py.
"""

from django.urls import path

from incidents import views
from incidents.api import heartbeat, ingest

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("api/<int:source_id>/envelope/", ingest.sentry_envelope, name="ingest-envelope"),
    path("api/<int:source_id>/store/", ingest.sentry_store, name="ingest-store"),
    path("api/v1/heartbeat/", heartbeat.heartbeat, name="heartbeat"),
]
