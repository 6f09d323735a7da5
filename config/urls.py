"""Top-level URLs: admin, ingest, the reporting API and its schema, health and metrics."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("incidents.dashboard.urls")),
    path("", include("incidents.ingest.urls")),
    path("", include("incidents.fleet.urls")),
    path("api/v1/", include("incidents.api.urls")),
    path("api/v1/", include("incidents.api.alerting_urls")),
    path("api/v1/", include("resilience.api.urls")),
    path("api/v1/", include("incidents.api.system_urls")),
    path("", include("incidents.health.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
]

handler404 = "access.errors.not_found"
handler500 = "access.errors.server_error"
