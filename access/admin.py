"""Admin for API tokens: created with a name, shown once, revocable, with last use."""

from django import forms
from django.contrib import admin, messages

from access.models import ApiToken
from access.services import api_token_create, api_token_revoke


class ApiTokenForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ("user", "name")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    form = ApiTokenForm
    list_display = ("name", "user", "prefix", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("name", "user__username", "prefix")
    ordering = ("-created_at",)
    autocomplete_fields = ("user",)
    actions = ["revoke"]

    def get_readonly_fields(self, request, obj=None):
        # A saved token is only ever revoked: its user and name stay what they were.
        return ("user", "name", "prefix", "created_at", "last_used_at", "revoked_at") if obj else ()

    def save_model(self, request, obj, form, change):
        if change:
            return
        created, raw = api_token_create(user=obj.user, name=obj.name)
        obj.pk, obj.prefix = created.pk, created.prefix
        messages.warning(
            request, f"Token for {obj.user}: {raw} (copy it now: it is stored hashed and never shown again)"
        )

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset) -> None:
        for token in queryset:
            api_token_revoke(token=token)
        self.message_user(request, f"Revoked {queryset.count()} token(s).")
