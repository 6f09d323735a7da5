"""Disable classification rules whose message pattern RE2 cannot run.

Message patterns moved from Python's backtracking `re` to RE2 (incidents/patterns.py).
A rule saved before with a backreference, a lookaround, a possessive quantifier or \\Z
would otherwise be skipped, with a warning, every time a process loads the rules. It is
disabled here instead, with one warning naming it and the reason, so admin shows it as
off; saving it enabled again asks for a pattern RE2 runs. The check is inlined so that
this migration keeps meaning what it meant when it ran.
"""

import logging

import re2
from django.db import migrations

logger = logging.getLogger("incidents.migrations")


def _problem(pattern: str) -> str | None:
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False
    options.max_mem = 1 << 20
    try:
        re2.compile(pattern.encode("utf-8", "surrogatepass"), options)
    except re2.error as error:
        return error.args[0].decode("utf-8", "replace") if error.args else "refused"
    return None


def disable_rules_re2_cannot_run(apps, schema_editor):
    ClassificationRule = apps.get_model("incidents", "ClassificationRule")
    for rule in ClassificationRule.objects.filter(enabled=True).exclude(message_pattern="").order_by("id"):
        problem = _problem(rule.message_pattern)
        if problem is None:
            continue
        ClassificationRule.objects.filter(pk=rule.pk).update(enabled=False)
        logger.warning(
            "Classification rule %s (%s) disabled: its message pattern %r cannot run in linear time (RE2): %s",
            rule.pk,
            rule.name,
            rule.message_pattern,
            problem,
        )


class Migration(migrations.Migration):
    dependencies = [("incidents", "0012_live_message_expiry_schedule")]

    operations = [migrations.RunPython(disable_rules_re2_cannot_run, migrations.RunPython.noop, elidable=True)]
