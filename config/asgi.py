"""ASGI entry point: HTTP through Django, websockets through Channels (origin checked, then authenticated)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi = get_asgi_application()  # before importing consumers: it sets Django up

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from access.websocket import LiveAuthStack  # noqa: E402
from incidents.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi,
        "websocket": LiveAuthStack(URLRouter(websocket_urlpatterns)),  # origin checked first (access/websocket.py)
    }
)
