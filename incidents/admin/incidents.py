"""Admin for incidents and their events: browsed and triaged here, never edited by hand.

Status changes go through `services`, and every list stays a constant number of indexed
queries however large the tables grow.
"""

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.text import Truncator

from incidents import selectors, services
from incidents.admin.mixins import STYLES, DetailPage, ReadOnly, admin_link, listed_rows, severity_badge, status_badge
from incidents.models import ErrorEvent, Incident, IncidentEnvironment, RetentionPolicy, Source

# Incidents


@dataclass(frozen=True)
class Transition:
    label: str
    done: str
    apply: Callable[[Incident, object], Incident]


def _acknowledge(incident: Incident, by) -> Incident:
    return services.incident_acknowledge(incident=incident, by=by)


def _resolve(incident: Incident, by) -> Incident:
    return services.incident_resolve(incident=incident, by=by)


def _reopen(incident: Incident, by) -> Incident:
    return services.incident_reopen(incident=incident, by=by)


def _mute_for(hours: int) -> Callable[[Incident, object], Incident]:
    def mute(incident: Incident, by) -> Incident:
        return services.incident_mute(incident=incident, by=by, duration=timedelta(hours=hours))

    return mute


# Shared by the list's bulk actions and the incident page's buttons.
TRANSITIONS: dict[str, Transition] = {
    "acknowledge": Transition("Acknowledge", "Acknowledged", _acknowledge),
    "resolve": Transition("Resolve", "Resolved", _resolve),
    "mute-1h": Transition("Mute 1 h", "Muted for 1 hour", _mute_for(1)),
    "mute-24h": Transition("Mute 24 h", "Muted for 24 hours", _mute_for(24)),
    "reopen": Transition("Reopen", "Reopened", _reopen),
}


class EnvironmentFilter(admin.SimpleListFilter):
    """Incidents seen in one environment, through the (environment, incident) index."""

    title = "environment"
    parameter_name = "environment"

    def lookups(self, request, model_admin):
        return [(env, env) for env in selectors.incident_environments()]

    def queryset(self, request, queryset):
        if self.value():
            seen_in = IncidentEnvironment.objects.filter(environment=self.value()).values("incident_id")
            return queryset.filter(pk__in=seen_in)
        return queryset


def sparkline_svg(counts: list[int], start: datetime) -> str:
    """Draw per-hour counts as a row of bars in an inline SVG, oldest hour on the left."""
    bar, step, height = 3, 4, 16
    peak = max(counts) or 1
    # Every value is an integer or a formatted date, so plain formatting is safe; it is drawn 50 times a page.
    bars = "".join(
        f'<rect x="{i * step}" y="{height - scaled}" width="{bar}" height="{scaled}">'
        f"<title>{count} events, {start + timedelta(hours=i):%H}:00</title></rect>"
        for i, count in enumerate(counts)
        for scaled in [max(1, round(count / peak * height)) if count else 0]
    )
    width = len(counts) * step
    return mark_safe(
        f'<svg class="sparkline" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img"'
        f' aria-label="{sum(counts)} events in the last {len(counts)} hours"'
        f' data-start="{start.isoformat()}" data-counts="{",".join(map(str, counts))}">{bars}</svg>'
    )


def _skips(skipped: Counter) -> str:
    return "; ".join(f"{reason}: {count}" for reason, count in skipped.most_common())


