"""Seed the default alert rules (thresholds applications used to configure in code).

No channels are seeded (they need URLs and keys), and no rule names one: each alert goes to
the enabled channels whose "default for" lists its severity. The alert levels map to
that routing: CRITICAL pages on-call (give a PagerDuty channel default_for ["CRITICAL"]);
HIGH and MEDIUM go to email and Slack (default_for ["HIGH", "MEDIUM"] on those).
"""

from django.db import migrations

ROUTING = (
    "Names no channel: goes to the enabled channels whose default_for lists the alert's severity ({severity} here)."
)

# Normal vs. extraordinary invalidness, per error type (the data-quality checks' ERROR_THRESHOLDS).
TYPE_THRESHOLDS = {
    "DATA_EMPTY": (10, 100, 1000),
    "API_RATE_LIMIT": (5, 20, 50),
    "NETWORK_TIMEOUT": (3, 10, 30),
}
WINDOWS = ((1, "minute"), (60, "hour"), (1440, "day"))


def type_rules() -> list[dict]:
    rules = []
    for code, figures in TYPE_THRESHOLDS.items():
        for (minutes, unit), figure in zip(WINDOWS, figures, strict=True):
            rules.append(
                {
                    "name": f"{code}: {figure} or more per {unit}",
                    "error_type": code,
                    "description": f"{code} is normal up to {figures[0]} a minute, {figures[1]} an hour and "
                    f"{figures[2]} a day; beyond that it is extraordinary. " + ROUTING.format(severity="MEDIUM"),
                    "window_minutes": minutes,
                    "comparator": "gte",
                    "warning_threshold": figure,
                    "summary_template": f"{{{{ rule }}}}: {{{{ value|floatformat }}}} {code} events in the last {unit}",
                    **({"cooldown": 300} if minutes == 1 else {}),
                }
            )
    return rules


RULES = [
    *type_rules(),
    {
        "name": "More than 10 errors per minute",
        "description": "The error monitor's rate alert: more than 10 errors a minute, "
        "at most one notification every 5 minutes. " + ROUTING.format(severity="MEDIUM"),
        "value": "count",
        "window_minutes": 1,
        "comparator": "gt",
        "warning_threshold": 10,
        "cooldown": 300,
    },
    {
        "name": "Any CRITICAL event",
        "description": "Critical errors alert at once (page on-call). " + ROUTING.format(severity="CRITICAL"),
        "min_severity": 50,
        "value": "count",
        "window_minutes": 1,
        "comparator": "gte",
        "critical_threshold": 1,
        "cooldown": 300,
    },
    {
        "name": "Any circuit breaker open",
        "description": "One alert per breaker while it is open or half-open. " + ROUTING.format(severity="CRITICAL"),
        "target": "breakers",
        "window_minutes": 1,
        "comparator": "gte",
        "critical_threshold": 1,
        "summary_template": "circuit breaker {{ labels.breaker }} is open",
    },
    {
        "name": "Failures above 10 % of a source's events",
        "description": "Significant loss: more than 10 % of a source's events in 5 minutes are HIGH or worse "
        "(email and Slack). " + ROUTING.format(severity="MEDIUM"),
        "min_severity": 40,
        "value": "ratio",
        "group_by": ["source"],
        "window_minutes": 5,
        "comparator": "gt",
        "warning_threshold": 10,
        "summary_template": "{{ rule }}: {{ value|floatformat:1 }} % (threshold {{ threshold }} %)",
    },
]


def seed(apps, schema_editor):
    AlertRule = apps.get_model("incidents", "AlertRule")
    ErrorType = apps.get_model("incidents", "ErrorType")
    for spec in RULES:
        fields = dict(spec)
        code = fields.pop("error_type", None)
        if code:
            fields["error_type"] = ErrorType.objects.get(code=code)
        AlertRule.objects.update_or_create(name=fields.pop("name"), defaults=fields)


def unseed(apps, schema_editor):
    apps.get_model("incidents", "AlertRule").objects.filter(name__in=[spec["name"] for spec in RULES]).delete()


class Migration(migrations.Migration):
    dependencies = [("incidents", "0008_alert_sweep_schedule")]

    operations = [migrations.RunPython(seed, unseed)]
