"""Regex benchmark: the scrubber and the HTTP-status reader on hostile 8 KB messages.

    .venv/bin/python bench/regex.py [--repeat 5]

Each input is shaped to make a backtracking pattern explode (the longest message ingest
accepts is about 8 KB). Prints the best time per input in milliseconds; anything near
a millisecond per KB means a pattern went super-linear.
"""

import argparse
import sys
import timeit
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from incidents.ingest.normalize import normalize_sentry_event
from incidents.scrub import Scrubber, scrub_string

HOSTILE_FOR_SCRUBBING = {
    "long word then =": "a" * 8000 + "=",
    "quoted keys with colons": "'" + "a" * 200 + "':" * 2000,
    "unterminated escaped value": '"k": "' + "\\" * 8000,
    "digits and spaces": "1 " * 4000,
    "one long number": "4" * 8000,
    "repeated Bearer": "Bearer " * 1000,
    "URL user:pass chain": "http://" + "a:" * 4000 + "@",
    "dotted host then credentials": "a." * 4000 + " ://x@",
    "dashed host then credentials": "a-" * 4000 + " ://x@",
    "open brackets then =": "[a" * 4000 + "=x",
    "unterminated quoted assignment": 'k = "' + "a" * 8000,
    "repeated quoted key": "'k': \"" * 1300,
}

HOSTILE_FOR_STATUS = {"dotted words then a URL and a status": "a." * 4000 + " https://example.com/ 503"}


def best_ms(function, repeat: int) -> float:
    return min(timeit.repeat(function, number=1, repeat=repeat)) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    scrubber = Scrubber()
    received_at = datetime.now(UTC)
    print(f"{'input':<40} {'chars':>6} {'best ms':>8}")
    for name, text in HOSTILE_FOR_SCRUBBING.items():
        took = best_ms(lambda text=text: scrub_string(text, scrubber), args.repeat)
        print(f"scrub: {name:<33} {len(text):>6} {took:>8.2f}")
    for name, value in HOSTILE_FOR_STATUS.items():
        raw = {"exception": [{"type": "HTTPError", "value": value}]}
        took = best_ms(
            lambda raw=raw: normalize_sentry_event(raw, received_at=received_at, scrub_extra_keys=()), args.repeat
        )
        print(f"status: {name[:32]:<32} {len(value):>6} {took:>8.2f}")


if __name__ == "__main__":
    main()
