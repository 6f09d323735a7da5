"""Reporting API routes of system health and ingest rate-limit status (incidents/api/system.py)."""

from django.urls import path

from incidents.api import system

urlpatterns = [
    path("rate-limit-status/", system.RateLimitStatusView.as_view(), name="rate-limit-status"),
    path("system-health/", system.SystemHealthView.as_view(), name="system-health"),
]
