"""Grouping: fingerprints that join repeats of one failure and keep different failures apart."""

import pytest

from incidents.grouping import group, normalize_message


def failure(function="charge", value="order 1 failed", lineno=10, in_app=True, **fields) -> dict:
    frames = [
        {"module": "django.core.handlers", "function": "inner", "lineno": 55, "in_app": False},
        {"module": "shop.payments", "function": function, "lineno": lineno, "in_app": in_app},
    ]
    return {"exception": [{"type": "ValueError", "value": value, "stacktrace": {"frames": frames}}], **fields}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("order 12345 failed after 3.5 s", "order <num> failed after <num> s"),
        ("user 550e8400-e29b-41d4-a716-446655440000 not found", "user <uuid> not found"),
        ("connect to 10.0.0.12:5432 refused", "connect to <ip> refused"),
        ("mail to ann.lee+shop@example.com bounced", "mail to <email> bounced"),
        ("object at 0x7f3a2b1c9d00", "object at <hex>"),
        ("commit deadbeef42 missing", "commit <hex> missing"),
        ("key 'customer_id' missing", "key <quoted> missing"),
        ("batch of 2026-11-22T10:00:00Z late", "batch of <date> late"),
    ],
)
def test_normalize_message_replaces_what_varies(text, expected):
    assert normalize_message(text) == expected


def test_messages_differing_only_by_ids_share_a_fingerprint():
    assert group(failure(value="order 1 failed")).fingerprint == group(failure(value="order 98765 failed")).fingerprint


def test_a_different_call_site_gets_another_fingerprint():
    assert group(failure(function="charge")).fingerprint != group(failure(function="refund")).fingerprint


def test_a_line_number_change_keeps_the_fingerprint():
    assert group(failure(lineno=10)).fingerprint == group(failure(lineno=250)).fingerprint


def test_without_in_app_frames_all_frames_count():
    assert (
        group(failure(in_app=False, function="a")).fingerprint != group(failure(in_app=False, function="b")).fingerprint
    )


def test_without_frames_the_normalised_message_decides():
    plain = [{"type": "KeyError", "value": "'user 17'", "stacktrace": {"frames": []}}]
    other = [{"type": "KeyError", "value": "'user 99'", "stacktrace": {"frames": []}}]
    assert group({"exception": plain}).fingerprint == group({"exception": other}).fingerprint


def test_a_client_fingerprint_wins():
    first = group(failure(function="charge", client_fingerprint=["payments-down"]))
    second = group(failure(function="refund", client_fingerprint=["payments-down"]))
    assert first.fingerprint == second.fingerprint


def test_default_in_a_client_fingerprint_expands_to_the_default_grouping():
    eu = group(failure(client_fingerprint=["{{ default }}", "eu"]))
    us = group(failure(client_fingerprint=["{{default}}", "us"]))
    eu_again = group(failure(value="order 2 failed", client_fingerprint=["{{ DEFAULT }}", "eu"]))
    assert eu.fingerprint != us.fingerprint
    assert eu.fingerprint == eu_again.fingerprint
    assert eu.fingerprint != group(failure()).fingerprint


def test_title_and_culprit_name_the_failure_and_where_it_happened():
    grouping = group(failure(value="order 7 failed\nmore detail"))
    assert grouping.title == "ValueError: order 7 failed"
    assert grouping.culprit == "shop.payments in charge"
    assert len(grouping.fingerprint) == 64


def test_a_message_event_groups_by_message_and_logger():
    first = group({"message": "disk 91% full on db-1", "logger": "ops"})
    second = group({"message": "disk 97% full on db-2", "logger": "ops"})
    assert first.fingerprint == second.fingerprint
    assert first.title == "disk 91% full on db-1"
