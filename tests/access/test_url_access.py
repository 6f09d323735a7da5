"""Every URL in the URLconf, asked as anonymous, an ingest key, a viewer, a triager and an admin.

Each route has an expected minimum credential; the walk fails for a route without one, so a
new URL cannot ship without saying who may call it. Below the minimum the answer is 401
(no usable credentials) or 403 (a role too low; 404 for objects a role may not even read);
at or above it, anything but 401/403/404 and never a 5xx.
"""

import json

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.test import APIClient

from incidents.models import AlertRule, ErrorEvent, Incident, Notification, NotificationChannel, Silence
from resilience.models import Breaker
from tests.api_support import token_client, user_with_role
from tests.factories import firing_alert
from tests.support import native_event

# The breaker switches record transitions through the console runtime: in the test's transaction
# (console_inline), as it makes them.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("console_inline")]

CREDENTIALS = ("anonymous", "ingest key", "viewer", "triager", "admin")
RANK = {"viewer": 1, "triager": 2, "admin": 3}

# route name -> [(method, who may call it)]: "public", "ingest" (ingest keys only), or a role.
EXPECTED = {
    "ingest-envelope": [("post", "ingest")],
    "ingest-store": [("post", "ingest")],
    "heartbeat": [("post", "ingest")],
    "report": [("post", "ingest")],
    "resilience-config": [("get", "ingest")],
    "resilience-transitions": [("post", "ingest")],
    "resilience-windows": [("post", "ingest")],
    "event-list": [("get", "viewer"), ("post", "ingest")],
    "event-detail": [("get", "viewer")],
    "summary": [("get", "viewer")],
    "stats": [("get", "viewer")],
    "notifications": [("get", "viewer")],
    "acknowledge": [("post", "triager")],
    "incident-list": [("get", "viewer")],
    "incident-detail": [("get", "viewer")],
    "incident-acknowledge": [("post", "triager")],
    "incident-resolve": [("post", "triager")],
    "incident-reopen": [("post", "triager")],
    "incident-mute": [("post", "triager")],
    "alert-rule-list": [("get", "viewer"), ("post", "admin")],
    "alert-rule-detail": [("get", "viewer"), ("patch", "admin")],
    "alert-list": [("get", "viewer")],
    "alert-detail": [("get", "viewer")],
    "alert-acknowledge": [("post", "triager")],
    "alert-resolve": [("post", "triager")],
    "alert-silence": [("post", "triager")],
    "silence-list": [("get", "viewer"), ("post", "triager")],
    "silence-detail": [("get", "viewer"), ("patch", "triager")],
    "notification-channel-list": [("get", "admin")],
    "notification-channel-detail": [("get", "admin")],
    "notification-log-list": [("get", "admin")],
    "notification-log-detail": [("get", "admin")],
    "source-list": [("get", "admin"), ("post", "admin")],
    "source-detail": [("get", "admin"), ("patch", "admin")],
    "source-key-list": [("get", "admin"), ("post", "admin")],
    "source-key-detail": [("get", "admin")],
    "source-key-rotate": [("post", "admin")],
    "source-key-revoke": [("post", "admin")],
    "circuit-breaker-list": [("get", "viewer")],
    "circuit-breaker-detail": [("get", "viewer"), ("patch", "admin")],
    "circuit-breaker-force-open": [("post", "admin")],
    "circuit-breaker-force-closed": [("post", "admin")],
    "circuit-breaker-reset": [("post", "admin")],
    "circuit-breaker-auto": [("post", "admin")],
    "rate-limit-status": [("get", "viewer")],
    "system-health": [("get", "viewer")],
    "retention": [("get", "viewer"), ("patch", "admin")],
    "degradation-mode": [("get", "viewer")],
    "schema": [("get", "viewer")],
    "swagger-ui": [("get", "viewer")],
    "metrics": [("get", "admin")],
    "healthz": [("get", "public")],
    "readyz": [("get", "public")],
}
# Objects outside a role's reach answer 404 (they may not even be seen to exist).
HIDDEN_BELOW_ROLE = {
    "source-detail",
    "source-key-list",
    "source-key-detail",
    "source-key-rotate",
    "source-key-revoke",
    "notification-channel-detail",
    "notification-log-detail",
}
# /readyz answers 503 while no worker cluster runs, as in this test: a deliberate answer, not a failure.
DELIBERATE_503 = {"readyz"}


# Pages for people: a login session, never a token (walked by tests/access/test_admin_access.py).
SESSION_PAGES = {"dashboard": "/"}


def route_names(patterns=None, prefix="") -> list[str]:
    """Every named route outside the admin site (walked separately)."""
    names = []
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            if str(pattern.pattern) != "admin/":
                names += route_names(pattern.url_patterns)
        elif isinstance(pattern, URLPattern):
            names.append(pattern.name)
    return names


