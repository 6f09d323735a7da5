"""Asking for the digest: one task waits at a time, the digest's start clears it, a stale request expires."""

from datetime import timedelta

import pytest
from django.utils import timezone

from incidents.models import DigestRequest
from incidents.tasks import digest_events

pytestmark = pytest.mark.django_db


def test_only_the_first_of_many_asks_enqueues_until_the_digest_starts():
    DigestRequest.take()
    assert [DigestRequest.ask() for _ in range(5)] == [True, False, False, False, False]
    digest_events()  # the digest starts by clearing the request
    assert DigestRequest.objects.get(pk=1).requested_at is None
    assert DigestRequest.ask() is True


def test_a_request_whose_task_was_lost_stops_holding_asks_back():
    stale = timezone.now() - timedelta(seconds=DigestRequest.STALE_SECONDS + 1)
    DigestRequest.objects.filter(pk=1).update(requested_at=stale)
    assert DigestRequest.ask() is True
    assert DigestRequest.ask() is False


def test_a_missing_row_is_made_by_the_first_ask():
    DigestRequest.objects.all().delete()
    assert DigestRequest.ask() is True
    assert DigestRequest.ask() is False


def test_a_digest_starts_no_sooner_than_the_interval_after_the_last_one():
    DigestRequest.take(min_interval=0.2)
    first = DigestRequest.objects.values_list("started_at", flat=True).get(pk=1)
    DigestRequest.ask()
    DigestRequest.take(min_interval=0.2)  # waits out the interval: the commits of these 0.2 s join it
    second = DigestRequest.objects.values_list("started_at", flat=True).get(pk=1)
    assert (second - first).total_seconds() >= 0.2
    assert DigestRequest.objects.get(pk=1).requested_at is None
