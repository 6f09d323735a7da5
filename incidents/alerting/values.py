"""Alert rule values, measured for many rules at once from the rollups, never from raw events.

A sweep evaluates every enabled rule, and rules share a handful of windows (a minute, an
hour, a day). So each rollup is read once per window -- SourceMinute totals per source,
error type, severity and environment; IncidentMinute totals per incident; affected users
per incident -- and each rule's value per group is computed from those rows in Python.
Rows are indexed by source and by error type, so a rule scoped to one source only looks
at that source's rows.
"""

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Sum

from incidents.models import (
    AlertRule,
    ErrorType,
    IncidentEnvironment,
    IncidentMinute,
    IncidentUser,
    Source,
    SourceMinute,
)
from resilience.models import BreakerState
from resilience.process_runtime import runtime

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Measured:
    """A rule's value for one group."""

    key: str
    labels: dict
    value: float


@dataclass(frozen=True)
class _Row:
    """One rollup row summed over a window: a source's cell, or one incident."""

    source: int
    error_type: int
    category: str
    severity: int
    environments: tuple[str, ...] | frozenset[str]
    total: int
    incident: int | None = None
    users: frozenset[str] = frozenset()


class _Indexed:
    """Rows with lookups by source and by error type."""

    def __init__(self, rows: list[_Row]):
        self.rows = rows
        self.by_source: dict[int, list[_Row]] = defaultdict(list)
        self.by_error_type: dict[int, list[_Row]] = defaultdict(list)
        for row in rows:
            self.by_source[row.source].append(row)
            self.by_error_type[row.error_type].append(row)

    def selected(self, rule: AlertRule) -> list[_Row]:
        """The rows `rule`'s filters select, starting from the narrowest index."""
        if rule.source_id:
            candidates = self.by_source.get(rule.source_id, [])
        elif rule.error_type_id:
            candidates = self.by_error_type.get(rule.error_type_id, [])
        else:
            candidates = self.rows
        return [row for row in candidates if _matches(rule, row)]


def _matches(rule: AlertRule, row: _Row) -> bool:
    return (
        (not rule.source_id or row.source == rule.source_id)
        and (not rule.error_type_id or row.error_type == rule.error_type_id)
        and (not rule.category or row.category == rule.category)
        and (not rule.min_severity or row.severity >= rule.min_severity)
        and (not rule.environment or rule.environment in row.environments)
    )


class Rollups:
    """The rollups one evaluation reads, each once per window and only when a rule needs it."""

    def __init__(self, now: datetime):
        self.now = now
        self._cache: dict[tuple, object] = {}

    def _once(self, key: tuple, load):
        if key not in self._cache:
            self._cache[key] = load()
        return self._cache[key]

    def since(self, window_minutes: int) -> datetime:
        return self.now.replace(second=0, microsecond=0) - timedelta(minutes=window_minutes - 1)

    def categories(self) -> dict[int, str]:
        return self._once(("categories",), lambda: dict(ErrorType.objects.values_list("id", "category")))

    def environments(self) -> dict[int, frozenset[str]]:
        return self._once(("environments",), self._load_environments)

    def source_cells(self, window_minutes: int) -> _Indexed:
        return self._once(("source", window_minutes), lambda: self._load_source_cells(window_minutes))

    def incidents(self, window_minutes: int) -> _Indexed:
        return self._once(("incidents", window_minutes), lambda: self._load_incidents(window_minutes))

    def users(self, window_minutes: int) -> _Indexed:
        return self._once(("users", window_minutes), lambda: self._load_users(window_minutes))

    def sources(self) -> list[tuple]:
        return self._once(
            ("sources",),
            lambda: list(
                Source.objects.filter(is_active=True).values_list(
                    "id", "last_event_at", "last_heartbeat_at", "created_at"
                )
            ),
        )

    def breaker_states(self) -> list[tuple[str, str]]:
        return self._once(("breakers",), lambda: list(BreakerState.objects.values_list("name", "state")))

    def _load_source_cells(self, window_minutes: int) -> _Indexed:
        categories = self.categories()
        totals = (
            SourceMinute.objects.filter(minute__gte=self.since(window_minutes))
            .values_list("source_id", "error_type_id", "severity", "environment")
            .annotate(total=Sum("count"))
        )
        return _Indexed(
            [
                _Row(source, error_type, categories.get(error_type, ""), severity, (environment,), total)
                for source, error_type, severity, environment, total in totals
            ]
        )

    def _load_incidents(self, window_minutes: int) -> _Indexed:
        totals = (
            IncidentMinute.objects.filter(minute__gte=self.since(window_minutes))
            .values_list("incident_id", "incident__source_id", "incident__error_type_id", "incident__severity")
            .annotate(total=Sum("count"))
        )
        return self._incident_rows(
            (incident, source, error_type, severity, total, frozenset())
            for incident, source, error_type, severity, total in totals
        )

    def _load_users(self, window_minutes: int) -> _Indexed:
        users: dict[tuple, set[str]] = defaultdict(set)
        seen = IncidentUser.objects.filter(last_seen__gte=self.since(window_minutes)).values_list(
            "incident_id", "incident__source_id", "incident__error_type_id", "incident__severity", "user_hash"
        )
        for incident, source, error_type, severity, user_hash in seen:
            users[(incident, source, error_type, severity)].add(user_hash)
        return self._incident_rows((*incident, len(hashes), frozenset(hashes)) for incident, hashes in users.items())

    def _incident_rows(self, incidents: Iterable[tuple]) -> _Indexed:
        categories, environments = self.categories(), self.environments()
        return _Indexed(
            [
                _Row(
                    source,
                    error_type,
                    categories.get(error_type, ""),
                    severity,
                    environments.get(incident, frozenset()),
                    total,
                    incident,
                    hashes,
                )
                for incident, source, error_type, severity, total, hashes in incidents
            ]
        )

    def _load_environments(self) -> dict[int, frozenset[str]]:
        seen: dict[int, set[str]] = defaultdict(set)
        for incident, environment in IncidentEnvironment.objects.values_list("incident_id", "environment"):
            seen[incident].add(environment)
        return {incident: frozenset(names) for incident, names in seen.items()}


