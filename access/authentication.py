"""DRF authentication by API token (`Authorization: Bearer ict_...`) and per-token throttling."""

from datetime import timedelta

from django.utils import timezone
from rest_framework import authentication, exceptions, throttling

from access.models import TOKEN_PREFIX, ApiToken, token_hash

# last_used_at is written at most this often per token: a busy script must not turn reads into writes.
LAST_USED_RESOLUTION = timedelta(seconds=60)


class TokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if not header or header[0].lower() != self.keyword.lower():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization must be 'Bearer <token>'")
        raw = header[1]
        if not raw.startswith(TOKEN_PREFIX):
            raise exceptions.AuthenticationFailed("not an API token (ingest keys can only send events)")
        token = ApiToken.objects.select_related("user").filter(key_hash=token_hash(raw)).first()
        if token is None or not token.is_active or not token.user.is_active:
            raise exceptions.AuthenticationFailed("unknown or revoked API token")
        _note_use(token)
        return token.user, token

    def authenticate_header(self, request) -> str:
        return self.keyword


def _note_use(token: ApiToken) -> None:
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now


class TokenRateThrottle(throttling.SimpleRateThrottle):
    """Requests per token (per user for session logins, per address for anonymous requests)."""

    scope = "api"

    def get_cache_key(self, request, view):
        if isinstance(request.auth, ApiToken):
            ident = f"token-{request.auth.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        else:
            ident = f"anon-{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
