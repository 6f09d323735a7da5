"""Read queries on resilience state shared by admin, API and dashboard."""

from datetime import timedelta

from django.conf import settings
from django.db.models import Expression, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from incidents.models import Source
from resilience.models import CONSOLE_SOURCE_SLUG, Breaker, BreakerTransition, BreakerWindow

# A process's report counts while it is this many report intervals old: one late report is no gap.
FRESH_REPORT_INTERVALS = 3


def fresh_windows() -> QuerySet[BreakerWindow]:
    """Window reports from processes that are still reporting."""
    cutoff = timezone.now() - timedelta(seconds=settings.RESILIENCE_WINDOW_REPORT_SECONDS * FRESH_REPORT_INTERVALS)
    return BreakerWindow.objects.filter(reported_at__gte=cutoff)


def reporter_id(owner: Expression) -> Coalesce:
    """The id of the source whose reports count for a breaker owned by `owner`: it, or the console's."""
    console = Source.objects.filter(slug=CONSOLE_SOURCE_SLUG).values("pk")[:1]
    return Coalesce(owner, Subquery(console), output_field=IntegerField())


def reported_windows(name_field: str = "name", owner_field: str = "source_id") -> QuerySet[BreakerWindow]:
    """Fresh reports of the breaker an outer query names, from the source that runs it only."""
    return fresh_windows().filter(breaker_name=OuterRef(name_field), source_id=reporter_id(OuterRef(owner_field)))


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
    return fresh_windows().filter(breaker_name=breaker.name, source_id=reporter_id(Value(breaker.source_id)))


def breaker_transitions(breaker: Breaker) -> QuerySet[BreakerTransition]:
    """The breaker's history: transitions its own source reported, and those recorded before attribution."""
    reported = Q(source_id=reporter_id(Value(breaker.source_id))) | Q(source__isnull=True)
    return BreakerTransition.objects.filter(reported, breaker_name=breaker.name)


def failure_rate(calls: int, failures: int) -> float | None:
    """Failures as a percentage of calls; None when there were no calls to judge by."""
    return round(100 * failures / calls, 1) if calls else None
