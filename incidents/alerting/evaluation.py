"""Alert rules: their values from the rollups, and the alert state machine.

An evaluation measures each rule's value per group (source, error type, incident, or one
group for everything) over its window from the rollups (values.py). Each group's Alert
then steps: inactive -> pending (held for `pending_for`) -> firing -> resolved, resolving
only once the value is back past the resolve threshold (hysteresis) and `keep_firing_for`
has passed. A firing alert is notified once, then again every `cooldown` until it is
acknowledged; notifications are held while it is silenced or flapping, except that a
resolved notification always follows a firing one that was sent.

Evaluation runs after each digest for the rules the digested events touch, and every
minute for all rules (time-driven moves: pending -> firing, quiet resolution, silences
ending, absence). Notifications are rows created in the alert's transaction; delivery
(delivery.py) claims them after commit. Validation of rules and silences is on the models (clean()).
"""

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from incidents.alerting.templates import render_alert_template
from incidents.alerting.values import Measured, measure_rules
from incidents.live import outbox
from incidents.models import (
    Alert,
    AlertRule,
    LiveMessage,
    Notification,
    NotificationChannel,
    Severity,
    Silence,
)

logger = logging.getLogger(__name__)

# Flapping as Nagios measures it: percent state change over the last 21 evaluations,
# weighted from 0.8 (oldest) to 1.2 (newest); it starts above HIGH and stops below LOW.
FLAP_HISTORY = 21
FLAP_HIGH = 20.0
FLAP_LOW = 5.0

_COMPARE = {
    "gt": lambda value, threshold: value > threshold,
    "gte": lambda value, threshold: value >= threshold,
    "lt": lambda value, threshold: value < threshold,
    "lte": lambda value, threshold: value <= threshold,
}


# Which rules an event touches


def rules_touched(touched: Iterable[tuple[int, int]]) -> list[int]:
    """Enabled event and breaker rules that (source id, error type id) pairs just digested may move."""
    pairs = set(touched)
    sources = {source for source, _ in pairs}
    types = {error_type for _, error_type in pairs}
    rules = AlertRule.objects.filter(enabled=True, target=AlertRule.Target.EVENTS)
    rules = rules.filter(Q(source__isnull=True) | Q(source_id__in=sources))
    rules = rules.filter(Q(error_type__isnull=True) | Q(error_type_id__in=types))
    return list(rules.values_list("id", flat=True))


# Evaluating


