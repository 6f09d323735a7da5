"""Retry, recovery, rate-limit and degradation policies: seeded from the seeds, validated like the runtime."""

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse

from resilience.config_watcher import config_version
from resilience.models import DegradationFeature, DegradationRule, RateLimitPolicy, RecoveryPolicy, RetryPolicy
from resilience.runtime.retry import default_retry_policies

pytestmark = pytest.mark.django_db


def test_the_seeded_retry_policies_are_the_runtimes_defaults():
    # Two sources of the same table (migration and runtime) must never drift apart.
    seeded = {row.name: row.to_config() for row in RetryPolicy.objects.all()}
    defaults = default_retry_policies()
    assert seeded.keys() == defaults.keys()
    for name, config in seeded.items():
        config.validate()
        assert config.to_dict() == defaults[name].to_dict(), name


@pytest.mark.parametrize(
    "name, attempts, statuses, give_up",
    [
        ("rate_limited", 5, {429}, "NONE"),
        ("server_error", 4, set(range(500, 600)), "NONE"),
        ("timeout", 3, {408}, "NONE"),
        ("connection_error", 6, set(), "NONE"),
        ("bad_request", 1, {400}, "SKIP"),
        ("not_found", 1, {404}, "SKIP"),
        ("unauthorized", 1, {401}, "ALERT"),
        ("forbidden", 1, {403}, "ALERT"),
    ],
)
def test_each_row_of_the_seed_table(name, attempts, statuses, give_up):
    config = RetryPolicy.objects.get(name=name).to_config()
    assert (config.max_attempts, set(config.retry_on_statuses), config.on_give_up) == (attempts, statuses, give_up)


def test_rate_limits_honour_the_whole_retry_after_and_timeouts_retry_at_once():
    rate_limited = RetryPolicy.objects.get(name="rate_limited").to_config()
    assert rate_limited.honour_retry_after and not rate_limited.cap_retry_after
    assert RetryPolicy.objects.get(name="timeout").to_config().base_delay == 0


def test_the_seeded_recovery_policies_alert_on_auth_and_retry_the_data_feed():
    rows = {row.name: row.to_config() for row in RecoveryPolicy.objects.all()}
    for config in rows.values():
        config.validate()
    assert (rows["auth-failure-alert"].strategy, rows["auth-failure-alert"].error_type) == ("alert", "API_AUTH")
    assert (rows["data-feed-retry"].strategy, rows["data-feed-retry"].component) == ("retry", "data_feed")


@pytest.mark.parametrize(
    "url, data, field",
    [
        (
            "admin:resilience_retrypolicy_add",
            {"name": "x", "strategy": "exponential", "jitter": "none", "max_attempts": 3, "base_delay": 10,
             "multiplier": 2, "max_delay": 5, "on_give_up": "NONE", "budget_window_seconds": 10,
             "budget_min_per_second": 1},
            "max_delay",
        ),
        (
            "admin:resilience_retrypolicy_add",
            {"name": "x", "strategy": "exponential", "jitter": "none", "max_attempts": 3, "base_delay": 1,
             "multiplier": 2, "max_delay": 5, "on_give_up": "NONE", "budget_window_seconds": 10,
             "budget_min_per_second": 1, "retry_on_statuses": "700"},
            "retry_on_statuses",
        ),
        (
            "admin:resilience_recoverypolicy_add",
            {"name": "x", "strategy": "fallback", "max_attempts": 1, "degrade_seconds": 60, "severity": "error"},
            "fallback",
        ),
        (
            "admin:resilience_ratelimitpolicy_add",
            {"name": "x", "limit": 0, "window_seconds": 60, "max_keys": 10},
            "limit",
        ),
    ],
)  # fmt: skip
def test_an_invalid_policy_is_refused_naming_the_field(admin_client, url, data, field):
    response = admin_client.post(reverse(url), data)
    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors


def test_saving_any_policy_bumps_the_config_version():
    before = config_version()
    RateLimitPolicy.objects.create(name="binance", limit=1200, window_seconds=60)
    DegradationFeature.objects.create(name="checkout", breakers="payments-api", critical=True)
    DegradationRule.objects.create(name="checkout-down", condition="critical_breaker_open", level=2)
    assert config_version() == before + 3


def test_the_database_refuses_a_retry_policy_with_zero_attempts():
    with pytest.raises(IntegrityError), transaction.atomic():
        RetryPolicy.objects.create(name="never", max_attempts=0)
