"""django-q2 task functions: they take ids, refetch, and call services."""

from incidents.digest import digest_pending
from incidents.models import DigestRequest


def digest_events() -> int:
    """Clear the digest request, then digest every pending event."""
    # Clearing first means an event stored after this point raises a new request,
    # and every event stored before it is seen by the scan below.
    DigestRequest.objects.filter(pk=1).update(pending=False)
    return digest_pending()
