"""Every admin URL, asked as anonymous, a viewer, a triager, an admin-group user and a superuser.

Every registered ModelAdmin's changelist, add, change, history and delete pages, its custom
URLs, and the site's own pages each say who may open them; the walk fails for a URL without
an expectation, so a new admin page cannot ship without saying who may use it. Pages are asked
with GET and, below the role that may change things, the forms are posted too (and refused).
No answer may hold a channel's secret or a token, whoever asks, and ingest keys and DSNs only
reach admins, as in the API.
"""

import json
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import URLPattern, URLResolver, reverse
from django.utils import timezone
from django_q.models import OrmQ, Schedule, Task
from django_q.signing import SignedPackage

from access.services import api_token_create
from incidents.models import AlertRule, ErrorEvent, Incident, NotificationChannel, PurgeRun, Silence
from resilience.models import Breaker, DegradationFeature, DegradationRule, RateLimitPolicy
from tests.factories import firing_alert
from tests.support import native_event

# Pages that show breakers start the console runtime: it records its reports in the test's transaction
# (console_inline), as it makes them.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("console_inline")]

ROLES = ("anonymous", "viewer", "triager", "admin", "superuser")
RANK = {role: rank for rank, role in enumerate(ROLES)}
NOBODY = "nobody"  # not even a superuser: the page exists but the data is never edited by hand
RANK[NOBODY] = len(ROLES)
PASSWORD = "walk-the-admin-1"

# Secrets no page may show to anyone: channel settings marked secret, and raw API tokens.
HMAC_SECRET = "hmac-marker-4f9c2a7e1b"
HEADER_SECRET = "header-marker-8d1e5b3c"
SLACK_SECRET = "slackpathmarker93ab"
ROUTING_SECRET = "pdmarker" + "0" * 24  # PagerDuty routing keys are 32 characters

# Who may (view, add, change, delete) each registered model's objects.
MODELS = {
    "auth.group": ("superuser", "superuser", "superuser", "superuser"),
    "auth.user": ("superuser", "superuser", "superuser", "superuser"),
    "incidents.source": ("admin", "admin", "admin", NOBODY),
    "incidents.ingestkey": ("admin", "admin", NOBODY, NOBODY),
    "incidents.errortype": ("viewer", "admin", "admin", "admin"),
    "incidents.classificationrule": ("viewer", "admin", "admin", "admin"),
    "incidents.incident": ("viewer", NOBODY, NOBODY, NOBODY),  # changed through its buttons only
    "incidents.errorevent": ("viewer", NOBODY, NOBODY, NOBODY),
    "incidents.alertrule": ("viewer", "admin", "admin", "admin"),
    "incidents.alert": ("viewer", NOBODY, NOBODY, NOBODY),  # changed through actions only
    "incidents.silence": ("viewer", "triager", "triager", "triager"),
    "incidents.notificationchannel": ("admin", "admin", "admin", "admin"),
    "incidents.notification": ("admin", NOBODY, NOBODY, NOBODY),
    "incidents.retentionpolicy": ("viewer", NOBODY, "admin", NOBODY),  # one row, made by a migration
    "incidents.purgerun": ("viewer", NOBODY, NOBODY, NOBODY),  # written by the purge only
    "resilience.breaker": ("viewer", "admin", "admin", "admin"),
    "resilience.retrypolicy": ("viewer", "admin", "admin", "admin"),
    "resilience.recoverypolicy": ("viewer", "admin", "admin", "admin"),
    "resilience.ratelimitpolicy": ("viewer", "admin", "admin", "admin"),
    "resilience.degradationfeature": ("viewer", "admin", "admin", "admin"),
    "resilience.degradationrule": ("viewer", "admin", "admin", "admin"),
    "access.apitoken": ("admin", "admin", "admin", NOBODY),  # revoked, never deleted
    "django_q.schedule": ("superuser", "superuser", "superuser", "superuser"),
    "django_q.success": ("superuser", NOBODY, "superuser", "superuser"),
    "django_q.failure": ("superuser", NOBODY, "superuser", "superuser"),
    "django_q.ormq": ("superuser", NOBODY, "superuser", "superuser"),
}
# django_q registers its queue's page only when the queue is in the database.
OPTIONAL_MODELS = {"django_q.ormq"}
# Singletons: the list redirects to the one row's change page.
REDIRECTING_CHANGELISTS = {"incidents.retentionpolicy"}
# Change views that take GET only: a POST is refused with 405 whoever sends it.
GET_ONLY_CHANGE_VIEWS = {"incidents.incident", "incidents.errorevent"}
# Who may open each app's index page (below: 404, as Django answers for an app you have nothing in).
APPS = {"auth": "superuser", "incidents": "viewer", "resilience": "viewer", "access": "admin", "django_q": "superuser"}
# Autocomplete asks the related model's admin: (app, model, field) -> who may search.
AUTOCOMPLETE = {
    ("access", "apitoken", "user"): "superuser",
    ("incidents", "alertrule", "source"): "admin",
    ("incidents", "alertrule", "error_type"): "viewer",
}


