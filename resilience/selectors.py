"""Read queries on resilience state shared by admin, API and dashboard."""

from datetime import timedelta

from django.conf import settings
from django.db.models import IntegerField, OuterRef, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from resilience.models import BreakerWindow

# A process's report counts while it is this many report intervals old: one late report is no gap.
FRESH_REPORT_INTERVALS = 3


def fresh_windows() -> QuerySet[BreakerWindow]:
    """Window reports from processes that are still reporting."""
    cutoff = timezone.now() - timedelta(seconds=settings.RESILIENCE_WINDOW_REPORT_SECONDS * FRESH_REPORT_INTERVALS)
    return BreakerWindow.objects.filter(reported_at__gte=cutoff)


def with_window_totals(breakers: QuerySet, name_field: str = "name") -> QuerySet:
    """Annotate breakers with window_calls, window_failures and window_slow_calls summed over fresh reports."""
    totals = {}
    for column in ("calls", "failures", "slow_calls"):
        summed = (
            fresh_windows()
            .filter(breaker_name=OuterRef(name_field))
            .values("breaker_name")
            .annotate(total=Sum(column))
            .values("total")
        )
        totals[f"window_{column}"] = Coalesce(Subquery(summed, output_field=IntegerField()), Value(0))
    return breakers.annotate(**totals)


def failure_rate(calls: int, failures: int) -> float | None:
    """Failures as a percentage of calls; None when there were no calls to judge by."""
    return round(100 * failures / calls, 1) if calls else None
