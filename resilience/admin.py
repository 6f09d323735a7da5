"""Admin for circuit breakers: state at a glance, operator switches, live-applied config."""

from django.contrib import admin, messages
from django.db.models import OuterRef, Subquery
from django.utils.html import format_html

from resilience import process_runtime
from resilience.models import (
    Breaker,
    BreakerState,
    BreakerTransition,
    DegradationFeature,
    DegradationRule,
    RateLimitPolicy,
    RecoveryPolicy,
    RetryPolicy,
)
from resilience.selectors import failure_rate, with_window_totals

STYLES = {"all": ["incidents/admin.css", "resilience/admin.css"]}


def state_badge(state: str | None, mode: str | None) -> str:
    state = state or BreakerState.State.CLOSED
    label = BreakerState.State(state).label
    if mode and mode != BreakerState.Mode.AUTO:
        label = f"{label} · {BreakerState.Mode(mode).label.lower()}"
    return format_html('<span class="breaker-badge breaker-{}">{}</span>', state, label)


class TransitionInline(admin.TabularInline):
    model = BreakerTransition
    fields = ["at", "from_state", "to_state", "mode", "reason", "source", "process"]
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    ordering = ["-at", "-id"]
    verbose_name_plural = "Transitions (newest first)"

    def get_queryset(self, request):
        # The newest 50: a flapping breaker's history must not make its page slow.
        ids = BreakerTransition.objects.filter(breaker=OuterRef("breaker")).order_by("-at", "-id").values("id")[:50]
        return super().get_queryset(request).filter(id__in=Subquery(ids)).select_related("source")


@admin.register(Breaker)
class BreakerAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "runs_on",
        "state",
        "failure_rate",
        "calls",
        "last_reason",
        "failure_rate_threshold",
        "component",
    ]
    list_filter = ["source"]
    list_select_related = ["source"]
    search_fields = ["name", "component", "description"]
    inlines = [TransitionInline]
    actions = ["force_open", "force_closed", "reset", "back_to_auto"]
    fieldsets = [
        (None, {"fields": ["name", "source", "description", "component", "error_type"]}),
        ("Window", {"fields": ["window_kind", "window_size", "minimum_calls"]}),
        (
            "When it opens",
            {
                "fields": [
                    "failure_rate_threshold",
                    "slow_call_rate_threshold",
                    "slow_call_duration",
                    "consecutive_failures",
                    "call_timeout",
                ]
            },
        ),
        ("Open and half-open", {"fields": ["wait_duration", "wait_multiplier", "max_wait_duration"]}),
        (
            "Probing",
            {
                "fields": [
                    "automatic_half_open",
                    "max_half_open_duration",
                    "permitted_calls_in_half_open",
                    "success_threshold",
                ]
            },
        ),
        ("What counts as a failure", {"fields": ["record_exceptions", "ignore_exceptions", "failure_statuses"]}),
    ]

    class Media:
        css = STYLES
        js = ("incidents/live_admin.js",)  # state badges follow transitions live

    def get_queryset(self, request):
        shared = BreakerState.objects.filter(name=OuterRef("name"))
        return with_window_totals(
            super()
            .get_queryset(request)
            .annotate(
                shared_state=Subquery(shared.values("state")[:1]),
                shared_mode=Subquery(shared.values("mode")[:1]),
                shared_reason=Subquery(shared.values("last_reason")[:1]),
            )
        )

    @admin.display(description="source", ordering="source__name")
    def runs_on(self, obj: Breaker) -> str:
        # Both show no source: say which is which, since only an unassigned one can be taken by a service.
        if obj.source_id is not None:
            return obj.source.name
        return "unassigned" if obj.is_unassigned else "the console's own"

    @admin.display(description="state", ordering="shared_state")
    def state(self, obj: Breaker) -> str:
        return state_badge(obj.shared_state, obj.shared_mode)

    @admin.display(description="failure rate")
    def failure_rate(self, obj: Breaker) -> str:
        rate = failure_rate(obj.window_calls, obj.window_failures)
        if rate is None:
            return "no calls"
        over = rate >= obj.failure_rate_threshold
        return format_html('<span class="{}">{} %</span>', "breaker-rate-over" if over else "", rate)

    @admin.display(description="calls in window", ordering="window_calls")
    def calls(self, obj: Breaker) -> str:
        # Summed over every process reporting: each keeps its own window.
        return f"{obj.window_calls} ({obj.window_failures} failed, {obj.window_slow_calls} slow)"

    @admin.display(description="last reason")
    def last_reason(self, obj: Breaker) -> str:
        return obj.shared_reason or ""

    def _switch(self, request, queryset, switch: str, done: str) -> None:
        who = f"admin: {request.user.get_username()}"
        for row in queryset:
            getattr(process_runtime.breaker(row.name), switch)(reason=who)
        self.message_user(request, f"{queryset.count()} breaker(s) {done}.", messages.SUCCESS)

    @admin.action(description="Force open (refuse every call)")
    def force_open(self, request, queryset):
        self._switch(request, queryset, "force_open", "forced open")

    @admin.action(description="Force closed (let every call through)")
    def force_closed(self, request, queryset):
        self._switch(request, queryset, "force_closed", "forced closed")

    @admin.action(description="Reset to closed with empty windows")
    def reset(self, request, queryset):
        self._switch(request, queryset, "reset", "reset")

    @admin.action(description="Back to automatic")
    def back_to_auto(self, request, queryset):
        self._switch(request, queryset, "set_auto", "back to automatic")


@admin.register(RetryPolicy)
class RetryPolicyAdmin(admin.ModelAdmin):
    list_display = ["name", "strategy", "jitter", "max_attempts", "base_delay", "max_delay", "on_give_up"]
    list_filter = ["strategy", "on_give_up"]
    search_fields = ["name", "description"]
    fieldsets = [
        (None, {"fields": ["name", "description"]}),
        ("Waiting", {"fields": ["strategy", "jitter", "max_attempts", "base_delay", "multiplier", "max_delay"]}),
        ("Giving up", {"fields": ["max_total_time", "on_give_up", "return_bad_result"]}),
        (
            "What is retried",
            {
                "fields": [
                    "retry_on_transient",
                    "retry_on_exceptions",
                    "retry_on_error_types",
                    "retry_on_categories",
                    "retry_on_statuses",
                    "honour_retry_after",
                    "cap_retry_after",
                ]
            },
        ),
        ("Retry budget", {"fields": ["budget_percent", "budget_window_seconds", "budget_min_per_second"]}),
    ]


@admin.register(RecoveryPolicy)
class RecoveryPolicyAdmin(admin.ModelAdmin):
    list_display = ["name", "strategy", "component", "error_type", "max_attempts", "severity"]
    list_filter = ["strategy", "severity"]
    search_fields = ["name", "component", "error_type"]


@admin.register(RateLimitPolicy)
class RateLimitPolicyAdmin(admin.ModelAdmin):
    list_display = ["name", "limit", "window_seconds"]


@admin.register(DegradationFeature)
class DegradationFeatureAdmin(admin.ModelAdmin):
    list_display = ["name", "critical", "min_level", "fallback"]


@admin.register(DegradationRule)
class DegradationRuleAdmin(admin.ModelAdmin):
    list_display = ["name", "condition", "threshold", "level"]
