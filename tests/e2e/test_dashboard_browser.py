"""The live dashboard in a real browser: Debian's chromium driven by Playwright, against the console's server
and a real django-q2 cluster, with events sent by the stock sentry-sdk."""

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.utils import timezone
from playwright.sync_api import expect, sync_playwright

from incidents import services
from incidents.live import outbox
from incidents.models import ErrorEvent, Incident, LiveMessage, Source
from resilience.models import Breaker
from tests.browser_requirement import CHROMIUM, chromium_missing
from tests.factories import incident_published, source_dsn_from_command
from tests.support import PROBES

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"


# Without chromium the module is skipped, in one line saying how to install it; under REQUIRE_BROWSER=1 (CI)
# each test fails instead, and the rest of the suite still runs.
MISSING_CHROMIUM = chromium_missing(CHROMIUM, os.environ)
if MISSING_CHROMIUM and MISSING_CHROMIUM[0] == "skip":
    pytest.skip(MISSING_CHROMIUM[1], allow_module_level=True)


@pytest.fixture
def chromium():
    """Debian's chromium, checked before the live console starts: a missing one costs no server."""
    if MISSING_CHROMIUM:
        pytest.fail(MISSING_CHROMIUM[1])
    return CHROMIUM


@pytest.fixture
def browser_page(chromium, live_console, django_user_model):
    # Playwright's sync API runs an event loop in this thread; the ORM calls around it are plain sync calls.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    operator = django_user_model.objects.create_superuser("operator")
    # Hashed as the server checks it: this test process hashes with MD5 for speed, the server does not.
    hasher = PBKDF2PasswordHasher()
    operator.password = hasher.encode("correct horse battery", hasher.salt())
    operator.save()
    Breaker.objects.create(name="payments-api")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{live_console.url}/admin/login/?next=/")
        page.fill("#id_username", "operator")
        page.fill("#id_password", "correct horse battery")
        page.click("input[type=submit]")
        expect(page.locator("#live-status")).to_have_text("live", timeout=15_000)
        yield page
        browser.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def test_an_event_from_the_sdk_appears_and_a_tripped_breaker_changes_the_board(browser_page, live_console):
    page = browser_page
    dsn = source_dsn_from_command("Shop")
    subprocess.run(
        [sys.executable, str(PROBES / "sentry_app.py"), dsn], env=live_console.env, capture_output=True, timeout=60
    )
    expect(page.locator("#incidents tr.new").first).to_be_visible(timeout=20_000)
    expect(page.locator("#incidents")).to_contain_text("KeyError", timeout=20_000)
    page.request.post(
        f"{live_console.url}/api/v1/circuit-breakers/payments-api/force-open/",
        headers={"X-CSRFToken": page.evaluate("document.body.dataset.csrf"), "Referer": live_console.url + "/"},
    )
    expect(page.locator('[data-breaker="payments-api"]')).to_have_class("breaker state-open", timeout=15_000)
    points = page.locator('[data-breaker="payments-api"] .sparkline polyline')
    expect(points).to_have_attribute("points", re.compile(r"\d"), timeout=10_000)  # sampled into its sparkline
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)


def test_a_cut_socket_falls_back_to_polling_then_returns_live_with_exactly_the_missed_messages(browser_page):
    page = browser_page
    cut = {"on": True}  # while on, new connections are refused; then they go through to the server

    def route(socket):
        if cut["on"]:
            socket.close()
        else:
            socket.connect_to_server()

    page.route_web_socket("**/ws/live/**", route)
    page.evaluate("window.liveConsole.socket.close()")
    expect(page.locator("#live-status")).to_have_text("live updates degraded (polling)", timeout=10_000)
    before = outbox.newest_id()
    missed = [publish_incident(f"missed while offline {n}") for n in range(3)]
    missed_ids = list(LiveMessage.objects.filter(id__gt=before).values_list("id", flat=True))
    cut["on"] = False
    expect(page.locator("#live-status")).to_have_text("live", timeout=20_000)
    expect(page.locator("#incidents")).to_contain_text("missed while offline 2", timeout=10_000)
    received = page.evaluate("window.liveConsole.received")
    assert [i for i in received if i > before] == missed_ids
    assert len(missed) == 3


def publish_incident(title: str) -> Incident:
    source, _ = Source.objects.get_or_create(name="Browser", defaults={"slug": "browser"})
    return incident_published(source, title)


def test_the_admin_lists_show_new_incidents_and_breaker_states_live(browser_page, live_console):
    page = browser_page
    page.goto(f"{live_console.url}/admin/incidents/incident/")
    page.wait_for_selector("body[data-live=subscribed]", state="attached")
    publish_incident("appeared while the list was open")
    expect(page.locator("#live-new")).to_have_text("1 new, refresh", timeout=10_000)
    page.goto(f"{live_console.url}/admin/resilience/breaker/")
    page.wait_for_selector("body[data-live=subscribed]", state="attached")
    csrf = next(cookie["value"] for cookie in page.context.cookies() if cookie["name"] == "csrftoken")
    page.request.post(
        f"{live_console.url}/api/v1/circuit-breakers/payments-api/force-open/",
        headers={"X-CSRFToken": csrf, "Referer": live_console.url + "/"},
    )
    expect(page.locator(".field-state .breaker-badge").first).to_have_class(
        "breaker-badge breaker-open", timeout=10_000
    )


def test_an_incident_page_adds_its_new_events_and_timeline_entries(browser_page, live_console):
    page = browser_page
    incident = publish_incident("watched incident")
    page.goto(f"{live_console.url}/admin/incidents/incident/{incident.pk}/change/")
    page.wait_for_selector("body[data-live=subscribed]", state="attached")
    ErrorEvent.objects.create(
        source=incident.source, event_id=uuid.uuid4(), incident=incident, timestamp=timezone.now(),
        received_at=timezone.now(), level="error", title="watched incident, again",
    )  # fmt: skip
    services.incident_acknowledge(incident=incident, by="system:test")
    expect(page.locator("#live-incident .live-timeline")).to_contain_text("acknowledged by system:test", timeout=10_000)
    expect(page.locator("#live-incident .live-events")).to_contain_text("watched incident, again", timeout=10_000)
