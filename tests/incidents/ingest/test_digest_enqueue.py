"""Waking the digest costs one Redis command, not a new client and connection each time."""

import pytest
import redis
from django.conf import settings

from incidents.ingest import pipeline


@pytest.mark.django_db
def test_repeated_wake_ups_reuse_one_broker_connection():
    if not settings.REDIS_URL:
        pytest.skip("the ORM broker keeps no connection of its own")
    server = redis.Redis.from_url(settings.REDIS_URL)
    pipeline.digest_enqueue()  # the process's broker and its connection, made once
    before = server.info("stats")["total_connections_received"]
    for _ in range(20):
        pipeline.digest_enqueue()
    # Other clients may connect meanwhile (the test run's own threads): far fewer than one per wake-up.
    assert server.info("stats")["total_connections_received"] - before < 5
