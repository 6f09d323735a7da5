"""ASGI entry point, the only one the console serves (config/servers.py): HTTP through the ingest fast
path and body limits to Django, websockets through Channels (origin checked, authenticated)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi = get_asgi_application()  # before importing consumers: it sets Django up

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from access.websocket import LiveAuthStack  # noqa: E402
from incidents.ingest.asgi import BodyLimits  # noqa: E402
from incidents.ingest.lifespan import Lifespan  # noqa: E402
from incidents.live.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        # Django reads (and spools) whole bodies before any view: keys and limits are checked first.
        "http": BodyLimits(django_asgi),
        "websocket": LiveAuthStack(URLRouter(websocket_urlpatterns)),  # origin checked first (access/websocket.py)
        "lifespan": Lifespan(),
    }
)
