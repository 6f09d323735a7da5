"""django-q2 task functions: they take ids, refetch, and call services."""

from django.conf import settings

from incidents.alerting import delivery, evaluation
from incidents.ingest.digest import digest_pending
from incidents.live import outbox
from incidents.models import DigestRequest
from incidents.retention import purge


def digest_events() -> int:
    """Digest every pending event, then evaluate the alert rules those events touch (once per digest)."""
    # Before reading: what is committed from now on asks for the next digest.
    DigestRequest.take(min_interval=settings.DIGEST_MIN_INTERVAL_SECONDS)
    touched: set[tuple[int, int]] = set()
    digested = digest_pending(touched=touched)
    if touched:
        rule_ids = evaluation.rules_touched(touched)
        if rule_ids:
            delivery.deliver(evaluation.evaluate_rules(rule_ids))
    return digested


def sweep_alerts() -> int:
    """Evaluate every enabled rule (time-driven moves) and deliver what is due or was left mid-send."""
    delivery.deliver(evaluation.evaluate_rules())
    return delivery.deliver_due()


def deliver_notifications(notification_ids: list[int]) -> int:
    """Deliver the given notification attempts."""
    return delivery.deliver(notification_ids)


def expire_live_messages() -> int:
    """Delete live messages older than LIVE_MESSAGE_RETENTION (a browser away longer reloads the page)."""
    return outbox.expire_old()


def purge_expired() -> dict:
    """Apply the retention policy for at most RETENTION_RUN_SECONDS (the next run goes on from there)."""
    run = purge.run(trigger="schedule", time_budget=settings.RETENTION_RUN_SECONDS)
    if run is None:
        return {"skipped": "another purge is running"}
    return {"status": run.status, "removed": run.removed, "partitions_dropped": run.partitions_dropped}