@dataclass(frozen=True)
class Check:
    method: str
    url: str
    statuses: dict  # role -> expected status; "login" for a redirect to the login page
    data: dict | None = None


def by_role(minimum: str, allowed: int, refused: int = 403) -> dict:
    return {
        role: "login" if role == "anonymous" else allowed if RANK[role] >= RANK[minimum] else refused for role in ROLES
    }


def below(minimum: str, refused: int = 403) -> dict:
    """Statuses for a write sent by the roles that may not make it (the others are left out)."""
    return {
        role: "login" if role == "anonymous" else refused
        for role in ROLES
        if RANK[role] < RANK[minimum] or minimum == NOBODY
    }


def registered_models() -> dict[str, type]:
    return {model._meta.label_lower: model for model in admin.site._registry}


def model_checks(label: str, obj) -> dict[str, list[Check]]:
    """The checks of one model's standard pages, by URL name."""
    view, add, change, delete = MODELS[label]
    prefix = label.replace(".", "_")
    url = {kind: reverse(f"admin:{prefix}_{kind}", args=[obj.pk]) for kind in ("change", "history", "delete")}
    url["changelist"] = reverse(f"admin:{prefix}_changelist")
    url["add"] = reverse(f"admin:{prefix}_add")
    change_refused = 405 if label in GET_ONLY_CHANGE_VIEWS else 403
    return {
        f"{prefix}_changelist": [
            Check("get", url["changelist"], by_role(view, 302 if label in REDIRECTING_CHANGELISTS else 200))
        ],
        f"{prefix}_add": [Check("get", url["add"], by_role(add, 200)), Check("post", url["add"], below(add), {})],
        f"{prefix}_change": [
            Check("get", url["change"], by_role(view, 200)),
            Check("post", url["change"], below(change, change_refused), {}),
        ],
        f"{prefix}_history": [Check("get", url["history"], by_role(view, 200))],
        f"{prefix}_delete": [
            Check("get", url["delete"], by_role(delete, 200)),
            Check("post", url["delete"], below(delete), {"post": "yes"}),
        ],
        # <id>/ alone redirects to the change page, for any staff user (the change page decides).
        f"{prefix}_object": [Check("get", url["change"][: -len("change/")], by_role("viewer", 302))],
    }


def site_checks(world: dict) -> dict[str, list[Check]]:
    incident, user = world["incident"], world["users"]["viewer"]
    transition = reverse("admin:incidents_incident_transition", args=[incident.pk, "acknowledge"])
    on_site = reverse("admin:view_on_site", args=[ContentType.objects.get_for_model(Incident).pk, incident.pk])
    staff = by_role("viewer", 200)
    return {
        "index": [Check("get", reverse("admin:index"), staff)],
        "login": [Check("get", reverse("admin:login"), {role: 200 if role == "anonymous" else 302 for role in ROLES})],
        "logout": [
            Check("get", reverse("admin:logout"), {role: 302 if role == "anonymous" else 405 for role in ROLES})
        ],
        "password_change": [Check("get", reverse("admin:password_change"), staff)],
        "password_change_done": [Check("get", reverse("admin:password_change_done"), staff)],
        "jsi18n": [Check("get", reverse("admin:jsi18n"), staff)],
        "view_on_site": [Check("get", on_site, by_role("viewer", 404))],  # no model has a public page
        "app_list": [
            Check("get", reverse("admin:app_list", args=[app]), by_role(minimum, 200, refused=404))
            for app, minimum in APPS.items()
        ],
        "autocomplete": [
            Check(
                "get",
                f"{reverse('admin:autocomplete')}?app_label={app}&model_name={model}&field_name={field}&term=",
                by_role(minimum, 200),
            )
            for (app, model, field), minimum in AUTOCOMPLETE.items()
        ],
        "incidents_incident_transition": [
            Check("get", transition, by_role("viewer", 405)),
            Check("post", transition, by_role("triager", 302), {}),
        ],
        "auth_user_password_change": [
            Check("get", reverse("admin:auth_user_password_change", args=[user.pk]), by_role("superuser", 200))
        ],
        "<catch-all>": [Check("get", "/admin/no-such-page/", by_role("viewer", 404))],
    }


