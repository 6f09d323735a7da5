"""Changing the retention policy: the one state change of retention that people make (admin and API)."""

from django.db import transaction

from incidents.models import RetentionPolicy

# What people may change; updated_at moves by itself.
EDITABLE_FIELDS = (
    "event_days",
    "events_per_incident",
    "first_events_per_incident",
    "delete_expired_incidents",
    "minute_rollup_days",
    "hour_rollup_days",
    "notification_days",
    "timeline_days",
    "transition_days",
    "window_report_days",
)


def retention_policy_update(*, changes: dict) -> RetentionPolicy:
    """Apply `changes` to the policy whole or not at all: the model's clean() names each field refused.

    The row is locked while it is checked, so two edits at once cannot combine into a policy
    neither would pass (minute rollups at least as long as hour rollups, say). The next purge
    reads the saved row: no restart is needed.
    """
    unknown = sorted(set(changes) - set(EDITABLE_FIELDS))
    if unknown:
        raise ValueError(f"not policy fields: {', '.join(unknown)}")
    with transaction.atomic():
        policy = RetentionPolicy.objects.select_for_update().filter(pk=1).first() or RetentionPolicy(pk=1)
        for name, value in changes.items():
            setattr(policy, name, value)
        policy.full_clean()
        policy.save()
    return policy
