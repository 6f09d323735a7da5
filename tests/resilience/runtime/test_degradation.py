"""Degradation levels: rules, features gated by breakers and levels, decorators, history, listeners."""

import json

import pytest

from resilience.runtime.degradation import (
    DEFAULT_RULES,
    Condition,
    DegradationManager,
    DegradationRule,
    Feature,
    FeatureUnavailable,
    Level,
    LevelChange,
)
from resilience.runtime.recovery import ConfigError


class World:
    """Breaker states and error rate the manager reads, changed by the tests."""

    def __init__(self) -> None:
        self.breakers: dict[str, str] = {}
        self.rate = 0.0

    def breaker_state(self, name: str) -> str:
        return self.breakers.get(name, "CLOSED")

    def error_rate(self) -> float:
        return self.rate


FEATURES = (
    Feature("orders", breakers=("broker",), critical=True, min_level=Level.MINIMAL),
    Feature("quotes", breakers=("quotes-api",), fallback="cached-quotes"),
    Feature("news", breakers=("news-api",)),
    Feature("charts", min_level=Level.FULL, fallback="static-charts"),
)
FALLBACKS = {"cached-quotes": lambda symbol: f"cached {symbol}", "static-charts": lambda: "static"}


@pytest.fixture
def world() -> World:
    return World()


def make_manager(world, clock, features=FEATURES, rules=DEFAULT_RULES, **overrides) -> DegradationManager:
    options = {
        "breaker_state": world.breaker_state,
        "error_rate": world.error_rate,
        "fallbacks": FALLBACKS,
        "clock": clock,
        "refresh_seconds": 0,
    }
    options.update(overrides)
    return DegradationManager(features, rules, **options)


# Level rules


def test_the_level_is_full_when_nothing_is_wrong(world, clock):
    assert make_manager(world, clock).evaluate() is Level.FULL


def test_an_open_breaker_of_a_critical_feature_drops_the_level_to_minimal(world, clock):
    manager = make_manager(world, clock)
    world.breakers["broker"] = "OPEN"

    assert manager.evaluate() is Level.MINIMAL


def test_an_open_breaker_of_a_non_critical_feature_alone_keeps_the_level_full(world, clock):
    manager = make_manager(world, clock)
    world.breakers["news-api"] = "OPEN"

    assert manager.evaluate() is Level.FULL


def test_a_half_open_breaker_is_not_counted_as_open(world, clock):
    manager = make_manager(world, clock)
    world.breakers["broker"] = "HALF_OPEN"

    assert manager.evaluate() is Level.FULL


def test_n_degraded_features_make_the_level_degraded(world, clock):
    manager = make_manager(world, clock)
    world.breakers["news-api"] = "OPEN"
    assert manager.evaluate() is Level.FULL

    manager.mark_degraded("quotes", duration=60, reason="stale quotes served")

    assert manager.evaluate() is Level.DEGRADED
    assert manager.degraded_features() == ["news", "quotes"]


def test_an_error_rate_over_the_threshold_means_emergency(world, clock):
    manager = make_manager(world, clock)
    world.rate = 0.5
    assert manager.evaluate() is Level.FULL

    world.rate = 0.51

    assert manager.evaluate() is Level.EMERGENCY


def test_any_breaker_open_rule_fires_for_any_declared_breaker(world, clock):
    rules = [DegradationRule("any-open", Condition.ANY_BREAKER_OPEN, Level.DEGRADED)]
    manager = make_manager(world, clock, rules=rules)
    world.breakers["news-api"] = "OPEN"

    assert manager.evaluate() is Level.DEGRADED


def test_the_worst_level_of_all_firing_rules_wins(world, clock):
    manager = make_manager(world, clock)
    world.breakers.update({"broker": "OPEN", "news-api": "OPEN"})
    world.rate = 0.9

    assert manager.evaluate() is Level.EMERGENCY


def test_a_degraded_mark_expires_after_its_duration(world, clock):
    manager = make_manager(world, clock, rules=[DegradationRule("one", Condition.FEATURES_DEGRADED, Level.DEGRADED, 1)])
    manager.mark_degraded("news", duration=10, reason="r")
    assert manager.evaluate() is Level.DEGRADED

    clock.now += 10

    assert manager.evaluate() is Level.FULL


def test_unreadable_inputs_count_as_healthy(clock):
    def breaker_state(name):
        raise ConnectionError("state store down")

    def error_rate():
        raise ConnectionError("window store down")

    manager = DegradationManager(
        FEATURES, DEFAULT_RULES, breaker_state=breaker_state, error_rate=error_rate, fallbacks=FALLBACKS, clock=clock
    )

    assert manager.evaluate() is Level.FULL


