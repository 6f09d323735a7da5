"""Websocket authentication: the session (AuthMiddlewareStack), or an API token.

Programs send the token as `Authorization: Bearer ict_...` on the handshake. `?token=ict_...`
is accepted too, for clients that cannot set headers, but a query string ends up in access logs.
"""

from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async

from access.models import TOKEN_PREFIX, ApiToken, token_hash


@database_sync_to_async
def _user_of_token(raw: str):
    token = ApiToken.objects.select_related("user").filter(key_hash=token_hash(raw), revoked_at__isnull=True).first()
    return token.user if token is not None and token.user.is_active else None


class TokenAuthMiddleware:
    """Put the token's user in scope["user"] when there is one; the session decides otherwise."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        raw = _bearer_token(scope) or parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [""])[0]
        if raw.startswith(TOKEN_PREFIX):
            user = await _user_of_token(raw)
            if user is not None:
                scope = {**scope, "user": user}
        return await self.app(scope, receive, send)


def _bearer_token(scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return ""


def LiveAuthStack(app):
    return AuthMiddlewareStack(TokenAuthMiddleware(app))
