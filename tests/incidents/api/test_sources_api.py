"""The sources API: admins create and change sources and manage their ingest keys; other roles learn nothing."""

from datetime import timedelta

import pytest
from django.utils import timezone

from incidents import services
from incidents.models import IngestKey, Source
from tests.api_support import patch_json, post_json

pytestmark = pytest.mark.django_db

SOURCES = "/api/v1/sources/"


def keys_url(source: Source) -> str:
    return f"{SOURCES}{source.pk}/keys/"


def test_an_admin_creates_a_source_and_gets_its_first_keys_dsn(api_as, settings):
    settings.CONSOLE_URL = "https://console.example.com"

    response = post_json(
        api_as("admin"), SOURCES, {"name": "Billing API", "environments": ["production"], "rate_limit_per_minute": 600}
    )

    assert response.status_code == 201, response.content
    body = response.json()
    source = Source.objects.get(pk=body["id"])
    key = source.keys.get()
    assert (source.slug, source.environments, source.rate_limit_per_minute) == ("billing-api", ["production"], 600)
    assert body["key"]["public_key"] == key.public_key
    assert body["key"]["dsn"] == f"https://{key.public_key}@console.example.com/{source.pk}"
    assert body["key"]["usable"] is True


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "Checkout service"}, "name"),  # taken by the `source` fixture
        ({"name": "Other", "slug": "checkout-service"}, "slug"),
        ({"name": "Other", "slug": "not a slug"}, "slug"),
        ({"name": "日本"}, "slug"),  # nothing to make a slug of
        ({"name": "Other", "environments": [""]}, "environments.0"),
        ({"name": "Other", "environments": "production"}, "environments"),
        ({"name": "Other", "rate_limit_per_minute": -1}, "rate_limit_per_minute"),
        ({"name": "Other", "rate_limit_per_minute": 10**30}, "rate_limit_per_minute"),
        ({"name": "bad\x00name"}, "name"),
        ({}, "name"),
    ],
)
def test_a_source_that_cannot_be_created_is_refused_naming_the_field(api_as, source, body, field):
    response = post_json(api_as("admin"), SOURCES, body)

    assert response.status_code == 400, response.content
    assert response.json()["field"] == field
    assert list(Source.objects.values_list("name", flat=True)) == ["Checkout service"]
    assert IngestKey.objects.count() == 1


def test_an_admin_lists_reads_and_changes_a_source(api_as, source):
    admin = api_as("admin")
    url = f"{SOURCES}{source.pk}/"

    assert [row["slug"] for row in admin.get(SOURCES).json()["results"]] == ["checkout-service"]
    assert admin.get(url).json()["name"] == "Checkout service"
    response = patch_json(
        admin,
        url,
        {"name": "Checkout", "environments": ["prod", "staging"], "rate_limit_per_minute": 0, "is_active": False},
    )

    assert response.status_code == 200, response.content
    assert response.json()["effective_rate_limit"] == 0
    source.refresh_from_db()
    assert (source.name, source.environments, source.rate_limit_per_minute, source.is_active) == (
        "Checkout",
        ["prod", "staging"],
        0,
        False,
    )
    assert source.slug == "checkout-service"  # the slug is the source's name in URLs and filters: it stays


def test_a_patch_that_would_make_a_source_invalid_changes_nothing(api_as, source):
    services.source_create(name="Billing")

    response = patch_json(api_as("admin"), f"{SOURCES}{source.pk}/", {"is_active": False, "name": "Billing"})

    assert response.status_code == 400
    assert response.json()["field"] == "name"
    source.refresh_from_db()
    assert (source.name, source.is_active) == ("Checkout service", True)


def test_sources_filter_by_activity_and_refuse_unknown_filters(api_as, source):
    other, _key = services.source_create(name="Billing")
    Source.objects.filter(pk=other.pk).update(is_active=False)
    admin = api_as("admin")

    assert [row["id"] for row in admin.get(SOURCES, {"is_active": "false"}).json()["results"]] == [other.pk]
    assert [row["id"] for row in admin.get(SOURCES, {"slug": "checkout-service"}).json()["results"]] == [source.pk]
    refused = admin.get(SOURCES, {"owner": "me"})
    assert (refused.status_code, refused.json()["field"]) == (400, "owner")


