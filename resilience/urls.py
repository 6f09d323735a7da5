"""Resilience endpoints for remote processes."""

from django.urls import path

from resilience import api

urlpatterns = [
    path("api/v1/resilience/config/", api.config, name="resilience-config"),
    path("api/v1/resilience/transitions/", api.transitions, name="resilience-transitions"),
    path("api/v1/resilience/windows/", api.windows, name="resilience-windows"),
]
