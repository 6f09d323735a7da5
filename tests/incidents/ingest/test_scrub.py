"""Scrubbing secrets before storage, checked against a corpus of inputs and expected outputs."""

import copy
import json
from pathlib import Path

import pytest

from incidents.ingest import scrub
from incidents.ingest.scrub import FILTERED, Scrubber, scrub_event, scrub_string

CORPUS = json.loads((Path(__file__).parent / "fixtures" / "scrub_corpus.json").read_text())


def event_with(field: str, value) -> dict:
    event = {
        "message": "",
        "transaction": "",
        "tags": {},
        "contexts": {},
        "extra": {},
        "user": {},
        "request": {},
        "exception": [],
        "client_fingerprint": None,
    }
    event[field] = copy.deepcopy(value)
    return event


@pytest.mark.parametrize("case", CORPUS, ids=[case["name"] for case in CORPUS])
def test_the_corpus_scrubs_as_expected(case):
    scrubbed = scrub_event(event_with(case["field"], case["input"]), extra_keys=case.get("extra_keys", ()))
    assert scrubbed[case["field"]] == case["output"]


def test_the_corpus_covers_every_field_the_scrubber_reads():
    fields = {case["field"] for case in CORPUS}
    assert fields >= {"message", "transaction", "tags", "contexts", "extra", "user", "request", "exception"}


def test_it_scrubs_in_place_and_returns_the_event():
    event = event_with("extra", {"password": "x"})
    assert scrub_event(event) is event
    assert event["extra"] == {"password": FILTERED}


def test_every_field_is_scrubbed_but_ids_times_levels_and_the_fingerprint():
    event = {
        "message": "token=abc",
        "release": "token=abc",
        "future_field": {"password": "x"},
        "level": "error",
        "fingerprint": "token=abc",
        "http_status": 4111111111111111,
    }
    assert scrub_event(event) == {
        "message": f"token={FILTERED}",
        "release": f"token={FILTERED}",
        "future_field": {"password": FILTERED},
        "level": "error",
        "fingerprint": "token=abc",
        "http_status": 4111111111111111,
    }


def test_a_partial_event_is_scrubbed_without_failing():
    assert scrub_event({"exception": [{"type": "E"}], "user": {"id": 1}}) == {
        "exception": [{"type": "E"}],
        "user": {"id": 1},
    }


def test_extra_keys_apply_only_to_the_scrubbers_asked_for_them():
    assert scrub_event(event_with("extra", {"tenant_ref": "1"}), extra_keys=["tenant_ref"])["extra"] == {
        "tenant_ref": FILTERED
    }
    assert scrub_event(event_with("extra", {"tenant_ref": "1"}))["extra"] == {"tenant_ref": "1"}
    # The same string, remembered by one scrubber, must not leak its result to another.
    assert scrub_string("tenant_ref=1", scrub.scrubber_for(["tenant_ref"])) == f"tenant_ref={FILTERED}"
    assert scrub_string("tenant_ref=1") == "tenant_ref=1"


def test_a_single_string_of_extra_keys_is_one_key():
    assert scrub_event(event_with("extra", {"ref": "1", "p": "2"}), extra_keys="ref")["extra"] == {
        "ref": FILTERED,
        "p": "2",
    }


def test_remembered_results_are_the_same_as_fresh_ones():
    text = "retry with Bearer abcd1234efgh and card 4111 1111 1111 1111"
    fresh = scrub_string(text, Scrubber())
    assert fresh == f"retry with Bearer {FILTERED} and card {FILTERED}"
    assert scrub_string(text) == fresh
    assert scrub_string(text) == fresh


def test_the_caches_stay_bounded():
    scrubber = Scrubber()
    for n in range(scrub._MAX_CACHED_KEYS + 10):
        scrubber.is_sensitive(f"key{n}")
        scrub_string(f"value number {n}", scrubber)
    assert len(scrubber._cache) <= scrub._MAX_CACHED_KEYS
    assert len(scrubber.memo) <= scrub._MAX_MEMO


def test_non_string_keys_are_checked_by_their_text():
    assert Scrubber().mapping({1: "a", ("x",): "b"}) == {1: "a", ("x",): "b"}
    assert Scrubber(["7"]).mapping({7: "secret"}) == {7: FILTERED}


def test_every_sensitive_name_contains_a_quick_marker():
    # Strings without a marker skip the pair regexes, so a rule without one would never fire there.
    names = [*scrub._SENSITIVE_PART.pattern.split("|"), *scrub._SENSITIVE_WORDS]
    for name in names:
        assert any(marker in name for marker in scrub._KEY_MARKERS), name
