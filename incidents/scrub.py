"""Remove secrets and card numbers from a canonical event before anything is stored.

Two kinds of rules:

* By key. A value is replaced with "[Filtered]" when its key, lower-cased and stripped of
  "-" and "_", contains password, passwd, pwd, passphrase, secret, token, apikey,
  accesskey, privatekey, authorization, cookie, session, sessid, csrf, xsrf, credential,
  creditcard, cardnumber or cvv; or when one of its words (split at separators and
  camelCase) is auth, ssn or cvc; or when it is one of the extra keys (SCRUB_EXTRA_KEYS,
  compared whole, after the same normalisation). This applies at any depth in tags,
  user (except id, email, username and ip_address, which the console counts users by),
  request (headers, data, env, query strings as text or pairs), contexts, extra,
  exception mechanisms and frame vars; [name, value] pairs in lists count as keys too.
  Substrings are matched so that github_token, refreshToken or X-Upstream-Token are
  caught; the price is that tokenizer_name or max_tokens are filtered as well. Words
  are matched for auth and ssn because they hide inside ordinary words: author,
  oauth_state, classname and business_name stay. Empty values (null, "") stay.
* Inside every string (message, transaction, exception values, source lines, paths, and
  values everywhere except the kept user identifiers): `Bearer <token>` becomes
  `Bearer [Filtered]` (a token is 8+ characters with a digit or symbol, or 16+ letters,
  so "bearer of bad news" stays); the password of a URL (scheme://user:password@host)
  becomes [Filtered]; `key=value`, `key = "value"`, `"key": "value"` and `'key': 'value'`
  pairs with a sensitive key have their value filtered (query strings, form bodies, log
  lines, source lines, JSON and Python reprs); and card numbers become [Filtered]: 13 to
  19 digits, possibly separated by single spaces or dashes, starting with 2-6 like every
  major card scheme, and passing the Luhn check. Order ids that fail Luhn, epoch
  milliseconds (they start with 1) and digits inside longer numbers stay.

Request cookies are filtered whole.
"""

import re
from collections.abc import Iterable

FILTERED = "[Filtered]"
USER_KEYS_KEPT = frozenset({"id", "email", "username", "ip_address"})

_SENSITIVE_PART = re.compile(
    "password|passwd|pwd|passphrase|secret|token|apikey|accesskey|privatekey|authorization"
    "|cookie|session|sessid|csrf|xsrf|credential|creditcard|cardnumber|cvv"
)
_SENSITIVE_WORDS = frozenset({"auth", "ssn", "cvc"})
# Stems covering every part and word above, for a quick test of whether a string may hold a key.
_KEY_MARKERS = (
    "pass",
    "pwd",
    "secret",
    "token",
    "key",
    "auth",
    "cookie",
    "sess",
    "csrf",
    "xsrf",
    "credential",
    "card",
    "cvv",
    "cvc",
    "ssn",
)
_CAMEL_BOUNDARY = re.compile(r"([a-z0-9])([A-Z])")
_WORD = re.compile(r"[a-z0-9]+")

# Possessive quantifiers (*+, ++) never give back what they matched: no backtracking, linear time.
_BEARER = re.compile(r"(?i)\b(bearer)(\s++)([A-Za-z0-9\-._~+/]++=*+)")
# Lookbehinds start matches only where a run begins: "a.a.a…" must not be rescanned from every letter.
_URL_PASSWORD = re.compile(r"(?i)(?<![a-z0-9+.\-])([a-z][a-z0-9+.\-]*+://[^\s:/@]*+):[^\s@/]++@")
# Whole runs of digits with single separators; _filter_card decides which part, if any, is a card.
_CARD = re.compile(r"\d(?:[ -]?\d){12,}+")
_CARD_GROUP = re.compile(r"\d+")
# key=value (query strings, form bodies, log lines) or key = "value" (source lines, reprs).
_PAIR = re.compile(
    r"""(?<![\w.\-\[\]])([A-Za-z_][\w.\-\[\]]{0,127}+)"""
    r"""(?:=([^&\s;,'"]++)|(\s*+=\s*+)(["'])((?:(?!\4)[^\\\n]|\\.)*+)(?:\4|$))"""
)
_QUOTED_PAIR = re.compile(r"""(["'])([^"'\n]{1,128}+)\1(\s*+:\s*+)(["'])((?:(?!\4)[^\\\n]|\\.)*+)\4""")
_SEPARATORS = str.maketrans("", "", " -")
_DIGITS = b"0123456789"
_MAX_RUN_DIGITS = 64  # longer digit runs are data (hashes, blobs), not a card among other numbers

_MAX_CACHED_KEYS = 10_000
_MAX_MEMO = 10_000
_MAX_MEMO_LENGTH = 256