def test_the_level_is_reevaluated_lazily_after_refresh_seconds(world, clock):
    manager = make_manager(world, clock, refresh_seconds=1.0)
    assert manager.level is Level.FULL
    world.rate = 0.9

    assert manager.level is Level.FULL
    clock.now += 1
    assert manager.level is Level.EMERGENCY


# Features


def test_a_feature_is_unavailable_while_one_of_its_breakers_is_open(world, clock):
    manager = make_manager(world, clock)
    world.breakers["quotes-api"] = "OPEN"

    assert manager.is_available("quotes") is False
    assert manager.is_available("news") is True


def test_a_feature_is_unavailable_when_the_level_is_worse_than_its_min_level(world, clock):
    manager = make_manager(world, clock)
    world.breakers["broker"] = "OPEN"
    manager.evaluate()

    assert manager.is_available("news") is False
    assert manager.is_available("charts") is False


def test_a_feature_min_level_keeps_it_running_at_that_level(world, clock):
    manager = make_manager(world, clock, rules=[DegradationRule("all", Condition.ERROR_RATE_ABOVE, Level.MINIMAL, 10)])
    world.rate = 0.2
    manager.evaluate()

    assert manager.is_available("orders") is True


def test_call_runs_the_function_while_the_feature_is_available(world, clock):
    manager = make_manager(world, clock)

    assert manager.call("quotes", lambda symbol: f"live {symbol}", "BTC") == "live BTC"


def test_call_runs_the_fallback_with_the_same_arguments_when_the_feature_is_unavailable(world, clock):
    manager = make_manager(world, clock)
    world.breakers["quotes-api"] = "OPEN"

    assert manager.call("quotes", lambda symbol: f"live {symbol}", "BTC") == "cached BTC"


def test_call_raises_feature_unavailable_when_there_is_no_fallback(world, clock):
    manager = make_manager(world, clock)
    world.breakers["news-api"] = "OPEN"

    with pytest.raises(FeatureUnavailable) as raised:
        manager.call("news", lambda: "headlines")

    assert raised.value.feature == "news"


def test_a_feature_degraded_by_recovery_uses_its_fallback(world, clock):
    manager = make_manager(world, clock)
    manager.mark_degraded("charts", duration=30, reason="render failures")

    assert manager.call("charts", lambda: "live") == "static"

    manager.clear_degraded("charts")
    assert manager.call("charts", lambda: "live") == "live"


def test_an_undeclared_feature_is_an_error(world, clock):
    manager = make_manager(world, clock)

    with pytest.raises(KeyError, match="no feature is declared as 'ghost'"):
        manager.is_available("ghost")


@pytest.mark.asyncio
async def test_call_async_awaits_the_function_or_the_async_fallback(world, clock):
    async def cached(symbol):
        return f"async cached {symbol}"

    async def live(symbol):
        return f"live {symbol}"

    manager = make_manager(world, clock, fallbacks={"cached-quotes": cached, "static-charts": lambda: "static"})

    assert await manager.call_async("quotes", live, "BTC") == "live BTC"
    world.breakers["quotes-api"] = "OPEN"
    assert await manager.call_async("quotes", live, "BTC") == "async cached BTC"


def test_guard_decorates_a_function_with_its_feature(world, clock):
    manager = make_manager(world, clock)

    @manager.guard("quotes")
    def quote(symbol):
        return f"live {symbol}"

    assert quote("ETH") == "live ETH"
    world.breakers["quotes-api"] = "OPEN"
    assert quote("ETH") == "cached ETH"


@pytest.mark.asyncio
async def test_guard_decorates_coroutine_functions(world, clock):
    manager = make_manager(world, clock)

    @manager.guard("quotes")
    async def quote(symbol):
        return f"live {symbol}"

    world.breakers["quotes-api"] = "OPEN"
    assert await quote("ETH") == "cached ETH"


# critical and emergency_only


def test_a_critical_function_runs_even_in_emergency(world, clock):
    manager = make_manager(world, clock)
    calls: list[str] = []

    @manager.critical
    def close_positions():
        calls.append("closed")
        return "closed"

    world.rate = 0.99
    assert manager.evaluate() is Level.EMERGENCY

    assert close_positions() == "closed"
    assert manager.call("charts", lambda: "live") == "static"
    assert calls == ["closed"]


