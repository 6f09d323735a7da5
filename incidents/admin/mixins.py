"""What every area of the incidents admin shares: permission mixins, the detail page, badges and small helpers.

This module imports no other module of the admin, so each area imports it and none imports another.
"""

from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseNotAllowed
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from access.roles import Role, role_of
from incidents.models import Severity

STYLES = {"all": ["incidents/admin.css"]}


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


class ReadOnly:
    """Rows that are data, not configuration: shown, never added, changed or deleted by hand (admin or inline)."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class DetailPage:
    """A page of its own in place of the change form: shown to whoever may view the row, never posted to.

    A model admin sets `detail_template` and gives its page's context in `detail_context`.
    """

    detail_template: str

    def detail_context(self, request, obj) -> dict:
        raise NotImplementedError

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if request.method not in ("GET", "HEAD"):
            return HttpResponseNotAllowed(["GET", "HEAD"])
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_or_change_permission(request, obj):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": obj,
            "media": self.media,
            **self.detail_context(request, obj),
            **(extra_context or {}),
        }
        return TemplateResponse(request, self.detail_template, context)


def listed_rows(response) -> list | None:
    """The rows a change list page renders (the list's cached rows), or None when the response is no list page."""
    cl = (getattr(response, "context_data", None) or {}).get("cl")
    return None if cl is None else list(cl.result_list)


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


def counted(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def json_list_of_strings(value, field: str, example: str) -> list:
    """An empty JSON field as [], or the list; the model's own clean() cannot read anything else."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError(f"{field} must be a JSON list of names, e.g. {example}")
    return value
