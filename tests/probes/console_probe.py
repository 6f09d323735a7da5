"""A separate console process with one breaker: reports its config, window and state on request.

    python tests/probes/console_probe.py NAME FAILURES    (DATABASE_URL etc. from the environment)

Starts the console runtime (the saved config applied, a watcher for changes), makes FAILURES
failing calls through breaker NAME, then answers each stdin line: "fail" makes one more
failing call; anything else prints {"minimum_calls", "calls", "state"}. Stops when stdin closes.
"""

import contextlib
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django

django.setup()

from resilience import process_runtime  # noqa: E402


def refused() -> None:
    raise ConnectionError("refused")


def fail(breaker) -> None:
    with contextlib.suppress(ConnectionError):
        breaker.call(refused)


def report(breaker) -> None:
    figures = {"minimum_calls": breaker.config.minimum_calls, "calls": breaker.metrics().calls}
    print(json.dumps({**figures, "state": breaker.state.value}), flush=True)


name, failures = sys.argv[1], int(sys.argv[2])
breaker = process_runtime.breaker(name)
for _ in range(failures):
    fail(breaker)
report(breaker)
for line in sys.stdin:
    if line.strip() == "fail":
        fail(breaker)
    report(breaker)
process_runtime.shutdown()
