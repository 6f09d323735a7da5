"""Regex benchmark: the scrubber, the HTTP-status reader and operator-written patterns on hostile input.

    .venv/bin/python bench/regex.py [--repeat 5]

Each input is shaped to make a backtracking pattern explode (the longest message ingest
accepts is about 8 KB). Prints the best time per input in milliseconds; anything near
a millisecond per KB means a pattern went super-linear. Classification rule patterns
run on RE2 (incidents/patterns.py): the hostile patterns below are timed through the
classifier on 8 KB messages, and Python's `re` on the same patterns with a few dozen
characters for contrast (each two more characters roughly quadruple its time). Alert
templates are bounded: the nested-loop template is timed as saving a rule checks it.
"""

import argparse
import json
import os
import sys
import timeit
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import re
from types import SimpleNamespace

from incidents.ingest.classify import ErrorTypeInfo, classify, compile_rules
from incidents.ingest.normalize import normalize_sentry_event
from incidents.ingest.scrub import Scrubber, scrub_string

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
    "colon pairs": "a: " * 2700,
    "spaced assignments": "a = " * 2000,
    "chained key=value": "a=" * 4000,
    "sensitive chained key=value": "token=" * 1300,
    "alternating quotes": "a = 'b = \"" * 800,
    "escaped quoted keys": '\\"k\\": ' * 1000,
    "many backslashes then a quote": "\\" * 8000 + '"',
    "repeated Authorization lines": "Authorization: x\n" * 470,
    "repeated Basic and Token": "Basic Token " * 660,
    "JWT-like segments": "eyJa." * 1600,
    "repeated eyJ": "eyJ" * 2700,
    "dashes and flags": "--a " * 2000,
    "repeated -p": "-p " * 2700,
    "percent escapes": "%25" * 2700,
    "percent-encoded pairs": "pass%77ord%3Dx%26" * 470,
    "deeply nested JSON": "[" * 8000,
    "JSON of many keys": "{" + ",".join(f'"k{n}": "v"' for n in range(800)) + "}",
    "JSON string of JSON": json.dumps(json.dumps({"k": "v" * 7900})),
}

HOSTILE_FOR_STATUS = {"dotted words then a URL and a status": "a." * 4000 + " https://example.com/ 503"}

# Pattern, and the unit repeated to make the message that defeats it.
HOSTILE_PATTERNS = {
    "(a+)+$": "a",
    "(a|aa)+$": "a",
    "(.*a){12}": "a",
    "(\\w+\\s?)+$": "word ",
}
CATALOG = {code: ErrorTypeInfo(code=code, category="API", default_severity=30) for code in ("MATCHED", "UNEXPECTED")}

NESTED_LOOPS = "".join(f'{{% for c{i} in "{"x" * 50}" %}}' for i in range(6)) + "." + "{% endfor %}" * 6


def best_ms(function, repeat: int) -> float:
    return min(timeit.repeat(function, number=1, repeat=repeat)) * 1000


def pattern_rule(pattern: str) -> SimpleNamespace:
    return SimpleNamespace(
        id=1,
        name=pattern,
        position=1,
        enabled=True,
        exception_type="",
        message_pattern=pattern,
        http_status="",
        logger="",
        component="",
        context_match={},
        error_type=SimpleNamespace(code="MATCHED"),
        severity_override=None,
    )


def bench_patterns(repeat: int) -> None:
    for pattern, unit in HOSTILE_PATTERNS.items():
        rules = compile_rules([pattern_rule(pattern)])
        message = (unit * (8000 // len(unit)))[:8000] + "!"
        took = best_ms(lambda message=message, rules=rules: classify({"message": message}, rules, CATALOG), repeat)
        print(f"rule (RE2): {pattern[:28]:<28} {len(message):>6} {took:>8.2f}")
        compiled = re.compile(pattern, re.IGNORECASE)
        for length in (16, 18, 20):
            text = (unit * length)[:length] + "!"
            took = best_ms(lambda text=text, compiled=compiled: compiled.search(text), 1)
            print(f"python re: {pattern[:29]:<29} {len(text):>6} {took:>8.2f}")


def bench_templates(repeat: int) -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from incidents.models import AlertRule

    took = best_ms(lambda: AlertRule.template_error(NESTED_LOOPS), repeat)
    print(f"template: 6 nested loops (50^6), refused {len(NESTED_LOOPS):>6} {took:>8.2f}")


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
    bench_patterns(args.repeat)
    bench_templates(args.repeat)


if __name__ == "__main__":
    main()
