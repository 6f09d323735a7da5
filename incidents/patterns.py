"""Regular expressions written by operators, run by RE2 so that every match takes linear time.

Python's `re` backtracks: `(a+)+$` against 26 letters and a "!" takes seconds, and ingest
would run such a pattern on every event anyone with a (public) DSN key sends. RE2 never
backtracks; the price is that it refuses what cannot be run without backtracking
(backreferences such as \\1, lookahead and lookbehind, possessive quantifiers and atomic
groups, \\Z), and `\\b`, `\\d`, `\\w` and `\\s` are ASCII-only. Patterns are compiled once
when rules are loaded and refused on save with the reason RE2 gives.
"""

import re2

# Compiled programs above this size are refused (RE2's default is 8 MiB per pattern):
# 500 characters of ordinary pattern compile to a few KiB.
MAX_PROGRAM_BYTES = 1 << 20

_HINT = (
    "patterns run in linear time (RE2 syntax), so backreferences (\\1), lookahead and lookbehind "
    "((?=, (?!, (?<=, (?<!), possessive quantifiers (a++) and atomic groups are not supported"
)


class PatternError(ValueError):
    """A pattern RE2 cannot run, with RE2's reason."""


def _options(*, ignore_case: bool) -> re2.Options:
    options = re2.Options()
    options.case_sensitive = not ignore_case
    options.log_errors = False  # a refused pattern is the operator's input, not a fault worth a stderr line
    options.max_mem = MAX_PROGRAM_BYTES
    return options


def compile_pattern(pattern: str, *, ignore_case: bool = True) -> "Pattern":
    """Compile `pattern` for linear-time search, raising PatternError if RE2 cannot run it."""
    try:
        # Compiled as UTF-8 bytes so that text is encoded once per event and lone surrogates cannot fail a match.
        return Pattern(re2.compile(pattern.encode("utf-8", "surrogatepass"), _options(ignore_case=ignore_case)))
    except re2.error as error:
        reason = error.args[0].decode("utf-8", "replace") if error.args and isinstance(error.args[0], bytes) else error
        raise PatternError(f"{reason}; {_HINT}") from None


def encode_text(text: str) -> bytes:
    """Return `text` as the bytes `Pattern.search` reads; lone surrogates pass through instead of failing."""
    return text.encode("utf-8", "surrogatepass")


class Pattern:
    """A compiled RE2 pattern that searches text already encoded with `encode_text`."""

    __slots__ = ("_regexp",)

    def __init__(self, regexp):
        self._regexp = regexp

    def search(self, data: bytes) -> bool:
        """Tell whether the pattern occurs anywhere in `data`."""
        return self._regexp.search(data) is not None
