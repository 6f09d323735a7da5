"""Admin for alerts and the silences that hold their notifications.

Alerts are data: they change only through `services` (the actions below), and whatever a
service queues is handed to a worker once the transaction commits. Silences are configuration.
"""

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.db.models import Case, IntegerField, OuterRef, Subquery, Value, When
from django.utils import timezone
from django.utils.html import format_html_join
from django.utils.text import Truncator

from incidents.admin.mixins import STYLES, ReadOnly, counted, listed_rows, severity_badge, status_badge
from incidents.alerting import services
from incidents.alerting.delivery import deliver_after_commit
from incidents.models import Alert, AlertRule, ErrorType, Incident, Notification, Silence, Source
from incidents.services import actor_name

NOTIFICATIONS_SHOWN = 50
# Firing alerts first, then pending, resolved, inactive.
STATE_RANK = Case(
    When(state=Alert.State.FIRING, then=Value(0)),
    When(state=Alert.State.PENDING, then=Value(1)),
    When(state=Alert.State.RESOLVED, then=Value(2)),
    default=Value(3),
    output_field=IntegerField(),
)


def _named(model, field: str, ids: set) -> dict:
    return dict(model.objects.filter(pk__in=ids).values_list("pk", field)) if ids else {}


def name_labels(alerts) -> None:
    """Give each alert readable group labels (source and type names, not ids), one query per kind of label."""
    ids: dict[str, set] = {key: set() for key in AlertRule.GROUP_KEYS}
    for alert in alerts:
        for key, value in (alert.labels or {}).items():
            if key in ids and isinstance(value, int):
                ids[key].add(value)
    names = {
        "source": _named(Source, "name", ids["source"]),
        "error_type": _named(ErrorType, "code", ids["error_type"]),
        "incident": {
            pk: Truncator(title).chars(40) for pk, title in _named(Incident, "title", ids["incident"]).items()
        },
    }
    for alert in alerts:
        alert.label_names = {
            key: names[key].get(value, value) if key in names and isinstance(value, int) else value
            for key, value in (alert.labels or {}).items()
        }


def labels_text(alert: Alert) -> str:
    labels = getattr(alert, "label_names", None)
    if labels is None:
        name_labels([alert])
        labels = alert.label_names
    if not labels:
        return "(everything)"
    return format_html_join(", ", "{}={}", labels.items())


class NotificationInline(ReadOnly, admin.TabularInline):
    model = Notification
    fields = ("created_at", "channel", "event", "attempt", "status_badge", "response_code", "error", "duration_ms")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    ordering = ("-created_at", "-id")
    verbose_name_plural = f"Notifications (newest {NOTIFICATIONS_SHOWN})"

    def get_queryset(self, request):
        # The newest few only: an alert that has fired for months must not make its page slow.
        newest = (
            Notification.objects.filter(alert=OuterRef("alert"))
            .order_by("-created_at", "-id")
            .values("id")[:NOTIFICATIONS_SHOWN]
        )
        return super().get_queryset(request).filter(id__in=Subquery(newest)).select_related("channel")

    @admin.display(description="status")
    def status_badge(self, notification: Notification) -> str:
        return status_badge(notification.status)


