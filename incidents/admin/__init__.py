"""The incidents admin, one module per area; each imports only `mixins`, none imports another.

Importing them here is what registers them when Django's autodiscovery imports this package.
"""

from incidents.admin import alert_rules, alerts, channels, classification, incidents, retention, sources  # noqa: F401