def test_every_route_says_who_may_call_it():
    names = route_names()
    assert None not in names, "every route needs a name"
    assert sorted(set(names) - set(EXPECTED) - set(SESSION_PAGES)) == []
    assert sorted(set(EXPECTED) - set(names)) == []


@pytest.fixture
def world(client, source, ingest_key, digest, django_user_model):
    """One of everything the routes name, and a client per credential."""
    body = json.dumps(native_event())
    client.post(
        "/api/v1/events/", body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {ingest_key.public_key}"
    )
    digest()
    channel = NotificationChannel.objects.create(
        name="ops", kind="webhook", config={"url": "https://hooks.example.com/o"}
    )
    rule = AlertRule.objects.create(name="walk", warning_threshold=3)
    rule.channels.add(channel)
    alert = firing_alert(rule)
    Breaker.objects.create(name="payments-api")
    ingest_client = APIClient()
    ingest_client.credentials(
        HTTP_AUTHORIZATION=f"Bearer {ingest_key.public_key}",
        HTTP_X_SENTRY_AUTH=f"Sentry sentry_key={ingest_key.public_key}, sentry_version=7",  # the Sentry routes' way
    )
    clients = {"anonymous": APIClient(), "ingest key": ingest_client}
    clients.update({role: token_client(user_with_role(django_user_model, role)) for role in RANK})
    ids = {
        "incident": Incident.objects.get().pk,
        "event": ErrorEvent.objects.get().pk,
        "rule": rule.pk,
        "alert": alert.pk,
        "silence": Silence.objects.create(
            comment="walk", created_by="test", ends_at=alert.fired_at.replace(year=2100)
        ).pk,
        "channel": channel.pk,
        "notification": Notification.objects.filter(alert=alert).first().pk,
        "source": source.pk,
        "key": ingest_key.pk,
        "slug": source.slug,
    }
    return clients, ids


def url_of(name: str, ids: dict) -> str:
    kwargs = {
        "ingest-envelope": {"source_id": ids["source"]},
        "ingest-store": {"source_id": ids["source"]},
        "acknowledge": {"incident_id": ids["incident"]},
        "event-detail": {"pk": ids["event"]},
        "alert-rule-detail": {"pk": ids["rule"]},
        "alert-detail": {"pk": ids["alert"]},
        "silence-detail": {"pk": ids["silence"]},
        "notification-channel-detail": {"pk": ids["channel"]},
        "notification-log-detail": {"pk": ids["notification"]},
        "source-detail": {"pk": ids["source"]},
        "source-key-list": {"source_id": ids["source"]},
    }.get(name)
    if name.startswith("incident-") and name != "incident-list":
        kwargs = {"pk": ids["incident"]}
    elif name.startswith("alert-") and name not in ("alert-list", "alert-rule-list", "alert-rule-detail"):
        kwargs = {"pk": ids["alert"]}
    elif name.startswith("source-key-") and name != "source-key-list":
        kwargs = {"source_id": ids["source"], "pk": ids["key"]}
    elif name.startswith("circuit-breaker-") and name != "circuit-breaker-list":
        kwargs = {"name": "payments-api"}
    url = reverse(name, kwargs=kwargs)
    return url + f"?source={ids['slug']}" if name == "rate-limit-status" else url


def allowed(requirement: str, credential: str) -> bool:
    if requirement == "public":
        return True
    if requirement == "ingest":
        return credential == "ingest key"
    return RANK.get(credential, 0) >= RANK[requirement]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_route_answers_each_credential_as_expected(world, name):
    clients, ids = world
    url = url_of(name, ids)
    for method, requirement in EXPECTED[name]:
        for credential in CREDENTIALS:
            call = getattr(clients[credential], method)
            response = call(url) if method == "get" else call(url, "{}", content_type="application/json")
            status = response.status_code
            where = f"{method.upper()} {url} as {credential}: {status}"
            assert status < 500 or (status == 503 and name in DELIBERATE_503), where
            if allowed(requirement, credential):
                assert status not in (401, 403, 404), where
            elif credential in ("anonymous", "ingest key") or requirement == "ingest":
                assert status == 401, where
            elif name in HIDDEN_BELOW_ROLE:
                assert status == 404, where
            else:
                assert status == 403, where


@pytest.mark.parametrize("url", ["/admin/", *SESSION_PAGES.values()])
def test_the_admin_site_and_the_dashboard_want_a_session_whatever_token_is_sent(world, url):
    clients, _ = world
    for credential in CREDENTIALS:
        response = clients[credential].get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"], credential


def test_the_dashboard_opens_for_a_viewers_session_and_not_for_a_user_without_a_role(world, client, django_user_model):
    client.force_login(django_user_model.objects.get(username="viewer-user"))
    page = client.get("/")
    assert page.status_code == 200 and b'id="live-status"' in page.content
    client.force_login(user_with_role(django_user_model, "none"))
    assert client.get("/").status_code == 403
