"""Alert rules: their values from the rollups, and the alert state machine.

An evaluation measures a rule's value per group (source, error type, incident, or one
group for everything) over its window, from SourceMinute, IncidentMinute, IncidentUser,
the breaker state table and source timestamps, never from raw events. Each group's Alert
then steps: inactive -> pending (held for `pending_for`) -> firing -> resolved, resolving
only once the value is back past the resolve threshold (hysteresis) and `keep_firing_for`
has passed. A firing alert is notified once, then again every `cooldown` until it is
acknowledged; notifications are held while it is silenced or flapping, except that a
resolved notification always follows a firing one that was sent.

Evaluation runs after each digest for the rules the digested events touch, and every
minute for all rules (time-driven moves: pending -> firing, quiet resolution, silences
ending, absence). Notifications are rows created in the alert's transaction; delivery
(incidents/delivery.py) claims them after commit.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q, Sum
from django.template import Context, Template, TemplateSyntaxError
from django.utils import timezone

from incidents.models import (
    Alert,
    AlertRule,
    IncidentMinute,
    IncidentUser,
    Notification,
    NotificationChannel,
    Severity,
    Silence,
    Source,
    SourceMinute,
)

logger = logging.getLogger(__name__)

GROUP_KEYS = ("source", "error_type", "incident")
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


@dataclass(frozen=True)
class Measured:
    """A rule's value for one group."""

    key: str
    labels: dict
    value: float


# Validation


def rule_errors(rule: AlertRule) -> dict[str, str]:
    """Field errors of a rule: thresholds in order, a resolve threshold on the right side, templates that render."""
    errors: dict[str, str] = {}
    if rule.window_minutes is not None and rule.window_minutes < 1:
        errors["window_minutes"] = "must be at least 1 minute"
    warning, critical, resolve = rule.warning_threshold, rule.critical_threshold, rule.resolve_threshold
    if rule.target in ("events", "breakers") and warning is None and critical is None:
        errors["warning_threshold"] = "set a warning or a critical threshold (or both)"
    rising = rule.comparator in ("gt", "gte")
    if warning is not None and critical is not None and (critical < warning if rising else critical > warning):
        errors["critical_threshold"] = f"must be {'at or above' if rising else 'at or below'} the warning threshold"
    firing = _lowest_firing_threshold(rule)
    if resolve is not None and firing is not None and (resolve > firing if rising else resolve < firing):
        side = "at or below" if rising else "at or above"
        errors["resolve_threshold"] = f"must be {side} the firing threshold {firing} (the value resolves past it)"
    if (
        rule.value == "ratio"
        and rule.target == "events"
        and any(t is not None and t > 100 for t in (warning, critical))
    ):
        errors["critical_threshold" if critical and critical > 100 else "warning_threshold"] = (
            "a ratio is a percentage: at most 100"
        )
    group_by = rule.group_by if isinstance(rule.group_by, list) else None
    unknown = [key for key in group_by or [] if key not in GROUP_KEYS]
    if group_by is None or unknown:
        errors["group_by"] = f"unknown group keys {unknown}; use any of {list(GROUP_KEYS)}"
    if rule.target == "absence" and rule.group_by:
        errors["group_by"] = "absence rules watch one source or all sources; leave group_by empty"
    if rule.target == "absence" and rule.heartbeat and rule.source_id is None:
        errors["source"] = "a heartbeat rule watches one source's heartbeat URL: choose the source"
    for field in ("summary_template", "runbook_template"):
        problem = template_error(getattr(rule, field))
        if problem:
            errors[field] = problem
    return errors


def template_error(text: str) -> str | None:
    """Why `text` cannot be rendered as a summary or runbook template, or None."""
    try:
        Template(text).render(Context(_template_context_example()))
    except TemplateSyntaxError as error:
        return f"template error: {error}"
    return None


def _template_context_example() -> dict:
    return {"rule": "rule", "value": 1.0, "threshold": 1.0, "severity": "HIGH", "labels": {}, "state": "firing"}


def _lowest_firing_threshold(rule: AlertRule) -> float | None:
    thresholds = [t for t in (rule.warning_threshold, rule.critical_threshold) if t is not None]
    if not thresholds:
        return None
    return min(thresholds) if rule.comparator in ("gt", "gte") else max(thresholds)


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


# Measuring