def evaluate_rules(rule_ids: Iterable[int] | None = None, now: datetime | None = None) -> list[int]:
    """Evaluate the given rules (all enabled ones when None); return the notifications created.

    Values are measured first, outside any lock. Then, in one transaction, the rules are
    locked in id order (evaluations after each digest and the minute sweep may overlap),
    rules an overlapping evaluation already stepped past `now` are skipped, and every
    changed alert and new notification is written in bulk.
    """
    now = now or timezone.now()
    rules = AlertRule.objects.filter(enabled=True).prefetch_related("channels")
    if rule_ids is not None:
        rules = rules.filter(pk__in=list(rule_ids))
    rules = {rule.pk: rule for rule in rules}
    measured = measure_rules(rules.values(), now)
    silences = list(_active_silences(now))
    with transaction.atomic():
        locked = list(
            AlertRule.objects.select_for_update()
            .filter(pk__in=list(measured))
            .filter(Q(evaluated_at__isnull=True) | Q(evaluated_at__lte=now))
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        steps = _Steps(now, silences)
        alerts = _alerts_by_rule(locked)
        for pk in locked:
            steps.rule(rules[pk], measured[pk], alerts.get(pk, {}))
        AlertRule.objects.filter(pk__in=locked).update(evaluated_at=now)
        return steps.save()


def _alerts_by_rule(rule_ids: list[int]) -> dict[int, dict[str, Alert]]:
    alerts: dict[int, dict[str, Alert]] = {}
    for alert in Alert.objects.select_for_update().filter(rule_id__in=rule_ids).order_by("pk"):
        alerts.setdefault(alert.rule_id, {})[alert.group_key] = alert
    return alerts


# The alert fields a step may change: an alert none of them changed is not written.
STEP_FIELDS = (
    "state",
    "severity",
    "value",
    "active_at",
    "fired_at",
    "last_met_at",
    "last_notified_at",
    "resolved_at",
    "acknowledged_at",
    "acknowledged_by",
    "resolved_by",
    "history",
    "flapping",
)


class _Steps:
    """One evaluation's alert steps, written together: changed alerts, new alerts, notifications."""

    def __init__(self, now: datetime, silences: list[Silence]):
        self.now, self.silences = now, silences
        self.created: list[Alert] = []
        self.changed: list[Alert] = []
        self.notify: list[tuple[Alert, str]] = []
        self.moved: list[Alert] = []  # alerts that went pending, firing or resolved: the live stream shows them
        self.routing = Routing()

    def rule(self, rule: AlertRule, measured: list[Measured], alerts: dict[str, Alert]) -> None:
        """Step each group's alert; groups that measured nothing this time are stepped with a value of zero."""
        for m in measured:
            alert = alerts.pop(m.key, None)
            if alert is None:
                if _condition(rule, m.value, firing=False) is None:
                    continue  # nothing to remember about a group that never met the condition
                alert = Alert(rule=rule, group_key=m.key, labels=m.labels)
                self.created.append(alert)
            self._step(rule, alert, m.value)
        for alert in alerts.values():
            if alert.state != Alert.State.INACTIVE:
                self._step(rule, alert, 0.0)

    def _step(self, rule: AlertRule, alert: Alert, value: float) -> None:
        alert.rule = rule
        before = [getattr(alert, field) for field in STEP_FIELDS]
        state = alert.state
        event = _step(rule, alert, value, self.now, self.silences)
        if event:
            self.notify.append((alert, event))
        if alert.state != state and alert.state != Alert.State.INACTIVE:
            self.moved.append(alert)
        if alert.pk and before != [getattr(alert, field) for field in STEP_FIELDS]:
            self.changed.append(alert)

    def save(self) -> list[int]:
        Alert.objects.bulk_create(self.created)
        _update_alerts(self.changed)
        rows = [row for alert, event in self.notify for row in _notification_rows(alert, event, self.routing)]
        Notification.objects.bulk_create(rows)
        outbox.publish_many(
            [
                LiveMessage(topic=f"alert.{alert.state}", key=f"alert:{alert.pk}", payload=alert.live_payload())
                for alert in self.moved
            ]
        )
        return [row.pk for row in rows]


def _update_alerts(alerts: list[Alert]) -> None:
    """Write the step fields of many alerts in one statement.

    Django's bulk_update builds a CASE per field and row, which costs over a second for a
    few hundred alerts; on PostgreSQL one UPDATE joins the rows from column arrays instead.
    """
    if not alerts:
        return
    if connection.vendor != "postgresql":
        Alert.objects.bulk_update(alerts, STEP_FIELDS, batch_size=500)
        return
    fields = [Alert._meta.pk, *(Alert._meta.get_field(name) for name in STEP_FIELDS)]
    quote = connection.ops.quote_name
    columns = [quote(field.column) for field in fields]
    arrays = ", ".join(f"%s::{field.db_type(connection)}[]" for field in fields)
    assignments = ", ".join(f"{column} = v.{column}" for column in columns[1:])
    sql = (
        f"UPDATE {quote(Alert._meta.db_table)} AS a SET {assignments} "
        f"FROM unnest({arrays}) AS v({', '.join(columns)}) WHERE a.{columns[0]} = v.{columns[0]}"
    )
    params = [
        [field.get_db_prep_save(getattr(alert, field.attname), connection) for alert in alerts] for field in fields
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _condition(rule: AlertRule, value: float, *, firing: bool) -> int | None:
    """The severity the value meets, or None; a firing alert keeps firing until past the resolve threshold."""
    compare = _COMPARE[rule.comparator]
    if rule.critical_threshold is not None and compare(value, rule.critical_threshold):
        return Severity.CRITICAL
    if rule.warning_threshold is not None and compare(value, rule.warning_threshold):
        return _warning_severity(rule)
    if firing:
        resolve = rule.resolve_threshold if rule.resolve_threshold is not None else rule.firing_threshold
        if resolve is not None and compare(value, resolve):
            return _warning_severity(rule) if rule.warning_threshold is not None else Severity.CRITICAL
    return None


def _warning_severity(rule: AlertRule) -> int:
    return Severity.HIGH if rule.target in ("breakers", "absence") else Severity.MEDIUM


def _step(rule: AlertRule, alert: Alert, value: float, now: datetime, silences: list[Silence]) -> str | None:
    """Move `alert` for its new value; return the notification it calls for ("firing", "resolved") or None."""
    firing = alert.state == Alert.State.FIRING
    severity = _condition(rule, value, firing=firing)
    met = severity is not None
    alert.value = value
    _note_flapping(alert, met)
    notify: str | None = None
    if met:
        alert.last_met_at = now
        alert.severity = max(severity, alert.severity or 0) if firing else severity
        if alert.state in (Alert.State.INACTIVE, Alert.State.RESOLVED):
            alert.state, alert.active_at, alert.fired_at = Alert.State.PENDING, now, None
            alert.acknowledged_at, alert.acknowledged_by = None, ""
            alert.resolved_at, alert.resolved_by = None, ""
        if alert.state == Alert.State.PENDING and now - alert.active_at >= timedelta(seconds=rule.pending_for):
            alert.state, alert.fired_at = Alert.State.FIRING, now
        if alert.state == Alert.State.FIRING:
            notify = "firing" if _firing_notification_due(rule, alert, now) else None
    elif alert.state == Alert.State.PENDING:
        alert.state = Alert.State.INACTIVE
    elif firing and now - (alert.last_met_at or now) >= timedelta(seconds=rule.keep_firing_for):
        alert.state, alert.resolved_at = Alert.State.RESOLVED, now
        notify = "resolved" if rule.send_resolved and alert.was_notified else None
    if notify == "firing" and (alert.flapping or _silenced(alert, silences, now)):
        notify = None  # held: the next evaluation after the silence or the flapping ends sends it
    if notify == "firing":
        alert.last_notified_at = now
    return notify


def _firing_notification_due(rule: AlertRule, alert: Alert, now: datetime) -> bool:
    if alert.acknowledged_at is not None:
        return False
    if not alert.was_notified:
        return True
    return now - alert.last_notified_at >= timedelta(seconds=rule.cooldown)


def _note_flapping(alert: Alert, met: bool) -> None:
    alert.history = (alert.history + ("1" if met else "0"))[-FLAP_HISTORY:]
    change = flap_percent(alert.history)
    if alert.flapping and change < FLAP_LOW:
        alert.flapping = False
    elif not alert.flapping and change > FLAP_HIGH:
        alert.flapping = True


def flap_percent(history: str) -> float:
    """Weighted percent of state changes in a history of 0/1 evaluations, newer changes weighing more."""
    changes = len(history) - 1
    if changes < 1:
        return 0.0
    weights = [0.8 + 0.4 * i / max(changes - 1, 1) for i in range(changes)]
    changed = sum(w for i, w in enumerate(weights) if history[i] != history[i + 1])
    return 100.0 * changed / sum(weights)


# Silences


def _active_silences(now: datetime):
    return Silence.objects.filter(starts_at__lte=now, ends_at__gt=now)


def _silenced(alert: Alert, silences: list[Silence], now: datetime) -> bool:
    return any(silence.applies_to(alert, now) for silence in silences)


# Notifications


def notifications_create(*, alert: Alert, event: str, now: datetime) -> list[int]:
    """Queue `event` about `alert` for each of its channels; delivery claims them after commit."""
    rows = Notification.objects.bulk_create(_notification_rows(alert, event, Routing()))
    if event == "firing":
        alert.last_notified_at = now
        Alert.objects.filter(pk=alert.pk).update(last_notified_at=now)
    return [row.pk for row in rows]


def _notification_rows(alert: Alert, event: str, routing: "Routing") -> list[Notification]:
    severity = alert.severity or Severity.INFO
    message = message_for(alert, event)
    return [
        Notification(alert=alert, channel=channel, event=event, severity=severity, message=message)
        for channel in routing.channels_for(alert.rule, severity)
    ]


class Routing:
    """Which channels get an alert's notifications; the default routing is read once per evaluation."""

    def __init__(self):
        self._defaults: list[NotificationChannel] | None = None

    def channels_for(self, rule: AlertRule, severity: int) -> list[NotificationChannel]:
        """The rule's channels, or the default routing by severity; each only at or above its minimum severity."""
        chosen = [channel for channel in rule.channels.all() if channel.enabled] if rule.pk else []
        if not chosen:
            name = Severity(severity).name
            chosen = [channel for channel in self._default_channels() if name in (channel.default_for or [])]
        return [channel for channel in chosen if severity >= channel.min_severity]

    def _default_channels(self) -> list[NotificationChannel]:
        if self._defaults is None:
            self._defaults = list(NotificationChannel.objects.filter(enabled=True).exclude(default_for=[]))
        return self._defaults


def message_for(alert: Alert, event: str) -> dict:
    """The transport-neutral message (incidents.alerting.transports.base.Message fields) for `event` about `alert`."""
    rule = alert.rule
    threshold = rule.critical_threshold if alert.severity == Severity.CRITICAL else rule.warning_threshold
    context = {
        "rule": rule.name,
        "value": alert.value,
        "threshold": threshold,
        "severity": Severity(alert.severity or Severity.INFO).name,
        "labels": alert.labels,
        "state": event,
    }
    return {
        "event": event,
        "dedup_key": f"alert-{alert.pk}",
        "rule": rule.name,
        "severity": context["severity"].lower(),
        "summary": _render(rule, "summary_template", context),
        "runbook": _render(rule, "runbook_template", context),
        "value": alert.value,
        "threshold": threshold,
        "labels": {key: str(value) for key, value in (alert.labels or {}).items()},
        "started_at": (alert.fired_at or alert.active_at or timezone.now()).isoformat(),
        "ended_at": alert.resolved_at.isoformat() if event == "resolved" and alert.resolved_at else None,
        "url": f"{settings.CONSOLE_URL}/admin/incidents/alert/{alert.pk}/change/",
    }


def _render(rule: AlertRule, field: str, context: dict) -> str:
    try:
        return render_alert_template(getattr(rule, field), context)
    except Exception as error:
        # A template saved around validation, or past the bounds only with live values, must neither stop the
        # evaluation of every rule nor lose the alert: it goes out in the default wording.
        logger.warning("Alert rule %s (%s): %s not rendered: %s", rule.pk, rule.name, field, error)
        if field != "summary_template":
            return ""
        return f"{context['rule']}: {context['value']} (threshold {context['threshold']})"
