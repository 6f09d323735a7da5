"""Seed the default retry and recovery tables.

Retry, by what failed: 429 -> exponential backoff honouring Retry-After; 5xx -> exponential,
at most 3 retries; timeout -> immediate retry, at most 3 attempts; connection error ->
exponential, at most 5 retries; 400 and 404 -> no retry, skip; 401 and 403 -> no retry,
alert. Recovery: authentication and permission failures alert; the data feed retries.
Values are written out here, not read from the runtime, so later code changes do not
rewrite what this migration did.
"""

from django.db import migrations

_NO_RETRY = {"max_attempts": 1, "retry_on_transient": False}

RETRY_POLICIES = [
    {
        "name": "rate_limited",
        "description": "429 Too Many Requests: exponential backoff, honouring the server's Retry-After in full.",
        "strategy": "exponential", "jitter": "full", "max_attempts": 5, "retry_on_transient": False,
        "retry_on_error_types": "API_RATE_LIMIT", "retry_on_statuses": "429", "cap_retry_after": False,
    },
    {
        "name": "server_error",
        "description": "5xx: exponential backoff, at most 3 retries.",
        "strategy": "exponential", "jitter": "full", "max_attempts": 4, "retry_on_transient": False,
        "retry_on_error_types": "API_SERVER_ERROR", "retry_on_statuses": "5xx",
    },
    {
        "name": "timeout",
        "description": "Timeouts: retry at once, at most 3 attempts.",
        "strategy": "fixed", "jitter": "none", "max_attempts": 3, "base_delay": 0.0, "retry_on_transient": False,
        "retry_on_error_types": "NETWORK_TIMEOUT", "retry_on_statuses": "408",
    },
    {
        "name": "connection_error",
        "description": "Connection errors: exponential backoff, at most 5 retries.",
        "strategy": "exponential", "jitter": "full", "max_attempts": 6, "retry_on_transient": False,
        "retry_on_error_types": "NETWORK_CONNECTION",
    },
    {"name": "bad_request", "description": "400: never retried; skip the item.", "retry_on_statuses": "400",
     "on_give_up": "SKIP", **_NO_RETRY},
    {"name": "unauthorized", "description": "401: never retried; alert.", "retry_on_statuses": "401",
     "on_give_up": "ALERT", **_NO_RETRY},
    {"name": "forbidden", "description": "403: never retried; alert.", "retry_on_statuses": "403",
     "on_give_up": "ALERT", **_NO_RETRY},
    {"name": "not_found", "description": "404: never retried; skip the item.", "retry_on_statuses": "404",
     "on_give_up": "SKIP", **_NO_RETRY},
]  # fmt: skip

RECOVERY_POLICIES = [
    {"name": "auth-failure-alert", "strategy": "alert", "error_type": "API_AUTH", "severity": "critical"},
    {"name": "permission-failure-alert", "strategy": "alert", "error_type": "API_PERMISSION", "severity": "error"},
    {"name": "data-feed-retry", "strategy": "retry", "component": "data_feed", "max_attempts": 3},
]


def seed(apps, schema_editor):
    RetryPolicy = apps.get_model("resilience", "RetryPolicy")
    RecoveryPolicy = apps.get_model("resilience", "RecoveryPolicy")
    for row in RETRY_POLICIES:
        RetryPolicy.objects.update_or_create(name=row["name"], defaults=row)
    for row in RECOVERY_POLICIES:
        RecoveryPolicy.objects.update_or_create(name=row["name"], defaults=row)


def unseed(apps, schema_editor):
    apps.get_model("resilience", "RetryPolicy").objects.filter(name__in=[r["name"] for r in RETRY_POLICIES]).delete()
    apps.get_model("resilience", "RecoveryPolicy").objects.filter(
        name__in=[r["name"] for r in RECOVERY_POLICIES]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("resilience", "0005_policies")]

    operations = [migrations.RunPython(seed, unseed)]