@admin.register(Alert)
class AlertAdmin(ReadOnly, admin.ModelAdmin):
    list_display = (
        "rule",
        "group",
        "state_badge",
        "severity_badge",
        "shown_value",
        "fired_at",
        "last_notified_at",
        "resolved_at",
        "acknowledged_at",
        "flapping",
    )
    list_display_links = ("rule",)
    list_filter = ("state", "severity", "flapping", "rule")
    list_select_related = ("rule",)
    search_fields = ("rule__name", "group_key")
    actions = ["acknowledge", "silence_1h", "resolve"]
    fields = (
        "rule",
        "group",
        "group_key",
        "state_badge",
        "severity_badge",
        "value",
        "active_at",
        "fired_at",
        "last_met_at",
        "last_notified_at",
        "resolved_at",
        "acknowledged_at",
        "acknowledged_by",
        "resolved_by",
        "history",
        "flapping",
    )
    readonly_fields = fields
    inlines = [NotificationInline]

    class Media:
        css = STYLES

    def get_ordering(self, request):
        return (STATE_RANK.asc(), "-fired_at", "-id")

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        alerts = listed_rows(response)
        if alerts is not None:
            name_labels(alerts)
        return response

    # Columns

    @admin.display(description="group")
    def group(self, alert: Alert) -> str:
        return labels_text(alert)

    @admin.display(description="state", ordering=STATE_RANK)
    def state_badge(self, alert: Alert) -> str:
        return status_badge(alert.state)

    @admin.display(description="severity", ordering="severity")
    def severity_badge(self, alert: Alert) -> str:
        return severity_badge(alert.severity)

    @admin.display(description="value", ordering="value")
    def shown_value(self, alert: Alert) -> str:
        return "-" if alert.value is None else f"{alert.value:g}"

    # Alerts change only through services: the actions below (ReadOnly keeps every form away).

    def has_manage_permission(self, request) -> bool:
        return request.user.has_perm("incidents.change_alert")

    def _apply(self, request, queryset, done: str, change) -> None:
        """Call `change` per alert, report those it refused one by one, deliver what was queued after commit."""
        changed, queued, refused = 0, [], []
        for alert in queryset.select_related("rule").order_by("pk"):
            try:
                queued += change(alert) or []
            except services.AlertTransitionError as error:
                refused.append((alert, error))
            else:
                changed += 1
        deliver_after_commit(queued)
        text = f"{done}: {counted(changed, 'alert')}"
        if queued:
            text += f", {counted(len(queued), 'notification')} queued"
        self.message_user(request, text + ".", messages.SUCCESS if changed else messages.WARNING)
        for alert, error in refused:
            self.message_user(request, f"{alert} (alert {alert.pk}) not changed: {error}.", messages.WARNING)

    @admin.action(description="Acknowledge", permissions=["manage"])
    def acknowledge(self, request, queryset) -> None:
        self._apply(
            request, queryset, "Acknowledged", lambda alert: services.alert_acknowledge(alert=alert, by=request.user)
        )

    @admin.action(description="Silence for 1 hour", permissions=["manage"])
    def silence_1h(self, request, queryset) -> None:
        def silence(alert: Alert) -> list[int]:
            services.alert_silence(alert=alert, by=request.user, duration=timedelta(hours=1))
            return []

        self._apply(request, queryset, "Silenced for 1 hour", silence)

    @admin.action(description="Resolve", permissions=["manage"])
    def resolve(self, request, queryset) -> None:
        self._apply(request, queryset, "Resolved", lambda alert: services.alert_resolve(alert=alert, by=request.user))


# Silences

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


class SilenceForm(forms.ModelForm):
    class Meta:
        model = Silence
        fields = ("rule", "matchers", "starts_at", "ends_at", "weekdays", "daily_start", "daily_minutes", "comment")
        help_texts = {
            "rule": "Only this rule's alerts; empty: any rule's.",
            "matchers": 'Alert labels that must all match, e.g. {"source": "3"}; "rule" matches the rule name. '
            "{} matches every alert (of the rule, if one is chosen).",
            "ends_at": "The silence (and any recurring window in it) applies until then.",
        }

    def clean_matchers(self):
        return {} if self.cleaned_data.get("matchers") is None else self.cleaned_data["matchers"]

    def clean_weekdays(self):
        weekdays = self.cleaned_data.get("weekdays")
        if weekdays is None:
            return []
        # A list of weekdays is stored sorted without repeats; Silence.clean judges anything else.
        return (
            sorted(set(weekdays))
            if isinstance(weekdays, list) and all(type(day) is int for day in weekdays)
            else weekdays
        )


@admin.register(Silence)
class SilenceAdmin(admin.ModelAdmin):
    form = SilenceForm
    list_display = ("comment", "rule", "matchers", "starts_at", "ends_at", "recurring", "created_by", "active_now")
    list_display_links = ("comment",)
    list_filter = ("rule",)
    list_select_related = ("rule",)
    search_fields = ("comment", "created_by")
    ordering = ("-ends_at", "-id")
    readonly_fields = ("created_by", "created_at")
    fieldsets = (
        (None, {"fields": ("comment", "rule", "matchers")}),
        ("When", {"fields": ("starts_at", "ends_at")}),
        (
            "Recurring maintenance window (optional)",
            {
                "description": "Between the start and the end, hold notifications only during this daily window "
                "(UTC), on the given weekdays (empty: every day).",
                "fields": ("weekdays", "daily_start", "daily_minutes"),
            },
        ),
        ("Record", {"fields": ("created_by", "created_at")}),
    )

    @admin.display(description="recurring")
    def recurring(self, silence: Silence) -> str:
        if silence.daily_start is None:
            return "-"
        days = ", ".join(WEEKDAYS[day - 1] for day in silence.weekdays if 1 <= day <= 7) or "daily"
        return f"{days} {silence.daily_start:%H:%M} UTC for {silence.daily_minutes} min"

    @admin.display(description="active now", boolean=True)
    def active_now(self, silence: Silence) -> bool:
        now = timezone.now()
        return silence.starts_at <= now < silence.ends_at and silence.in_daily_window(now)

    def save_model(self, request, obj, form, change) -> None:
        if not change:
            obj.created_by = actor_name(request.user)
        obj.save()
