"""Quotas counted in Redis through per-process leases: one round trip per lease, and the limit held
across processes to within a lease each."""

import uuid

import pytest
import redis
from django.conf import settings

from incidents.ingest import quotas

pytestmark = pytest.mark.django_db


@pytest.fixture
def redis_url():
    if not settings.REDIS_URL:
        pytest.skip("leases are taken from Redis; the in-memory counter has no other process to share with")
    return settings.REDIS_URL


def test_a_large_limit_is_counted_a_lease_at_a_time(redis_url):
    counter, key, window = quotas._RedisCounter(redis_url), uuid.uuid4().hex, 1
    accepted = [counter.take(key, 1, window, limit=10_000) for _ in range(250)]
    assert accepted == [True] * 250
    shared = int(redis.Redis.from_url(redis_url).get(f"quota:{key}:{window}"))
    assert shared == 300  # three leases of 1 % (100 events): three round trips for 250 requests


def test_processes_sharing_a_limit_accept_it_to_within_a_lease_each(redis_url):
    first, second = quotas._RedisCounter(redis_url), quotas._RedisCounter(redis_url)
    key, window, limit = uuid.uuid4().hex, 2, 500  # leases of 5
    accepted = 0
    for _ in range(400):
        accepted += first.take(key, 1, window, limit) + second.take(key, 1, window, limit)
    assert limit - 2 * 5 <= accepted <= limit


def test_a_small_limit_is_exact(redis_url):
    counter, key = quotas._RedisCounter(redis_url), uuid.uuid4().hex
    assert [counter.take(key, 1, 3, limit=3) for _ in range(5)] == [True, True, True, False, False]


def test_a_new_minute_starts_with_no_lease(redis_url):
    counter, key = quotas._RedisCounter(redis_url), uuid.uuid4().hex
    assert counter.take(key, 1, 10, limit=2) and counter.take(key, 1, 10, limit=2)
    assert not counter.take(key, 1, 10, limit=2)
    assert counter.take(key, 1, 11, limit=2)


def test_a_quota_renews_when_the_quota_clock_turns_the_minute():
    now = 1_000 * quotas.WINDOW_SECONDS + 45.0  # 15 s before a minute ends
    quotas.reset(clock=lambda: now)
    source_id = uuid.uuid4().int % 1_000_000_000
    assert quotas.quota_consume(source_id=source_id, limit_per_minute=1) is None
    assert quotas.quota_consume(source_id=source_id, limit_per_minute=1) == 15
    assert quotas.quota_usage(source_id=source_id, limit_per_minute=1) == (2, 15)
    now += 15.0
    assert quotas.quota_usage(source_id=source_id, limit_per_minute=1) == (0, None)
    assert quotas.quota_consume(source_id=source_id, limit_per_minute=1) is None