@admin.register(Incident)
class IncidentAdmin(DetailPage, admin.ModelAdmin):
    list_display = (
        "severity_badge",
        "title",
        "source",
        "category",
        "status_badge",
        "event_count",
        "user_count",
        "regressed_marker",
        "first_seen",
        "last_seen",
        "last_24h",
    )
    list_display_links = ("title",)
    list_filter = ("status", "severity", "category", "source", EnvironmentFilter, "regressed")
    date_hierarchy = "last_seen"
    # Incidents carry the event message in their title, so the title search covers messages.
    search_fields = ("title", "culprit", "=fingerprint")
    list_select_related = ("source", "error_type")
    ordering = ("-last_seen", "-id")
    sortable_by = ("severity_badge", "title", "event_count", "user_count", "first_seen", "last_seen")
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = selectors.EstimatedCountPaginator
    list_per_page = 50
    actions = ["acknowledge", "resolve", "mute_1h", "mute_24h", "reopen"]
    detail_template = "admin/incidents/incident/detail.html"

    class Media:
        css = STYLES
        js = ("incidents/live_admin.js",)  # new incidents, counts and events as they happen

    # Columns

    @admin.display(description="severity", ordering="severity")
    def severity_badge(self, incident: Incident) -> str:
        return severity_badge(incident.severity)

    @admin.display(description="status", ordering="status")
    def status_badge(self, incident: Incident) -> str:
        return status_badge(incident.status)

    @admin.display(description="regressed")
    def regressed_marker(self, incident: Incident) -> str:
        if not incident.regressed:
            return ""
        return format_html('<span class="regressed" title="reopened by a new event">{}</span>', "↩ regressed")

    @admin.display(description="last 24 h")
    def last_24h(self, incident: Incident) -> str:
        # Filled in for the whole page by changelist_view; never queried per row.
        series = getattr(incident, "hour_series", None)
        return sparkline_svg(series.of(incident.pk), series.start) if series else ""

    # Never added or deleted by hand; "change" is the status actions and the page's buttons, never a form.

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("source", "error_type")

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip().lower()
        # A fingerprint is matched exactly and alone, so the lookup can use an index instead of a scan.
        if 16 <= len(term) <= 64 and all(c in "0123456789abcdef" for c in term):
            return queryset.filter(fingerprint=term), False
        return super().get_search_results(request, queryset, search_term)

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        incidents = listed_rows(response)
        if incidents is not None:
            series = selectors.incident_hour_series([incident.pk for incident in incidents])
            for incident in incidents:
                incident.hour_series = series
        return response

    # Status changes, each through its service

    def _apply(self, request, incidents, key: str) -> None:
        transition = TRANSITIONS[key]
        changed, skipped = 0, Counter()
        for incident in incidents:
            try:
                transition.apply(incident, request.user)
            except services.IncidentTransitionError as error:
                skipped[str(error)] += 1
            else:
                changed += 1
        text = f"{transition.done}: {changed} changed, {sum(skipped.values())} skipped"
        if skipped:
            text += f" ({_skips(skipped)})"
        self.message_user(request, text + ".", messages.WARNING if skipped else messages.SUCCESS)

    @admin.action(description="Acknowledge selected incidents", permissions=["change"])
    def acknowledge(self, request, queryset) -> None:
        self._apply(request, queryset.order_by("pk"), "acknowledge")

    @admin.action(description="Resolve selected incidents", permissions=["change"])
    def resolve(self, request, queryset) -> None:
        self._apply(request, queryset.order_by("pk"), "resolve")

    @admin.action(description="Mute selected incidents for 1 hour", permissions=["change"])
    def mute_1h(self, request, queryset) -> None:
        self._apply(request, queryset.order_by("pk"), "mute-1h")

    @admin.action(description="Mute selected incidents for 24 hours", permissions=["change"])
    def mute_24h(self, request, queryset) -> None:
        self._apply(request, queryset.order_by("pk"), "mute-24h")

    @admin.action(description="Reopen selected incidents", permissions=["change"])
    def reopen(self, request, queryset) -> None:
        self._apply(request, queryset.order_by("pk"), "reopen")

    # The incident page

    def get_urls(self):
        urls = [
            path(
                "<path:object_id>/transition/<slug:action>/",
                self.admin_site.admin_view(self.transition_view),
                name="incidents_incident_transition",
            ),
        ]
        return urls + super().get_urls()

    def transition_view(self, request, object_id: str, action: str):
        """Apply one status change from the incident page's buttons, then go back to the page."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        transition = TRANSITIONS.get(action)
        incident = self.get_object(request, unquote(object_id))
        if transition is None or incident is None:
            raise Http404("No such incident or action.")
        if not self.has_change_permission(request, incident):
            raise PermissionDenied
        try:
            transition.apply(incident, request.user)
        except services.IncidentTransitionError as error:
            self.message_user(request, f"Not changed: {error}.", messages.WARNING)
        else:
            self.message_user(request, f"{transition.done}.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:incidents_incident_change", args=[incident.pk]))

    def detail_context(self, request, incident: Incident) -> dict:
        """The incident page: header, status buttons, timeline, latest stack trace and recent events."""
        page = _page_number(request.GET.get("page"))
        events, has_next = selectors.incident_events_page(incident, page=page)
        latest = selectors.incident_latest_event(incident)
        return {
            "title": f"Incident {incident.pk}",
            "subtitle": incident.title,
            "incident": incident,
            "has_change_permission": self.has_change_permission(request, incident),
            "transitions": TRANSITIONS,
            "timeline": selectors.incident_timeline(incident),
            "events": events,
            "page": page,
            "has_next": has_next,
            "latest": latest,
            "chain": selectors.exception_chain(latest.exception) if latest else [],
            "source_url": source_url(self.admin_site, request, incident.source_id),
            "events_expired": events_expired_note(incident) if latest is None else "",
        }


def events_expired_note(incident: Incident) -> str:
    """Why an incident that saw events stores none: retention removed them (its counts stay the totals)."""
    if not incident.event_count:
        return ""
    days = RetentionPolicy.current().event_days_for(incident.source)
    return f"Its events expired (events are kept {days} days for this source); counts are the totals seen"


def source_url(site, request, source_id: int) -> str | None:
    """The source's admin page, for those who may see it (admins); nobody else gets a link to a 403."""
    if not site.get_model_admin(Source).has_view_permission(request):
        return None
    return reverse("admin:incidents_source_change", args=[source_id])


