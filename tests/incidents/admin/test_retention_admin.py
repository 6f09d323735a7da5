"""The retention admin: the one policy, edited by admins and shown to every role, and the history of purges."""

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from incidents.models import ErrorEvent, Incident, PurgeRun, RetentionPolicy
from incidents.retention import partitions, purge
from tests.support import PURGING, store_received

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite_too]

ROLES = ("anonymous", "viewer", "triager", "admin", "superuser")
POLICY_LIST = reverse("admin:incidents_retentionpolicy_changelist")
POLICY = reverse("admin:incidents_retentionpolicy_change", args=[1])
RUNS = reverse("admin:incidents_purgerun_changelist")


@pytest.fixture
def clients(db, django_user_model) -> dict[str, Client]:
    """A logged-in staff client per role (the group's permissions as migrate gives them), and an anonymous one."""
    made = {"anonymous": Client()}
    for role in ROLES[1:]:
        if role == "superuser":
            user = django_user_model.objects.create_superuser("retention-superuser", password="unused-password")
        else:
            user = django_user_model.objects.create_user(f"retention-{role}", password="unused", is_staff=True)
            user.groups.add(Group.objects.get(name=role))
        made[role] = Client()
        made[role].force_login(user)
    return made


def form_of(policy: RetentionPolicy, **changes) -> dict:
    """The policy's change form as a browser posts it, with `changes` applied."""
    data = {}
    for name in (
        "event_days",
        "events_per_incident",
        "first_events_per_incident",
        "minute_rollup_days",
        "hour_rollup_days",
        "notification_days",
        "timeline_days",
        "transition_days",
        "window_report_days",
    ):
        value = changes.get(name, getattr(policy, name))
        data[name] = "" if value is None else str(value)
    if changes.get("delete_expired_incidents", policy.delete_expired_incidents):
        data["delete_expired_incidents"] = "on"
    return data


def test_the_policy_list_opens_the_one_policy_for_every_role(clients):
    assert clients["anonymous"].get(POLICY_LIST)["Location"].startswith(reverse("admin:login"))
    for role in ROLES[1:]:
        response = clients[role].get(POLICY_LIST)
        assert response.status_code == 302 and response["Location"] == POLICY, role


def test_viewers_and_triagers_see_the_policy_read_only_and_their_posts_are_refused(clients):
    before = RetentionPolicy.current()
    for role in ("viewer", "triager"):
        page = clients[role].get(POLICY)
        assert page.status_code == 200, role
        content = page.content.decode()
        assert 'name="event_days"' not in content and "Table sizes" in content, role
        assert clients[role].post(POLICY, form_of(before, event_days=3)).status_code == 403, role
    assert RetentionPolicy.current().event_days == before.event_days
    assert clients["anonymous"].get(POLICY)["Location"].startswith(reverse("admin:login"))


@PURGING
@pytest.mark.parametrize("role", ["admin", "superuser"])
def test_the_admin_group_and_superusers_change_the_policy_and_the_next_estimate_uses_it(clients, source, role):
    store_received(source, days_ago=10)
    assert expiring_events() == 0  # kept 30 days by default
    page = clients[role].get(POLICY)
    assert 'name="event_days"' in page.content.decode()
    response = clients[role].post(POLICY, form_of(RetentionPolicy.current(), event_days=7, events_per_incident=""))
    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    policy = RetentionPolicy.current()
    assert (policy.event_days, policy.events_per_incident) == (7, None)
    assert expiring_events() > 0


def expiring_events() -> int:
    """Events the next purge would remove (in whole partitions or as rows), by its estimate."""
    found = {step.key: removed for step, removed in purge.estimate()}
    return sum(found[key].rows for key in ("event_partitions", "events") if key in found)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("event_days", "0", "must be from 1 to 3650 days"),
        ("hour_rollup_days", "30", "must be at least 90 days"),
        ("minute_rollup_days", "1", "must be at least 2 days"),
        ("events_per_incident", "9", "must be at least 10"),
        ("first_events_per_incident", "200", "must be from 0 to 100"),
    ],
)
def test_an_invalid_value_is_refused_on_its_own_field_and_nothing_is_saved(clients, field, value, message):
    before = RetentionPolicy.current()
    response = clients["admin"].post(POLICY, form_of(before, **{field: value}, timeline_days=99))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == [field] and any(message in text for text in errors[field]), errors
    after = RetentionPolicy.current()
    assert (getattr(after, field), after.timeline_days) == (getattr(before, field), before.timeline_days)


