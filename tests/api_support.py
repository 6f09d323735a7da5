"""API test support: a client per role, authenticated with a real API token."""

import json

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from access.services import api_token_create

ROLES = ("viewer", "triager", "admin")


def user_with_role(django_user_model, role: str):
    user = django_user_model.objects.create_user(username=f"{role}-user", password="unused-password")
    if role in ROLES:
        user.groups.add(Group.objects.get(name=role))
    return user


def token_client(user) -> APIClient:
    _token, raw = api_token_create(user=user, name="tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.fixture
def api_as(db, django_user_model):
    """api_as("viewer") -> an APIClient holding a token of a user with that role ("none": no role)."""
    made: dict[str, APIClient] = {}

    def client_for(role: str) -> APIClient:
        if role not in made:
            made[role] = token_client(user_with_role(django_user_model, role))
        return made[role]

    return client_for


def post_json(client: APIClient, url: str, body) -> object:
    return client.post(url, json.dumps(body), content_type="application/json")


def patch_json(client: APIClient, url: str, body) -> object:
    return client.patch(url, json.dumps(body), content_type="application/json")
