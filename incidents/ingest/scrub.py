"""Remove secrets and card numbers from a canonical event before anything is stored.

Every field is scrubbed except the ids, times, level, status and the console's own
fingerprint; user keeps id, email, username and ip_address verbatim (the console counts
users by them). Unknown fields, breadcrumbs included, are scrubbed like extra.

* By key. A value is replaced with "[Filtered]" when its key, lower-cased and stripped of
  "-", "_", "." and spaces (and percent-decoded), contains password, passwd, pwd,
  passphrase, secret, token, apikey, accesskey, privatekey, authorization,
  authentication, cookie, session, sessid, csrf, xsrf, credential, creditcard,
  cardnumber, cvv, signature or jwt; or when one of its words (split at separators,
  digits and camelCase) is auth, ssn, cvc, pass, pw, pin, private, otp, totp, hotp or
  sig; or when it is one of the extra keys (SCRUB_EXTRA_KEYS, compared whole, after the
  same normalisation). This applies at any depth, in dicts, in [name, value] pairs and
  to the item after a command-line flag with such a name (["--password", x]; "-p" too,
  as mysql spells it). Substrings are matched so that github_token, refreshToken or
  X-Hub-Signature-256 are caught; the price is that tokenizer_name or max_tokens are
  filtered as well. Words are matched for the short names because they hide inside
  ordinary words: author, oauth_state, shipping, design, passenger and classname stay.
  In query strings and URLs the OAuth `code` parameter is filtered too. Empty values
  (null, "") stay.
* Keys are scrubbed by content as well: a key that is itself a bearer token, a JWT or a
  card number becomes "[Filtered]" (numbered when two keys would collide).
* Inside every string: an `Authorization:` (or `X-Authentication:`) header line is
  filtered to its end; `Bearer <token>`, `Token <token>` (8+ characters with a digit, or
  24+) and `Basic <base64 of user:password>` keep only the scheme ("bearer of bad news",
  "unexpected token in JSON" and "basic auth" stay); JWTs (eyJ….eyJ….…) become
  [Filtered]; the password of a URL (scheme://user:password@host) becomes [Filtered];
  `key=value`, `key = value`, `key: value`, `key = "value"`, `"key": "value"`,
  `"key": 123`, `--flag=value` and `--flag value` with a sensitive key or flag have their
  value filtered (query strings, form bodies, log lines, YAML, source lines, JSON and
  Python reprs, escaped JSON inside JSON); and card numbers become [Filtered]: 13 to 19
  digits, possibly separated by single spaces or dashes, starting with 2-6 like every
  major card scheme, and passing the Luhn check (integers too). Order ids that fail
  Luhn, epoch milliseconds (they start with 1) and digits inside longer numbers stay.
  A string that is JSON (also JSON encoded again as a JSON string) is parsed and
  scrubbed by key, and written back only when something was filtered. A string with
  percent-escapes is also checked decoded (pass%77ord=, password%3D…); when that finds a
  secret, the decoded, scrubbed form is kept.

Request cookies are filtered whole.
"""

import base64
import binascii
import json
import re
from collections.abc import Iterable
from urllib.parse import unquote

FILTERED = "[Filtered]"
USER_KEYS_KEPT = frozenset({"id", "email", "username", "ip_address"})
# Ids, times and numbers the console computed or parsed itself: nothing a client wrote as text.
_NOT_SCRUBBED = frozenset(
    {"event_id", "timestamp", "received_at", "level", "http_status", "fingerprint", "error_type", "severity"}
)

_SENSITIVE_PART = re.compile(
    "password|passwd|pwd|passphrase|secret|token|apikey|accesskey|privatekey|authorization|authentication"
    "|cookie|session|sessid|csrf|xsrf|credential|creditcard|cardnumber|cvv|signature|jwt"
)
_SENSITIVE_WORDS = frozenset({"auth", "ssn", "cvc", "pass", "pw", "pin", "private", "otp", "totp", "hotp", "sig"})
# Names that are secrets only as URL query parameters: an error "code" elsewhere is not one.
_QUERY_KEYS = frozenset({"code"})
# Stems covering every part and word above, for a quick test of whether a string may hold a key.
_KEY_MARKERS = (
    "pass",
    "pw",
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
    "pin",
    "private",
    "otp",
    "sig",
    "jwt",
    "code",
)
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_WORD = re.compile(r"[a-z]+|[0-9]+")