def test_an_emergency_only_function_is_skipped_outside_emergency_and_runs_in_it(world, clock):
    manager = make_manager(world, clock)
    calls: list[str] = []

    @manager.emergency_only
    def safe_shutdown(reason):
        calls.append(reason)
        return "shut down"

    assert safe_shutdown("test") is None
    assert calls == []

    world.rate = 0.99
    assert safe_shutdown("errors") == "shut down"
    assert calls == ["errors"]


@pytest.mark.asyncio
async def test_an_async_emergency_only_function_is_skipped_outside_emergency(world, clock):
    manager = make_manager(world, clock)

    @manager.emergency_only
    async def safe_shutdown():
        return "shut down"

    assert await safe_shutdown() is None
    world.rate = 0.99
    assert await safe_shutdown() == "shut down"


# History and listeners


def test_level_changes_are_recorded_with_time_and_reason(world, clock):
    manager = make_manager(world, clock)
    world.breakers["broker"] = "OPEN"
    manager.evaluate()
    clock.now = 160.0
    world.breakers["broker"] = "CLOSED"
    manager.evaluate()

    assert manager.history() == [
        LevelChange(Level.MINIMAL, Level.FULL, 100.0, "critical-breaker-open"),
        LevelChange(Level.FULL, Level.MINIMAL, 160.0, "no rule fires"),
    ]


def test_evaluating_an_unchanged_level_records_nothing(world, clock):
    manager = make_manager(world, clock)

    manager.evaluate()
    manager.evaluate()

    assert manager.history() == []


def test_the_history_keeps_only_the_latest_changes(world, clock):
    manager = make_manager(world, clock, history_limit=3)
    for step in range(5):
        clock.now = float(step)
        world.rate = 0.9 if step % 2 == 0 else 0.0
        manager.evaluate()

    assert [change.at for change in manager.history()] == [2.0, 3.0, 4.0]


def test_listeners_hear_level_changes_and_a_failing_listener_is_swallowed(world, clock):
    manager = make_manager(world, clock)
    heard: list[Level] = []

    def broken(change):
        raise RuntimeError("listener bug")

    manager.add_listener(broken)
    manager.add_listener(lambda change: heard.append(change.level))
    world.rate = 0.9

    assert manager.evaluate() is Level.EMERGENCY
    assert heard == [Level.EMERGENCY]


def test_a_removed_listener_hears_nothing_more(world, clock):
    manager = make_manager(world, clock)
    heard: list[Level] = []
    remove = manager.add_listener(lambda change: heard.append(change.level))
    world.rate = 0.9
    manager.evaluate()

    remove()
    world.rate = 0.0
    manager.evaluate()

    assert heard == [Level.EMERGENCY]


def test_marking_a_feature_degraded_reevaluates_and_explains_why(world, clock):
    rules = [DegradationRule("one-degraded", Condition.FEATURES_DEGRADED, Level.DEGRADED, 1)]
    manager = make_manager(world, clock, rules=rules)

    manager.mark_degraded("news", duration=5, reason="policy 'news'")

    assert manager.history()[-1].reason == "news degraded: policy 'news'; one-degraded"


# Hot swap


def test_apply_swaps_rules_and_features_and_reevaluates(world, clock):
    manager = make_manager(world, clock)
    world.breakers["news-api"] = "OPEN"
    assert manager.evaluate() is Level.FULL

    level = manager.apply(FEATURES, [DegradationRule("any-open", Condition.ANY_BREAKER_OPEN, Level.MINIMAL)])

    assert level is Level.MINIMAL
    assert manager.level is Level.MINIMAL


def test_apply_with_an_invalid_config_keeps_the_old_one(world, clock):
    manager = make_manager(world, clock)

    with pytest.raises(ConfigError):
        manager.apply([Feature("new", fallback="missing")], [])

    assert [feature.name for feature in manager.features] == ["orders", "quotes", "news", "charts"]
    assert manager.rules == DEFAULT_RULES


def test_status_reports_level_features_and_history(world, clock):
    manager = make_manager(world, clock)
    world.breakers["quotes-api"] = "OPEN"

    status = manager.status()

    assert status["level"] == "FULL"
    assert status["degraded_features"] == ["quotes"]
    assert {"name": "quotes", "available": False, "fallback": "cached-quotes"} in status["features"]
    json.dumps(status)


# Validation and serialisation


