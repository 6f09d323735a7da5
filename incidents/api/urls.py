"""Reporting API routes of the incidents app: incidents, events, summary, stats, notifications."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from incidents.api import statistics, views
from incidents.ingest import endpoints

router = SimpleRouter()
router.register("incidents", views.IncidentViewSet, basename="incident")
router.register("events", views.EventViewSet, basename="event")

event_list = views.EventViewSet.as_view({"get": "list"})


def events(request, *args, **kwargs):
    """GET lists events (API token); POST ingests one (ingest key), as it always has."""
    if request.method == "POST":
        return endpoints.native_events(request, *args, **kwargs)
    return event_list(request, *args, **kwargs)


events.csrf_exempt = True

urlpatterns = [
    path("events/", events, name="event-list"),
    path("summary/", statistics.SummaryView.as_view(), name="summary"),
    path("stats/", statistics.StatsView.as_view(), name="stats"),
    path("notifications/", statistics.NotificationsView.as_view(), name="notifications"),
    path("acknowledge/<int:incident_id>/", statistics.AcknowledgeView.as_view(), name="acknowledge"),
    path("report/", endpoints.native_events, name="report"),
    *[route for route in router.urls if route.name != "event-list"],
]
