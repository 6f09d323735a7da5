"""API tokens: created in admin or by command, stored hashed, revocable, throttled; role groups."""

import re
from io import StringIO

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from access.models import ApiToken
from access.roles import Role, role_of
from access.services import api_token_create, api_token_revoke
from tests.api_support import user_with_role

pytestmark = pytest.mark.django_db


def bearer(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def test_createtoken_prints_a_token_that_works_and_is_stored_only_hashed(django_user_model):
    user_with_role(django_user_model, "viewer")
    out = StringIO()
    call_command("createtoken", "viewer-user", "--name", "grafana", stdout=out)
    raw = out.getvalue().strip()
    assert raw.startswith("ict_") and len(raw) > 30
    token = ApiToken.objects.get(name="grafana")
    assert raw not in (token.key_hash, token.prefix) and token.prefix == raw[:10]
    assert bearer(raw).get("/api/v1/incidents/").status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_createtoken_names_what_is_wrong(django_user_model):
    with pytest.raises(CommandError, match="no user named 'ghost'"):
        call_command("createtoken", "ghost")
    user_with_role(django_user_model, "viewer")
    call_command("createtoken", "viewer-user", stdout=StringIO())
    with pytest.raises(CommandError, match="already has a token named 'cli'"):
        call_command("createtoken", "viewer-user", stdout=StringIO())


def test_a_revoked_token_is_refused(django_user_model):
    user_with_role(django_user_model, "admin")
    out = StringIO()
    call_command("createtoken", "admin-user", stdout=out)
    api_token_revoke(token=ApiToken.objects.get())
    response = bearer(out.getvalue().strip()).get("/api/v1/incidents/")
    assert response.status_code == 401 and response.json()["error"] == "unknown or revoked API token"


def test_a_token_made_in_the_admin_is_shown_once_and_revoked_by_an_action(admin_client, django_user_model):
    user = user_with_role(django_user_model, "triager")
    response = admin_client.post("/admin/access/apitoken/add/", {"user": user.pk, "name": "deploys"}, follow=True)
    raw = re.findall(r"ict_[A-Za-z0-9_-]+", " ".join(str(m) for m in response.context["messages"]))[0]
    assert bearer(raw).get("/api/v1/incidents/").status_code == 200
    token = ApiToken.objects.get(name="deploys")
    assert raw not in admin_client.get(f"/admin/access/apitoken/{token.pk}/change/").content.decode()
    admin_client.post("/admin/access/apitoken/", {"action": "revoke", "_selected_action": [token.pk]})
    assert bearer(raw).get("/api/v1/incidents/").status_code == 401


def test_each_role_group_includes_the_ones_below_it(django_user_model):
    viewer, triager, admin = (user_with_role(django_user_model, role) for role in ("viewer", "triager", "admin"))
    assert [role_of(user) for user in (viewer, triager, admin)] == [Role.VIEWER, Role.TRIAGER, Role.ADMIN]
    groups = {group.name: set(group.permissions.values_list("codename", flat=True)) for group in Group.objects.all()}
    assert "view_incident" in groups["viewer"] and "change_incident" not in groups["viewer"]
    assert groups["viewer"] < groups["triager"] < groups["admin"]
    assert "change_breaker" in groups["admin"] and "change_breaker" not in groups["triager"]


def test_a_token_over_its_rate_is_throttled_with_retry_after(django_user_model, monkeypatch):
    from access.authentication import TokenRateThrottle

    monkeypatch.setattr(TokenRateThrottle, "THROTTLE_RATES", {"api": "3/min"})
    user_with_role(django_user_model, "viewer")
    out = StringIO()
    call_command("createtoken", "viewer-user", stdout=out)
    client = bearer(out.getvalue().strip())
    statuses = [client.get("/api/v1/incidents/").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    throttled = client.get("/api/v1/incidents/")
    assert int(throttled["Retry-After"]) > 0 and throttled.json()["retry_after"] > 0


# Who makes a token, and for whom


def staff_admin(django_user_model, username: str = "ops-admin"):
    """An admin-group user who is not a superuser, as an operator makes one."""
    user = django_user_model.objects.create_user(username, password="unused-password", is_staff=True)
    user.groups.add(Group.objects.get(name="admin"))
    return user


def made_token(response) -> str:
    return re.findall(r"ict_[A-Za-z0-9_-]+", " ".join(str(m) for m in response.context["messages"]))[0]


def test_an_admin_group_user_makes_tokens_for_themself_only(client, django_user_model, admin_user):
    maker = staff_admin(django_user_model)
    client.force_login(maker)
    form = client.get("/admin/access/apitoken/add/").content.decode()
    assert 'name="user"' not in form
    # A user id slipped into the form is ignored: the token is the maker's own.
    response = client.post("/admin/access/apitoken/add/", {"user": admin_user.pk, "name": "mine"}, follow=True)
    token = ApiToken.objects.get(name="mine")
    assert (token.user, token.created_by) == (maker, maker)
    assert bearer(made_token(response)).get("/api/v1/sources/").status_code == 200
    assert not ApiToken.objects.filter(user=admin_user).exists()


def test_a_second_token_of_the_same_name_is_refused_by_the_form_naming_the_field(client, django_user_model):
    client.force_login(staff_admin(django_user_model))
    client.post("/admin/access/apitoken/add/", {"name": "mine"})
    response = client.post("/admin/access/apitoken/add/", {"name": "mine"})
    assert response.status_code == 200 and "name" in response.context["adminform"].form.errors
    assert ApiToken.objects.filter(name="mine").count() == 1


def test_only_a_superuser_makes_a_token_for_someone_else(django_user_model, admin_user):
    maker, other = staff_admin(django_user_model), user_with_role(django_user_model, "viewer")
    with pytest.raises(PermissionDenied):
        api_token_create(user=other, name="impersonation", created_by=maker)
    with pytest.raises(PermissionDenied):
        api_token_create(user=admin_user, name="impersonation", created_by=maker)
    token, _raw = api_token_create(user=other, name="for-viewer", created_by=admin_user)
    assert token.created_by == admin_user
    assert not ApiToken.objects.filter(name="impersonation").exists()


def test_the_list_and_the_history_name_who_made_each_token(admin_client, admin_user, django_user_model):
    viewer = user_with_role(django_user_model, "viewer")
    admin_client.post("/admin/access/apitoken/add/", {"user": viewer.pk, "name": "grafana"})
    call_command("createtoken", "viewer-user", "--name", "cron", stdout=StringIO())
    token = ApiToken.objects.get(name="grafana")
    assert token.created_by == admin_user
    listing = admin_client.get("/admin/access/apitoken/").content.decode()
    assert (
        '<td class="field-made_by">admin</td>' in listing and '<td class="field-made_by">command line</td>' in listing
    )
    admin_client.post("/admin/access/apitoken/", {"action": "revoke", "_selected_action": [token.pk]})
    entries = LogEntry.objects.filter(object_id=str(token.pk)).order_by("action_time", "pk")
    assert [(entry.user, entry.get_change_message()) for entry in entries] == [
        (admin_user, "Made a token for viewer-user."),
        (admin_user, "Revoked."),
    ]
    history = admin_client.get(f"/admin/access/apitoken/{token.pk}/history/").content.decode()
    assert "Made a token for viewer-user." in history


def test_a_token_is_revoked_and_kept_never_deleted(admin_client, django_user_model):
    token, _raw = api_token_create(user=user_with_role(django_user_model, "viewer"), name="kept")
    assert admin_client.get(f"/admin/access/apitoken/{token.pk}/delete/").status_code == 403
    assert "delete_selected" not in admin_client.get("/admin/access/apitoken/").content.decode()


def test_migrating_takes_back_what_older_versions_gave_the_groups(django_user_model):
    from django.contrib.auth.models import Permission

    from access.groups import sync_role_groups

    admin_group, viewer_group = Group.objects.get(name="admin"), Group.objects.get(name="viewer")
    admin_group.permissions.add(*Permission.objects.filter(content_type__app_label="django_q"))
    viewer_group.permissions.add(Permission.objects.get(codename="view_ingestkey"))
    sync_role_groups()  # what every migrate runs (post_migrate)
    assert not admin_group.permissions.filter(content_type__app_label="django_q").exists()
    for name in ("viewer", "triager"):
        codenames = set(Group.objects.get(name=name).permissions.values_list("codename", flat=True))
        hidden = {"view_source", "view_ingestkey", "view_notificationchannel", "view_notification"}
        assert codenames & hidden == set() and "view_alert" in codenames, name
