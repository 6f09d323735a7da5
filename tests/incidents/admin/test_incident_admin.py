"""The admin: browsing incidents and events, triage through services, sources and their keys."""

import re
import uuid
from datetime import datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from incidents import services
from incidents.ingest import pipeline
from incidents.ingest.normalize import normalize_native_event
from incidents.models import ErrorEvent, Incident, IncidentActivity, IncidentHour, IngestKey, Source
from incidents.selectors import EstimatedCountPaginator
from tests.support import message_texts, native_event

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:incidents_incident_changelist")


def failure(function: str, value: str = "card declined", **fields) -> dict:
    """A native event whose exception has an in-app frame with source context under a library frame."""
    return native_event(
        exception={
            "type": "ValueError",
            "value": value,
            "module": "builtins",
            "stacktrace": {
                "frames": [
                    {
                        "filename": "django/core/handlers/base.py",
                        "module": "django.core.handlers.base",
                        "function": "_get_response",
                        "lineno": 197,
                        "context_line": "response = wrapped_callback(request, *callback_args, **callback_kwargs)",
                        "in_app": False,
                    },
                    {
                        "filename": "app/payments.py",
                        "module": "app.payments",
                        "function": function,
                        "lineno": 42,
                        "pre_context": ["def " + function + "(order):", "    amount = order.total"],
                        "context_line": "    raise ValueError(f'card declined for {order.id}')",
                        "post_context": ["", "def refund(order):"],
                        "in_app": True,
                    },
                ]
            },
        },
        **fields,
    )


def store(source, *raw_events, received_at: datetime | None = None) -> None:
    now = received_at or timezone.now()
    events = [normalize_native_event(raw, received_at=now) for raw in raw_events]
    pipeline.events_store(source=source, events=events, received_at=now)


def change_url(incident) -> str:
    return reverse("admin:incidents_incident_change", args=[incident.pk])


def transition_url(incident, action: str) -> str:
    return reverse("admin:incidents_incident_transition", args=[incident.pk, action])


def listed_incident_ids(response) -> set[int]:
    return {int(pk) for pk in re.findall(r'/admin/incidents/incident/(\d+)/change/[?"]', response.content.decode())}


@pytest.fixture
def other_source(db):
    created, _key = services.source_create(name="Billing", environments=["staging"])
    return created


@pytest.fixture
def two_incidents(source, other_source, digest):
    """A regressed production incident in one source and an acknowledged critical staging one in another."""
    store(source, failure("charge", "card declined"))
    store(other_source, failure("refund", "refund too large", level="fatal", environment="staging"))
    digest()
    regressed = Incident.objects.get(source=source)
    services.incident_resolve(incident=regressed, by="user:setup")
    store(source, failure("charge", "card declined"))
    digest()
    acknowledged = Incident.objects.get(source=other_source)
    services.incident_acknowledge(incident=acknowledged, by="user:setup")
    regressed.refresh_from_db()
    assert (regressed.status, regressed.regressed) == ("open", True)
    return regressed, acknowledged


def many_incidents(source, digest, count: int, start: int = 0) -> None:
    store(source, *[failure(f"step_{i}", f"failure {i}") for i in range(start, start + count)])
    digest()


# The incident list


@pytest.mark.parametrize(
    "case",
    ["nothing", "status", "severity", "category", "source", "environment", "regressed", "year", "text", "fingerprint"],
)
def test_the_incident_list_narrows_by_each_filter_and_search(admin_client, two_incidents, case):
    regressed, acknowledged = two_incidents
    year = regressed.last_seen.year
    cases = {
        "nothing": ({}, {regressed.pk, acknowledged.pk}),
        "status": ({"status__exact": "acknowledged"}, {acknowledged.pk}),
        "severity": ({"severity__exact": str(acknowledged.severity)}, {acknowledged.pk}),
        "category": ({"category__exact": regressed.category}, {regressed.pk, acknowledged.pk}),
        "source": ({"source__id__exact": str(regressed.source_id)}, {regressed.pk}),
        "environment": ({"environment": "staging"}, {acknowledged.pk}),
        "regressed": ({"regressed__exact": "1"}, {regressed.pk}),
        "year": ({"last_seen__year": str(year - 1)}, set()),
        "text": ({"q": "declined"}, {regressed.pk}),
        "fingerprint": ({"q": acknowledged.fingerprint}, {acknowledged.pk}),
    }
    assert acknowledged.severity != regressed.severity
    params, expected = cases[case]
    response = admin_client.get(CHANGELIST, params)
    assert response.status_code == 200
    assert listed_incident_ids(response) == expected


