"""Remove secrets and card numbers from an event before anything is stored."""

import re
from collections.abc import Iterable

FILTERED = "[Filtered]"
# Compared with the key lower-cased and stripped of "-" and "_", so X-Api-Key and api_key both match.
SENSITIVE_KEY_PARTS = (
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "accesskey",
    "privatekey",
    "authorization",
    "cookie",
    "session",
    "csrf",
    "xsrf",
    "credential",
    "creditcard",
    "cardnumber",
    "cvv",
    "ssn",
)
EXACT_SENSITIVE_KEYS = {"pwd", "auth"}
# The identifiers the console counts distinct users by stay; everything else in `user` is scrubbed by key.
USER_KEYS_KEPT = {"id", "email", "username", "ip_address"}

_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9\-._~+/]+=*")
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^\s:/@]+):[^\s@/]+@")
_CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
_QUERY_PAIR = re.compile(r"([^&=]+)=([^&]*)")


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char)
        if position % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def _filter_card(match: re.Match) -> str:
    digits = re.sub(r"[ -]", "", match.group(0))
    return FILTERED if 13 <= len(digits) <= 19 and _luhn_valid(digits) else match.group(0)


def scrub_string(value: str) -> str:
    """Filter bearer tokens, URL passwords and Luhn-valid card numbers inside a string."""
    if "earer" in value or "EARER" in value:
        value = _BEARER.sub(rf"\1 {FILTERED}", value)
    if "://" in value and "@" in value:
        value = _URL_PASSWORD.sub(rf"\1:{FILTERED}@", value)
    return _CARD.sub(_filter_card, value)  # the regex engine skips digit-free text quickly


class _Scrubber:
    def __init__(self, extra_keys: Iterable[str]):
        self.extra = {self._normal(key) for key in extra_keys}

    @staticmethod
    def _normal(key: str) -> str:
        return key.lower().replace("-", "").replace("_", "")

    def is_sensitive(self, key) -> bool:
        normal = self._normal(str(key))
        return normal in EXACT_SENSITIVE_KEYS or normal in self.extra or any(p in normal for p in SENSITIVE_KEY_PARTS)

    def value(self, value):
        if isinstance(value, str):
            return scrub_string(value)
        if isinstance(value, dict):
            return {k: FILTERED if self.is_sensitive(k) else self.value(v) for k, v in value.items()}
        if isinstance(value, list):
            if len(value) == 2 and isinstance(value[0], str) and self.is_sensitive(value[0]):
                return [value[0], FILTERED]  # header and query lists come as [name, value] pairs
            return [self.value(v) for v in value]
        return value

    def query_string(self, value):
        if isinstance(value, str):
            return _QUERY_PAIR.sub(
                lambda m: f"{m.group(1)}={FILTERED}" if self.is_sensitive(m.group(1)) else m.group(0), value
            )
        return self.value(value)

    def user(self, user: dict) -> dict:
        return {
            k: v if k in USER_KEYS_KEPT else (FILTERED if self.is_sensitive(k) else self.value(v))
            for k, v in user.items()
        }

    def request(self, request: dict) -> dict:
        scrubbed = {}
        for key, value in request.items():
            if key == "cookies":
                scrubbed[key] = FILTERED if value else value
            elif key == "query_string":
                scrubbed[key] = self.query_string(value)
            elif self.is_sensitive(key):
                scrubbed[key] = FILTERED
            else:
                scrubbed[key] = self.value(value)
        return scrubbed


def scrub_event(event: dict, *, extra_keys: Iterable[str] = ()) -> dict:
    """Scrub a canonical event in place and return it."""
    scrubber = _Scrubber(extra_keys)
    event["message"] = scrub_string(event["message"])
    for name in ("tags", "contexts", "extra"):
        event[name] = scrubber.value(event[name])
    event["user"] = scrubber.user(event["user"])
    event["request"] = scrubber.request(event["request"])
    for exception in event["exception"]:
        exception["value"] = scrub_string(exception["value"])
        for frame in exception["stacktrace"]["frames"]:
            if "vars" in frame:
                frame["vars"] = scrubber.value(frame["vars"])
            if isinstance(frame.get("context_line"), str):
                frame["context_line"] = scrub_string(frame["context_line"])
    return event
