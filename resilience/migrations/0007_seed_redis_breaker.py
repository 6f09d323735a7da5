"""Seed the breaker the console's own Redis use goes through (ingest quotas, the digest queue,
config messages), so an operator can see and tune it in admin like any other."""

from django.db import migrations


def seed(apps, schema_editor):
    Breaker = apps.get_model("resilience", "Breaker")
    ErrorType = apps.get_model("incidents", "ErrorType")
    Breaker.objects.get_or_create(
        name="redis",
        defaults={
            "description": "The console's own Redis: ingest quotas, the digest queue, config change messages. "
            "While it is open, quotas are counted per process and the digest runs on its schedule.",
            "component": "console.redis",
            "error_type": ErrorType.objects.filter(code="NETWORK_CONNECTION").first(),
            "window_size": 20,
            "minimum_calls": 5,
            "failure_rate_threshold": 50,
            "slow_call_duration": 0.25,
            "slow_call_rate_threshold": 80,
            "wait_duration": 5,
            "wait_multiplier": 2,
            "max_wait_duration": 60,
        },
    )


def unseed(apps, schema_editor):
    apps.get_model("resilience", "Breaker").objects.filter(name="redis").delete()


class Migration(migrations.Migration):
    dependencies = [("resilience", "0006_seed_policies"), ("incidents", "0002_seed_catalog")]

    operations = [migrations.RunPython(seed, unseed)]
