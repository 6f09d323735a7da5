"""Admin for alerting: rules, their alerts, silences, notification channels and the notification log.

Rules, silences and channels are configuration and are edited here. Alerts and notifications
are data: alerts change only through `services` (the actions below), and the log is read-only.
Whatever a service queues is handed to a worker once the transaction commits.
"""

import json
from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db.models import Case, Count, IntegerField, Max, OuterRef, Q, Subquery, Value, When
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from incidents import selectors, services
from incidents.admin.incidents import STYLES, AdminsOnly, severity_badge, status_badge
from incidents.alerting.delivery import deliver_after_commit
from incidents.alerting.evaluation import GROUP_KEYS, _in_recurring_window
from incidents.alerting.transports.base import masked_config, transport_class, unmasked_config
from incidents.models import (
    Alert,
    AlertRule,
    ErrorType,
    Incident,
    Notification,
    NotificationChannel,
    Silence,
    Source,
)
from resilience.exceptions import ConfigError

NOTIFICATIONS_SHOWN = 50
ACTIVE_STATES = (Alert.State.FIRING, Alert.State.PENDING)
# Firing alerts first, then pending, resolved, inactive.
STATE_RANK = Case(
    When(state=Alert.State.FIRING, then=Value(0)),
    When(state=Alert.State.PENDING, then=Value(1)),
    When(state=Alert.State.RESOLVED, then=Value(2)),
    default=Value(3),
    output_field=IntegerField(),
)
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def actor_name(request) -> str:
    """The user as the services name actors."""
    return f"user:{request.user.get_username()}"


