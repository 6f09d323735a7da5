"""Apply the retention policy now: `--dry-run` says what would go; a real run shows its progress."""

import sys

from django.core.management.base import BaseCommand, CommandError
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from tqdm import tqdm

from incidents.models import PurgeRun, RetentionPolicy
from incidents.retention import purge, sizes
from incidents.retention.plan import Plan


class Command(BaseCommand):
    help = (
        "Remove what the retention policy (admin: Retention policy) no longer keeps. Safe while the console "
        "serves (one short transaction per batch) and to interrupt (whole batches stay done; run again to go on)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Print what each step would remove; change nothing.")
        parser.add_argument(
            "--time-budget", type=float, default=None, help="Stop after this many seconds (the rest is left)."
        )
        parser.add_argument(
            "--pause", type=float, default=None, help="Seconds to rest between batches (default: the setting)."
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bar (for logs).")

    def handle(self, *args, dry_run, time_budget, pause, no_progress, **options):
        if time_budget is not None and time_budget <= 0:
            raise CommandError("--time-budget must be above 0 seconds")
        if pause is not None and pause < 0:
            raise CommandError("--pause must be 0 or more seconds")
        plan = Plan(RetentionPolicy.current(), timezone.now())
        self._describe_policy(plan)
        found = purge.estimate(plan)
        self._print_table("Would remove" if dry_run else "To remove", [(step.label, r) for step, r in found])
        if dry_run:
            self.stdout.write("Dry run: nothing was removed.")
            return
        total = sum(removed.rows for _, removed in found)
        bar = tqdm(
            total=total,
            unit="rows",
            unit_scale=True,
            file=sys.stderr,
            disable=no_progress or not total,
            dynamic_ncols=True,
        )
        try:
            record = purge.run(
                trigger="command", time_budget=time_budget, progress=_advance(bar), plan=plan, pause=pause
            )
        except KeyboardInterrupt:
            bar.close()  # before the summary, which would otherwise print into the bar's line
            self._summary(sizes.last_purge())
            raise CommandError(
                "interrupted: the batches done stay done; run purge again to go on", returncode=130
            ) from None
        finally:
            bar.close()
        if record is None:
            running = sizes.running_purge()
            since = f" (started {running.started_at:%Y-%m-%d %H:%M:%S} UTC by {running.trigger})" if running else ""
            raise CommandError(f"another purge is running{since}; try again when it ends")
        self._summary(record)

    def _describe_policy(self, plan: Plan) -> None:
        policy = plan.policy
        overrides = ", ".join(f"{s.slug} {s.event_retention_days}" for s in plan.sources if s.event_retention_days)
        cap = (
            f"{policy.events_per_incident:,} per incident (first {policy.first_events_per_incident} kept)"
            if policy.events_per_incident
            else "none"
        )
        self.stdout.write(
            f"Retention: events {policy.event_days} days{f' (sources: {overrides})' if overrides else ''}; "
            f"cap {cap}; minute rollups {policy.minute_rollup_days} d, hour rollups {policy.hour_rollup_days} d, "
            f"notifications {policy.notification_days} d, timeline {policy.timeline_days} d, "
            f"transitions {policy.transition_days} d, window reports {policy.window_report_days} d; "
            f"expired incidents {'deleted' if policy.delete_expired_incidents else 'kept'}."
        )

    def _print_table(self, title: str, rows: list[tuple[str, purge.Removed]]) -> None:
        width = max(len(label) for label, _ in rows)
        self.stdout.write(f"{title}:")
        for label, removed in rows:
            extra = f"  ({removed.partitions} partitions)" if removed.partitions else ""
            self.stdout.write(f"  {label:<{width}}  {removed.rows:>12,} rows  {_size(removed.bytes):>10}{extra}")
        rows_total = sum(r.rows for _, r in rows)
        bytes_total = sum(r.bytes for _, r in rows)
        self.stdout.write(f"  {'total':<{width}}  {rows_total:>12,} rows  {_size(bytes_total):>10}  (sizes estimated)")

    def _summary(self, record: PurgeRun | None) -> None:
        if record is None:
            return
        seconds = (record.finished_at - record.started_at).total_seconds() if record.finished_at else 0.0
        rate = record.rows_removed / seconds if seconds else 0.0
        self.stdout.write(
            f"Purge {record.status}: {record.rows_removed:,} rows removed ({record.partitions_dropped} partitions "
            f"dropped, about {_size(record.bytes_freed)} freed) in {seconds:.1f} s ({rate:,.0f} rows/s)."
        )
        for key, rows in record.removed.items():
            self.stdout.write(f"  {key}: {rows:,}")
        if record.status == PurgeRun.Status.PARTIAL:
            self.stdout.write("Stopped at the time budget; run purge again (or let the schedule) to go on.")


def _advance(bar: tqdm):
    dropped = 0

    def progress(step: purge.Step, removed: purge.Removed) -> None:
        nonlocal dropped
        dropped += removed.partitions
        bar.set_description(step.key, refresh=False)
        if dropped:
            bar.set_postfix_str(f"{dropped} partitions dropped", refresh=False)
        bar.update(removed.rows)

    return progress


def _size(size: int) -> str:
    return filesizeformat(size).replace("\xa0", " ")
