"""Admin for retention: the one policy row, edited by admins, and the history of purges, read-only for all.

The policy page also shows what the policy governs: table sizes, the oldest stored event of each
source and the last purge (read through incidents.retention.sizes, cached a few seconds).
"""

from datetime import UTC

from django.contrib import admin
from django.http import HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince

from access.roles import Role, role_of
from incidents.admin.mixins import ReadOnly
from incidents.models import PurgeRun, RetentionPolicy
from incidents.retention import sizes
from incidents.retention.services import retention_policy_update


def human_bytes(value: int | None) -> str:
    return "unknown" if value is None else filesizeformat(value)


def human_duration(run: PurgeRun) -> str:
    if run.duration is None:
        return "-"
    seconds = run.duration.total_seconds()
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def rows_text(value: int | None) -> str:
    return "unknown" if value is None else f"{value:,}"


def panel(head: tuple[str, ...], rows) -> str:
    """A small read-only table (values are escaped)."""
    header = format_html_join("", "<th>{}</th>", ((name,) for name in head))
    cells = (format_html_join("", "<td>{}</td>", ((value,) for value in row)) for row in rows)
    body = format_html_join("", "<tr>{}</tr>", ((row,) for row in cells))
    return format_html(
        '<table class="retention-panel"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>', header, body
    )


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(admin.ModelAdmin):
    """The policy as a singleton: its list opens the one row; it is never added or deleted."""

    fieldsets = (
        (
            "Events",
            {"fields": ("event_days", "events_per_incident", "first_events_per_incident", "delete_expired_incidents")},
        ),
        ("Rollups", {"fields": ("minute_rollup_days", "hour_rollup_days")}),
        ("History", {"fields": ("notification_days", "timeline_days", "transition_days", "window_report_days")}),
        ("Stored data", {"fields": ("table_sizes", "oldest_events")}),
        ("Purges", {"fields": ("last_purge", "purge_history")}),
    )
    readonly_fields = ("table_sizes", "oldest_events", "last_purge", "purge_history")

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        # The admin role only, as in the API, whatever permissions a user was granted one by one.
        return role_of(request.user) >= Role.ADMIN and super().has_change_permission(request, obj)

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_or_change_permission(request):
            return super().changelist_view(request, extra_context)  # Django's own refusal
        return HttpResponseRedirect(reverse("admin:incidents_retentionpolicy_change", args=[1]))

    def get_object(self, request, object_id, from_field=None):
        # The row is made by a migration; should it be gone, the page shows the defaults and saving makes it.
        if str(object_id) != "1":
            return None
        return RetentionPolicy.objects.filter(pk=1).first() or RetentionPolicy(pk=1)

    def save_model(self, request, obj, form, change) -> None:
        retention_policy_update(changes={name: form.cleaned_data[name] for name in form.changed_data})

    @admin.display(description="table sizes")
    def table_sizes(self, policy: RetentionPolicy) -> str:
        found = sizes.table_sizes()
        rows = [(t.label, t.table, human_bytes(t.bytes), rows_text(t.rows)) for t in found]
        total = sum(t.bytes or 0 for t in found)
        rows.append(("all of these", "", human_bytes(total), ""))
        return panel(("what", "table", "size", "rows (estimate)"), rows)

    @admin.display(description="oldest stored event")
    def oldest_events(self, policy: RetentionPolicy) -> str:
        now = timezone.now()
        rows = []
        for oldest in sizes.oldest_events():
            if oldest.received_at is None:
                age, verdict = "no stored event", ""
            else:
                age = f"{_utc(oldest.received_at)} ({timesince(oldest.received_at, now)} ago)"
                verdict = "past retention: the next purge removes it" if oldest.due else "within"
            rows.append((oldest.source, age, f"{oldest.retention_days} days", verdict))
        return panel(("source", "oldest event", "kept", "retention"), rows)

    @admin.display(description="last purge")
    def last_purge(self, policy: RetentionPolicy) -> str:
        running = sizes.running_purge()
        run = sizes.last_purge()
        note = format_html("<p>A purge is running (started {}).</p>", _utc(running.started_at)) if running else ""
        if run is None:
            return format_html("{}<p>No purge has run yet.</p>", note)
        summary = panel(
            ("finished", "trigger", "status", "took", "rows removed", "partitions dropped", "freed"),
            [
                (
                    _utc(run.finished_at) if run.finished_at else "-",
                    run.trigger,
                    run.status,
                    human_duration(run),
                    f"{run.rows_removed:,}",
                    run.partitions_dropped,
                    human_bytes(run.bytes_freed),
                )
            ],
        )
        removed = [(key, f"{rows:,}") for key, rows in run.removed.items() if rows]
        steps = panel(("step", "rows removed"), removed) if removed else format_html("<p>{}</p>", "Nothing was due.")
        error = format_html("<p>Error: {}</p>", run.error) if run.error else ""
        return format_html("{}{}{}{}", note, summary, steps, error)

    @admin.display(description="history")
    def purge_history(self, policy: RetentionPolicy) -> str:
        url = reverse("admin:incidents_purgerun_changelist")
        return format_html('<a href="{}">Every purge run</a>', url)


@admin.register(PurgeRun)
class PurgeRunAdmin(ReadOnly, admin.ModelAdmin):
    """What each purge removed: written by the purge itself, never by hand."""

    list_display = ("started_at", "trigger", "status", "rows", "partitions_dropped", "freed", "took")
    list_filter = ("status", "trigger")
    fields = (
        "started_at",
        "finished_at",
        "trigger",
        "status",
        "removed",
        "partitions_dropped",
        "bytes_freed",
        "error",
    )

    @admin.display(description="rows removed")
    def rows(self, run: PurgeRun) -> str:
        return f"{run.rows_removed:,}"

    @admin.display(description="freed")
    def freed(self, run: PurgeRun) -> str:
        return human_bytes(run.bytes_freed)

    @admin.display(description="duration")
    def took(self, run: PurgeRun) -> str:
        return human_duration(run)


def _utc(moment) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