def measure(rule: AlertRule, now: datetime) -> list[Measured]:
    """The rule's value per group over its window."""
    since = _minute(now) - timedelta(minutes=rule.window_minutes - 1)
    if rule.target == AlertRule.Target.BREAKERS:
        return _measure_breakers(rule)
    if rule.target == AlertRule.Target.DEGRADATION:
        return _measure_degradation()
    if rule.target == AlertRule.Target.ABSENCE:
        return _measure_absence(rule, now)
    if rule.value in ("incidents", "users") or "incident" in (rule.group_by or []):
        return _measure_from_incident_rollups(rule, since)
    return _measure_counts(rule, since)


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def _event_filter(rule: AlertRule, prefix: str = "") -> Q:
    q = Q()
    if rule.source_id:
        q &= Q(**{f"{prefix}source_id": rule.source_id})
    if rule.error_type_id:
        q &= Q(**{f"{prefix}error_type_id": rule.error_type_id})
    if rule.category:
        q &= Q(**{f"{prefix}error_type__category": rule.category})
    if rule.min_severity:
        q &= Q(**{f"{prefix}severity__gte": rule.min_severity})
    return q


def _group_columns(rule: AlertRule, available: dict[str, str]) -> list[str]:
    return [available[key] for key in rule.group_by or [] if key in available]


def _measured_rows(rows, columns: list[str], value_of) -> list[Measured]:
    """One Measured per aggregated row, labelled by its group columns (incident__source_id -> source)."""
    measured = []
    for row in rows:
        labels = {column.removeprefix("incident__").removesuffix("_id"): row[column] for column in columns}
        key = ",".join(f"{name}={value}" for name, value in labels.items())
        measured.append(Measured(key, labels, value_of(row)))
    if not columns and not measured:
        measured.append(Measured("", {}, value_of({"total": 0})))
    return measured


def _aggregate(rows, columns: list[str], total) -> list[dict]:
    """`total` per group of `columns`, or one row for everything when there are none."""
    return list(rows.values(*columns).annotate(total=total)) if columns else [rows.aggregate(total=total)]


def _per_window(rule: AlertRule):
    per = rule.window_minutes if rule.value == "rate" else 1
    return lambda row: (row["total"] or 0) / per


_SOURCE_GROUPS = {"source": "source_id", "error_type": "error_type_id"}
_INCIDENT_GROUPS = {"source": "incident__source_id", "error_type": "incident__error_type_id", "incident": "incident_id"}


def _measure_counts(rule: AlertRule, since: datetime) -> list[Measured]:
    rows = SourceMinute.objects.filter(_event_filter(rule), minute__gte=since)
    if rule.environment:
        rows = rows.filter(environment=rule.environment)
    columns = _group_columns(rule, _SOURCE_GROUPS)
    if rule.value == "ratio":
        return _measure_ratio(rule, since, rows, columns)
    return _measured_rows(_aggregate(rows, columns, Sum("count")), columns, _per_window(rule))


def _measure_ratio(rule: AlertRule, since: datetime, selected, columns: list[str]) -> list[Measured]:
    """The selection as a percentage of the same sources' (and environment's) events."""
    base = SourceMinute.objects.filter(minute__gte=since)
    if rule.source_id:
        base = base.filter(source_id=rule.source_id)
    if rule.environment:
        base = base.filter(environment=rule.environment)
    base_columns = [column for column in columns if column == "source_id"]
    totals = {
        tuple(row[c] for c in base_columns): row["total"] or 0 for row in _aggregate(base, base_columns, Sum("count"))
    }

    def percent(row) -> float:
        denominator = totals.get(tuple(row.get(c) for c in base_columns), 0)
        return 100.0 * (row["total"] or 0) / denominator if denominator else 0.0

    return _measured_rows(_aggregate(selected, columns, Sum("count")), columns, percent)


def _incident_filter(rule: AlertRule) -> Q:
    q = _event_filter(rule, "incident__")
    if rule.environment:
        q &= Q(incident__environments__environment=rule.environment)
    return q


def _measure_from_incident_rollups(rule: AlertRule, since: datetime) -> list[Measured]:
    """Distinct users, distinct incidents, or counts per incident (which the source rollup cannot tell apart)."""
    if rule.value == "users":
        rows, total = IncidentUser.objects.filter(last_seen__gte=since), Count("user_hash", distinct=True)
    elif rule.value == "incidents":
        rows, total = IncidentMinute.objects.filter(minute__gte=since), Count("incident_id", distinct=True)
    else:
        rows, total = IncidentMinute.objects.filter(minute__gte=since), Sum("count")
    columns = _group_columns(rule, _INCIDENT_GROUPS)
    return _measured_rows(_aggregate(rows.filter(_incident_filter(rule)), columns, total), columns, _per_window(rule))


