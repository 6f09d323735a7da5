"""django-q2 task functions: they take ids, refetch, and call services."""

from incidents.digest import digest_pending


def digest_events() -> int:
    """Digest every pending event."""
    return digest_pending()
