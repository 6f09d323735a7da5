"""The heartbeat URL: a job posts to it while it is alive, and an absence rule notices when it stops.

    POST /api/v1/heartbeat/   Authorization: Bearer <ingest key>   ->   {"ok": true}

The key names the source, as for events; a heartbeat rule on that source fires once no
heartbeat has come for longer than its threshold (a dead man's switch for cron jobs).
"""

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from incidents import services
from incidents.ingest.endpoints import source_for_bearer_key
from incidents.ingest.errors import IngestError


@csrf_exempt
@require_POST
def heartbeat(request: HttpRequest) -> JsonResponse:
    """Record that the key's source is alive."""
    try:
        source = source_for_bearer_key(request.headers.get("Authorization"))
    except IngestError as error:
        return JsonResponse(error.as_dict(), status=error.status)
    services.source_heartbeat(source=source)
    return JsonResponse({"ok": True})
