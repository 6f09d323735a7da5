"""WSGI entry point for the HTTP API; ingest POSTs take the fast path past Django's middleware."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_application = get_wsgi_application()

from incidents.api.fastpath import IngestFastPath  # noqa: E402 (needs the settings configured above)

application = IngestFastPath(django_application)
