"""The browser tests' decision when chromium is missing: skip and say how to install it, fail under CI."""

import sys

from tests.browser_requirement import INSTALL, chromium_missing

NOWHERE = "/nonexistent/chromium"


def test_a_missing_chromium_skips_the_browser_tests_saying_how_to_install_it():
    verdict, message = chromium_missing(NOWHERE, {})
    assert verdict == "skip"
    assert NOWHERE in message and INSTALL in message


def test_a_missing_chromium_fails_the_browser_tests_when_they_are_required():
    verdict, message = chromium_missing(NOWHERE, {"REQUIRE_BROWSER": "1"})
    assert verdict == "fail"
    assert INSTALL in message and "REQUIRE_BROWSER=1" in message


def test_only_require_browser_1_requires_them():
    assert chromium_missing(NOWHERE, {"REQUIRE_BROWSER": "0"})[0] == "skip"


def test_a_present_chromium_runs_them_whether_or_not_they_are_required():
    assert chromium_missing(sys.executable, {}) is None
    assert chromium_missing(sys.executable, {"REQUIRE_BROWSER": "1"}) is None
