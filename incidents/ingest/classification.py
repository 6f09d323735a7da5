"""Classification and grouping at ingest, against rules cached for at most a second.

The ingest request already holds the parsed event, so classifying and fingerprinting it
there costs tens of microseconds, where the digest would have to read the whole stored
event back. Rules and the catalog are cached per process for one second: an edit in
admin reaches every web process within a second, and at once in the process that saved
it (the cache is dropped on save and delete).
"""

import time
from dataclasses import dataclass

from incidents.ingest.classify import (
    CRITICAL,
    Classification,
    ErrorTypeInfo,
    RuleSet,
    classify,
    compile_rules,
)
from incidents.ingest.grouping import group
from incidents.models import ClassificationRule, ErrorType

RULES_CACHE_SECONDS = 1.0


@dataclass(frozen=True)
class _Rules:
    rules: RuleSet
    catalog: dict[str, ErrorTypeInfo]
    type_ids: dict[str, int]
    expires_at: float


_cached: _Rules | None = None


def forget_rules(**_signal_arguments) -> None:
    """Drop the cached rules, so the next event is classified with what the database holds now."""
    global _cached
    _cached = None


def rules_are_cached() -> bool:
    """Whether this process holds rules loaded from the database (the next event needs no query for them)."""
    return _cached is not None


def _current_rules() -> _Rules:
    global _cached
    cached = _cached
    if cached is None or cached.expires_at <= time.monotonic():
        rules, catalog = load_ruleset_and_catalog()
        type_ids = dict(ErrorType.objects.values_list("code", "id"))
        cached = _cached = _Rules(rules, catalog, type_ids, time.monotonic() + RULES_CACHE_SECONDS)
    return cached


def load_ruleset_and_catalog() -> tuple[RuleSet, dict[str, ErrorTypeInfo]]:
    """Read the enabled rules and the error-type catalog from the database."""
    rows = ClassificationRule.objects.filter(enabled=True).select_related("error_type").order_by("position", "id")
    catalog = {
        row.code: ErrorTypeInfo(code=row.code, category=row.category, default_severity=row.default_severity)
        for row in ErrorType.objects.all()
    }
    return compile_rules(rows), catalog


def warm_rules() -> None:
    """Load the rules now (a web worker's startup), so the first events find them cached."""
    _current_rules()


def classify_and_group(event: dict, *, error_type: str | None = None) -> dict:
    """Return the canonical event with its error type, severity, fingerprint, title and culprit added.

    `error_type` names the type outright, for events the console makes itself (a breaker's
    transitions carry the type configured on the breaker); rules decide otherwise.
    """
    current = _current_rules()
    info = current.catalog.get(error_type) if error_type else None
    if info is not None:
        severity = max(info.default_severity, CRITICAL) if event.get("level") == "fatal" else info.default_severity
        classification = Classification(error_type=info.code, category=info.category, severity=severity)
    else:
        classification = classify(event, current.rules, current.catalog)
    grouping = group(event)
    return {
        **event,
        "error_type": current.type_ids[classification.error_type],
        "severity": classification.severity,
        "fingerprint": grouping.fingerprint,
        "title": grouping.title,
        "culprit": grouping.culprit,
    }
