"""Management commands: createsource, ensureadmin and loaddemo."""

import io
import re

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from incidents.models import ErrorEvent, Incident, IngestKey, Source

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_createsource_prints_the_key_and_a_dsn_built_from_the_console_url(settings):
    settings.CONSOLE_URL = "https://console.example.com"
    output = run("createsource", "Billing API", "--environment", "production")
    source = Source.objects.get(name="Billing API")
    key = IngestKey.objects.get(source=source)
    assert f"ingest key: {key.public_key}" in output
    assert f"dsn:        https://{key.public_key}@console.example.com/{source.pk}" in output
    assert source.environments == ["production"]


def test_createsource_refuses_a_duplicate_name_clearly():
    run("createsource", "Billing")
    with pytest.raises(CommandError, match="name"):
        run("createsource", "Billing")


def test_ensureadmin_creates_the_admin_once_and_prints_the_login(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    first = run("ensureadmin")
    password = re.search(r"Login:\s+admin / (\S+)", first).group(1)
    assert get_user_model().objects.get(username="admin").check_password(password)
    assert password in run("ensureadmin")
    assert get_user_model().objects.count() == 1


def test_loaddemo_fills_an_empty_console_once():
    output = run("loaddemo")
    events = ErrorEvent.objects.count()
    assert events >= 300
    assert not ErrorEvent.objects.filter(incident__isnull=True).exists()
    assert Incident.objects.values("error_type").distinct().count() >= 8
    assert Incident.objects.filter(status="resolved").exists()
    assert f"{events} events" in output
    run("loaddemo")
    assert ErrorEvent.objects.count() == events
