"""Resilience endpoints for remote processes."""

from django.urls import path

from incidents.fleet import endpoints

urlpatterns = [
    path("api/v1/resilience/config/", endpoints.config, name="resilience-config"),
    path("api/v1/resilience/transitions/", endpoints.transitions, name="resilience-transitions"),
    path("api/v1/resilience/windows/", endpoints.windows, name="resilience-windows"),
]
