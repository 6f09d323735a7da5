"""Admin for classification: the catalog of error types and the ordered rules that pick one for an event."""

from django.contrib import admin

from incidents.admin.mixins import STYLES, severity_badge
from incidents.models import ClassificationRule, ErrorType


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
