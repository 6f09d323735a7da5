"""Admin for notification channels and the notification log, both for admins only.

Channels are configuration, their secrets shown masked; the log is read-only. A test notification
is handed to a worker once the transaction commits.
"""

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ImproperlyConfigured
from django.utils.html import format_html, format_html_join

from incidents import selectors
from incidents.admin.mixins import (
    STYLES,
    AdminsOnly,
    ReadOnly,
    counted,
    json_list_of_strings,
    severity_badge,
    status_badge,
)
from incidents.alerting import services
from incidents.alerting.delivery import deliver_after_commit
from incidents.alerting.transports.base import masked_config, transport_class, unmasked_config
from incidents.models import Notification, NotificationChannel
from resilience.exceptions import ConfigError


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
class NotificationAdmin(AdminsOnly, ReadOnly, admin.ModelAdmin):
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
