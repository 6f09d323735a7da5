"""Probes and metrics at the site root: /healthz, /readyz (open to anyone) and /metrics (admins, scrapers)."""

from django.urls import path

from incidents.api import health, metrics

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics, name="metrics"),
]
