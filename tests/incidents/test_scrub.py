"""Scrubbing secrets before storage, checked against a corpus of inputs and expected outputs."""

import json
from pathlib import Path

import pytest

from incidents.scrub import scrub_event

CORPUS = json.loads((Path(__file__).parent / "fixtures" / "scrub_corpus.json").read_text())


def event_with(field: str, value) -> dict:
    event = {"message": "", "tags": {}, "contexts": {}, "extra": {}, "user": {}, "request": {}, "exception": []}
    event[field] = value
    return event


@pytest.mark.parametrize("case", CORPUS, ids=[case["name"] for case in CORPUS])
def test_the_corpus_scrubs_as_expected(case):
    scrubbed = scrub_event(event_with(case["field"], case["input"]))
    assert scrubbed[case["field"]] == case["output"]


def test_frame_variables_and_exception_values_are_scrubbed():
    event = event_with("extra", {})
    event["exception"] = [
        {
            "type": "ValueError",
            "value": "card 4012888888881881 declined",
            "stacktrace": {"frames": [{"function": "pay", "vars": {"api_token": "t0k", "amount": "5"}}]},
        }
    ]
    scrubbed = scrub_event(event)
    assert scrubbed["exception"][0]["value"] == "card [Filtered] declined"
    assert scrubbed["exception"][0]["stacktrace"]["frames"][0]["vars"] == {"api_token": "[Filtered]", "amount": "5"}


def test_extra_keys_from_settings_are_scrubbed_too():
    scrubbed = scrub_event(event_with("extra", {"tenant_pin": "1234", "tenant": "acme"}), extra_keys=["tenant-pin"])
    assert scrubbed["extra"] == {"tenant_pin": "[Filtered]", "tenant": "acme"}
