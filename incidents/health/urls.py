"""Probes and metrics at the site root: /healthz, /readyz (open to anyone) and /metrics (admins, scrapers)."""

from django.urls import path

from incidents.health import metrics
from incidents.health import probes as health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics, name="metrics"),
]
