"""The console's own JSON event format.

POST /api/v1/events/ with `Authorization: Bearer <ingest key>` and one event object,
a JSON array of events, or {"events": [...]}. Fields (all optional except that an
event needs a message or an exception):

    event_id      32 hex digits or a UUID; generated when absent. Repeats are stored once.
    timestamp     ISO 8601 or epoch seconds; the time of receipt when absent.
    level         fatal | error | warning | info | debug (default error)
    message       string
    exception     {type, value, module, bases: [base class names], stacktrace: {frames: [
                      {filename, module, function, lineno, colno, in_app, context_line,
                       pre_context, post_context, vars}]}}
                  or a list of them, oldest cause first, or {"values": [...]}
    http_status   integer 100-599
    logger, component, environment, release, server_name, transaction   strings
    tags          object of string -> string, number or boolean
    user          a user id string, or an object {id, email, username, ip_address, ...}
    request       object {url, method, headers, query_string, data, cookies, env}
    context       object of free-form key-values (stored as `extra`; classification rules match on it)
    contexts      object of objects, as Sentry SDKs send them
    fingerprint   list of strings; "{{ default }}" stands for the default grouping
    sdk           object {name, version}
"""

from incidents.ingest.decoding import decode_json
from incidents.ingest.errors import IngestError


def parse_native(body: bytes, *, max_events: int) -> list[dict]:
    """Return the events of a native request body: one object, a list, or {"events": [...]}."""
    payload = decode_json(body, "body")
    if isinstance(payload, dict) and isinstance(payload.get("events"), list):
        events = payload["events"]
    elif isinstance(payload, dict):
        events = [payload]
    elif isinstance(payload, list):
        events = payload
    else:
        raise IngestError(400, "body", 'must be an event object, a list of events or {"events": [...]}')
    if not events:
        raise IngestError(400, "events", "at least one event is required")
    if len(events) > max_events:
        raise IngestError(400, "events", f"{len(events)} events is over the limit of {max_events} per request")
    for index, event in enumerate(events):
        if not isinstance(event, dict):
            raise IngestError(400, f"events[{index}]", "must be a JSON object")
    return events
