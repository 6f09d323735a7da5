"""Grouping: fingerprints that join repeats of one failure and keep different failures apart."""

import copy
import sys

import pytest
from django.utils import timezone
from sentry_sdk.utils import event_from_exception, set_in_app_in_frames

from incidents.ingest.grouping import group, normalize_message
from incidents.ingest.normalize import normalize_sentry_event


def sdk_event(action, *args, **raw_fields) -> dict:
    """Run the action until it raises, capture it as sentry-sdk does (this test module in-app), and normalise it."""
    try:
        action(*args)
    except BaseException:
        raw, _hint = event_from_exception(sys.exc_info())
    else:
        raise AssertionError(f"{action.__name__} did not raise")
    for exception in raw["exception"]["values"]:
        set_in_app_in_frames(exception["stacktrace"]["frames"], in_app_exclude=[], in_app_include=[__name__])
    return normalize_sentry_event({**raw, **raw_fields}, received_at=timezone.now())


# Call sites of a small application


def charge(order_id):
    raise ValueError(f"order {order_id} failed for customer cus_{order_id}@example.com")


def refund(order_id):
    raise ValueError(f"order {order_id} failed for customer cus_{order_id}@example.com")


def charge_with_cause(order_id):
    try:
        {}[f"order-{order_id}"]
    except KeyError as missing:
        raise ValueError(f"order {order_id} failed") from missing


def walk(depth):
    if depth == 0:
        raise RecursionError("too deep")
    walk(depth - 1)


def library_only(order_id):
    import json

    json.loads("{" * 3 + str(order_id))


def fingerprint(event: dict) -> str:
    return group(event).fingerprint


# Normalising messages


@pytest.mark.parametrize(
    "text, expected",
    [
        ("order 12345 failed after 3.5 s", "order <num> failed after <num> s"),
        ("user 550e8400-e29b-41d4-a716-446655440000 not found", "user <uuid> not found"),
        ("connect to 10.0.0.12:5432 refused", "connect to <ip> refused"),
        ("host fe80::1ff:fe23:4567:890a down", "host <ip> down"),
        ("bind ::1 failed", "bind <ip> failed"),
        ("mail to ann.lee+shop42@example.com bounced", "mail to <email> bounced"),
        ("object at 0x7f3a2b1c9d00", "object at <hex>"),
        ("commit 3f786850e387550fdab836ed7e6dc881de23001b missing", "commit <hex> missing"),
        ("key 'customer_id' missing", "key <quoted> missing"),
        ('field "amount" is required', "field <quoted> is required"),
        ("can't reach 'db' because it's down", "can't reach <quoted> because it's down"),
        ("batch of 2026-11-22T10:00:00.123+01:00 late", "batch of <date> late"),
        ("no rows on 2026-11-22", "no rows on <date>"),
        ("job ran at 10:00:01", "job ran at <time>"),
        (
            "GET https://api.example.com/v1/orders?id=42&token=abc failed",
            "GET https://api.example.com/v<num>/orders?id=<value>&token=<value> failed",
        ),
        ("std::vector and the deadbeefcafe word stay", "std::vector and the deadbeefcafe word stay"),
        ("  padded 7  ", "padded <num>"),
    ],
)  # fmt: skip
def test_normalize_message_replaces_what_varies_with_placeholders(text, expected):
    assert normalize_message(text) == expected


# Exceptions with a call site


def test_repeats_at_one_call_site_that_differ_only_by_ids_share_a_fingerprint():
    assert fingerprint(sdk_event(charge, 17)) == fingerprint(sdk_event(charge, 4242))
    assert fingerprint(sdk_event(charge_with_cause, 1)) == fingerprint(sdk_event(charge_with_cause, 99))


def test_the_same_error_at_different_call_sites_gets_different_fingerprints():
    assert fingerprint(sdk_event(charge, 17)) != fingerprint(sdk_event(refund, 17))


def test_a_cause_in_the_chain_makes_another_group():
    assert fingerprint(sdk_event(charge_with_cause, 17)) != fingerprint(sdk_event(charge, 17))


def test_a_line_number_change_keeps_the_fingerprint():
    event = sdk_event(charge, 17)
    moved = copy.deepcopy(event)
    for frame in moved["exception"][-1]["stacktrace"]["frames"]:
        frame["lineno"] += 40
        frame["context_line"] = "    # the code moved down after a deploy"
    assert moved != event
    assert fingerprint(moved) == fingerprint(event)


def test_library_frames_do_not_count_when_there_are_in_app_frames():
    event = sdk_event(library_only, 17)
    assert any(not frame["in_app"] for frame in event["exception"][-1]["stacktrace"]["frames"])
    upgraded = copy.deepcopy(event)
    for frame in upgraded["exception"][-1]["stacktrace"]["frames"]:
        if not frame["in_app"]:
            frame["function"] += "_v2"  # the library was refactored
    assert fingerprint(upgraded) == fingerprint(event)


def test_without_in_app_frames_all_frames_count():
    event = sdk_event(library_only, 17)
    for frame in event["exception"][-1]["stacktrace"]["frames"]:
        frame["in_app"] = False
    changed = copy.deepcopy(event)
    changed["exception"][-1]["stacktrace"]["frames"][-1]["function"] = "raw_decode_v2"
    assert fingerprint(changed) != fingerprint(event)