def test_no_role_may_add_or_delete_the_policy_or_add_change_or_delete_a_purge_run(clients):
    run = PurgeRun.objects.create(trigger="command", status=PurgeRun.Status.FINISHED, finished_at=timezone.now())
    refused = [
        reverse("admin:incidents_retentionpolicy_add"),
        reverse("admin:incidents_retentionpolicy_delete", args=[1]),
        reverse("admin:incidents_purgerun_add"),
        reverse("admin:incidents_purgerun_delete", args=[run.pk]),
    ]
    for role in ROLES[1:]:
        for url in refused:
            assert clients[role].get(url).status_code == 403, (role, url)
            assert clients[role].post(url, {"post": "yes"}).status_code == 403, (role, url)
        change = reverse("admin:incidents_purgerun_change", args=[run.pk])
        assert clients[role].post(change, {"trigger": "edited"}).status_code == 403, role
    assert RetentionPolicy.objects.filter(pk=1).exists()
    assert PurgeRun.objects.get().trigger == "command"


def test_every_role_may_read_the_purge_history(clients):
    run = PurgeRun.objects.create(trigger="schedule", status=PurgeRun.Status.PARTIAL, finished_at=timezone.now())
    for role in ROLES[1:]:
        assert clients[role].get(RUNS).status_code == 200, role
        assert clients[role].get(reverse("admin:incidents_purgerun_change", args=[run.pk])).status_code == 200, role
    assert clients["anonymous"].get(RUNS)["Location"].startswith(reverse("admin:login"))


def test_an_admin_sets_a_sources_event_retention_and_an_invalid_one_is_refused_on_the_field(clients, source):
    change = reverse("admin:incidents_source_change", args=[source.pk])
    form = {
        "name": source.name,
        "slug": source.slug,
        "is_active": "on",
        "rate_limit_per_minute": "",
        "environments": "[]",
        "keys-TOTAL_FORMS": "0",
        "keys-INITIAL_FORMS": "0",
    }
    refused = clients["admin"].post(change, {**form, "event_retention_days": "0"})
    assert refused.status_code == 200 and list(refused.context["adminform"].form.errors) == ["event_retention_days"]
    assert clients["admin"].post(change, {**form, "event_retention_days": "7"}).status_code == 302
    source.refresh_from_db()
    assert RetentionPolicy.current().event_days_for(source) == 7


@PURGING
def test_after_a_purge_the_policy_page_shows_sizes_oldest_events_and_the_last_purge(clients, source):
    store_received(source, days_ago=40, count=3, fingerprint="old")
    store_received(source, days_ago=1, fingerprint="new")
    record = purge.run(trigger="command", pause=0)
    step = "event_partitions" if partitions.enabled() else "events"
    assert record.status == PurgeRun.Status.FINISHED and record.removed[step] == 3
    content = clients["viewer"].get(POLICY).content.decode()
    assert "incidents_errorevent" in content and "incident hour rollups" in content
    oldest = ErrorEvent.objects.get().received_at
    assert f"{oldest:%Y-%m-%d %H:%M:%S} UTC (1\xa0day ago)" in content and ">within<" in content
    assert "finished" in content and "command" in content and ">3<" in content
    assert f">{record.partitions_dropped}<" in content and RUNS in content
    history = clients["triager"].get(RUNS).content.decode()
    assert reverse("admin:incidents_purgerun_change", args=[record.pk]) in history


@PURGING
def test_an_incident_whose_events_expired_says_so_with_its_sources_retention(clients, source):
    source.event_retention_days = 20
    source.save()
    store_received(source, days_ago=25, count=2)
    incident = Incident.objects.get()
    purge.run(trigger="command", pause=0)
    assert not ErrorEvent.objects.exists()
    content = clients["viewer"].get(reverse("admin:incidents_incident_change", args=[incident.pk])).content.decode()
    assert "Its events expired (events are kept 20 days for this source); counts are the totals seen" in content
    assert "<tr><th>Events</th><td>2</td></tr>" in content


@PURGING
def test_an_incident_with_its_events_stored_does_not_say_they_expired(clients, source):
    store_received(source, days_ago=0)
    content = clients["viewer"].get(reverse("admin:incidents_incident_change", args=[Incident.objects.get().pk]))
    assert "events expired" not in content.content.decode()
