"""Admin for sources and keys, the error catalog and rules, incidents and their events.

Incidents and events are data, not configuration: nothing here edits them
directly. Status changes go through `services`, and every list stays a constant
number of indexed queries however large the tables grow.
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
from django.db import transaction
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.text import Truncator

from access.roles import Role, role_of
from incidents import selectors, services
from incidents.models import (
    ClassificationRule,
    ErrorEvent,
    ErrorType,
    Incident,
    IncidentEnvironment,
    IngestKey,
    Severity,
    Source,
)

STYLES = {"all": ["incidents/admin.css"]}


def severity_badge(value: int | None) -> str:
    if value is None:
        return "-"
    label = Severity(value).label if value in Severity.values else str(value)
    return format_html('<span class="sev-badge sev-{}">{}</span>', label.lower(), label)


def status_badge(value: str) -> str:
    return format_html('<span class="status-badge status-{}">{}</span>', value, value)


def admin_link(obj, text: str = "") -> str:
    if obj is None:
        return "-"
    url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, text or str(obj))


def copyable(text: str) -> str:
    """Show a value in a read-only, unnamed text box: easy to select and copy whole, never posted."""
    return format_html(
        '<input type="text" class="copyable vTextField" readonly value="{}" size="{}" aria-label="DSN">',
        text,
        max(len(text), 20),
    )


class AdminsOnly:
    """A page for the admin role only, as in the API, whatever permissions a user was granted one by one."""

    def has_view_permission(self, request, obj=None) -> bool:
        return role_of(request.user) >= Role.ADMIN and super().has_view_permission(request, obj)

    def has_add_permission(self, request, *args) -> bool:
        return role_of(request.user) >= Role.ADMIN and super().has_add_permission(request, *args)

    def has_change_permission(self, request, obj=None) -> bool:
        return role_of(request.user) >= Role.ADMIN and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return role_of(request.user) >= Role.ADMIN and super().has_delete_permission(request, obj)


# Sources and ingest keys: keys and DSNs are for admins only.


def key_state(key: IngestKey) -> str:
    if key.revoked_at:
        return "revoked"
    if not key.is_usable():
        return "expired"
    return "expiring" if key.expires_at else "usable"


def rotate_keys(keys) -> tuple[int, int]:
    """Rotate every usable key given; return how many were rotated and how many skipped."""
    rotated = skipped = 0
    for key in keys:
        if not key.is_usable():
            skipped += 1
            continue
        services.ingest_key_rotate(key=key)
        rotated += 1
    return rotated, skipped


class IngestKeyInline(admin.TabularInline):
    model = IngestKey
    fields = ("public_key", "dsn_text", "label", "created_at", "expires_at", "revoked_at", "usable")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="DSN")
    def dsn_text(self, key: IngestKey) -> str:
        return copyable(key.dsn)

    @admin.display(boolean=True)
    def usable(self, key: IngestKey) -> bool:
        return key.is_usable()


@admin.register(Source)
class SourceAdmin(AdminsOnly, admin.ModelAdmin):
    list_display = ("name", "slug", "is_active", "rate_limit", "environment_list", "created_at")
    list_filter = ("is_active",)
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    fields = ("name", "slug", "is_active", "rate_limit_per_minute", "environments")
    inlines = [IngestKeyInline]
    actions = ["rotate_source_keys"]

    @admin.display(description="rate limit / min")
    def rate_limit(self, source: Source) -> str:
        limit = source.effective_rate_limit
        text = "unlimited" if limit == 0 else f"{limit:,}"
        return text if source.rate_limit_per_minute is not None else f"{text} (default)"

    @admin.display(description="environments")
    def environment_list(self, source: Source) -> str:
        return ", ".join(source.environments) if source.environments else "any"

    def has_delete_permission(self, request, obj=None) -> bool:
        # Deleting a source would cascade through its events; deactivate it instead.
        return False

    def save_model(self, request, obj, form, change) -> None:
        with transaction.atomic():
            obj.save()
            if not change:
                services.ingest_key_create(source=obj, label="initial")

    @admin.action(description="Rotate the usable keys of the selected sources", permissions=["change"])
    def rotate_source_keys(self, request, queryset) -> None:
        keys = IngestKey.objects.filter(source__in=queryset).select_related("source")
        rotated, skipped = rotate_keys(keys)
        self.message_user(
            request,
            f"{rotated} keys rotated, {skipped} skipped (not usable); old keys keep working for 24 hours.",
            messages.SUCCESS if rotated else messages.WARNING,
        )


@admin.register(IngestKey)
class IngestKeyAdmin(AdminsOnly, admin.ModelAdmin):
    list_display = ("public_key", "source", "dsn_text", "label", "state", "created_at", "expires_at", "revoked_at")
    list_filter = ("source",)
    list_select_related = ("source",)
    search_fields = ("=public_key",)
    actions = ["revoke", "rotate"]
    fields = ("source", "label")
    readonly_fields = ("public_key", "dsn_text", "state", "created_at", "expires_at", "revoked_at")

    def get_fields(self, request, obj=None):
        if obj is None:
            return self.fields
        return ("source", "public_key", "dsn_text", "label", "state", "created_at", "expires_at", "revoked_at")

    @admin.display(description="DSN")
    def dsn_text(self, key: IngestKey) -> str:
        return copyable(key.dsn)

    @admin.display(description="state")
    def state(self, key: IngestKey) -> str:
        return key_state(key)

    # A key is created, rotated and revoked through services; its stored values never change by hand.
    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_manage_permission(self, request) -> bool:
        return role_of(request.user) >= Role.ADMIN and request.user.has_perm("incidents.change_ingestkey")

    def save_model(self, request, obj, form, change) -> None:
        created = services.ingest_key_create(source=obj.source, label=obj.label)
        obj.pk, obj.public_key, obj.created_at = created.pk, created.public_key, created.created_at
        obj._state.adding = False

    @admin.action(description="Revoke the selected keys now", permissions=["manage"])
    def revoke(self, request, queryset) -> None:
        keys = list(queryset)
        for key in keys:
            services.ingest_key_revoke(key=key)
        self.message_user(request, f"{len(keys)} keys revoked.", messages.SUCCESS)

    @admin.action(description="Rotate the selected keys (old ones expire in 24 hours)", permissions=["manage"])
    def rotate(self, request, queryset) -> None:
        rotated, skipped = rotate_keys(queryset)
        self.message_user(
            request,
            f"{rotated} keys rotated, {skipped} skipped (revoked or expired).",
            messages.SUCCESS if rotated else messages.WARNING,
        )


# Catalog and classification rules


@admin.register(ErrorType)
class ErrorTypeAdmin(admin.ModelAdmin):
    list_display = (
        "code",
        "category",
        "severity",
        "transient",
        "action_type",
        "suggested_action",
        "description",
    )
    list_filter = ("category", "default_severity", "transient")
    search_fields = ("code", "description")
    fields = ("code", "description", "category", "default_severity", "transient", "action_type", "suggested_action")

    class Media:
        css = STYLES

    @admin.display(description="default severity", ordering="default_severity")
    def severity(self, error_type: ErrorType) -> str:
        return severity_badge(error_type.default_severity)


@admin.register(ClassificationRule)
class ClassificationRuleAdmin(admin.ModelAdmin):
    list_display = (
        "position",
        "name",
        "enabled",
        "exception_type",
        "message_pattern",
        "http_status",
        "logger",
        "component",
        "context_match",
        "error_type",
        "severity_override",
    )
    list_display_links = ("name",)
    list_editable = ("position", "enabled")
    list_filter = ("enabled", "error_type__category")
    list_select_related = ("error_type",)
    search_fields = ("name", "exception_type", "message_pattern")
    ordering = ("position", "id")
    fieldsets = (
        (None, {"fields": ("name", "position", "enabled")}),
        (
            "Conditions (every filled-in one must match)",
            {"fields": ("exception_type", "message_pattern", "http_status", "logger", "component", "context_match")},
        ),
        ("Result", {"fields": ("error_type", "severity_override")}),
    )


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
class IncidentAdmin(admin.ModelAdmin):
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

    # Read-only data

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
        cl = (getattr(response, "context_data", None) or {}).get("cl")
        if cl is not None:
            incidents = list(cl.result_list)  # the same cached rows the template renders
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

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """Show the incident: header, status buttons, timeline, latest stack trace and recent events."""
        if request.method not in ("GET", "HEAD"):
            return HttpResponseNotAllowed(["GET", "HEAD"])
        incident = self.get_object(request, unquote(object_id))
        if incident is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_or_change_permission(request, incident):
            raise PermissionDenied
        page = _page_number(request.GET.get("page"))
        events, has_next = selectors.incident_events_page(incident, page=page)
        latest = selectors.incident_latest_event(incident)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Incident {incident.pk}",
            "subtitle": incident.title,
            "opts": self.opts,
            "original": incident,
            "incident": incident,
            "media": self.media,
            "has_change_permission": self.has_change_permission(request, incident),
            "transitions": TRANSITIONS,
            "timeline": selectors.incident_timeline(incident),
            "events": events,
            "page": page,
            "has_next": has_next,
            "latest": latest,
            "chain": selectors.exception_chain(latest.exception) if latest else [],
            "source_url": source_url(self.admin_site, request, incident.source_id),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/incidents/incident/detail.html", context)


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
class ErrorEventAdmin(admin.ModelAdmin):
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

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """Show one event whole: message, exception chain, tags, user, request and SDK data."""
        if request.method not in ("GET", "HEAD"):
            return HttpResponseNotAllowed(["GET", "HEAD"])
        event = self.get_object(request, unquote(object_id))
        if event is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_permission(request, event):
            raise PermissionDenied
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
        context = {
            **self.admin_site.each_context(request),
            "title": f"Event {event.event_id}",
            "subtitle": None,
            "opts": self.opts,
            "original": event,
            "event": event,
            "media": self.media,
            "chain": selectors.exception_chain(event.exception),
            "source_url": source_url(self.admin_site, request, event.source_id),
            "tags": selectors.pairs(event.tags),
            "user_fields": selectors.pairs(event.user),
            "json_sections": json_sections,
            "client_fingerprint": selectors.pretty_json(event.client_fingerprint) if event.client_fingerprint else "",
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/incidents/errorevent/detail.html", context)