def admin_url_names(patterns=None) -> list[str]:
    """Every route of the admin site; unnamed ones as <app_model>_object (the id redirect) or <catch-all>."""
    names = []
    for pattern in admin.site.urls[0] if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            model_names = admin_url_names(pattern.url_patterns)
            prefix = next(name.removesuffix("_changelist") for name in model_names if name.endswith("_changelist"))
            names += [f"{prefix}_object" if name is None else name for name in model_names]
        elif isinstance(pattern, URLPattern):
            names.append("<catch-all>" if pattern.name is None and patterns is None else pattern.name)
    return names


def role_user(django_user_model, role: str):
    """A staff user of the role's group (a superuser for "superuser"), as an operator would make one."""
    if role == "superuser":
        return django_user_model.objects.create_superuser("superuser", password=PASSWORD)
    user = django_user_model.objects.create_user(f"{role}-staff", password=PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


def channels() -> list[NotificationChannel]:
    """One channel of each kind with secrets, holding the markers."""
    configs = {
        "webhook": {
            "url": "https://hooks.example.com/walk",
            "secret": HMAC_SECRET,
            "headers": {"Authorization": f"Bearer {HEADER_SECRET}"},
        },
        "slack": {"url": f"https://hooks.slack.com/services/T000/B000/{SLACK_SECRET}"},
        "pagerduty": {"routing_key": ROUTING_SECRET},
        "alertmanager": {"url": "https://am.example.com/api/v2/alerts", "headers": {"X-Token": HEADER_SECRET}},
    }
    return [NotificationChannel.objects.create(name=kind, kind=kind, config=config) for kind, config in configs.items()]


@pytest.fixture
def world(client, source, ingest_key, digest, django_user_model):
    """One object of every admin-registered model, a logged-in client per role, and the secrets to look for."""
    client.post(
        "/api/v1/events/",
        json.dumps(native_event()),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {ingest_key.public_key}",
    )
    digest()
    made = channels()
    rule = AlertRule.objects.create(name="walk", warning_threshold=3)
    rule.channels.add(*made)
    alert = firing_alert(rule)
    Silence.objects.create(comment="walk", created_by="test", ends_at=timezone.now() + timedelta(days=1))
    PurgeRun.objects.create(trigger="command", status=PurgeRun.Status.FINISHED, finished_at=timezone.now())
    Breaker.objects.get_or_create(name="payments-api")
    RateLimitPolicy.objects.get_or_create(name="walk")
    DegradationFeature.objects.get_or_create(name="walk")
    DegradationRule.objects.get_or_create(name="walk", condition="any_breaker_open", level=1)
    now = timezone.now()
    for success in (True, False):
        Task.objects.create(
            id=f"walk{success}",
            name=f"walk-{success}",
            func="incidents.tasks.sweep_alerts",
            started=now,
            stopped=now,
            success=success,
        )
    if "django_q.ormq" in registered_models():  # the queue is in the database: one queued task
        package = {
            "id": "walkq",
            "name": "walk-queued",
            "func": "incidents.tasks.sweep_alerts",
            "args": (),
            "kwargs": {},
        }
        OrmQ.objects.create(key="console", payload=SignedPackage.dumps(package), lock=now)
    users = {role: role_user(django_user_model, role) for role in ROLES[1:]}
    _token, raw_token = api_token_create(user=users["admin"], name="walk", created_by=users["admin"])
    clients = {"anonymous": Client()}
    for role, user in users.items():
        clients[role] = Client()
        clients[role].force_login(user)
    # A change through the form as a superuser, so the channel has a history, and the secrets stay.
    webhook = made[0]
    form = {"name": "webhook", "kind": "webhook", "enabled": "on", "min_severity": "10", "default_for": "[]"}
    change = reverse("admin:incidents_notificationchannel_change", args=[webhook.pk])
    page = clients["superuser"].get(change)
    form["config"] = page.context["adminform"].form["config"].value()
    assert clients["superuser"].post(change, form).status_code == 302
    webhook.refresh_from_db()
    assert webhook.config["secret"] == HMAC_SECRET
    objects = {label: model._default_manager.order_by("pk").first() for label, model in registered_models().items()}
    assert all(objects.values()), f"the walk needs one of each: {[label for label, o in objects.items() if not o]}"
    return {
        "clients": clients,
        "users": users,
        "objects": objects,
        "incident": Incident.objects.get(),
        "alert": alert,
        "secrets": (HMAC_SECRET, HEADER_SECRET, SLACK_SECRET, ROUTING_SECRET, raw_token),
        "admin_only": (ingest_key.public_key,),
        "event": ErrorEvent.objects.get(),
    }


def all_checks(world: dict) -> dict[str, list[Check]]:
    checks = site_checks(world)
    for label, obj in world["objects"].items():
        checks.update(model_checks(label, obj))
    return checks


def assert_every_admin_url_has_an_expectation(world) -> None:
    registered = set(registered_models())
    assert sorted(registered - set(MODELS)) == [], "say who may use each registered model"
    assert sorted(set(MODELS) - registered - OPTIONAL_MODELS) == []
    names = admin_url_names()
    assert sorted(set(names) - set(all_checks(world))) == [], "say who may open each admin URL"


def answer(check: Check, client: Client):
    if check.method == "get":
        return client.get(check.url)
    return client.post(check.url, check.data or {})


def test_each_admin_url_answers_each_role_as_expected_and_shows_no_secret(world):
    assert_every_admin_url_has_an_expectation(world)
    failures = []
    for name, checks in sorted(all_checks(world).items()):
        for check in checks:
            for role, expected in check.statuses.items():
                response = answer(check, world["clients"][role])
                where = f"{check.method.upper()} {check.url} ({name}) as {role}: {response.status_code}"
                if expected == "login":
                    if response.status_code != 302 or "/admin/login/" not in response["Location"]:
                        failures.append(f"{where}, expected a redirect to the login page")
                elif response.status_code != expected:
                    failures.append(f"{where}, expected {expected}")
                text = response.content.decode(errors="replace") + response.get("Location", "")
                shown = [secret for secret in world["secrets"] if secret in text]
                if RANK[role] < RANK["admin"]:
                    shown += [value for value in world["admin_only"] if value in text]
                if shown:
                    failures.append(f"{where} shows {shown}")
    assert failures == []


def test_a_channels_read_only_page_shows_its_settings_masked(world, django_user_model):
    # A user granted only the view permission (the admin role, but no change): the page renders stored values.
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("channel-reader", password=PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get(name="viewer"))
    group = Group.objects.create(name="channel readers")
    group.permissions.add(Permission.objects.get(codename="view_notificationchannel"))
    user.groups.add(group)
    channel = NotificationChannel.objects.get(kind="webhook")
    reader = Client()
    reader.force_login(user)
    # Below the admin role: refused, whatever permission was granted.
    assert reader.get(reverse("admin:incidents_notificationchannel_change", args=[channel.pk])).status_code == 403
    user.groups.add(Group.objects.get(name="admin"))
    Group.objects.get(name="admin").permissions.remove(Permission.objects.get(codename="change_notificationchannel"))
    user = django_user_model.objects.get(pk=user.pk)  # forget cached permissions and role
    reader.force_login(user)
    page = reader.get(reverse("admin:incidents_notificationchannel_change", args=[channel.pk])).content.decode()
    assert "hooks.example.com/walk" in page and "********" in page
    assert HMAC_SECRET not in page and HEADER_SECRET not in page


@pytest.mark.parametrize("role", ROLES[1:])
def test_each_role_logs_in_and_the_admin_index_lists_only_what_the_role_may_open(world, role):
    browser = Client()
    username = world["users"][role].get_username()
    response = browser.post(reverse("admin:login"), {"username": username, "password": PASSWORD, "next": "/"})
    assert response.status_code == 302 and response["Location"] == "/"
    dashboard = browser.get("/")
    assert dashboard.status_code == 200 and b'id="live-status"' in dashboard.content
    text = dashboard.content.decode()
    assert not [secret for secret in world["secrets"] + world["admin_only"] if secret in text]
    index = browser.get(reverse("admin:index"))
    assert index.status_code == 200
    listed = {
        label
        for label in world["objects"]
        if reverse(f"admin:{label.replace('.', '_')}_changelist") in index.content.decode()
    }
    assert listed == {label for label in world["objects"] if RANK[role] >= RANK[MODELS[label][0]]}


def test_the_incident_and_event_pages_link_the_source_only_for_those_who_may_open_it(world):
    incident_page = reverse("admin:incidents_incident_change", args=[world["incident"].pk])
    event_page = reverse("admin:incidents_errorevent_change", args=[world["event"].pk])
    source_page = reverse("admin:incidents_source_change", args=[world["incident"].source_id])
    for role, linked in (("viewer", False), ("triager", False), ("admin", True), ("superuser", True)):
        for page in (incident_page, event_page):
            assert (source_page in world["clients"][role].get(page).content.decode()) is linked, (role, page)


def test_an_admin_group_user_cannot_schedule_a_command_on_the_worker(world):
    before = Schedule.objects.count()
    body = {"name": "pwn", "func": "os.system", "args": "'id'", "schedule_type": "O", "repeats": "-1"}
    response = world["clients"]["admin"].post(reverse("admin:django_q_schedule_add"), body)
    assert response.status_code == 403 and Schedule.objects.count() == before


# The schedule form, even for a superuser


def schedule_body(**fields) -> dict:
    now = timezone.localtime()
    body = {
        "name": "by hand",
        "func": "incidents.tasks.sweep_alerts",
        "hook": "",
        "args": "",
        "kwargs": "",
        "schedule_type": Schedule.MINUTES,
        "minutes": "5",
        "repeats": "-1",
        "next_run_0": now.strftime("%Y-%m-%d"),
        "next_run_1": now.strftime("%H:%M:%S"),
        "cron": "",
        "cluster": "",
        "intended_date_kwarg": "",
    }
    return {**body, **fields}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "fields, field",
    [
        ({"func": "os.system", "args": "'id'"}, "func"),
        ({"func": "builtins.exec"}, "func"),
        ({"kwargs": "hook='os.system'"}, "kwargs"),
        ({"kwargs": "{'chain': [('os.system', ('id',))]}"}, "kwargs"),
        ({"kwargs": "q_options={'hook': 'os.system'}"}, "kwargs"),
        ({"kwargs": "__import__('os').system('id')"}, "kwargs"),
        ({"args": "__import__('os')"}, "args"),
        ({"args": "'extra'"}, "__all__"),  # sweep_alerts takes no argument
        ({"intended_date_kwarg": "hook"}, "__all__"),
    ],
)
def test_a_superusers_schedule_form_refuses_anything_but_a_console_task_with_fitting_arguments(
    admin_client, fields, field
):
    before = Schedule.objects.count()
    response = admin_client.post(reverse("admin:django_q_schedule_add"), schedule_body(**fields))
    assert response.status_code == 200 and Schedule.objects.count() == before
    errors = response.context["adminform"].form.errors
    assert list(errors) == [field], errors