@pytest.mark.parametrize("role", ["viewer", "triager"])
def test_other_roles_get_403_on_the_source_list_and_404_on_anything_under_a_source(api_as, source, role):
    client = api_as(role)
    key = source.keys.get()

    assert client.get(SOURCES).status_code == 403
    assert post_json(client, SOURCES, {"name": "Mine"}).status_code == 403
    assert client.get(f"{SOURCES}{source.pk}/").status_code == 404
    assert patch_json(client, f"{SOURCES}{source.pk}/", {"is_active": False}).status_code == 404
    assert client.get(keys_url(source)).status_code == 404
    assert post_json(client, keys_url(source), {"label": "mine"}).status_code == 404
    assert post_json(client, f"{keys_url(source)}{key.pk}/rotate/", {}).status_code == 404
    assert post_json(client, f"{keys_url(source)}{key.pk}/revoke/", {}).status_code == 404
    source.refresh_from_db()
    key.refresh_from_db()
    assert source.is_active and key.is_usable()
    assert list(Source.objects.values_list("name", flat=True)) == ["Checkout service"]


def test_a_client_without_credentials_is_asked_to_authenticate(client, source):
    assert client.get(keys_url(source)).status_code == 401
    assert client.get(SOURCES).status_code == 401


# Keys


def test_an_admin_adds_a_key_and_lists_the_sources_keys_newest_first(api_as, source):
    admin = api_as("admin")

    created = post_json(admin, keys_url(source), {"label": "worker"})

    assert created.status_code == 201, created.content
    assert created.json()["label"] == "worker"
    listed = admin.get(keys_url(source)).json()["results"]
    assert [row["label"] for row in listed] == ["worker", "initial"]
    assert all(row["public_key"] in row["dsn"] and row["usable"] for row in listed)
    assert set(listed[0]) == {"id", "label", "public_key", "dsn", "usable", "created_at", "expires_at", "revoked_at"}


def test_rotating_a_key_issues_a_new_one_and_lets_the_old_one_work_for_the_grace_period(api_as, source):
    old = source.keys.get()

    response = post_json(api_as("admin"), f"{keys_url(source)}{old.pk}/rotate/", {"grace_hours": 2})

    assert response.status_code == 201, response.content
    new = IngestKey.objects.get(pk=response.json()["key"]["id"])
    old.refresh_from_db()
    assert new.source == source and new.is_usable()
    assert old.is_usable()
    assert abs(old.expires_at - (timezone.now() + timedelta(hours=2))) < timedelta(minutes=1)
    assert response.json()["previous"]["expires_at"] is not None


def test_rotating_with_no_grace_stops_the_old_key_at_once(api_as, source):
    old = source.keys.get()

    response = post_json(api_as("admin"), f"{keys_url(source)}{old.pk}/rotate/", {"grace_hours": 0})

    assert response.status_code == 201
    old.refresh_from_db()
    assert not old.is_usable()
    assert response.json()["previous"]["usable"] is False


def test_revoking_a_key_stops_it_and_a_revoked_key_cannot_be_rotated(api_as, source):
    key = source.keys.get()
    admin = api_as("admin")

    revoked = post_json(admin, f"{keys_url(source)}{key.pk}/revoke/", {})

    assert revoked.status_code == 200
    assert revoked.json()["usable"] is False and revoked.json()["revoked_at"]
    key.refresh_from_db()
    assert not key.is_usable()
    refused = post_json(admin, f"{keys_url(source)}{key.pk}/rotate/", {})
    assert (refused.status_code, refused.json()["field"]) == (409, "key")
    assert source.keys.count() == 1


@pytest.mark.parametrize("grace_hours", [-1, 721, "a day"])
def test_a_rotation_grace_must_be_from_0_to_720_hours(api_as, source, grace_hours):
    key = source.keys.get()

    response = post_json(api_as("admin"), f"{keys_url(source)}{key.pk}/rotate/", {"grace_hours": grace_hours})

    assert (response.status_code, response.json()["field"]) == (400, "grace_hours")
    key.refresh_from_db()
    assert key.expires_at is None
    assert source.keys.count() == 1


def test_a_key_is_only_reached_under_its_own_source(api_as, source):
    _other, other_key = services.source_create(name="Billing")
    admin = api_as("admin")

    assert admin.get(f"{keys_url(source)}{other_key.pk}/").status_code == 404
    assert post_json(admin, f"{keys_url(source)}{other_key.pk}/revoke/", {}).status_code == 404
    assert admin.get(f"{SOURCES}{10**30}/keys/").status_code == 404
    assert admin.get(f"{SOURCES}abc/keys/").status_code == 404
    other_key.refresh_from_db()
    assert other_key.is_usable()
