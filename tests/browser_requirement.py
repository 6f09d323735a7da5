"""Whether the browser tests can run: they drive Debian's chromium, which `make test` installs when it can
(as root, with apt-get) and `.ci/run` always does.

Without it they are skipped with one line saying how to install it, so `make test` on a fresh machine says
what is missing instead of failing. CI exports REQUIRE_BROWSER=1, which turns that skip into a failure: a
green CI run must have run them."""

import os
from collections.abc import Mapping
from typing import Literal

CHROMIUM = "/usr/bin/chromium"
INSTALL = "apt-get install -y chromium"


def chromium_missing(path: str, environ: Mapping[str, str]) -> tuple[Literal["skip", "fail"], str] | None:
    """None when an executable chromium is at `path`; otherwise whether to skip or fail, and the line to say."""
    if os.access(path, os.X_OK):
        return None
    message = f"BROWSER TESTS NOT RUN: {path} is missing; install it with `{INSTALL}` (as root)"
    if environ.get("REQUIRE_BROWSER") == "1":
        return "fail", f"{message}. REQUIRE_BROWSER=1 requires them to run"
    return "skip", message