def test_the_depth_of_a_recursion_does_not_split_a_group():
    assert fingerprint(sdk_event(walk, 3)) == fingerprint(sdk_event(walk, 8))


def test_a_placeholder_for_omitted_frames_does_not_count():
    def with_frames(*functions):
        frames = [{"module": "app.jobs", "function": name, "in_app": False} for name in functions]
        return {"exception": [{"type": "ValueError", "value": "x", "module": "", "stacktrace": {"frames": frames}}]}

    assert fingerprint(with_frames("main", "[50 frames omitted]", "run")) == fingerprint(
        with_frames("main", "[120 frames omitted]", "run")
    )


# Exceptions without frames, and messages


def test_without_frames_the_types_and_the_normalised_value_decide():
    def bare(type_name, value):
        return {"exception": [{"type": type_name, "value": value, "module": "", "stacktrace": {"frames": []}}]}

    assert fingerprint(bare("KeyError", "'user 17'")) == fingerprint(bare("KeyError", "'user 99'"))
    assert fingerprint(bare("KeyError", "order 17 missing")) != fingerprint(bare("KeyError", "user 17 missing"))
    assert fingerprint(bare("KeyError", "order 17")) != fingerprint(bare("IndexError", "order 17"))


def test_a_message_event_groups_by_normalised_message_and_logger():
    first = group({"message": "disk 91% full on 10.0.0.1", "logger": "ops.disk"})
    second = group({"message": "disk 97% full on 10.0.0.2", "logger": "ops.disk"})
    other_logger = group({"message": "disk 91% full on 10.0.0.1", "logger": "ops.backup"})
    assert first.fingerprint == second.fingerprint
    assert first.fingerprint != other_logger.fingerprint


# Client fingerprints


def test_a_client_fingerprint_wins_over_the_call_site():
    first = sdk_event(charge, 17, fingerprint=["payments-down"])
    second = sdk_event(refund, 17, fingerprint=["payments-down"])
    assert fingerprint(first) == fingerprint(second)
    assert fingerprint(first) != fingerprint(sdk_event(charge, 17, fingerprint=["payments-slow"]))


def test_default_in_a_client_fingerprint_expands_to_the_default_grouping():
    eu = sdk_event(charge, 17, fingerprint=["{{ default }}", "eu"])
    eu_again = sdk_event(charge, 4242, fingerprint=["{{default}}", "eu"])
    us = sdk_event(charge, 17, fingerprint=["{{  DEFAULT }}", "us"])
    refund_eu = sdk_event(refund, 17, fingerprint=["{{ default }}", "eu"])
    assert fingerprint(eu) == fingerprint(eu_again)
    assert len({fingerprint(eu), fingerprint(us), fingerprint(refund_eu), fingerprint(sdk_event(charge, 17))}) == 4


def test_a_client_fingerprint_of_only_default_is_the_default_grouping():
    assert fingerprint(sdk_event(charge, 17, fingerprint=["{{ default }}"])) == fingerprint(sdk_event(charge, 17))


def test_a_client_value_cannot_collide_with_a_default_component():
    plain = {"message": "boom", "logger": ""}
    assert fingerprint(plain) != fingerprint({**plain, "client_fingerprint": ["message:boom", "logger:"]})


# Title and culprit


def test_title_is_the_surfaced_exception_and_culprit_the_last_in_app_frame():
    grouping = group(sdk_event(charge_with_cause, 17))
    assert grouping.title == "ValueError: order 17 failed"  # the real value, not the normalised one
    assert grouping.culprit == f"{__name__} in charge_with_cause"
    assert len(grouping.fingerprint) == 64
    assert int(grouping.fingerprint, 16) >= 0


def test_title_takes_the_first_line_and_stays_within_255_characters():
    multiline = group({"exception": [{"type": "ValueError", "value": "\nfirst line\nsecond line", "module": ""}]})
    long = group({"message": "x" * 300})
    assert multiline.title == "ValueError: first line"
    assert len(long.title) == 255
    assert long.title.endswith("…")


@pytest.mark.parametrize(
    "event, title",
    [
        ({"message": "disk full\ntraceback follows"}, "disk full"),
        ({"message": ""}, "<no message>"),
        ({"exception": [{"type": "KeyError", "value": "", "module": ""}]}, "KeyError"),
    ],
)
def test_title_falls_back_to_the_message_and_then_to_a_placeholder(event, title):
    assert group(event).title == title


def test_culprit_falls_back_to_the_last_frame_then_the_transaction_then_the_logger():
    frames = [
        {"module": "lib.http", "function": "send", "in_app": False},
        {"filename": "app.js:120:7", "in_app": False},
    ]
    in_library = {"exception": [{"type": "E", "value": "", "module": "", "stacktrace": {"frames": frames}}]}
    assert group(in_library).culprit == "app.js"
    assert group({"message": "x", "transaction": "/orders/{id}", "logger": "shop"}).culprit == "/orders/{id}"
    assert group({"message": "x", "logger": "shop"}).culprit == "shop"
    assert group({"message": "x", "transaction": "t" * 300}).culprit == "t" * 254 + "…"
