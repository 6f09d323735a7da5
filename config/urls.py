"""Top-level URLs: admin, ingest endpoints, resilience endpoints."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("incidents.urls")),
    path("", include("resilience.urls")),
]
