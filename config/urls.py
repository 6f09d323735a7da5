"""Top-level URLs: admin, ingest, the reporting API and its schema, health and metrics."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("incidents.urls")),
    path("", include("resilience.urls")),
    path("api/v1/", include("incidents.api.urls")),
    path("api/v1/", include("incidents.api.alerting_urls")),
    path("api/v1/", include("resilience.api_urls")),
    path("", include("incidents.api.health_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
]

handler404 = "access.errors.not_found"
handler500 = "access.errors.server_error"