# Possessive quantifiers (*+, ++) never give back what they matched: no backtracking, linear time.
# Lookbehinds start matches only where a run begins: "a.a.a…" must not be rescanned from every letter.
# An Authorization line is a credential to its end (Digest has quoted, comma-separated parts);
# only a known scheme name is kept.
_AUTH_HEADER = re.compile(
    r"(?i)(?<![\w\-])(?P<name>(?:proxy-)?authorization|x-authentication|authentication)(?P<sep>\s*+:[ \t]*+)"
    r"(?P<scheme>(?:(?:basic|bearer|digest|token|negotiate|ntlm|oauth|hawk|dpop|apikey|ssws|aws4-hmac-sha256)"
    r"[ \t]++)?+)[^\r\n]++"
)
_SCHEME = re.compile(r"(?i)\b(bearer|token)(\s++)([A-Za-z0-9\-._~+/]{8,}+=*+)")
# Only text shaped like base64 is decoded: "basic authentication" never reaches the decoder.
_BASIC = re.compile(
    r"(?i)\b(basic\s++)((?:[A-Za-z0-9+/]{4})++(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?+)(?![A-Za-z0-9+/=])"
)
_JWT = re.compile(r"(?<![\w\-])eyJ[\w\-]++\.[\w\-]++\.[\w\-]*+")
_URL_PASSWORD = re.compile(r"(?i)(?<![a-z0-9+.\-])([a-z][a-z0-9+.\-]*+://[^\s:/@]*+):[^\s@/]++@")
# Whole runs of digits with single separators; _filter_card decides which part, if any, is a card.
_CARD = re.compile(r"\d(?:[ -]?\d){12,}+")
_CARD_GROUP = re.compile(r"\d+")
# key=value (query strings, form bodies), key = "value" (source lines, reprs), key: value (logs, YAML).
# A bare value stops at "=" so that a rescan from each value ("a=a=a…") stays linear; a filtered
# one is extended to the end of its token (_TOKEN_REST), base64 padding included.
_PAIR = re.compile(
    r"""(?<![\w.\-\[\]])(?!(?i:(?:proxy-)?authorization|x-authentication|authentication)[ \t]*+:)"""
    r"""(?P<key>[A-Za-z_][\w.\-\[\]]{0,127}+)"""
    r"""(?:=(?![=\s])(?P<bare>[^&\s;,'"=]++)"""
    r"""|(?P<sep>[ \t]*+[=:][ \t]*+)(?:(?P<quote>["'])(?P<quoted>(?:(?!(?P=quote))[^\\\n]|\\.)*+)(?:(?P=quote)|$)"""
    r"""|(?<=[ \t])(?P<word>[^\s&;,'"=:)\]}][^\s&;,'")\]}]*+)))"""
)
_TOKEN_REST = re.compile(r"""[^&\s;,'"]*+""")
# "key": "value" in JSON or reprs, also escaped once more (\"key\": \"value\") inside a JSON string.
_QUOTED_PAIR = re.compile(
    r"""(?P<esc>\\{0,7}+)(?P<kq>["'])(?P<key>[^"'\\\n]{1,128}+)(?P=esc)(?P=kq)(?P<sep>\s*+:\s*+)"""
    r"""(?:(?P=esc)(?P<vq>["'])(?P<value>(?:(?!(?P=esc)(?P=vq))(?:[^\\\n]|\\.))*+)(?P=esc)(?P=vq)"""
    r"""|(?P<bare>[^\s,{}\[\]'"\\]++))"""
)
_FLAG = re.compile(
    r"""(?<![\w\-])(?P<flag>--?+[A-Za-z][\w\-.]{0,63}+)(?:=(?P<eq>[^\s'"]++)|[ \t]++(?P<next>[^\s'"\-][^\s'"]*+))"""
)
_NOT_A_SECRET = frozenset({"null", "None", "true", "false", "True", "False"})
_SEPARATORS = str.maketrans("", "", " -")
_DIGITS = b"0123456789"
_MAX_RUN_DIGITS = 64  # longer digit runs are data (hashes, blobs), not a card among other numbers
_MAX_DECODINGS = 2  # percent-decoding rounds: "%2570" is "%70" is "p"
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")

