"""Severity and Category are defined once (resilience); the models, the API and the transports derive theirs."""

from incidents.alerting.transports import SEVERITIES
from incidents.api.serializers import SEVERITY_BY_NAME, SEVERITY_NAMES
from incidents.models import Category, Severity
from resilience import exceptions
from resilience.runtime import catalog


def test_the_model_stores_each_severity_as_its_rank_labelled_by_its_name():
    assert Severity.choices == [(10, "INFO"), (20, "LOW"), (30, "MEDIUM"), (40, "HIGH"), (50, "CRITICAL")]
    assert [(level.name, level.value) for level in Severity] == [
        (level.name, level.rank) for level in exceptions.Severity
    ]


def test_the_model_categories_are_the_runtime_categories():
    assert Category.values == [category.value for category in catalog.Category]
    assert ("RATE_LIMIT", "Rate Limit") in Category.choices


def test_the_api_and_the_transports_name_severities_in_lower_case():
    assert SEVERITY_NAMES == {10: "info", 20: "low", 30: "medium", 40: "high", 50: "critical"}
    assert SEVERITY_BY_NAME == {"info": 10, "low": 20, "medium": 30, "high": 40, "critical": 50}
    assert SEVERITIES == ("critical", "high", "medium", "low", "info")
