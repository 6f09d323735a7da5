"""Read queries shared by admin, API and dashboard, each bounded by an index."""

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import F, QuerySet, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone

from incidents.models import (
    ErrorEvent,
    Incident,
    IncidentActivity,
    IncidentEnvironment,
    IncidentHour,
    IncidentMinute,
    SourceHour,
    SourceMinute,
)

# Incidents


def incident_hour_series(incident_ids: list[int], *, hours: int = 24, now: datetime | None = None) -> "HourSeries":
    """Return events per hour over the last `hours` hours for many incidents, in one query."""
    end = (now or timezone.now()).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(hours=hours - 1)
    series = HourSeries(start=start, hours=hours)
    if incident_ids:
        # A half-open range: on SQLite, rollup rows written by raw SQL compare as text with a "+00:00" suffix.
        window = {"hour__gte": start, "hour__lt": end + timedelta(hours=1)}
        rows = IncidentHour.objects.filter(incident_id__in=incident_ids, **window)
        for incident_id, hour, count in rows.values_list("incident_id", "hour", "count"):
            series.add(incident_id, hour, count)
    return series


@dataclass
class HourSeries:
    """Per-hour counts for several incidents over one window that starts at `start`."""

    start: datetime
    hours: int
    counts: dict[int, list[int]] = field(default_factory=dict)

    def add(self, incident_id: int, hour: datetime, count: int) -> None:
        index = int((hour - self.start) // timedelta(hours=1))
        if 0 <= index < self.hours:
            self.counts.setdefault(incident_id, [0] * self.hours)[index] += count

    def of(self, incident_id: int) -> list[int]:
        return self.counts.get(incident_id, [0] * self.hours)


def incident_environments(*, limit: int = 200) -> list[str]:
    """Return the distinct environments incidents were seen in, by a skip scan over their index."""
    table = connections["default"].ops.quote_name(IncidentEnvironment._meta.db_table)
    # A recursive skip scan reads one index entry per distinct value instead of every row.
    sql = (
        f"WITH RECURSIVE envs(environment) AS ("
        f" SELECT MIN(environment) FROM {table}"
        f" UNION ALL"
        f" SELECT (SELECT MIN(e.environment) FROM {table} e WHERE e.environment > envs.environment)"
        f" FROM envs WHERE envs.environment IS NOT NULL"
        f") SELECT environment FROM envs WHERE environment IS NOT NULL LIMIT %s"
    )
    with connections["default"].cursor() as cursor:
        cursor.execute(sql, [limit])
        return [row[0] for row in cursor.fetchall()]


def incident_timeline(incident: Incident, *, limit: int = 100) -> list[IncidentActivity]:
    """Return the newest timeline entries of an incident, newest first."""
    return list(IncidentActivity.objects.filter(incident=incident).order_by("-created_at", "-id")[:limit])


_EVENT_ROW_FIELDS = (
    "id",
    "event_id",
    "incident_id",
    "timestamp",
    "received_at",
    "level",
    "message",
    "environment",
    "release",
    "server_name",
)


def incident_events_page(incident: Incident, *, page: int, per_page: int = 25) -> tuple[list[ErrorEvent], bool]:
    """Return one page of an incident's events, newest first, and whether a next page exists, without a COUNT."""
    offset = (max(page, 1) - 1) * per_page
    rows = list(
        ErrorEvent.objects.filter(incident=incident)
        .order_by("-received_at", "-id")
        .only(*_EVENT_ROW_FIELDS)[offset : offset + per_page + 1]
    )
    return rows[:per_page], len(rows) > per_page


def incident_latest_event(incident: Incident) -> ErrorEvent | None:
    """Return the incident's most recently received event, whole."""
    return ErrorEvent.objects.filter(incident=incident).order_by("-received_at", "-id").first()


# Counting without counting everything


def table_row_estimate(model) -> int | None:
    """Return PostgreSQL's planner estimate of a table's rows, or None where there is none."""
    connection = connections["default"]
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)", [model._meta.db_table])
        row = cursor.fetchone()
    # reltuples is -1 for a table that was never vacuumed or analysed.
    return row[0] if row and row[0] >= 0 else None