def test_the_environment_filter_offers_the_environments_incidents_were_seen_in(admin_client, two_incidents):
    response = admin_client.get(CHANGELIST)
    content = response.content.decode()
    assert "?environment=production" in content
    assert "?environment=staging" in content


def test_the_incident_list_shows_badges_counts_and_the_regressed_marker(admin_client, two_incidents):
    _regressed, acknowledged = two_incidents
    content = admin_client.get(CHANGELIST).content.decode()
    assert f'<span class="sev-badge sev-{acknowledged.get_severity_display().lower()}">' in content
    assert '<span class="status-badge status-acknowledged">' in content
    assert content.count("↩ regressed") == 1
    assert '<td class="field-event_count">2</td>' in content


def test_the_incident_list_runs_the_same_queries_for_5_and_for_50_incidents(admin_client, source, digest):
    def queries_for_list() -> int:
        with CaptureQueriesContext(connection) as queries:
            response = admin_client.get(CHANGELIST, {"environment": "production"})
        assert response.status_code == 200
        return len(queries), len(listed_incident_ids(response))

    many_incidents(source, digest, 5)
    few_queries, few_rows = queries_for_list()
    many_incidents(source, digest, 45, start=5)
    many_queries, many_rows = queries_for_list()
    assert (few_rows, many_rows) == (5, 50)
    assert few_queries == many_queries
    assert many_queries <= 12