@pytest.mark.django_db
def test_a_superuser_schedules_a_console_task_with_its_arguments_and_no_hook(admin_client):
    # The form has no hook field: a hook posted anyway is not saved.
    body = schedule_body(func="incidents.tasks.deliver_notifications", args="[1, 2]", hook="os.system")
    response = admin_client.post(reverse("admin:django_q_schedule_add"), body)
    assert response.status_code == 302
    schedule = Schedule.objects.get(name="by hand")
    assert (schedule.func, schedule.args, schedule.hook) == ("incidents.tasks.deliver_notifications", "[1, 2]", None)
    page = admin_client.get(reverse("admin:django_q_schedule_add")).content.decode()
    assert 'value="incidents.tasks.digest_events"' in page and "os.system" not in page


@pytest.mark.django_db
def test_resubmitting_tasks_queues_console_tasks_only(admin_client, monkeypatch):
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", True)  # run the resubmitted task here instead of leaving it in the queue
    now = timezone.now()
    for name, func, hook in (("ours", "incidents.tasks.sweep_alerts", None), ("theirs", "os.system", None)):
        Task.objects.create(id=name, name=name, func=func, hook=hook, started=now, stopped=now, success=False)
    response = admin_client.post(
        reverse("admin:django_q_failure_changelist"),
        {"action": "resubmit_console_tasks", "_selected_action": ["ours", "theirs"]},
        follow=True,
    )
    assert [str(m) for m in response.context["messages"]] == ["1 resubmitted, 1 skipped (not a console task)."]
    # A resubmitted failure leaves the list; the skipped one stays where it was.
    assert set(Task.objects.filter(name__in=["ours", "theirs"]).values_list("name", flat=True)) == {"theirs"}
