"""Token changes: create (returning the raw token once) and revoke."""

from django.db import transaction
from django.utils import timezone

from access.models import ApiToken, new_raw_token, token_hash


def api_token_create(*, user, name: str) -> tuple[ApiToken, str]:
    """Create a token for `user`; return it with the raw token, which is never stored."""
    raw = new_raw_token()
    token = ApiToken.objects.create(user=user, name=name, key_hash=token_hash(raw), prefix=raw[:10])
    return token, raw


def api_token_revoke(*, token: ApiToken) -> None:
    """Make the token unusable from now on (kept for the record)."""
    with transaction.atomic():
        ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    token.refresh_from_db()