def test_the_sparkline_draws_the_hourly_rollups_of_the_last_day(admin_client, source, digest):
    now = timezone.now()
    earlier = now - timedelta(hours=5)
    long_ago = now - timedelta(hours=30)
    store(
        source,
        *[failure("charge", timestamp=now.timestamp()) for _ in range(3)],
        *[failure("charge", timestamp=earlier.timestamp()) for _ in range(2)],
        failure("charge", timestamp=long_ago.timestamp()),
    )
    digest()
    incident = Incident.objects.get()
    # The bars come from the rollup, not from the events: a changed rollup shows.
    earlier_hour = earlier.replace(minute=0, second=0, microsecond=0)
    rollup = IncidentHour.objects.filter(
        incident=incident, hour__gte=earlier_hour, hour__lt=earlier_hour + timedelta(hours=1)
    )
    assert rollup.update(count=7) == 1
    content = admin_client.get(CHANGELIST).content.decode()
    start_text, counts_text = re.search(r'data-start="([^"]+)" data-counts="([\d,]+)"', content).groups()
    start, counts = datetime.fromisoformat(start_text), [int(n) for n in counts_text.split(",")]

    def bar(moment: datetime) -> int:
        return int((moment.replace(minute=0, second=0, microsecond=0) - start) // timedelta(hours=1))

    assert len(counts) == 24
    assert counts[bar(now)] == 3
    assert counts[bar(earlier)] == 7
    assert sum(counts) == 10  # the event 30 hours ago is outside the window


# Bulk actions


@pytest.mark.parametrize(
    "action, changed_from, skipped_from, expected_status, skip_reason",
    [
        ("acknowledge", "open", "resolved", "acknowledged", "an incident that is resolved"),
        ("resolve", "acknowledged", "resolved", "resolved", "an incident that is resolved"),
        ("mute_1h", "open", "resolved", "muted", "an incident that is resolved"),
        ("mute_24h", "acknowledged", "muted", "muted", "an incident that is muted"),
        ("reopen", "resolved", "open", "open", "an incident that is open"),
    ],
)
def test_each_bulk_action_changes_status_through_the_service_and_reports_skips(
    admin_client, admin_user, source, digest, action, changed_from, skipped_from, expected_status, skip_reason
):
    many_incidents(source, digest, 2)
    target, other = Incident.objects.order_by("pk")
    setup = {
        "open": lambda incident: None,
        "acknowledged": lambda incident: services.incident_acknowledge(incident=incident, by="user:setup"),
        "resolved": lambda incident: services.incident_resolve(incident=incident, by="user:setup"),
        "muted": lambda incident: services.incident_mute(incident=incident, by="user:setup", duration=timedelta(1)),
    }
    setup[changed_from](target)
    setup[skipped_from](other)
    before = IncidentActivity.objects.filter(incident=other).count()

    response = admin_client.post(CHANGELIST, {"action": action, "_selected_action": [target.pk, other.pk]}, follow=True)

    target.refresh_from_db()
    other.refresh_from_db()
    assert target.status == expected_status
    assert other.status == skipped_from
    entry = IncidentActivity.objects.filter(incident=target).first()
    assert (entry.actor, entry.user, entry.from_status, entry.to_status) == (
        "user:admin",
        admin_user,
        changed_from,
        expected_status,
    )
    assert IncidentActivity.objects.filter(incident=other).count() == before
    [text] = message_texts(response)
    assert "1 changed, 1 skipped" in text
    assert skip_reason in text


def test_muting_for_an_hour_from_the_list_sets_the_end_an_hour_ahead(admin_client, source, digest):
    many_incidents(source, digest, 1)
    incident = Incident.objects.get()
    admin_client.post(CHANGELIST, {"action": "mute_1h", "_selected_action": [incident.pk]})
    incident.refresh_from_db()
    assert timedelta(minutes=59) < incident.muted_until - timezone.now() <= timedelta(hours=1)


def test_a_bulk_action_on_allowed_incidents_reports_no_skips(admin_client, source, digest):
    many_incidents(source, digest, 3)
    ids = list(Incident.objects.values_list("pk", flat=True))
    response = admin_client.post(CHANGELIST, {"action": "resolve", "_selected_action": ids}, follow=True)
    assert message_texts(response) == ["Resolved: 3 changed, 0 skipped."]
    assert set(Incident.objects.values_list("status", flat=True)) == {"resolved"}


# The incident page


@pytest.fixture
def busy_incident(source, digest):
    """An incident with 30 events received at distinct times, acknowledged by a person."""
    base = timezone.now() - timedelta(minutes=30)
    for i in range(30):
        store(source, failure("charge", release=f"1.0.{i}"), received_at=base + timedelta(minutes=i))
    digest()
    incident = Incident.objects.get()
    services.incident_acknowledge(incident=incident, by="user:carol")
    return incident


def event_links(content: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'/admin/incidents/errorevent/(\d+)/change/[?"]', content)]


def test_the_incident_page_shows_the_header_and_the_timeline_newest_first(admin_client, busy_incident):
    content = admin_client.get(change_url(busy_incident)).content.decode()
    assert busy_incident.fingerprint in content
    assert busy_incident.culprit in content
    assert "<td>30</td>" in content
    timeline = content[content.index("Timeline") :]
    assert timeline.index("user:carol") < timeline.index("system:digest")
    assert "open &rarr; acknowledged" in timeline


def test_the_incident_page_renders_the_latest_stack_trace_readably(admin_client, busy_incident):
    content = admin_client.get(change_url(busy_incident)).content.decode()
    trace = content[content.index("Latest stack trace") : content.index("Recent events")]
    assert "ValueError</span>: <span" in trace
    assert "app/payments.py:42" in trace
    assert '<code class="frame-function">charge</code>' in trace
    assert "raise ValueError(f&#x27;card declined for {order.id}&#x27;)" in trace
    assert "amount = order.total" in trace  # pre-context
    # The application's frame is highlighted; the framework's is folded away.
    assert trace.index('class="frame library"') < trace.index("<details>") < trace.index('class="frame in-app"')
    latest = ErrorEvent.objects.order_by("-received_at", "-id").first()
    assert f"/admin/incidents/errorevent/{latest.pk}/change/" in trace


