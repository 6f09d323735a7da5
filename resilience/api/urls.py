"""Reporting API routes of the resilience app: circuit breakers and degradation mode
(system health and rate-limit status: incidents/api/system_urls.py)."""

from django.urls import path

from resilience.api import views

_switches = {"force-open": "force_open", "force-closed": "force_closed", "reset": "reset", "auto": "set_auto"}

urlpatterns = [
    path("circuit-breakers/", views.CircuitBreakerListView.as_view(), name="circuit-breaker-list"),
    path("circuit-breakers/<str:name>/", views.CircuitBreakerDetailView.as_view(), name="circuit-breaker-detail"),
    *[
        path(
            f"circuit-breakers/<str:name>/{segment}/",
            views.CircuitBreakerSwitchView.as_view(switch=switch),
            name=f"circuit-breaker-{segment}",
        )
        for segment, switch in _switches.items()
    ],
    path("degradation-mode/", views.DegradationModeView.as_view(), name="degradation-mode"),
]
