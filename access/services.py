"""Token changes: create (returning the raw token once) and revoke."""

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from access.models import ApiToken, new_raw_token, token_hash


def api_token_create(*, user, name: str, created_by=None) -> tuple[ApiToken, str]:
    """Create a token for `user`, made by `created_by` (None: the command line); return it with the raw token."""
    if created_by is not None and created_by.pk != user.pk and not created_by.is_superuser:
        # A token acts as its user: minting one for someone else is impersonating them.
        raise PermissionDenied("only a superuser may make a token for another user")
    raw = new_raw_token()
    token = ApiToken.objects.create(
        user=user, name=name, key_hash=token_hash(raw), prefix=raw[:10], created_by=created_by
    )
    return token, raw


def api_token_revoke(*, token: ApiToken) -> None:
    """Make the token unusable from now on (kept for the record)."""
    with transaction.atomic():
        ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    token.refresh_from_db()