def counted(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def window_text(minutes: int) -> str:
    if minutes % 1440 == 0:
        return f"{minutes // 1440} d"
    if minutes % 60 == 0:
        return f"{minutes // 60} h"
    return f"{minutes} min"


def json_list_of_strings(value, field: str, example: str) -> list:
    """An empty JSON field as [], or the list; the model's own clean() cannot read anything else."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError(f"{field} must be a JSON list of names, e.g. {example}")
    return value


# Rules


class AlertRuleForm(forms.ModelForm):
    class Meta:
        model = AlertRule
        fields = (
            "name",
            "enabled",
            "description",
            "target",
            "source",
            "error_type",
            "category",
            "min_severity",
            "environment",
            "breaker",
            "heartbeat",
            "value",
            "window_minutes",
            "comparator",
            "warning_threshold",
            "critical_threshold",
            "resolve_threshold",
            "pending_for",
            "keep_firing_for",
            "cooldown",
            "channels",
            "group_by",
            "send_resolved",
            "summary_template",
            "runbook_template",
        )
        help_texts = {
            "target": "What the rule watches: matching events, a source gone quiet, open circuit breakers, "
            "or the console's degradation level.",
            "source": "Only this source; empty: every source. Heartbeat rules need one.",
            "error_type": "Only events of this type; empty: any type.",
            "category": "Only events of this category; empty: any.",
            "min_severity": "Only events at or above this severity; empty: any.",
            "environment": "Only events from this environment; empty: any.",
            "value": "What is measured over the window. A ratio is a percentage (0 to 100) of the same "
            "sources' events. Absence rules measure minutes of silence; breaker rules 1 per open breaker.",
            "comparator": "> and >= fire on a rising value, < and <= on a falling one.",
            "warning_threshold": "Fires as MEDIUM (HIGH for breaker and absence rules). "
            "Set a warning threshold, a critical one, or both.",
            "critical_threshold": "Fires as CRITICAL; must be at or past the warning threshold.",
            "channels": "Where notifications go. None chosen: every enabled channel whose "
            '"default for" lists the alert\'s severity.',
            "group_by": 'One alert per group, e.g. ["source"] or ["source", "error_type"]; '
            '[] for one alert for everything. Any of "source", "error_type", "incident".',
            "send_resolved": "Tell the channels that got the firing notification when the alert resolves.",
            "summary_template": "Django template. Variables: rule, value, threshold, severity, state, "
            "labels (e.g. {{ labels.source }}).",
            "runbook_template": "Django template, text or a URL; the same variables as the summary.",
        }

    def clean_group_by(self):
        return json_list_of_strings(self.cleaned_data.get("group_by"), "group_by", '["source"]')


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    form = AlertRuleForm
    list_display = (
        "name",
        "enabled",
        "target_code",
        "value_code",
        "window",
        "comparator",
        "thresholds",
        "current_state",
        "evaluated_at",
    )
    list_display_links = ("name",)
    list_filter = ("enabled", "target")
    search_fields = ("name", "description")
    ordering = ("name",)
    autocomplete_fields = ("source", "error_type")
    filter_horizontal = ("channels",)
    fieldsets = (
        (None, {"fields": ("name", "enabled", "description")}),
        (
            "Selection",
            {
                "description": "What the rule looks at; an empty filter matches everything.",
                "fields": (
                    "target",
                    "source",
                    "error_type",
                    "category",
                    "min_severity",
                    "environment",
                    "breaker",
                    "heartbeat",
                ),
            },
        ),
        ("Value and window", {"fields": ("value", "window_minutes", "comparator")}),
        (
            "Thresholds",
            {
                "description": "A firing alert resolves only once the value is back past the resolve threshold "
                "(hysteresis): at or below the lowest firing threshold for > and >=, at or above it for < and <=.",
                "fields": ("warning_threshold", "critical_threshold", "resolve_threshold"),
            },
        ),
        (
            "Timing",
            {
                "description": "All in seconds. The cooldown is the wait between repeat notifications "
                "of an alert that keeps firing unacknowledged.",
                "fields": ("pending_for", "keep_firing_for", "cooldown"),
            },
        ),
        ("Routing", {"fields": ("channels", "group_by", "send_resolved")}),
        ("Text", {"fields": ("summary_template", "runbook_template")}),
    )

    class Media:
        css = STYLES

    def get_queryset(self, request):
        # The state column for the whole page in the list's one query: no query per rule.
        active = Q(alerts__state__in=ACTIVE_STATES)
        return (
            super()
            .get_queryset(request)
            .annotate(
                firing_alerts=Count("alerts", filter=Q(alerts__state=Alert.State.FIRING)),
                pending_alerts=Count("alerts", filter=Q(alerts__state=Alert.State.PENDING)),
                worst_severity=Max("alerts__severity", filter=active),
            )
        )

    @admin.display(description="target", ordering="target")
    def target_code(self, rule: AlertRule) -> str:
        return format_html('<span title="{}">{}</span>', rule.get_target_display(), rule.target)

    @admin.display(description="value", ordering="value")
    def value_code(self, rule: AlertRule) -> str:
        if rule.target != AlertRule.Target.EVENTS:
            return "-"  # breaker, absence and degradation rules measure their own value
        return format_html('<span title="{}">{}</span>', rule.get_value_display(), rule.value)

    @admin.display(description="window", ordering="window_minutes")
    def window(self, rule: AlertRule) -> str:
        return window_text(rule.window_minutes)

    @admin.display(description="thresholds")
    def thresholds(self, rule: AlertRule) -> str:
        sign = rule.get_comparator_display()
        parts = [
            f"{name} {sign} {value:g}"
            for name, value in (("warning", rule.warning_threshold), ("critical", rule.critical_threshold))
            if value is not None
        ]
        if rule.resolve_threshold is not None:
            parts.append(f"resolves past {rule.resolve_threshold:g}")
        return ", ".join(parts) or "-"

    @admin.display(description="state", ordering="-firing_alerts")
    def current_state(self, rule: AlertRule) -> str:
        firing, pending = getattr(rule, "firing_alerts", 0), getattr(rule, "pending_alerts", 0)
        if not firing and not pending:
            return "ok" if rule.enabled else "-"
        url = reverse("admin:incidents_alert_changelist")
        counts = ", ".join(f"{count} {state}" for count, state in ((firing, "firing"), (pending, "pending")) if count)
        return format_html(
            '{} <a href="{}?rule__id__exact={}">{}</a>', severity_badge(rule.worst_severity), url, rule.pk, counts
        )


# Alerts


def _named(model, field: str, ids: set) -> dict:
    return dict(model.objects.filter(pk__in=ids).values_list("pk", field)) if ids else {}


def name_labels(alerts) -> None:
    """Give each alert readable group labels (source and type names, not ids), one query per kind of label."""
    ids: dict[str, set] = {key: set() for key in GROUP_KEYS}
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


class NotificationInline(admin.TabularInline):
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

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
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
        cl = (getattr(response, "context_data", None) or {}).get("cl")
        if cl is not None:
            name_labels(list(cl.result_list))  # the same cached rows the template renders
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

    # Alerts change only through services: the actions below.

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

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
        return silence.starts_at <= now < silence.ends_at and _in_recurring_window(silence, now)

    def save_model(self, request, obj, form, change) -> None:
        if not change:
            obj.created_by = actor_name(request)
        obj.save()


# Channels


def config_help(selected: str | None = None) -> str:
    """Every kind's config keys from its transport, the selected kind's first."""
    kinds = sorted(NotificationChannel.Kind.choices, key=lambda choice: choice[0] != selected)
    rows = []
    for kind, label in kinds:
        try:
            fields = transport_class(kind).config_fields
        except (ConfigError, ImproperlyConfigured):
            continue  # a kind this deployment does not configure
        keys = format_html_join(
            "",
            "<li><code>{}</code>{}: {}</li>",
            ((field.name, " (required)" if field.required else "", field.help) for field in fields),
        )
        rows.append(("selected" if kind == selected else "", label, keys))
    items = format_html_join("", '<li class="{}"><strong>{}</strong><ul>{}</ul></li>', rows)
    return format_html('A JSON object of the kind\'s settings:<ul class="config-keys">{}</ul>', items)


class NotificationChannelForm(forms.ModelForm):
    class Meta:
        model = NotificationChannel
        fields = ("name", "kind", "enabled", "config", "min_severity", "default_for")
        help_texts = {
            "enabled": "Ticking it again also clears the failure count and the reason the console disabled it.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk and isinstance(self.instance.config, dict):
            self.initial["config"] = masked_config(self.instance.kind, self.instance.config)

    def clean_config(self):
        config = self.cleaned_data.get("config")
        if config is None:
            return {}
        stored = self.instance.config if self.instance.pk and isinstance(self.instance.config, dict) else {}
        if isinstance(config, dict):
            # Secrets were shown masked; a mask sent back means "keep what is stored".
            return unmasked_config(self.cleaned_data.get("kind") or self.instance.kind, config, stored)
        return config

    def clean_default_for(self):
        return json_list_of_strings(self.cleaned_data.get("default_for"), "default_for", '["CRITICAL", "HIGH"]')


@admin.register(NotificationChannel)
class NotificationChannelAdmin(AdminsOnly, admin.ModelAdmin):
    form = NotificationChannelForm
    list_display = (
        "name",
        "kind",
        "enabled",
        "min_severity_badge",
        "default_routing",
        "last_error",
        "last_error_at",
        "disabled_reason",
    )
    list_display_links = ("name",)
    list_filter = ("kind", "enabled")
    search_fields = ("name",)
    ordering = ("name",)
    readonly_fields = ("consecutive_permanent_failures", "last_error", "last_error_at", "disabled_reason")
    fieldsets = (
        (None, {"fields": ("name", "kind", "enabled", "config")}),
        ("Routing", {"fields": ("min_severity", "default_for")}),
        (
            "Health (kept by delivery)",
            {"fields": ("consecutive_permanent_failures", "last_error", "last_error_at", "disabled_reason")},
        ),
    )
    actions = ["send_test", "enable_again"]

    class Media:
        css = STYLES

    def get_fieldsets(self, request, obj=None):
        if obj is None or self.has_change_permission(request, obj):
            return super().get_fieldsets(request, obj)
        # A read-only page renders stored values as they are: show the settings masked instead.
        return [
            (name, {**options, "fields": tuple("masked_config" if f == "config" else f for f in options["fields"])})
            for name, options in super().get_fieldsets(request, obj)
        ]

    def get_readonly_fields(self, request, obj=None):
        return (*super().get_readonly_fields(request, obj), "masked_config")

    @admin.display(description="config")
    def masked_config(self, channel: NotificationChannel) -> str:
        shown = masked_config(channel.kind, channel.config) if isinstance(channel.config, dict) else {}
        return format_html("<pre>{}</pre>", json.dumps(shown, indent=2, sort_keys=True))

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if "config" in form.base_fields:
            form.base_fields["config"].help_text = config_help(obj.kind if obj else None)
        return form

    @admin.display(description="min severity", ordering="min_severity")
    def min_severity_badge(self, channel: NotificationChannel) -> str:
        return severity_badge(channel.min_severity)

    @admin.display(description="default for")
    def default_routing(self, channel: NotificationChannel) -> str:
        return ", ".join(channel.default_for) if channel.default_for else "-"

    def save_model(self, request, obj, form, change) -> None:
        if not change:
            obj.save()
            return
        # Only what the form changed: delivery updates the failure fields concurrently.
        changed = [name for name in form.changed_data if name in {f.name for f in obj._meta.concrete_fields}]
        enabling = "enabled" in changed and obj.enabled
        if enabling:
            changed.remove("enabled")
        if changed:
            obj.save(update_fields=changed)
        if enabling:
            services.channel_enable(channel=obj, by=request.user)

    @admin.action(description="Send test notification", permissions=["change"])
    def send_test(self, request, queryset) -> None:
        queued, skipped = [], []
        for channel in queryset.order_by("name"):
            if not channel.enabled:
                skipped.append(channel.name)
                continue
            queued.append(services.channel_test(channel=channel, by=request.user).pk)
        deliver_after_commit(queued)
        if queued:
            self.message_user(
                request, f"Test notification queued for {counted(len(queued), 'channel')}.", messages.SUCCESS
            )
        if skipped:
            self.message_user(
                request,
                f"Not sent to disabled channels ({', '.join(skipped)}): enable them again first.",
                messages.WARNING,
            )

    @admin.action(description="Enable again", permissions=["change"])
    def enable_again(self, request, queryset) -> None:
        names = []
        for channel in queryset.order_by("name"):
            services.channel_enable(channel=channel, by=request.user)
            names.append(channel.name)
        self.message_user(request, f"Enabled again: {', '.join(names)}.", messages.SUCCESS)


# The notification log


@admin.register(Notification)
class NotificationAdmin(AdminsOnly, admin.ModelAdmin):
    list_display = (
        "created_at",
        "channel",
        "alert",
        "event",
        "attempt",
        "status_badge",
        "response_code",
        "error",
        "duration_ms",
    )
    list_display_links = ("created_at",)
    list_filter = ("status", "channel", "event")
    list_select_related = ("channel", "alert__rule")
    ordering = ("-id",)  # creation order, through the primary key's index
    sortable_by = ()
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = selectors.EstimatedCountPaginator
    list_per_page = 50

    class Media:
        css = STYLES

    @admin.display(description="status")
    def status_badge(self, notification: Notification) -> str:
        return status_badge(notification.status)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