def measure_rules(rules: Iterable[AlertRule], now: datetime) -> dict[int, list[Measured]]:
    """Each rule's value per group; a rule that cannot be measured is logged and left out."""
    rollups = Rollups(now)
    measured: dict[int, list[Measured]] = {}
    for rule in rules:
        try:
            measured[rule.pk] = measure(rule, rollups)
        except Exception:
            # One broken rule must not stop the others from being evaluated.
            logger.exception("could not measure alert rule %s", rule.pk)
    return measured


def measure(rule: AlertRule, rollups: Rollups) -> list[Measured]:
    """`rule`'s value per group over its window."""
    if rule.target == AlertRule.Target.BREAKERS:
        return _breakers(rule, rollups)
    if rule.target == AlertRule.Target.DEGRADATION:
        return _degradation()
    if rule.target == AlertRule.Target.ABSENCE:
        return _absence(rule, rollups)
    group_by = rule.group_by or []
    if rule.value == AlertRule.Value.USERS:
        return _grouped(rule, rollups.users(rule.window_minutes), _distinct_users)
    if rule.value == AlertRule.Value.INCIDENTS:
        return _grouped(rule, rollups.incidents(rule.window_minutes), len)
    if rule.value == AlertRule.Value.RATIO:
        return _ratio(rule, rollups.source_cells(rule.window_minutes))
    rows = (
        rollups.incidents(rule.window_minutes) if "incident" in group_by else rollups.source_cells(rule.window_minutes)
    )
    per = rule.window_minutes if rule.value == AlertRule.Value.RATE else 1
    return _grouped(rule, rows, lambda group: sum(row.total for row in group) / per)


def _distinct_users(rows: list[_Row]) -> int:
    if len(rows) == 1:
        return len(rows[0].users)
    return len(frozenset().union(*(row.users for row in rows)))


def _group_labels(rule: AlertRule, row: _Row) -> dict:
    values = {"source": row.source, "error_type": row.error_type, "incident": row.incident}
    return {key: values[key] for key in rule.group_by or [] if values[key] is not None}


def _by_group(rule: AlertRule, rows: list[_Row]) -> dict[str, tuple[dict, list[_Row]]]:
    groups: dict[str, tuple[dict, list[_Row]]] = {}
    for row in rows:
        labels = _group_labels(rule, row)
        key = ",".join(f"{name}={value}" for name, value in labels.items())
        groups.setdefault(key, (labels, []))[1].append(row)
    return groups


def _grouped(rule: AlertRule, indexed: _Indexed, value_of) -> list[Measured]:
    """value_of(rows) per group; one group of zero when the rule groups nothing and nothing matched."""
    groups = _by_group(rule, indexed.selected(rule))
    if not groups and not rule.group_by:
        return [Measured("", {}, float(value_of([])))]
    return [Measured(key, labels, float(value_of(rows))) for key, (labels, rows) in groups.items()]


def _ratio(rule: AlertRule, cells: _Indexed) -> list[Measured]:
    """The selection as a percentage of the same sources' (and environment's) events."""
    per_source = "source" in (rule.group_by or [])
    base: dict[int | None, int] = defaultdict(int)
    for row in cells.by_source.get(rule.source_id, []) if rule.source_id else cells.rows:
        if not rule.environment or rule.environment in row.environments:
            base[row.source if per_source else None] += row.total

    def percent(rows: list[_Row]) -> float:
        denominator = base.get(rows[0].source if per_source else None, 0) if rows else 0
        return 100.0 * sum(row.total for row in rows) / denominator if denominator else 0.0

    return _grouped(rule, cells, percent)


def _absence(rule: AlertRule, rollups: Rollups) -> list[Measured]:
    """Minutes since each watched source was last heard from (events, or its heartbeat URL)."""
    measured = []
    for source, last_event, last_heartbeat, created in rollups.sources():
        if rule.source_id and source != rule.source_id:
            continue
        last = last_heartbeat if rule.heartbeat else last_event
        quiet_minutes = (rollups.now - (last or created)).total_seconds() / 60
        measured.append(Measured(f"source={source}", {"source": source}, round(quiet_minutes, 2)))
    return measured


def _breakers(rule: AlertRule, rollups: Rollups) -> list[Measured]:
    """One group per breaker: 1 while it is open (or half-open), 0 when closed."""
    return [
        Measured(f"breaker={name}", {"breaker": name}, 0.0 if state == "closed" else 1.0)
        for name, state in rollups.breaker_states()
        if not rule.breaker or name == rule.breaker
    ]


def _degradation() -> list[Measured]:
    """The console's degradation level: 0 FULL, 1 DEGRADED, 2 MINIMAL, 3 EMERGENCY."""
    level = runtime().degradation.evaluate()
    return [Measured("", {"level": level.name}, float(level))]