def test_the_incident_page_pages_through_recent_events_newest_first(admin_client, busy_incident):
    newest_first = list(ErrorEvent.objects.order_by("-received_at", "-id").values_list("pk", flat=True))
    first = admin_client.get(change_url(busy_incident)).content.decode()
    section = first[first.index("Recent events") : first.index("Timeline")]
    assert event_links(section) == newest_first[:25]
    assert "?page=2" in section
    second = admin_client.get(change_url(busy_incident), {"page": 2}).content.decode()
    section = second[second.index("Recent events") : second.index("Timeline")]
    assert event_links(section) == newest_first[25:]
    assert "?page=3" not in section
    assert "?page=1" in section


def test_the_incident_page_does_not_count_events_or_query_per_row(admin_client, busy_incident):
    with CaptureQueriesContext(connection) as queries:
        admin_client.get(change_url(busy_incident))
    statements = [query["sql"] for query in queries.captured_queries]
    assert not [sql for sql in statements if "COUNT(" in sql.upper()]
    assert len(statements) <= 10


# The incident page's buttons


def test_a_button_changes_status_and_comes_back_to_the_incident(admin_client, admin_user, busy_incident):
    response = admin_client.post(transition_url(busy_incident, "resolve"))
    assert response.status_code == 302
    assert response["Location"] == change_url(busy_incident)
    busy_incident.refresh_from_db()
    assert busy_incident.status == "resolved"
    entry = busy_incident.activities.first()
    assert (entry.kind, entry.actor, entry.user) == ("resolved", "user:admin", admin_user)
    page = admin_client.get(change_url(busy_incident))
    assert message_texts(page) == ["Resolved."]


def test_a_button_that_does_not_apply_changes_nothing_and_says_why(admin_client, busy_incident):
    response = admin_client.post(transition_url(busy_incident, "acknowledge"), follow=True)
    busy_incident.refresh_from_db()
    assert busy_incident.status == "acknowledged"
    [text] = message_texts(response)
    assert text.startswith("Not changed: ")
    assert "an incident that is acknowledged" in text


def test_the_buttons_need_a_post(admin_client, busy_incident):
    response = admin_client.get(transition_url(busy_incident, "resolve"))
    assert response.status_code == 405
    busy_incident.refresh_from_db()
    assert busy_incident.status == "acknowledged"