class Scrubber:
    """Scrub values by key and by content, remembering which keys are sensitive."""

    def __init__(self, extra_keys: Iterable[str] = ()):
        self.extra = frozenset(_normal(key) for key in extra_keys if isinstance(key, str))
        # Every sensitive key, normalised, contains one of these: a string without any names no secret.
        self.markers = _KEY_MARKERS + tuple(key for key in self.extra if key)
        self._cache: dict[str, bool] = {}
        self.memo: dict[str, str] = {}  # scrubbed forms of short strings, bounded like the key cache

    def is_sensitive(self, key) -> bool:
        """Tell whether values under this key are secrets."""
        try:
            return self._cache[key]
        except (KeyError, TypeError):
            pass
        text = key if isinstance(key, str) else str(key)
        sensitive = _sensitive(text) or _normal(text) in self.extra
        if len(self._cache) >= _MAX_CACHED_KEYS:
            self._cache.clear()  # bounded: keys made up by clients must not grow memory
        if isinstance(key, str):
            self._cache[key] = sensitive
        return sensitive

    def may_name_a_secret(self, text: str) -> bool:
        """Tell whether a string mentions anything a sensitive key could be called."""
        normal = _normal(text)
        return any(marker in normal for marker in self.markers)

    def value(self, value):
        """Return the value with secrets filtered, by key in structures and by content in strings."""
        if isinstance(value, str):
            return scrub_string(value, self)
        if isinstance(value, dict):
            return self.mapping(value)
        if isinstance(value, list | tuple):
            return [self.pair(item) if _is_pair(item) else self.value(item) for item in value]
        return value

    def mapping(self, value: dict) -> dict:
        return {key: self.filtered(item) if self.is_sensitive(key) else self.value(item) for key, item in value.items()}

    def pair(self, item: list) -> list:
        key, value = item
        return [key, self.filtered(value) if self.is_sensitive(key) else self.value(value)]

    @staticmethod
    def filtered(value):
        return value if value is None or value == "" else FILTERED

    def user(self, user: dict) -> dict:
        return {key: item if key in USER_KEYS_KEPT else self.entry(key, item) for key, item in user.items()}

    def entry(self, key, item):
        return self.filtered(item) if self.is_sensitive(key) else self.value(item)

    def request(self, request: dict) -> dict:
        scrubbed = {}
        for key, item in request.items():
            if key == "cookies" or self.is_sensitive(key):
                scrubbed[key] = self.filtered(item)  # cookies are filtered whole: any of them may be a session
            else:
                scrubbed[key] = self.value(item)
        return scrubbed


def _normal(key: str) -> str:
    return key.lower().replace("-", "").replace("_", "")


def _sensitive(key: str) -> bool:
    normal = _normal(key)
    if _SENSITIVE_PART.search(normal):
        return True
    if not any(word in normal for word in _SENSITIVE_WORDS):
        return False  # the common case, without splitting the key into words
    words = _WORD.findall(_CAMEL_BOUNDARY.sub(r"\1 \2", key).lower())
    return not _SENSITIVE_WORDS.isdisjoint(words)


def _is_pair(item) -> bool:
    return isinstance(item, list | tuple) and len(item) == 2 and isinstance(item[0], str)


_DEFAULT = Scrubber()
_scrubbers: dict[frozenset, Scrubber] = {}


def scrubber_for(extra_keys: Iterable[str] = ()) -> Scrubber:
    """Return a shared Scrubber for these extra keys, so its key cache survives between events."""
    keys = frozenset([extra_keys] if isinstance(extra_keys, str) else extra_keys)
    if not keys:
        return _DEFAULT
    found = _scrubbers.get(keys)
    if found is None:
        if len(_scrubbers) > 16:
            _scrubbers.clear()
        found = _scrubbers[keys] = Scrubber(keys)
    return found


def scrub_string(value: str, scrubber: Scrubber = _DEFAULT) -> str:
    """Filter bearer tokens, URL passwords, sensitive key=value pairs and Luhn-valid card numbers in a string."""
    if len(value) < 5:
        return value  # too short for any rule: "pwd=x" is the shortest
    if len(value) > _MAX_MEMO_LENGTH:
        return _scrub_text(value, scrubber)
    # Source lines, paths and values repeat from one event to the next: remember what they became.
    memo = scrubber.memo
    scrubbed = memo.get(value)
    if scrubbed is None:
        scrubbed = _scrub_text(value, scrubber)
        if len(memo) >= _MAX_MEMO:
            memo.clear()
        memo[value] = scrubbed
    return scrubbed


def _scrub_text(value: str, scrubber: Scrubber) -> str:
    may_pair = "=" in value and _may_hold_pair(value)
    may_quoted_pair = '":' in value or "':" in value
    # The pair regexes cost microseconds on source lines; most lines name no secret at all.
    if (may_pair or may_quoted_pair) and scrubber.may_name_a_secret(value):
        if may_pair:
            value = _PAIR.sub(lambda match: _filter_pair(match, scrubber), value)
        if may_quoted_pair:
            value = _QUOTED_PAIR.sub(lambda match: _filter_quoted_pair(match, scrubber), value)
    if "://" in value and "@" in value:
        value = _URL_PASSWORD.sub(rf"\1:{FILTERED}@", value)
    if "earer" in value or "EARER" in value:
        value = _BEARER.sub(_filter_bearer, value)
    if len(value) >= 13:
        # Counting digits in C is several times cheaper than a regex scan, and most strings have few.
        data = value.encode("utf-8", "surrogatepass")
        if len(data) - len(data.translate(None, _DIGITS)) >= 13:
            value = _CARD.sub(_filter_card, value)
    return value


