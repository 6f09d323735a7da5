"""Admin for sources and their ingest keys: keys and DSNs are for admins only.

A key is created, rotated and revoked through `services`; its stored values never change by hand.
"""

from django.contrib import admin, messages
from django.db import transaction
from django.utils.html import format_html

from access.roles import Role, role_of
from incidents import services
from incidents.admin.mixins import AdminsOnly
from incidents.models import IngestKey, Source


def copyable(text: str) -> str:
    """Show a value in a read-only, unnamed text box: easy to select and copy whole, never posted."""
    return format_html(
        '<input type="text" class="copyable vTextField" readonly value="{}" size="{}" aria-label="DSN">',
        text,
        max(len(text), 20),
    )


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
    fields = ("name", "slug", "is_active", "rate_limit_per_minute", "environments", "event_retention_days")
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

    # Created through the add form only (save_model below); rotated and revoked by the actions.
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
