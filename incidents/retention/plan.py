"""What a purge works from: the policy as it stands at one moment, and the cut-offs it gives each source."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings

from incidents.models import RetentionPolicy, Source
from incidents.retention import partitions


@dataclass
class Plan:
    """The policy as it stands at `now`, and the cut-offs it gives each source."""

    policy: RetentionPolicy
    now: datetime
    batch_rows: int = field(default_factory=lambda: settings.RETENTION_BATCH_ROWS)
    sources: list[Source] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.sources:
            self.sources = list(Source.objects.order_by("pk"))

    def days(self, source: Source) -> int:
        return self.policy.event_days_for(source)

    @property
    def longest_days(self) -> int:
        return max([self.policy.event_days, *(self.days(source) for source in self.sources)])

    @property
    def partition_cutoff(self) -> datetime:
        """Partitions whose whole day is before this go (PostgreSQL)."""
        return self.now - timedelta(days=self.longest_days)

    def event_cutoff(self, source: Source) -> datetime:
        return self.now - timedelta(days=self.days(source))

    def rows_deleted_for(self, source: Source) -> bool:
        """Whether the source's expired events are deleted as rows: whole partitions go only at the
        longest retention, so on PostgreSQL only sources kept shorter need row deletes."""
        return not partitions.enabled() or self.days(source) < self.longest_days

    def removal_cutoff(self, source: Source) -> datetime:
        """What was received before this goes now: the source's cut-off, or on PostgreSQL, for sources
        whose events go as whole days, the end of the last day that can be dropped. (Receipts go with
        their events.)"""
        if self.rows_deleted_for(source):
            return self.event_cutoff(source)
        cutoff = self.partition_cutoff
        return cutoff.replace(hour=0, minute=0, second=0, microsecond=0)

    def cutoff(self, days: int) -> datetime:
        return self.now - timedelta(days=days)