_MAX_CACHED_KEYS = 10_000
_MAX_MEMO = 10_000
_MAX_MEMO_LENGTH = 256


class Scrubber:
    """Scrub values by key and by content, remembering which keys are sensitive."""

    def __init__(self, extra_keys: Iterable[str] = ()):
        self.extra = frozenset(_normal(key) for key in extra_keys if isinstance(key, str))
        # Every sensitive key, normalised, contains one of these: a string without any names no secret.
        self.markers = _KEY_MARKERS + tuple(key for key in self.extra if key)
        self._cache: dict[object, tuple[bool, object]] = {}  # key -> (sensitive, the key as stored)
        self.memo: dict[str, str] = {}  # scrubbed forms of short strings, bounded like the key cache

    def is_sensitive(self, key) -> bool:
        """Tell whether values under this key are secrets."""
        return self._key(key)[0]

    def _key(self, key) -> tuple[bool, object]:
        try:
            return self._cache[key]
        except (KeyError, TypeError):
            pass
        text = key if isinstance(key, str) else str(key)
        sensitive = _sensitive(text) or _normal(text) in self.extra
        # A key can itself be a secret: a token or card number used as a dict key.
        if isinstance(key, str):
            shown = scrub_string(key, self)
        else:
            shown = FILTERED if isinstance(key, int) and not isinstance(key, bool) and _number_is_card(key) else key
        if len(self._cache) >= _MAX_CACHED_KEYS:
            self._cache.clear()  # bounded: keys made up by clients must not grow memory
        if isinstance(key, str):
            self._cache[key] = (sensitive, shown)
        return sensitive, shown

    def may_name_a_secret(self, text: str) -> bool:
        """Tell whether a string mentions anything a sensitive key could be called."""
        normal = _normal(text)
        return any(marker in normal for marker in self.markers)

    def is_secret_flag(self, item) -> bool:
        """Tell whether a command-line argument is a flag whose next argument is a secret."""
        return isinstance(item, str) and item.startswith("-") and (item == "-p" or self.is_sensitive(item))

    def value(self, value):
        """Return the value with secrets filtered, by key in structures and by content in strings."""
        if type(value) is str:
            return self.memo.get(value) or scrub_string(value, self)  # a memo hit skips a call
        if isinstance(value, str):
            return scrub_string(value, self)
        if isinstance(value, dict):
            return self.mapping(value)
        if isinstance(value, list | tuple):
            return self.sequence(value)
        if isinstance(value, int | float) and not isinstance(value, bool) and _number_is_card(value):
            return FILTERED
        return value

    def mapping(self, value: dict, kept: frozenset = frozenset()) -> dict:
        scrubbed = {}
        cache = self._cache
        for key, item in value.items():
            if kept and key in kept:
                scrubbed[key] = item
                continue
            sensitive, shown = cache.get(key) or self._key(key) if type(key) is str else self._key(key)
            if shown in scrubbed:
                shown = _unused_key(shown, scrubbed)
            scrubbed[shown] = self.filtered(item) if sensitive else self.value(item)
        return scrubbed

    def sequence(self, items: list | tuple) -> list:
        scrubbed = []
        hide_next = False  # argv: ["mysql", "--password", "x"] hides "x"
        for item in items:
            if hide_next and not (isinstance(item, str) and item.startswith("-")):
                scrubbed.append(self.filtered(item))
                hide_next = False
                continue
            hide_next = self.is_secret_flag(item)
            scrubbed.append(self.pair(item) if _is_pair(item) else self.value(item))
        return scrubbed

    def pair(self, item: list | tuple, *, query: bool = False) -> list:
        key, value = item
        sensitive, shown = self._key(key)
        if sensitive or self.is_secret_flag(key) or (query and key.lower() in _QUERY_KEYS):
            return [shown, self.filtered(value)]
        return [shown, self.value(value)]

    @staticmethod
    def filtered(value):
        return value if value is None or value == "" else FILTERED

    def user(self, user: dict) -> dict:
        return self.mapping(user, USER_KEYS_KEPT)

    def request(self, request: dict) -> dict:
        scrubbed = {}
        for key, item in request.items():
            if key == "cookies" or self.is_sensitive(key):
                scrubbed[key] = self.filtered(item)  # cookies are filtered whole: any of them may be a session
            elif key == "query_string" or (key == "data" and _looks_like_a_form(item)):
                scrubbed[key] = self.query(item)
            else:
                scrubbed[self._key(key)[1]] = self.value(item)
        return scrubbed

    def query(self, query):
        """Scrub a query string or form body, as text, pairs or a dict, OAuth `code` included."""
        if isinstance(query, str):
            return scrub_string("?" + query, self)[1:]  # its first name follows "?" as in a URL
        if isinstance(query, dict):
            return {
                key: self.filtered(item) if isinstance(key, str) and key.lower() in _QUERY_KEYS else item
                for key, item in self.mapping(query).items()
            }
        if isinstance(query, list):
            return [self.pair(item, query=True) if _is_pair(item) else self.value(item) for item in query]
        return self.value(query)


