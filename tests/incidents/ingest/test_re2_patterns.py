"""Operator-written patterns run on RE2: linear time at ingest, constructs RE2 cannot run refused on save."""

import importlib
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError
from django.urls import reverse

from incidents.models import ClassificationRule, ErrorEvent, ErrorType
from tests.support import native_event

MIGRATION = importlib.import_module("incidents.migrations.0013_disable_patterns_re2_cannot_run")
ROOT = Path(__file__).resolve().parents[3]

# Python's re needs about 2^60 steps for this message; a linear matcher needs a few hundred.
HOSTILE_CLASSIFICATION = """
from types import SimpleNamespace
from incidents.ingest.classify import ErrorTypeInfo, classify, compile_rules

rule = SimpleNamespace(
    id=1, name="nested", position=1, enabled=True, exception_type="", message_pattern="(a+)+$", http_status="",
    logger="", component="", context_match={}, error_type=SimpleNamespace(code="MATCHED"), severity_override=None,
)
catalog = {code: ErrorTypeInfo(code=code, category="API", default_severity=30) for code in ("MATCHED", "UNEXPECTED")}
rules = compile_rules([rule])
for message in ("a" * 60 + "!", "aaa"):
    print(classify({"message": message}, rules, catalog).error_type)
"""

UNRUNNABLE = [
    (r"(\w+) \1", "backreference"),
    (r"timeout(?= after)", "lookahead"),
    (r"(?<!read )timeout", "lookbehind"),
    (r"time++out", "possessive quantifier"),
    (r"(?>time)out", "atomic group"),
    (r"timeout\Z", "end of text as Python spells it"),
]


def test_a_nested_quantifier_classifies_a_hostile_message_instead_of_freezing_the_process():
    # A deadline for the whole child process, not a measurement: a backtracking match would never end.
    done = subprocess.run(
        [sys.executable, "-c", HOSTILE_CLASSIFICATION], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["UNEXPECTED", "MATCHED"]


@pytest.mark.django_db
@pytest.mark.parametrize(("pattern", "construct"), UNRUNNABLE)
def test_a_pattern_re2_cannot_run_is_refused_on_save_naming_the_field(pattern, construct):
    rule = ClassificationRule(
        name=construct, message_pattern=pattern, error_type=ErrorType.objects.get(code="INTERNAL")
    )
    with pytest.raises(ValidationError) as refused:
        rule.full_clean()
    message = " ".join(refused.value.message_dict["message_pattern"])
    assert "linear time" in message, message
    assert "backreferences" in message  # says what to avoid, not only RE2's parser error


@pytest.mark.django_db
def test_the_admin_form_refuses_a_lookahead_on_the_pattern_field(admin_client):
    form = {
        "name": "slow timeouts",
        "position": "5",
        "enabled": "on",
        "message_pattern": r"timeout(?= after)",
        "context_match": "{}",
        "error_type": str(ErrorType.objects.get(code="INTERNAL").pk),
    }
    response = admin_client.post(reverse("admin:incidents_classificationrule_add"), form)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "linear time" in " ".join(errors["message_pattern"]), errors
    assert not ClassificationRule.objects.filter(name="slow timeouts").exists()


@pytest.mark.django_db
def test_the_migration_disables_saved_rules_re2_cannot_run_and_names_each(caplog):
    internal = ErrorType.objects.get(code="INTERNAL")
    lookahead = ClassificationRule.objects.create(name="lookahead", message_pattern=r"x(?=y)", error_type=internal)
    sound = ClassificationRule.objects.create(name="sound", message_pattern=r"timed? ?out", error_type=internal)
    enabled_before = set(ClassificationRule.objects.filter(enabled=True).values_list("pk", flat=True))

    with caplog.at_level(logging.WARNING, logger="incidents.migrations"):
        MIGRATION.disable_rules_re2_cannot_run(apps, None)

    enabled_after = set(ClassificationRule.objects.filter(enabled=True).values_list("pk", flat=True))
    assert enabled_before - enabled_after == {lookahead.pk}
    assert sound.pk in enabled_after
    assert "lookahead" in caplog.text and "x(?=y)" in caplog.text


@pytest.mark.django_db
def test_ingest_skips_a_rule_stored_around_validation_that_re2_cannot_run_and_logs_it(client, ingest_key, caplog):
    ClassificationRule.objects.create(
        name="timeouts after a retry",
        position=1,
        message_pattern=r"timed out(?= after)",
        error_type=ErrorType.objects.get(code="INTERNAL"),
    )
    with caplog.at_level(logging.WARNING, logger="incidents.ingest.classify"):
        response = client.post(
            "/api/v1/events/",
            data=json.dumps(native_event()),  # "read timed out after 30s"
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {ingest_key.public_key}",
        )
    assert response.status_code in (200, 202), response.content
    assert ErrorEvent.objects.get().error_type.code == "NETWORK_TIMEOUT"  # the seeded rules still apply
    assert "timeouts after a retry" in caplog.text
