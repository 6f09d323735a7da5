"""The live dashboard at the site root."""

from django.urls import path

from incidents.dashboard import views

urlpatterns = [path("", views.dashboard, name="dashboard")]