def test_the_buttons_need_the_change_permission(client, busy_incident):
    viewer = get_user_model().objects.create_user("viewer", password="x", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_incident"))
    client.force_login(viewer)
    page = client.get(change_url(busy_incident))
    assert page.status_code == 200
    assert transition_url(busy_incident, "resolve") not in page.content.decode()
    assert client.post(transition_url(busy_incident, "resolve")).status_code == 403
    busy_incident.refresh_from_db()
    assert busy_incident.status == "acknowledged"


def test_the_buttons_check_the_csrf_token(busy_incident, admin_user):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(admin_user)
    assert strict.post(transition_url(busy_incident, "resolve")).status_code == 403
    busy_incident.refresh_from_db()
    assert busy_incident.status == "acknowledged"


def test_an_unknown_action_is_not_found(admin_client, busy_incident):
    assert admin_client.post(transition_url(busy_incident, "delete")).status_code == 404


# Incidents and events are data, not editable records


def test_incidents_and_events_cannot_be_added_edited_or_deleted(admin_client, busy_incident):
    event = ErrorEvent.objects.first()
    for model in ("incident", "errorevent"):
        assert admin_client.get(reverse(f"admin:incidents_{model}_add")).status_code == 403
        changelist = admin_client.get(reverse(f"admin:incidents_{model}_changelist")).content.decode()
        assert 'value="delete_selected"' not in changelist
    assert admin_client.get(reverse("admin:incidents_incident_delete", args=[busy_incident.pk])).status_code == 403
    assert admin_client.get(reverse("admin:incidents_errorevent_delete", args=[event.pk])).status_code == 403
    response = admin_client.post(change_url(busy_incident), {"title": "edited", "status": "resolved"})
    assert response.status_code == 405
    busy_incident.refresh_from_db()
    assert (busy_incident.title, busy_incident.status) != ("edited", "resolved")


# Events


def test_the_event_page_shows_everything_the_client_sent(admin_client, source, digest):
    store(
        source,
        failure(
            "charge",
            message="payment failed for order",
            tags={"region": "eu-west-1"},
            user={"id": "u-17", "email": "buyer@example.com"},
            request={"url": "https://shop.example.com/pay", "method": "POST"},
            release="2.4.0",
        ),
    )
    digest()
    event = ErrorEvent.objects.get()
    response = admin_client.get(reverse("admin:incidents_errorevent_change", args=[event.pk]))
    assert response.status_code == 200
    content = response.content.decode()
    assert str(event.event_id) in content
    assert "payment failed for order" in content
    assert "<th>region</th><td>eu-west-1</td>" in content
    assert "u-17" in content
    assert "https://shop.example.com/pay" in content
    assert '<code class="frame-function">charge</code>' in content
    assert event.error_type.code in content
    assert event.fingerprint in content
    assert change_url(event.incident) in content


def test_the_event_list_filters_by_source_and_finds_an_exact_event_id(admin_client, two_incidents):
    url = reverse("admin:incidents_errorevent_changelist")
    mine = ErrorEvent.objects.filter(source=two_incidents[0].source).first()
    theirs = ErrorEvent.objects.filter(source=two_incidents[1].source).get()

    def listed(params) -> set[int]:
        response = admin_client.get(url, params)
        assert response.status_code == 200
        return set(event_links(response.content.decode()))

    assert listed({}) == set(ErrorEvent.objects.values_list("pk", flat=True))
    assert listed({"source__id__exact": theirs.source_id}) == {theirs.pk}
    assert listed({"q": str(mine.event_id)}) == {mine.pk}
    assert listed({"q": "declined"}) == set()  # no scan over message text


def test_the_event_list_runs_the_same_queries_for_few_and_many_events(admin_client, source, digest):
    url = reverse("admin:incidents_errorevent_changelist")

    def queries_for_list() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get(url).status_code == 200
        return len(queries)

    many_incidents(source, digest, 3)
    few = queries_for_list()
    many_incidents(source, digest, 40, start=3)
    assert queries_for_list() == few


# Counting large lists


def test_the_paginator_counts_no_further_than_its_cap(source, digest):
    many_incidents(source, digest, 5)

    class Small(EstimatedCountPaginator):
        cap = 3

    paginator = Small(Incident.objects.filter(status="open").order_by("pk"), 2)
    assert paginator.count == 4
    assert paginator.count_display == "more than 3"
    exact = Small(Incident.objects.filter(pk__lt=0), 2)
    assert (exact.count, exact.count_display) == (0, "0")


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the planner's estimate exists on PostgreSQL only")
def test_the_paginator_takes_the_planners_estimate_for_a_whole_large_table(source, digest):
    many_incidents(source, digest, 6)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {ErrorEvent._meta.db_table}")

    class Small(EstimatedCountPaginator):
        cap = 2

    with CaptureQueriesContext(connection) as queries:
        paginator = Small(ErrorEvent.objects.order_by("-received_at", "-id"), 2)
        assert paginator.count == 6
    assert "pg_class" in queries.captured_queries[0]["sql"]
    assert paginator.count_display == "about 6"


# Sources and keys


def test_the_source_page_shows_each_keys_dsn(admin_client, source):
    key = source.keys.get()
    content = admin_client.get(reverse("admin:incidents_source_change", args=[source.pk])).content.decode()
    assert f'value="{key.dsn}"' in content
    assert key.dsn.startswith("http")


def test_adding_a_source_in_admin_gives_it_a_key(admin_client):
    response = admin_client.post(
        reverse("admin:incidents_source_add"),
        {
            "name": "Search API",
            "slug": "search-api",
            "is_active": "on",
            "rate_limit_per_minute": "",
            "environments": '["production"]',
            "keys-TOTAL_FORMS": "0",
            "keys-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()
    created = Source.objects.get(slug="search-api")
    assert created.environments == ["production"]
    assert [key.is_usable() for key in created.keys.all()] == [True]


def test_revoking_a_key_from_the_list_makes_it_unusable(admin_client, source):
    key = source.keys.get()
    response = admin_client.post(
        reverse("admin:incidents_ingestkey_changelist"), {"action": "revoke", "_selected_action": [key.pk]}
    )
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert not key.is_usable()


def test_rotating_a_key_adds_a_new_one_and_lets_the_old_one_expire(admin_client, source):
    old = source.keys.get()
    admin_client.post(
        reverse("admin:incidents_ingestkey_changelist"), {"action": "rotate", "_selected_action": [old.pk]}
    )
    old.refresh_from_db()
    new = source.keys.exclude(pk=old.pk).get()
    assert new.is_usable() and new.expires_at is None
    assert old.is_usable()
    assert timedelta(hours=23) < old.expires_at - timezone.now() <= timedelta(hours=24)


def test_rotating_a_sources_keys_skips_revoked_ones(admin_client, source):
    usable = source.keys.get()
    revoked = services.ingest_key_create(source=source, label="old")
    services.ingest_key_revoke(key=revoked)
    response = admin_client.post(
        reverse("admin:incidents_source_changelist"),
        {"action": "rotate_source_keys", "_selected_action": [source.pk]},
        follow=True,
    )
    assert source.keys.count() == 3
    usable.refresh_from_db()
    assert usable.expires_at is not None
    assert message_texts(response)[0].startswith("1 keys rotated, 1 skipped")


def test_key_values_cannot_be_edited_or_deleted(admin_client, source):
    key = source.keys.get()
    url = reverse("admin:incidents_ingestkey_change", args=[key.pk])
    page = admin_client.get(url).content.decode()
    assert 'name="public_key"' not in page
    admin_client.post(url, {"source": source.pk, "label": "edited", "revoked_at": "2020-01-01 00:00"})
    key.refresh_from_db()
    assert (key.label, key.revoked_at) == ("initial", None)
    assert admin_client.get(reverse("admin:incidents_ingestkey_delete", args=[key.pk])).status_code == 403


def test_adding_a_key_in_admin_issues_a_fresh_public_key(admin_client, source):
    response = admin_client.post(reverse("admin:incidents_ingestkey_add"), {"source": source.pk, "label": "ci"})
    assert response.status_code == 302
    added = IngestKey.objects.get(label="ci")
    assert re.fullmatch(r"[0-9a-f]{32}", added.public_key)
    assert added.public_key != source.keys.get(label="initial").public_key


# Catalog and rules


def test_the_catalog_and_the_rules_lists_render_with_their_filters(admin_client):
    errortypes = admin_client.get(reverse("admin:incidents_errortype_changelist"), {"transient__exact": "1"})
    assert errortypes.status_code == 200
    assert "NETWORK_TIMEOUT" in errortypes.content.decode()
    assert admin_client.get(reverse("admin:incidents_classificationrule_changelist")).status_code == 200


def test_a_rule_with_a_broken_pattern_is_refused_by_the_form(admin_client):
    from incidents.models import ClassificationRule, ErrorType

    response = admin_client.post(
        reverse("admin:incidents_classificationrule_add"),
        {
            "name": "broken",
            "position": "5",
            "enabled": "on",
            "message_pattern": "([unclosed",
            "context_match": "{}",
            "error_type": ErrorType.objects.get(code="NETWORK_TIMEOUT").pk,
        },
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert not ClassificationRule.objects.filter(name="broken").exists()


def test_event_ids_are_uuids_in_the_search(admin_client, source, digest):
    store(source, failure("charge"))
    digest()
    response = admin_client.get(reverse("admin:incidents_errorevent_changelist"), {"q": str(uuid.uuid4())})
    assert response.status_code == 200
    assert event_links(response.content.decode()) == []
