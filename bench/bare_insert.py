"""The ceiling ingest is measured against: a Django view doing one INSERT per request, nothing else.

Served as a WSGI application (`bench.bare_insert:application`) with the console's database pool
settings, writing to the table `bare_event`, so that bench/ingest.py and bench/wrk_ingest.py can
put the console beside the cheapest Django request that still makes an event durable, on the same
machine in the same run.
"""

import json
import os
import uuid

import django
from django.conf import settings

if not settings.configured:
    import dj_database_url

    database = dj_database_url.parse(os.environ["DATABASE_URL"])
    database["CONN_MAX_AGE"] = 0
    database["OPTIONS"] = {"pool": {"min_size": 1, "max_size": int(os.environ.get("DATABASE_POOL_MAX", "4"))}}
    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        DATABASES={"default": database},
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
    )
    django.setup()

from django.db import connection
from django.http import JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt
def store(request, project_id):
    """Store the body under its envelope's event id (a fresh one if it has none) with one INSERT and answer
    as Sentry does. Reading the header's id lets the benchmark check that no accepted event is missing."""
    header = json.loads(request.body.split(b"\n", 1)[0] or b"{}")
    event_id = uuid.UUID(header["event_id"]) if header.get("event_id") else uuid.uuid4()
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO bare_event (event_id, body) VALUES (%s, %s)", [event_id, request.body])
    return JsonResponse({"id": event_id.hex})


urlpatterns = [path("api/<int:project_id>/envelope/", store)]

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
