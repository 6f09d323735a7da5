"""Model factories: rows the tests need, made the way the console makes them, in one place.

Plain functions: each takes the few fields a test cares about and fills in the rest.
"""

import io
import re
import uuid
from datetime import timedelta

from django.core.management import call_command
from django.utils import timezone

from incidents.alerting import evaluation
from incidents.live import outbox
from incidents.models import Alert, AlertRule, ErrorType, Notification, NotificationChannel, Severity

EXAMPLE_HOOK_URL = "https://hooks.example.com/ops"  # a webhook URL that no test sends anything to


def source_dsn_from_command(name: str) -> str:
    """A source made by the createsource command, as an operator makes one; its DSN as the command prints it."""
    out = io.StringIO()
    call_command("createsource", name, stdout=out)
    return re.search(r"dsn:\s+(\S+)", out.getvalue()).group(1)


def webhook_channel(*, name: str = "ops-hook", url: str = EXAMPLE_HOOK_URL, **config) -> NotificationChannel:
    """A webhook channel to `url`, with further config keys (secret, headers) as given."""
    return NotificationChannel.objects.create(name=name, kind="webhook", config={"url": url, **config})


def alert_rule(*channels: NotificationChannel, **fields) -> AlertRule:
    """A rule on the events of the last five minutes, warning above 3, notifying `channels`."""
    defaults = {"name": "Checkout errors", "window_minutes": 5, "comparator": "gt", "warning_threshold": 3}
    created = AlertRule.objects.create(**(defaults | fields))
    created.channels.add(*channels)
    return created


def firing_alert(rule, *, group_key: str = "", labels: dict | None = None, severity: int = Severity.MEDIUM) -> Alert:
    """An alert that fired ten minutes ago and whose firing notification was sent to the rule's channels."""
    now = timezone.now()
    alert = Alert.objects.create(
        rule=rule,
        group_key=group_key,
        labels=labels or {},
        state=Alert.State.FIRING,
        severity=severity,
        value=5.0,
        active_at=now - timedelta(minutes=10),
        fired_at=now - timedelta(minutes=10),
        last_met_at=now,
        last_notified_at=now - timedelta(minutes=9),
        history="111",
    )
    for channel in rule.channels.all():
        Notification.objects.create(
            alert=alert,
            channel=channel,
            event="firing",
            severity=severity,
            message=evaluation.message_for(alert, "firing"),
            status=Notification.Status.SENT,
            created_at=now - timedelta(minutes=9),
            finished_at=now - timedelta(minutes=9),
            response_code=200,
        )
    return alert


def incident_published(source, title: str):
    """A new incident of `source` and its "incident.created" live message, as the digest writes them."""
    incident = source.incidents.create(
        fingerprint=uuid.uuid4().hex, title=title, error_type=ErrorType.objects.get(code="NETWORK_TIMEOUT"),
        category="NETWORK", severity=40, first_seen=timezone.now(), last_seen=timezone.now(),
    )  # fmt: skip
    outbox.publish(
        topic="incident.created", key=f"incident:{incident.pk}", payload=incident.live_payload(),
        source_id=source.pk, incident_id=incident.pk,
    )  # fmt: skip
    return incident