def _page_number(value: str | None) -> int:
    try:
        return max(1, min(int(value or 1), 100_000))
    except ValueError:
        return 1


# Events


_HEAVY_EVENT_FIELDS = ("exception", "tags", "user", "request", "contexts", "extra", "sdk", "client_fingerprint")


class EventChangeList(ChangeList):
    def get_queryset(self, request, exclude_parameters=None):
        # The list shows none of the JSON an event carries; leave it in the database.
        return super().get_queryset(request, exclude_parameters).defer(*_HEAVY_EVENT_FIELDS)


@admin.register(ErrorEvent)
class ErrorEventAdmin(DetailPage, ReadOnly, admin.ModelAdmin):
    list_display = ("received_at", "level", "short_message", "source", "incident_link", "environment", "release")
    list_display_links = ("received_at",)
    list_filter = ("source",)
    list_select_related = ("source", "incident")
    search_fields = ("=event_id",)
    search_help_text = "An event id, exactly."
    sortable_by = ()
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = selectors.EstimatedCountPaginator
    list_per_page = 50
    detail_template = "admin/incidents/errorevent/detail.html"

    class Media:
        css = STYLES

    @admin.display(description="message")
    def short_message(self, event: ErrorEvent) -> str:
        text = event.message or (event.incident.title if event.incident else "")
        return Truncator(text).chars(90)

    @admin.display(description="incident")
    def incident_link(self, event: ErrorEvent) -> str:
        if event.incident is None:
            return "awaiting digest"
        return admin_link(event.incident, Truncator(event.incident.title).chars(60))

    def get_changelist(self, request, **kwargs):
        return EventChangeList

    def get_search_results(self, request, queryset, search_term):
        # Only an exact event id is searched: anything else would scan every event.
        if not search_term.strip():
            return queryset, False
        try:
            event_id = UUID(search_term.strip())
        except ValueError:
            return queryset.none(), False
        return queryset.filter(event_id=event_id), False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("source", "incident", "error_type")

    def detail_context(self, request, event: ErrorEvent) -> dict:
        """The event page: message, exception chain, tags, user, request and SDK data, all of it."""
        json_sections = [
            (name, selectors.pretty_json(value))
            for name, value in (
                ("request", event.request),
                ("contexts", event.contexts),
                ("extra", event.extra),
                ("sdk", event.sdk),
            )
            if value
        ]
        return {
            "title": f"Event {event.event_id}",
            "subtitle": None,
            "event": event,
            "chain": selectors.exception_chain(event.exception),
            "source_url": source_url(self.admin_site, request, event.source_id),
            "tags": selectors.pairs(event.tags),
            "user_fields": selectors.pairs(event.user),
            "json_sections": json_sections,
            "client_fingerprint": selectors.pretty_json(event.client_fingerprint) if event.client_fingerprint else "",
        }