class EstimatedCountPaginator(Paginator):
    """A paginator that never counts a whole large table.

    An unfiltered queryset on PostgreSQL takes the planner's estimate; anything
    else counts at most `cap` + 1 rows, so a count costs at most that many index entries.
    """

    cap = 10_000
    count_is_exact = True

    @cached_property
    def count(self) -> int:
        queryset: QuerySet = self.object_list
        if not queryset.query.where:
            estimate = table_row_estimate(queryset.model)
            # Only trust an estimate beyond the cap: a stale low one must not turn off slicing.
            if estimate is not None and estimate > self.cap:
                self.count_is_exact = False
                return estimate
        counted = queryset.order_by().values("pk")[: self.cap + 1].count()
        if counted > self.cap:
            self.count_is_exact = False
        return counted

    @property
    def count_display(self) -> str:
        """The count as a person should read it: exact, or marked as approximate."""
        count = self.count
        if self.count_is_exact:
            return f"{count:,}"
        if count > self.cap and count != self.cap + 1:
            return f"about {count:,}"
        return f"more than {self.cap:,}"


# Presenting stored events


def exception_chain(exception) -> list[dict]:
    """Return an event's exception chain, oldest cause first as stored, shaped for display."""
    if isinstance(exception, dict):
        exception = exception.get("values", [exception])
    if not isinstance(exception, list):
        return []
    return [_exception_entry(entry) for entry in exception if isinstance(entry, dict)]


def _exception_entry(entry: dict) -> dict:
    stacktrace = entry.get("stacktrace") if isinstance(entry.get("stacktrace"), dict) else {}
    frames = stacktrace.get("frames", entry.get("frames", []))
    mechanism = entry.get("mechanism") if isinstance(entry.get("mechanism"), dict) else {}
    return {
        "type": str(entry.get("type") or ""),
        "value": str(entry.get("value") or ""),
        "module": str(entry.get("module") or ""),
        "mechanism": mechanism.get("type", ""),
        "handled": mechanism.get("handled"),
        # Frames are stored as SDKs send them: outermost call first, innermost last.
        "frames": [_frame(frame) for frame in frames if isinstance(frame, dict)] if isinstance(frames, list) else [],
    }


def _frame(frame: dict) -> dict:
    lineno = frame.get("lineno") if isinstance(frame.get("lineno"), int) else None
    pre = _lines(frame.get("pre_context"))
    post = _lines(frame.get("post_context"))
    context_line = frame.get("context_line")
    lines = []
    if context_line is not None:
        first = lineno - len(pre) if lineno is not None else None
        for offset, text in enumerate([*pre, str(context_line), *post]):
            lines.append(
                {
                    "number": first + offset if first is not None else "",
                    "text": text,
                    "current": offset == len(pre),
                }
            )
    variables = frame.get("vars")
    return {
        "filename": str(frame.get("filename") or frame.get("abs_path") or frame.get("module") or "?"),
        "lineno": lineno,
        "colno": frame.get("colno"),
        "function": str(frame.get("function") or "?"),
        "module": str(frame.get("module") or ""),
        "in_app": frame.get("in_app") is True,
        "context_line": str(context_line) if context_line is not None else "",
        "lines": lines,
        "vars": pretty_json(variables) if isinstance(variables, dict) and variables else "",
    }


def _lines(value) -> list[str]:
    return [str(line) for line in value] if isinstance(value, list) else []


def pairs(value) -> list[tuple[str, str]]:
    """Return tags or headers, sent as a mapping or as a list of pairs, as sorted pairs of strings."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = [item for item in value if isinstance(item, list | tuple) and len(item) == 2]
    else:
        return []
    return sorted((str(key), value if isinstance(value, str) else json.dumps(value)) for key, value in items)


def pretty_json(value) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


# Statistics, from the rollups


@dataclass(frozen=True)
class EventSelection:
    """Which events a statistic counts; empty fields match everything."""

    source_id: int | None = None
    error_type_id: int | None = None
    category: str = ""
    min_severity: int | None = None
    environment: str = ""

    def source_counts(self, since: datetime) -> QuerySet:
        """Rows with the source rollups' key columns and `count`: per minute for windows up to a day, per hour
        beyond (whole hours from the one `since` falls in), so summaries over weeks outlive the minute rollups."""
        if timezone.now() - since > LONG_WINDOW:
            return self.source_hours(since)
        return self.source_minutes(since)

    def source_minutes(self, since: datetime) -> QuerySet:
        """SourceMinute rows from the minute `since` on."""
        return self._narrow(SourceMinute.objects.filter(minute__gte=since))

    def source_hours(self, since: datetime) -> QuerySet:
        """SourceHour rows from the hour `since` falls in on."""
        # A window starts at most 90 days back, so this also leaves out the rows folded at FOLDED_HOUR (1970).
        return self._narrow(SourceHour.objects.filter(hour__gte=_hour_of(since)))

    def _narrow(self, rows: QuerySet) -> QuerySet:
        """The source rollup rows this selection counts."""
        if self.source_id:
            rows = rows.filter(source_id=self.source_id)
        if self.error_type_id:
            rows = rows.filter(error_type_id=self.error_type_id)
        if self.category:
            rows = rows.filter(error_type__category=self.category)
        if self.min_severity:
            rows = rows.filter(severity__gte=self.min_severity)
        if self.environment:
            rows = rows.filter(environment=self.environment)
        return rows

    def incident_counts(self, since: datetime) -> QuerySet:
        """Rows with `incident_id` and `count`: per minute for windows up to a day, per hour beyond
        (whole hours from the one `since` falls in), so a week's top incidents read 168 rows per incident."""
        if timezone.now() - since > LONG_WINDOW:
            rows = IncidentHour.objects.filter(hour__gte=_hour_of(since))
        else:
            rows = IncidentMinute.objects.filter(minute__gte=since)
        if self.source_id:
            rows = rows.filter(incident__source_id=self.source_id)
        if self.error_type_id:
            rows = rows.filter(incident__error_type_id=self.error_type_id)
        if self.category:
            rows = rows.filter(incident__category=self.category)
        if self.min_severity:
            rows = rows.filter(incident__severity__gte=self.min_severity)
        if self.environment:
            rows = rows.filter(incident__environments__environment=self.environment)
        return rows