def _normal(key: str) -> str:
    return key.lower().replace("-", "").replace("_", "").replace(".", "").replace(" ", "")


def _sensitive(key: str) -> bool:
    if "%" in key:
        decoded = unquote(key)
        if decoded != key and _sensitive(decoded):
            return True
    normal = _normal(key)
    if _SENSITIVE_PART.search(normal):
        return True
    if not any(word in normal for word in _SENSITIVE_WORDS):
        return False  # the common case, without splitting the key into words
    words = _WORD.findall(_CAMEL_BOUNDARY.sub(" ", key).lower())
    return not _SENSITIVE_WORDS.isdisjoint(words)


def key_is_sensitive(key: str) -> bool:
    """Tell whether values under this key are secrets by the built-in rules (for keys judged before they are cut)."""
    return _DEFAULT.is_sensitive(key)


def _is_pair(item) -> bool:
    return isinstance(item, list | tuple) and len(item) == 2 and isinstance(item[0], str)


def _unused_key(key, taken: dict) -> str:
    number = 2
    while f"{key} ({number})" in taken:
        number += 1
    return f"{key} ({number})"


def _looks_like_a_form(value) -> bool:
    return isinstance(value, str) and "=" in value and value[:1] not in '{["' and " " not in value


def _number_is_card(number: int | float) -> bool:
    if not 10**12 <= number < 10**19:
        return False
    if isinstance(number, float):
        if not number.is_integer():
            return False
        number = int(number)
    return _is_card(str(number))


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
    """Filter credentials, sensitive pairs and Luhn-valid card numbers in a string."""
    if len(value) < 4:
        return value  # too short for any rule: "pw=x" is the shortest
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
    if value[0] in '{["' or (value[0].isspace() and value.lstrip()[:1] in ("{", "[", '"')):
        scrubbed = _scrub_json(value, scrubber)
        if scrubbed is not None:
            return scrubbed
    if "%" in value and _PERCENT_ESCAPE.search(value):
        # pass%77ord=x or a URL inside a URL (…%3Fpassword%3Dx): judge the decoded text.
        decoded = _percent_decoded(value)
        if decoded != value:
            scrubbed = _scrub_plain(decoded, scrubber)
            if scrubbed != decoded:
                return scrubbed
    return _scrub_plain(value, scrubber)


