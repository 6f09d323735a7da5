"""Read queries on resilience state shared by admin, API and dashboard."""

from datetime import timedelta

from django.conf import settings
from django.db.models import IntegerField, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from resilience.models import (
    CONSOLE_BREAKER_NAMES,
    CONSOLE_BREAKER_PREFIX,
    CONSOLE_SOURCE_SLUG,
    Breaker,
    BreakerTransition,
    BreakerWindow,
)

# A process's report counts while it is this many report intervals old: one late report is no gap.
FRESH_REPORT_INTERVALS = 3


def fresh_windows() -> QuerySet[BreakerWindow]:
    """Window reports from processes that are still reporting."""
    cutoff = timezone.now() - timedelta(seconds=settings.RESILIENCE_WINDOW_REPORT_SECONDS * FRESH_REPORT_INTERVALS)
    return BreakerWindow.objects.filter(reported_at__gte=cutoff)


def _console_name() -> Q:
    """BreakerWindow or BreakerTransition rows of the console's own breakers (resilience.models)."""
    return Q(breaker_name__in=CONSOLE_BREAKER_NAMES) | Q(breaker_name__startswith=CONSOLE_BREAKER_PREFIX)


def _reported_by(owner) -> Q:
    """Rows of the source whose reports count for a breaker owned by `owner` (an id or an expression):
    the console's source for the console's own breakers, else the owner. An unassigned breaker's
    (no owner) match nothing: no source's reports count until one claims it."""
    sources = BreakerWindow._meta.get_field("source").related_model  # the incidents app's, not imported
    console = sources.objects.filter(slug=CONSOLE_SOURCE_SLUG).values("pk")[:1]
    # Q(source_id=None) would mean IS NULL; an expression that is NULL compares as false, as wanted.
    owned = Q(pk__in=[]) if owner is None else Q(source_id=owner)
    return (_console_name() & Q(source_id=Subquery(console))) | (~_console_name() & owned)


def reported_windows(name_field: str = "name", owner_field: str = "source_id") -> QuerySet[BreakerWindow]:
    """Fresh reports of the breaker an outer query names, from the source that runs it only."""
    return fresh_windows().filter(_reported_by(OuterRef(owner_field)), breaker_name=OuterRef(name_field))


def with_window_totals(breakers: QuerySet, name_field: str = "name", owner_field: str = "source_id") -> QuerySet:
    """Annotate breakers with window_calls, window_failures and window_slow_calls summed over fresh reports."""
    totals = {}
    for column in ("calls", "failures", "slow_calls"):
        summed = (
            reported_windows(name_field, owner_field).values("breaker_name").annotate(total=Sum(column)).values("total")
        )
        totals[f"window_{column}"] = Coalesce(Subquery(summed, output_field=IntegerField()), Value(0))
    return breakers.annotate(**totals)


def breaker_windows(breaker: Breaker) -> QuerySet[BreakerWindow]:
    """The fresh reports that count for `breaker`, one per process."""
    return fresh_windows().filter(_reported_by(breaker.source_id), breaker_name=breaker.name)


def breaker_transitions(breaker: Breaker) -> QuerySet[BreakerTransition]:
    """The breaker's history: transitions its own source reported, the console's (operators' switches,
    Breaker.keeps_history_from) and those recorded before attribution."""
    reported = Q(source_id=breaker.source_id) | Q(source__slug=CONSOLE_SOURCE_SLUG) | Q(source__isnull=True)
    return BreakerTransition.objects.filter(reported, breaker_name=breaker.name)


def failure_rate(calls: int, failures: int) -> float | None:
    """Failures as a percentage of calls; None when there were no calls to judge by."""
    return round(100 * failures / calls, 1) if calls else None
