"""A real application with the stock sentry-sdk reports to a real console server and worker."""

import subprocess
import sys

import pytest

from incidents.models import ErrorEvent, Incident
from tests.factories import source_dsn_from_command
from tests.support import PROBES, wait_until

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

APP = PROBES / "sentry_app.py"


def test_exceptions_from_the_stock_sdk_are_stored_classified_and_grouped(live_console):
    dsn = source_dsn_from_command("Shop")
    assert f"@{live_console.url.removeprefix('http://')}/" in dsn  # built from CONSOLE_URL
    app = subprocess.run(
        [sys.executable, str(APP), dsn], env=live_console.env, capture_output=True, text=True, timeout=60
    )
    assert "KeyError" in app.stderr  # the app really died of its unhandled exception

    def digested():
        return ErrorEvent.objects.count() == 5 and not ErrorEvent.objects.filter(incident__isnull=True).exists()

    assert wait_until(digested, timeout=30), list(ErrorEvent.objects.values_list("message", "incident"))
    incidents = {incident.error_type.code: incident for incident in Incident.objects.select_related("error_type")}
    assert set(incidents) == {"NETWORK_TIMEOUT", "NETWORK_CONNECTION", "UNEXPECTED"}
    timeouts = incidents["NETWORK_TIMEOUT"]
    assert timeouts.event_count == 3  # order ids differ, the call site is the same
    assert timeouts.user_count == 1
    assert "fetch_rates" in timeouts.culprit
    assert ErrorEvent.objects.filter(environment="production", release="shop@1.0.0").count() == 5
