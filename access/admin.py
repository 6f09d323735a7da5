"""Admin for API tokens: created with a name, shown once, revocable, with last use and who made it.

A token acts as its user, so a user makes tokens for themself; only a superuser picks another user.
"""

from django import forms
from django.contrib import admin, messages

from access import task_admin
from access.models import ApiToken
from access.services import api_token_create, api_token_revoke


class ApiTokenForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ("user", "name")


class OwnApiTokenForm(forms.ModelForm):
    """The form for everyone but superusers: the token is always the requesting user's (`owner`)."""

    owner = None

    class Meta:
        model = ApiToken
        fields = ("name",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance.user = self.owner

    def clean_name(self):
        # The (user, name) constraint is not checked by the form when the user is not one of its fields.
        name = self.cleaned_data["name"]
        if ApiToken.objects.filter(user=self.owner, name=name).exists():
            raise forms.ValidationError(f"You already have a token named {name!r}; choose another name.")
        return name


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    form = ApiTokenForm
    list_display = ("name", "user", "prefix", "made_by", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    list_select_related = ("user", "created_by")
    search_fields = ("name", "user__username", "prefix")
    ordering = ("-created_at",)
    autocomplete_fields = ("user",)
    actions = ["revoke"]

    @admin.display(description="made by", ordering="created_by__username")
    def made_by(self, token: ApiToken) -> str:
        return token.created_by.get_username() if token.created_by else "command line"

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None and not request.user.is_superuser:
            kwargs["form"] = type("OwnApiTokenForm", (OwnApiTokenForm,), {"owner": request.user})
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is not None:
            return ("user", "name", "prefix", "made_by", "created_at", "last_used_at", "revoked_at")
        return ("user", "name") if request.user.is_superuser else ("name",)

    def get_readonly_fields(self, request, obj=None):
        # A saved token is only ever revoked: its user and name stay what they were.
        return ("user", "name", "prefix", "made_by", "created_at", "last_used_at", "revoked_at") if obj else ()

    def has_delete_permission(self, request, obj=None) -> bool:
        # Tokens are revoked and kept, so the record of who had one stays.
        return False

    def save_model(self, request, obj, form, change):
        if change:
            return
        created, raw = api_token_create(user=obj.user, name=obj.name, created_by=request.user)
        obj.pk, obj.prefix, obj.created_by = created.pk, created.prefix, created.created_by
        messages.warning(
            request, f"Token for {obj.user}: {raw} (copy it now: it is stored hashed and never shown again)"
        )

    def construct_change_message(self, request, form, formsets, add=False):
        if add:
            # The history names the maker (the entry's user) and, here, whose token it is.
            return f"Made a token for {form.instance.user.get_username()}."
        return super().construct_change_message(request, form, formsets, add)

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke(self, request, queryset) -> None:
        tokens = list(queryset)
        for token in tokens:
            api_token_revoke(token=token)
            self.log_change(request, token, "Revoked.")
        self.message_user(request, f"Revoked {len(tokens)} token(s).")


# django_q's pages, replaced by superuser-only ones (access is installed after django_q).
task_admin.register()
