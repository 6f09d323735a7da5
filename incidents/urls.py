"""Ingest endpoints: the native JSON API and the Sentry-compatible store and envelope."""

urlpatterns: list = []
