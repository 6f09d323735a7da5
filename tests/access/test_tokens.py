"""API tokens: created in admin or by command, stored hashed, revocable, throttled; role groups."""

import re
from io import StringIO

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from access.models import ApiToken
from access.roles import Role, role_of
from access.services import api_token_revoke
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
