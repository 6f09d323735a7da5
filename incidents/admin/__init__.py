"""Admin: one module per area, imported here so that Django's autodiscovery registers them all."""

from incidents.admin import alerting, incidents  # noqa: F401
