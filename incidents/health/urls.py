"""Probes and metrics at the site root: /healthz, /readyz (open to anyone) and /metrics (admins, scrapers)."""

from django.urls import path

from incidents.health import metrics, probes

urlpatterns = [
    path("healthz", probes.healthz, name="healthz"),
    path("readyz", probes.readyz, name="readyz"),
    path("metrics", metrics.metrics, name="metrics"),
]
