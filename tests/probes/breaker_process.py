"""A separate console process driving one breaker of its console runtime, for tests of shared state.

    python tests/probes/breaker_process.py NAME
    (DATABASE_URL, REDIS_URL and RESILIENCE_STATE_STORE from the environment)

It applies the saved config, prints what it sees of the breaker as one JSON line, then answers
each command read from stdin with one JSON line of the same shape (plus what the command adds):

    call          a call through the breaker: "outcome" is "ok" or "refused"
    force_open    force the breaker open from this process
    wait MODE     poll, making no call, until this process sees MODE: "seen" is true or false
    flush         write the transitions this process made (the console's recorder thread)

"announced" lists the target states of the transitions this process's breaker made itself.
It stops when its stdin closes.
"""

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django

django.setup()

from resilience import process_runtime  # noqa: E402
from resilience.runtime.breaker import CallNotPermitted  # noqa: E402


def main() -> None:
    name = sys.argv[1]
    runtime = process_runtime.runtime()
    process_runtime.apply_saved_config(runtime)  # the saved config, before the breaker's first use
    breaker = runtime.breaker(name)
    announced: list[str] = []
    breaker.add_listener(lambda transition: announced.append(str(transition.to_state)))

    def answer(**extra) -> None:
        metrics = breaker.metrics()
        seen = {"state": str(metrics.state), "mode": str(metrics.mode), "generation": metrics.generation}
        print(json.dumps({**seen, "announced": announced, **extra}), flush=True)

    answer()
    for line in sys.stdin:
        command, *arguments = line.split()
        if command == "call":
            try:
                breaker.call(lambda: "ok")
                answer(outcome="ok")
            except CallNotPermitted:
                answer(outcome="refused")
        elif command == "force_open":
            breaker.force_open(reason=f"operator in process {os.getpid()}")
            answer()
        elif command == "wait":
            deadline = time.monotonic() + 10
            while str(breaker.mode) != arguments[0] and time.monotonic() < deadline:
                time.sleep(0.02)  # polling a condition with a deadline
            answer(seen=str(breaker.mode) == arguments[0])
        elif command == "flush":
            process_runtime.flush_reports()
            answer()
    process_runtime.reset()  # writes the reports still queued, then stops the runtime's threads


if __name__ == "__main__":
    main()