def _scrub_json(value: str, scrubber: Scrubber) -> str | None:
    """Return a JSON text scrubbed by key, the same text when it held nothing, or None when it is not JSON."""
    try:
        parsed = json.loads(value)
        scrubbed = scrubber.value(parsed)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than Python recurses
        return None
    if scrubbed == parsed:
        return value
    compact = ": " not in value and ", " not in value
    return json.dumps(scrubbed, ensure_ascii=False, separators=(",", ":") if compact else None)


def _percent_decoded(value: str) -> str:
    decoded = value
    for _ in range(_MAX_DECODINGS):
        decoded = unquote(decoded)
        if "%" not in decoded or not _PERCENT_ESCAPE.search(decoded):
            break
    return decoded.replace("\x00", "")  # %00 must not bring back what storage refuses


def _scrub_plain(value: str, scrubber: Scrubber) -> str:
    has_colon = ":" in value
    # The pair regexes cost microseconds on source lines; most lines name no secret at all.
    names = (has_colon or "=" in value or "-" in value) and scrubber.may_name_a_secret(value)
    if names and has_colon:
        value = _AUTH_HEADER.sub(rf"\g<name>\g<sep>\g<scheme>{FILTERED}", value)
    if "earer" in value or "oken" in value or "EARER" in value or "OKEN" in value:
        value = _SCHEME.sub(_filter_scheme, value)
    if "asic" in value or "ASIC" in value:
        value = _BASIC.sub(_filter_basic, value)
    if "eyJ" in value:
        value = _JWT.sub(FILTERED, value)
    if "-" in value and (names or "-p" in value):
        value = _FLAG.sub(lambda match: _filter_flag(match, scrubber), value)
    if names:
        value = _sub_pairs(_PAIR, value, lambda match: _filter_pair(match, scrubber))
        if '":' in value or "':" in value:
            value = _sub_pairs(_QUOTED_PAIR, value, lambda match: _filter_quoted_pair(match, scrubber))
    if "://" in value and "@" in value:
        value = _URL_PASSWORD.sub(rf"\1:{FILTERED}@", value)
    if len(value) >= 13:
        # Counting digits in C is several times cheaper than a regex scan, and most strings have few.
        data = value.encode("utf-8", "surrogatepass")
        if len(data) - len(data.translate(None, _DIGITS)) >= 13:
            value = _CARD.sub(_filter_card, value)
    return value


def _sub_pairs(pattern: re.Pattern, text: str, replace) -> str:
    """Replace pairs like pattern.sub, but scan a kept pair's value again: "next=/reset?token=abc" hides a pair."""
    parts = []
    done = position = 0
    while (match := pattern.search(text, position)) is not None:
        replaced = replace(match)
        if replaced is None:
            position = match.end("key") + 1  # past the key: the search goes on inside the value
            continue
        replacement, end = replaced
        parts += (text[done : match.start()], replacement)
        done = position = end
    if not parts:
        return text
    parts.append(text[done:])
    return "".join(parts)


def _filter_pair(match: re.Match, scrubber: Scrubber) -> tuple[str, int] | None:
    """Return the filtered pair and where it ends, or None to keep it."""
    key = match["key"]
    in_query = match.start() > 0 and match.string[match.start() - 1] in "?&#" and key.lower() in _QUERY_KEYS
    if not (in_query or scrubber.is_sensitive(key)):
        return None
    if match["bare"] is not None:
        return f"{key}={FILTERED}", _TOKEN_REST.match(match.string, match.end()).end()
    if match["quote"] is not None:
        return f"{key}{match['sep']}{match['quote']}{FILTERED}{match['quote']}", match.end()
    if match["word"].startswith(FILTERED[:-1]):
        return None  # already filtered
    return f"{key}{match['sep']}{FILTERED}", match.end()