def _measure_absence(rule: AlertRule, now: datetime) -> list[Measured]:
    """Minutes since each watched source was last heard from (events, or its heartbeat URL)."""
    sources = Source.objects.filter(is_active=True)
    if rule.source_id:
        sources = sources.filter(pk=rule.source_id)
    field = "last_heartbeat_at" if rule.heartbeat else "last_event_at"
    measured = []
    for source_id, last, created in sources.values_list("id", field, "created_at"):
        quiet_minutes = (now - (last or created)).total_seconds() / 60
        measured.append(Measured(f"source={source_id}", {"source": source_id}, round(quiet_minutes, 2)))
    return measured


def _measure_breakers(rule: AlertRule) -> list[Measured]:
    """One group per breaker: 1 while it is open (or half-open), 0 when closed."""
    from resilience.models import BreakerState

    states = BreakerState.objects.all()
    if rule.breaker:
        states = states.filter(name=rule.breaker)
    return [
        Measured(f"breaker={name}", {"breaker": name}, 0.0 if state == "closed" else 1.0)
        for name, state in states.values_list("name", "state")
    ]


def _measure_degradation() -> list[Measured]:
    """The console's degradation level: 0 FULL, 1 DEGRADED, 2 MINIMAL, 3 EMERGENCY."""
    from resilience.console import runtime

    level = runtime().degradation.evaluate()
    return [Measured("", {"level": level.name}, float(level))]


# The state machine


def evaluate_rules(rule_ids: Iterable[int] | None = None, now: datetime | None = None) -> list[int]:
    """Evaluate the given rules (all enabled ones when None); return the notifications created."""
    now = now or timezone.now()
    rules = AlertRule.objects.filter(enabled=True).select_related("source", "error_type")
    if rule_ids is not None:
        rules = rules.filter(pk__in=list(rule_ids))
    created: list[int] = []
    silences = list(_active_silences(now))
    for rule in rules:
        try:
            created += evaluate_rule(rule, now, silences)
        except Exception:
            # One broken rule must not stop the others from being evaluated.
            logger.exception("could not evaluate alert rule %s", rule.pk)
    return created


def evaluate_rule(rule: AlertRule, now: datetime, silences: list[Silence] | None = None) -> list[int]:
    """Measure one rule and step each of its alerts; return the notifications created."""
    measured = {m.key: m for m in measure(rule, now)}
    silences = silences if silences is not None else list(_active_silences(now))
    created: list[int] = []
    with transaction.atomic():
        alerts = {a.group_key: a for a in Alert.objects.select_for_update().filter(rule=rule)}
        for key, m in measured.items():
            alert = alerts.pop(key, None)
            if alert is None:
                if _condition(rule, m.value, firing=False) is None:
                    continue  # nothing to remember about a group that never met the condition
                alert = Alert(rule=rule, group_key=key, labels=m.labels)
            created += _step(rule, alert, m.value, now, silences)
        for alert in alerts.values():  # groups with no data in the window: a value of zero
            if alert.state != Alert.State.INACTIVE:
                created += _step(rule, alert, 0.0, now, silences)
    return created


def _condition(rule: AlertRule, value: float, *, firing: bool) -> int | None:
    """The severity the value meets, or None; a firing alert keeps firing until past the resolve threshold."""
    compare = _COMPARE[rule.comparator]
    if rule.critical_threshold is not None and compare(value, rule.critical_threshold):
        return Severity.CRITICAL
    if rule.warning_threshold is not None and compare(value, rule.warning_threshold):
        return _warning_severity(rule)
    if firing:
        resolve = rule.resolve_threshold if rule.resolve_threshold is not None else _lowest_firing_threshold(rule)
        if resolve is not None and compare(value, resolve):
            return _warning_severity(rule) if rule.warning_threshold is not None else Severity.CRITICAL
    return None


def _warning_severity(rule: AlertRule) -> int:
    return Severity.HIGH if rule.target in ("breakers", "absence") else Severity.MEDIUM


