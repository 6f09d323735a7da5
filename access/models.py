"""API tokens and the roles that decide what a user may do through the API."""

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

# Tokens start with this so they can be told from ingest keys (which only ingest) at a glance.
TOKEN_PREFIX = "ict_"


def token_hash(raw: str) -> str:
    """The stored form of a token: its SHA-256 (tokens are long random strings, so no salt is needed)."""
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


class ApiToken(models.Model):
    """A user's API token, stored hashed; the raw token is shown once, when it is created."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. 'grafana' or 'deploy script'.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=12, editable=False, help_text="The token's first characters, to tell it.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Who minted it: the user themself, or a superuser; empty for tokens made on the command line.
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        editable=False,
        related_name="api_tokens_made",
        help_text="Who made the token; empty: made with manage.py createtoken (or before this was recorded).",
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "name"], name="api_token_name_per_user")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


def new_raw_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(30)