@pytest.mark.parametrize(
    ("feature", "field", "limit"),
    [
        (Feature(""), "name", "non-empty"),
        (Feature("f" * 101), "name", "at most 100"),
        (Feature("f", breakers=["a"]), "breakers", "tuple"),
        (Feature("f", breakers=tuple(f"b{i}" for i in range(21))), "breakers", "at most 20"),
        (Feature("f", breakers=("",)), "breakers", "non-empty"),
        (Feature("f", fallback=""), "fallback", "non-empty"),
        (Feature("f", critical="yes"), "critical", "true or false"),
        (Feature("f", min_level="FULL"), "min_level", "one of"),
    ],
)
def test_feature_validate_names_the_invalid_field(feature, field, limit):
    with pytest.raises(ConfigError) as raised:
        feature.validate()

    assert raised.value.field == field
    assert limit in raised.value.reason


@pytest.mark.parametrize(
    ("rule", "field", "limit"),
    [
        (DegradationRule("", Condition.ANY_BREAKER_OPEN, Level.DEGRADED), "name", "non-empty"),
        (DegradationRule("r", "any_breaker_open", Level.DEGRADED), "condition", "one of"),
        (DegradationRule("r", Condition.ANY_BREAKER_OPEN, Level.FULL), "level", "DEGRADED, MINIMAL or EMERGENCY"),
        (DegradationRule("r", Condition.FEATURES_DEGRADED, Level.DEGRADED, 0), "threshold", "at least 1"),
        (DegradationRule("r", Condition.FEATURES_DEGRADED, Level.DEGRADED, 1.5), "threshold", "whole number"),
        (DegradationRule("r", Condition.ERROR_RATE_ABOVE, Level.EMERGENCY, 100), "threshold", "below 100"),
        (DegradationRule("r", Condition.ERROR_RATE_ABOVE, Level.EMERGENCY, -1), "threshold", "from 0"),
        (DegradationRule("r", Condition.ERROR_RATE_ABOVE, Level.EMERGENCY, "5"), "threshold", "number"),
    ],
)
def test_rule_validate_names_the_invalid_field(rule, field, limit):
    with pytest.raises(ConfigError) as raised:
        rule.validate()

    assert raised.value.field == field
    assert limit in raised.value.reason


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"features": [Feature("a"), Feature("a")]}, "name"),
        ({"features": [Feature("a", fallback="missing")]}, "fallback"),
        ({"rules": [DEFAULT_RULES[0], DEFAULT_RULES[0]]}, "name"),
        ({"history_limit": 0}, "history_limit"),
        ({"refresh_seconds": -1}, "refresh_seconds"),
    ],
)
def test_the_manager_rejects_invalid_config_naming_the_field(world, clock, kwargs, field):
    with pytest.raises(ConfigError) as raised:
        make_manager(world, clock, **kwargs)

    assert raised.value.field == field


def test_mark_degraded_rejects_a_duration_out_of_bounds(world, clock):
    manager = make_manager(world, clock)

    with pytest.raises(ConfigError) as raised:
        manager.mark_degraded("news", duration=0, reason="r")

    assert raised.value.field == "duration"


def test_features_and_rules_survive_a_json_round_trip():
    feature = Feature("orders", breakers=("broker", "db"), fallback="queue", critical=True, min_level=Level.EMERGENCY)
    rule = DegradationRule("errors", Condition.ERROR_RATE_ABOVE, Level.EMERGENCY, 12.5)

    feature_data = json.loads(json.dumps(feature.to_dict()))
    rule_data = json.loads(json.dumps(rule.to_dict()))

    assert feature_data["min_level"] == "EMERGENCY"
    assert Feature.from_dict(feature_data) == feature
    assert DegradationRule.from_dict(rule_data) == rule


@pytest.mark.parametrize(
    ("cls", "data", "field"),
    [
        (Feature, {"name": "f", "colour": "red"}, "colour"),
        (Feature, {"breakers": []}, "name"),
        (Feature, {"name": "f", "breakers": "broker"}, "breakers"),
        (Feature, {"name": "f", "min_level": "HALF"}, "min_level"),
        (DegradationRule, {"name": "r", "condition": "sunspots", "level": "MINIMAL"}, "condition"),
        (DegradationRule, {"name": "r", "condition": "any_breaker_open", "level": "LOW"}, "level"),
        (DegradationRule, {"name": "r", "level": "MINIMAL"}, "condition"),
    ],
)
def test_from_dict_rejects_bad_input_naming_the_field(cls, data, field):
    with pytest.raises(ConfigError) as raised:
        cls.from_dict(data)

    assert raised.value.field == field