# Windows longer than this count from the hourly rollups.
LONG_WINDOW = timedelta(hours=24)


def _hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def window_start(minutes: int, now: datetime | None = None) -> datetime:
    """The first minute of a window of `minutes` whole minutes ending with the current one."""
    return (now or timezone.now()).replace(second=0, microsecond=0) - timedelta(minutes=minutes - 1)


def error_counts(selection: EventSelection, since: datetime) -> dict:
    """Total events, and counts by category and by severity, in one grouped query."""
    rows = selection.source_counts(since).values("error_type__category", "severity").annotate(total=Sum("count"))
    by_category: dict[str, int] = {}
    by_severity: dict[int, int] = {}
    by_pair: dict[tuple[str, int], int] = {}
    for row in rows:
        category, severity, total = row["error_type__category"], row["severity"], row["total"] or 0
        by_category[category] = by_category.get(category, 0) + total
        by_severity[severity] = by_severity.get(severity, 0) + total
        by_pair[(category, severity)] = total
    return {
        "total": sum(by_category.values()),
        "by_category": by_category,
        "by_severity": by_severity,
        "by_pair": by_pair,
    }


def event_series(selection: EventSelection, since: datetime, *, hourly: bool) -> list[tuple[datetime, int]]:
    """Events per minute (or hour) since `since`, every bucket present (zeros included), oldest first.

    Hourly series of windows longer than a day read the hour rollups (from the hour `since` falls in), so
    they outlive the minute rollups; shorter ones count the minute rollups per hour, from `since` exactly,
    as their totals and top error types do.
    """
    if hourly and timezone.now() - since > LONG_WINDOW:
        counts = selection.source_hours(since).values(bucket=F("hour")).annotate(total=Sum("count"))
        step, start = timedelta(hours=1), _hour_of(since)
    elif hourly:
        counts = selection.source_minutes(since).annotate(bucket=TruncHour("minute")).values("bucket")
        counts = counts.annotate(total=Sum("count"))
        step, start = timedelta(hours=1), _hour_of(since)
    else:
        counts = selection.source_minutes(since).values(bucket=F("minute")).annotate(total=Sum("count"))
        step, start = timedelta(minutes=1), since
    found = {row["bucket"]: row["total"] or 0 for row in counts}
    end = timezone.now().replace(second=0, microsecond=0)
    series, at = [], start
    while at <= end:
        series.append((at, found.get(at, 0)))
        at += step
    return series


def top_error_types(selection: EventSelection, since: datetime, *, limit: int = 10) -> list[dict]:
    rows = (
        selection.source_counts(since)
        .values("error_type__code", "error_type__category")
        .annotate(count=Sum("count"))
        .order_by("-count", "error_type__code")[:limit]
    )
    return [{"code": r["error_type__code"], "category": r["error_type__category"], "count": r["count"]} for r in rows]


def top_incidents(selection: EventSelection, since: datetime, *, limit: int = 10) -> list[dict]:
    rows = (
        selection.incident_counts(since)
        .values("incident_id")
        .annotate(total=Sum("count"))
        .order_by("-total", "incident_id")[:limit]
    )
    top = list(rows)
    titles = dict(Incident.objects.filter(pk__in=[r["incident_id"] for r in top]).values_list("id", "title"))
    return [{"id": r["incident_id"], "title": titles.get(r["incident_id"], ""), "count": r["total"]} for r in top]


def recent_events(*, limit: int = 10) -> list[ErrorEvent]:
    return list(ErrorEvent.objects.select_related("error_type").order_by("-received_at", "-id")[:limit])
