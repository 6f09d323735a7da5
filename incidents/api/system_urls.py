"""Reporting API routes of system health and ingest rate-limit status (incidents/api/system.py), and retention."""

from django.urls import path

from incidents.api import retention, system

urlpatterns = [
    path("rate-limit-status/", system.RateLimitStatusView.as_view(), name="rate-limit-status"),
    path("system-health/", system.SystemHealthView.as_view(), name="system-health"),
    path("retention/", retention.RetentionView.as_view(), name="retention"),
]
