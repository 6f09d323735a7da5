"""Admin for alert rules: what is watched, over which window, past which thresholds, and who is told."""

from django import forms
from django.contrib import admin
from django.db.models import Count, Max, Q
from django.urls import reverse
from django.utils.html import format_html

from incidents.admin.mixins import STYLES, json_list_of_strings, severity_badge
from incidents.models import Alert, AlertRule

ACTIVE_STATES = (Alert.State.FIRING, Alert.State.PENDING)


def window_text(minutes: int) -> str:
    if minutes % 1440 == 0:
        return f"{minutes // 1440} d"
    if minutes % 60 == 0:
        return f"{minutes // 60} h"
    return f"{minutes} min"


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
