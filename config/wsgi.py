"""WSGI entry point for Django's own tools (runserver, WSGI_APPLICATION); the console serves config.asgi."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()