def _filter_quoted_pair(match: re.Match, scrubber: Scrubber) -> tuple[str, int] | None:
    if not scrubber.is_sensitive(match["key"]) or match["bare"] in _NOT_A_SECRET:
        return None
    escape, key_quote = match["esc"], match["kq"]
    key = f"{escape}{key_quote}{match['key']}{escape}{key_quote}{match['sep']}"
    if match["vq"] is not None:
        return f"{key}{escape}{match['vq']}{FILTERED}{escape}{match['vq']}", match.end()
    return f"{key}{FILTERED}", match.end()


def _filter_flag(match: re.Match, scrubber: Scrubber) -> str:
    flag = match["flag"]
    if not (flag == "-p" or scrubber.is_sensitive(flag)):
        return match.group(0)
    if match["eq"] is not None:
        return f"{flag}={FILTERED}"
    return f"{match.group(0)[: match.start('next') - match.start()]}{FILTERED}"


def _filter_scheme(match: re.Match) -> str:
    scheme, space, credentials = match.groups()
    token = credentials.rstrip("=")
    if scheme.lower() == "token":
        # "unexpected token in JSON": a token has a digit, or is too long to be a word.
        looks_like_token = len(token) >= 24 or (len(token) >= 8 and any(char.isdigit() for char in token))
    else:
        looks_like_token = len(token) >= 16 or (len(token) >= 8 and not token.isalpha())
    return f"{scheme}{space}{FILTERED}" if looks_like_token else match.group(0)


def _filter_basic(match: re.Match) -> str:
    # Basic credentials are base64 of "user:password".
    try:
        decoded = base64.b64decode(match.group(2), validate=True)
    except (binascii.Error, ValueError):
        return match.group(0)
    return f"{match.group(1)}{FILTERED}" if b":" in decoded else match.group(0)


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
    for name, value in list(event.items()):
        if name in _NOT_SCRUBBED:
            continue
        if name == "user" and isinstance(value, dict):
            event[name] = scrubber.user(value)
        elif name == "request" and isinstance(value, dict):
            event[name] = scrubber.request(value)
        elif name == "exception" and isinstance(value, list):
            for exception in value:
                if isinstance(exception, dict):
                    _scrub_exception(exception, scrubber)
        else:
            event[name] = scrubber.value(value)  # message, logger, release, sdk, breadcrumbs…
    return event


def _scrub_exception(exception: dict, scrubber: Scrubber) -> None:
    for key, item in list(exception.items()):
        if key == "stacktrace" and isinstance(item, dict):
            for frame in item.get("frames") or ():
                if isinstance(frame, dict):
                    _scrub_frame(frame, scrubber)
        else:
            exception[key] = scrubber.value(item)  # type, value, module, bases, mechanism


_FRAME_TEXT = ("filename", "abs_path", "module", "function", "context_line")
_FRAME_KNOWN = frozenset({*_FRAME_TEXT, "pre_context", "post_context", "vars", "lineno", "colno", "in_app"})


def _scrub_frame(frame: dict, scrubber: Scrubber) -> None:
    # Source lines can hold hard-coded secrets; vars are checked by key and content.
    memo = scrubber.memo
    for key in _FRAME_TEXT:
        item = frame.get(key)
        if type(item) is str:
            frame[key] = memo.get(item) or scrub_string(item, scrubber)
    for key in ("pre_context", "post_context"):
        item = frame.get(key)
        if isinstance(item, list):
            # A memo hit skips a call: these lines are most of an event's strings.
            frame[key] = [
                (memo.get(line) or scrub_string(line, scrubber)) if isinstance(line, str) else line for line in item
            ]
    if isinstance(frame.get("vars"), dict):
        frame["vars"] = scrubber.mapping(frame["vars"])
    if not _FRAME_KNOWN.issuperset(frame):
        for key, item in frame.items():  # what normalize never leaves in a frame, from other callers
            if key not in _FRAME_KNOWN:
                frame[key] = scrubber.value(item)
