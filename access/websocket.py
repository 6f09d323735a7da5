"""Websocket authentication: the session (AuthMiddlewareStack), or an API token in the query string."""

from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async

from access.models import TOKEN_PREFIX, ApiToken, token_hash


@database_sync_to_async
def _user_of_token(raw: str):
    token = ApiToken.objects.select_related("user").filter(key_hash=token_hash(raw), revoked_at__isnull=True).first()
    return token.user if token is not None and token.user.is_active else None


class TokenAuthMiddleware:
    """Put the user of `?token=ict_...` in scope["user"] when there is one; the session decides otherwise."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        raw = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [""])[0]
        if raw.startswith(TOKEN_PREFIX):
            user = await _user_of_token(raw)
            if user is not None:
                scope = {**scope, "user": user}
        return await self.app(scope, receive, send)


def LiveAuthStack(app):
    return AuthMiddlewareStack(TokenAuthMiddleware(app))