def _step(rule: AlertRule, alert: Alert, value: float, now: datetime, silences: list[Silence]) -> list[int]:
    firing = alert.state == Alert.State.FIRING
    severity = _condition(rule, value, firing=firing)
    met = severity is not None
    alert.value, alert.last_evaluated_at = value, now
    _note_flapping(alert, met)
    notify: str | None = None
    if met:
        alert.last_met_at = now
        alert.severity = max(severity, alert.severity or 0) if firing else severity
        if alert.state in (Alert.State.INACTIVE, Alert.State.RESOLVED):
            alert.state, alert.active_at, alert.fired_at = Alert.State.PENDING, now, None
            alert.acknowledged_at, alert.acknowledged_by, alert.resolved_at = None, "", None
        if alert.state == Alert.State.PENDING and now - alert.active_at >= timedelta(seconds=rule.pending_for):
            alert.state, alert.fired_at = Alert.State.FIRING, now
        if alert.state == Alert.State.FIRING:
            notify = "firing" if _firing_notification_due(rule, alert, now) else None
    elif alert.state == Alert.State.PENDING:
        alert.state = Alert.State.INACTIVE
    elif firing and now - (alert.last_met_at or now) >= timedelta(seconds=rule.keep_firing_for):
        alert.state, alert.resolved_at = Alert.State.RESOLVED, now
        notify = "resolved" if rule.send_resolved and was_notified(alert) else None
    if notify == "firing" and (alert.flapping or _silenced(alert, silences, now)):
        notify = None  # held: the next evaluation after the silence or the flapping ends sends it
    alert.save()
    return notifications_create(alert=alert, event=notify, now=now) if notify else []


def _firing_notification_due(rule: AlertRule, alert: Alert, now: datetime) -> bool:
    if alert.acknowledged_at is not None:
        return False
    if not was_notified(alert):
        return True
    return now - alert.last_notified_at >= timedelta(seconds=rule.cooldown)


def was_notified(alert: Alert) -> bool:
    """Whether a firing notification went out in this firing episode."""
    return bool(alert.last_notified_at and alert.fired_at and alert.last_notified_at >= alert.fired_at)


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


def silence_applies(silence: Silence, alert: Alert, now: datetime) -> bool:
    """Whether `silence` holds `alert`'s notifications at `now` (rule, label matchers, recurring window)."""
    if silence.rule_id and silence.rule_id != alert.rule_id:
        return False
    labels = {key: str(value) for key, value in (alert.labels or {}).items()}
    labels["rule"] = alert.rule.name
    if any(labels.get(key) != str(value) for key, value in (silence.matchers or {}).items()):
        return False
    return _in_recurring_window(silence, now)


def _in_recurring_window(silence: Silence, now: datetime) -> bool:
    if silence.daily_start is None:
        return True
    for days_back in (0, 1):  # a window that started yesterday may run past midnight
        day = (now - timedelta(days=days_back)).date()
        if silence.weekdays and day.isoweekday() not in silence.weekdays:
            continue
        start = datetime.combine(day, silence.daily_start, tzinfo=now.tzinfo)
        if start <= now < start + timedelta(minutes=silence.daily_minutes):
            return True
    return False


def _silenced(alert: Alert, silences: list[Silence], now: datetime) -> bool:
    return any(silence_applies(silence, alert, now) for silence in silences)


# Notifications


def notifications_create(*, alert: Alert, event: str, now: datetime) -> list[int]:
    """Queue `event` about `alert` for each of its channels; delivery claims them after commit."""
    rule = alert.rule
    severity = alert.severity or Severity.INFO
    rows = [
        Notification(
            alert=alert,
            channel=channel,
            event=event,
            severity=severity,
            message=message_for(alert, event),
        )
        for channel in channels_for(rule, severity)
    ]
    Notification.objects.bulk_create(rows)
    if event == "firing":
        alert.last_notified_at = now
        Alert.objects.filter(pk=alert.pk).update(last_notified_at=now)
    return [row.pk for row in rows]


def channels_for(rule: AlertRule, severity: int) -> list[NotificationChannel]:
    """The rule's channels, or the default routing by severity; each only at or above its minimum severity."""
    chosen = list(rule.channels.filter(enabled=True)) if rule.pk else []
    if not chosen:
        name = Severity(severity).name
        chosen = [c for c in NotificationChannel.objects.filter(enabled=True) if name in (c.default_for or [])]
    return [channel for channel in chosen if severity >= channel.min_severity]


def message_for(alert: Alert, event: str) -> dict:
    """The transport-neutral message (incidents.transports.base.Message fields) for `event` about `alert`."""
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
        "summary": _render(rule.summary_template, context),
        "runbook": _render(rule.runbook_template, context),
        "value": alert.value,
        "threshold": threshold,
        "labels": {key: str(value) for key, value in (alert.labels or {}).items()},
        "started_at": (alert.fired_at or alert.active_at or timezone.now()).isoformat(),
        "ended_at": alert.resolved_at.isoformat() if event == "resolved" and alert.resolved_at else None,
        "url": f"{settings.CONSOLE_URL}/admin/incidents/alert/{alert.pk}/change/",
    }


def _render(template: str, context: dict) -> str:
    if not template:
        return ""
    # Autoescaping is for HTML; these texts go to chat, pagers and mail as plain text.
    return Template("{% autoescape off %}" + template + "{% endautoescape %}").render(Context(context)).strip()
