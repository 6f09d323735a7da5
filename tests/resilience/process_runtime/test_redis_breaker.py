"""The console's own Redis use goes through the seeded "redis" breaker: ingest survives Redis going away."""

import json

import pytest

from incidents.models import ErrorEvent
from resilience import process_runtime
from resilience.models import Breaker
from resilience.runtime.state import State
from tests.support import native_event

# The console's runtime records its reports in the test's transaction (console_inline), as it makes them.
pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("console_inline"),
]

DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def post(client, key, **fields):
    body = json.dumps(native_event(**fields))
    return client.post(
        "/api/v1/events/", body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key.public_key}"
    )


def test_the_redis_breaker_is_seeded_and_valid():
    row = Breaker.objects.get(name="redis")
    row.to_config().validate()
    assert row.error_type.code == "NETWORK_CONNECTION"


def test_ingest_keeps_accepting_and_counting_quotas_while_redis_is_down(client, settings, source, ingest_key):
    settings.REDIS_URL = DEAD_REDIS
    source.rate_limit_per_minute = 8
    source.save()
    process_runtime.apply_saved_config(process_runtime.runtime())
    statuses = [post(client, ingest_key, message=f"order {n} failed").status_code for n in range(10)]
    assert statuses == [200] * 8 + [429] * 2  # counted in this process instead
    assert ErrorEvent.objects.filter(source=source).count() == 8
    assert process_runtime.breaker(process_runtime.REDIS_BREAKER).state == State.OPEN
    process_runtime.flush_reports()
    opened = ErrorEvent.objects.get(source__slug="console", tags__breaker="redis", tags__to_state="open")
    assert opened.component == "console.redis"
