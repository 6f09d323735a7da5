"""Websocket origin check and authentication: the session (AuthMiddlewareStack), or an API token.

Programs send the token as `Authorization: Bearer ict_...` on the handshake. `?token=ict_...`
is accepted too, for clients that cannot set headers (the logs redact it: config/logging_filters.py).

A browser sends its cookies to any site that opens a websocket to the console, so a handshake
with an Origin is served only when that origin is the console's own: scheme, host and port of
CONSOLE_URL or one of CSRF_TRUSTED_ORIGINS (`https://*.example.com` matches its subdomains).
A handshake without an Origin comes from a program, not a page; it is served only with a token,
as a stolen cookie is no reason to skip the check.
"""

from urllib.parse import parse_qs, urlsplit

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from django.conf import settings

from access.models import TOKEN_PREFIX, ApiToken, token_hash

_DEFAULT_PORTS = {"http": 80, "https": 443}


@database_sync_to_async
def _token_of(raw: str) -> ApiToken | None:
    token = ApiToken.objects.select_related("user").filter(key_hash=token_hash(raw), revoked_at__isnull=True).first()
    return token if token is not None and token.user.is_active else None


class TokenAuthMiddleware:
    """Put the token's user in scope["user"] (and its id in scope["api_token_id"]) when there is one;
    the session decides otherwise."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        raw = _raw_token(scope)
        if raw.startswith(TOKEN_PREFIX):
            token = await _token_of(raw)
            if token is not None:
                scope = {**scope, "user": token.user, "api_token_id": token.pk}
        return await self.app(scope, receive, send)


class ConsoleOriginValidator:
    """Refuse (HTTP 403, before any authentication) a handshake from a page of another origin."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        origin = _header(scope, b"origin")
        allowed = _raw_token(scope) != "" if origin is None else origin_is_the_consoles(origin)
        if not allowed:
            await send({"type": "websocket.close"})  # before accept: the server answers 403
            return None
        return await self.app(scope, receive, send)


def origin_is_the_consoles(origin: str) -> bool:
    """Whether `origin` (an Origin header) is CONSOLE_URL's or one of CSRF_TRUSTED_ORIGINS, port included."""
    theirs = _parts(origin)
    if theirs is None:
        return False
    for trusted in (settings.CONSOLE_URL, *settings.CSRF_TRUSTED_ORIGINS):
        ours = _parts(trusted)
        if ours is None or ours[0] != theirs[0] or ours[2] != theirs[2]:
            continue
        if ours[1] == theirs[1] or (ours[1].startswith("*.") and theirs[1].endswith(ours[1][1:])):
            return True
    return False


def _parts(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin or URL, the port made explicit; None for "null" or garbage."""
    try:
        split = urlsplit(url.strip())
        port = split.port
    except ValueError:
        return None
    scheme = split.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not split.hostname:
        return None
    return scheme, split.hostname.lower(), port or _DEFAULT_PORTS[scheme]


def _raw_token(scope) -> str:
    authorization = _header(scope, b"authorization")
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        return token.strip() if scheme.lower() == "bearer" else ""
    return parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [""])[0]


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def LiveAuthStack(app):
    """The origin check, then the session and the token, in front of the websocket routes."""
    return ConsoleOriginValidator(AuthMiddlewareStack(TokenAuthMiddleware(app)))