def _may_hold_pair(value: str) -> bool:
    # Cheap C-level checks first: "x = y" in source code has neither key=value nor a quoted value.
    return value.count("=") > value.count(" =") or '= "' in value or "= '" in value or '="' in value or "='" in value


def _filter_pair(match: re.Match, scrubber: Scrubber) -> str:
    key, _value, assignment, quote, _quoted = match.groups()
    if not scrubber.is_sensitive(key):
        return match.group(0)
    if assignment is None:
        return f"{key}={FILTERED}"
    return f"{key}{assignment}{quote}{FILTERED}{quote}"


def _filter_quoted_pair(match: re.Match, scrubber: Scrubber) -> str:
    quote, key, colon, value_quote, _value = match.groups()
    if scrubber.is_sensitive(key):
        return f"{quote}{key}{quote}{colon}{value_quote}{FILTERED}{value_quote}"
    return match.group(0)


def _filter_bearer(match: re.Match) -> str:
    token = match.group(3).rstrip("=")
    looks_like_token = len(token) >= 16 or (len(token) >= 8 and not token.isalpha())
    return f"{match.group(1)}{match.group(2)}{FILTERED}" if looks_like_token else match.group(0)


def _filter_card(match: re.Match) -> str:
    """Filter a digit run that is a card number, or whose separated groups contain one."""
    run = match.group(0)
    digits = run.translate(_SEPARATORS)
    if _is_card(digits):
        return FILTERED
    if len(digits) > _MAX_RUN_DIGITS or len(digits) == len(run):
        return run
    # "qty 3 4111 1111 1111 1111": the card is a window of whole groups inside a longer run.
    groups = [(found.start(), found.end()) for found in _CARD_GROUP.finditer(run)]
    for first in range(len(groups)):
        for last in range(first, len(groups)):
            window = run[groups[first][0] : groups[last][1]]
            window_digits = window.translate(_SEPARATORS)
            if len(window_digits) > 19:
                break
            if _is_card(window_digits):
                return f"{run[: groups[first][0]]}{FILTERED}{run[groups[last][1] :]}"
    return run


def _is_card(digits: str) -> bool:
    # Card numbers start with 2-6 (Mastercard, Visa, Amex, Discover, JCB, UnionPay, Maestro):
    # that keeps epoch milliseconds and most ids, which start with 1, from being taken for cards.
    return 13 <= len(digits) <= 19 and digits[0] in "23456" and _luhn_valid(digits)


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = ord(char) - 48
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def scrub_event(event: dict, *, extra_keys: Iterable[str] = ()) -> dict:
    """Scrub a canonical event in place and return it."""
    scrubber = scrubber_for(extra_keys)
    for name in ("message", "transaction"):
        if isinstance(event.get(name), str):
            event[name] = scrub_string(event[name], scrubber)
    for name in ("tags", "contexts", "extra"):
        if isinstance(event.get(name), dict):
            event[name] = scrubber.mapping(event[name])
    if isinstance(event.get("user"), dict):
        event["user"] = scrubber.user(event["user"])
    if isinstance(event.get("request"), dict):
        event["request"] = scrubber.request(event["request"])
    if isinstance(event.get("client_fingerprint"), list):
        event["client_fingerprint"] = scrubber.value(event["client_fingerprint"])
    for exception in event.get("exception") or ():
        _scrub_exception(exception, scrubber)
    return event


def _scrub_exception(exception: dict, scrubber: Scrubber) -> None:
    if isinstance(exception.get("value"), str):
        exception["value"] = scrub_string(exception["value"], scrubber)
    if isinstance(exception.get("mechanism"), dict):
        exception["mechanism"] = scrubber.mapping(exception["mechanism"])
    for frame in (exception.get("stacktrace") or {}).get("frames") or ():
        _scrub_frame(frame, scrubber)


def _scrub_frame(frame: dict, scrubber: Scrubber) -> None:
    # Source lines can hold hard-coded secrets; vars are checked by key and content.
    for key in ("context_line", "abs_path", "filename"):
        if isinstance(frame.get(key), str):
            frame[key] = scrub_string(frame[key], scrubber)
    memo = scrubber.memo
    for key in ("pre_context", "post_context"):
        if isinstance(frame.get(key), list):
            # A memo hit skips a call: these lines are most of an event's strings.
            frame[key] = [
                (memo.get(line) or scrub_string(line, scrubber)) if isinstance(line, str) else line
                for line in frame[key]
            ]
    if isinstance(frame.get("vars"), dict):
        frame["vars"] = scrubber.mapping(frame["vars"])
