"""Circuit breakers and degradation mode for the reporting API.

The shapes use the error API's envelope ("status": "success", ..., "timestamp"), extended.
A breaker's state is the shared state every console process agrees on (BreakerState, or
the Redis store when RESILIENCE_STATE_STORE is redis); its window figures are summed over
the fresh reports of every process of the source that runs it (resilience.selectors). Operator switches go
through the console runtime's breaker, as the admin's actions do. Readable by viewers;
config changes and switches need an admin. System health and ingest rate-limit status, which
read the incidents side too, are incidents/api/system.py, answering in the same envelope (success).
"""

from datetime import UTC, datetime

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet, Subquery
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from access.errors import FieldError
from resilience import process_runtime
from resilience.api.serializers import (
    BreakerConfigSerializer,
    BreakerSwitchSerializer,
    CircuitBreakerDetailSerializer,
    CircuitBreakerListSerializer,
    CircuitBreakerSwitchedSerializer,
    DegradationModeSerializer,
)
from resilience.config_watcher import config_version
from resilience.models import Breaker, BreakerState
from resilience.runtime.degradation import Feature, Level
from resilience.runtime.runtime import Runtime
from resilience.runtime.state import SharedState
from resilience.selectors import (
    breaker_transitions,
    breaker_windows,
    failure_rate,
    reported_windows,
    with_window_totals,
)

TRANSITIONS_SHOWN = 20
NAME = OpenApiParameter(
    "name", str, OpenApiParameter.PATH, description="The breaker's name.", pattern=r"^[-a-zA-Z0-9_]+$"
)
OPEN = BreakerState.State.OPEN
HALF_OPEN = BreakerState.State.HALF_OPEN


def success(serializer_class, **fields) -> Response:
    """The answer in the envelope of these endpoints: status "success", the fields, a timestamp."""
    return Response(serializer_class({"status": "success", **fields, "timestamp": timezone.now()}).data)


def refuse_parameters(request) -> None:
    """Refuse query parameters: a misspelt one must not be silently ignored."""
    for name in request.query_params:
        if name != "format":
            raise FieldError(name, "is not a parameter here; this endpoint takes none")


# Breaker state and figures


def _with_figures(breakers: QuerySet) -> list[Breaker]:
    """Breakers with their summed window figures and when a process last reported failures."""
    failing = reported_windows().filter(failures__gt=0).order_by("-reported_at")
    return list(with_window_totals(breakers).annotate(last_failure_at=Subquery(failing.values("reported_at")[:1])))


def _shared_states(names: list[str]) -> dict[str, SharedState | BreakerState]:
    """The shared state of each named breaker, from wherever the console keeps it; missing ones are closed."""
    if settings.RESILIENCE_STATE_STORE == "redis":
        store = process_runtime.breakers().store
        return {name: store.read(name) for name in names}
    found = {row.name: row for row in BreakerState.objects.filter(name__in=names)}
    return {name: found.get(name) or SharedState() for name in names}


def _moment(ms: int) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, tz=UTC) if ms else None


def _status(row: Breaker, shared: SharedState | BreakerState) -> dict:
    calls, failures = row.window_calls, row.window_failures
    state, mode = str(shared.state), str(shared.mode)
    # A forced opening has no end, and an earlier automatic one's end no longer means anything.
    waiting = state == OPEN and mode != BreakerState.Mode.FORCED_OPEN
    return {
        "name": row.name,
        "state": state,
        "mode": mode,
        "failure_count": failures,
        "success_count": calls - failures,
        "slow_count": row.window_slow_calls,
        "calls": calls,
        "failure_rate": failure_rate(calls, failures),
        "last_failure_time": row.last_failure_at,
        "opened_at": _moment(shared.opened_at_ms),
        "open_until": _moment(shared.open_until_ms) if waiting else None,
        "generation": shared.generation,
        "last_reason": shared.last_reason,
    }


def breaker_statuses(breakers: QuerySet | None = None) -> dict[str, dict]:
    """Each breaker's status keyed by name, in name order (every configured breaker by default)."""
    rows = _with_figures(Breaker.objects.all() if breakers is None else breakers)
    shared = _shared_states([row.name for row in rows])
    return {row.name: _status(row, shared[row.name]) for row in rows}


def _breaker_status(name: str) -> dict:
    return breaker_statuses(Breaker.objects.filter(name=name))[name]


# Breakers


class CircuitBreakerListView(APIView):
    """Every configured circuit breaker's state and window figures, keyed by name."""

    @extend_schema(operation_id="v1_circuit_breakers_list", responses=CircuitBreakerListSerializer)
    def get(self, request):
        refuse_parameters(request)
        return success(CircuitBreakerListSerializer, circuit_breakers=breaker_statuses())


class CircuitBreakerDetailView(APIView):
    """A breaker's config, state, per-process windows and latest transitions; admins PATCH its config."""

    @extend_schema(parameters=[NAME], responses=CircuitBreakerDetailSerializer)
    def get(self, request, name: str):
        refuse_parameters(request)
        return self._detail(get_object_or_404(Breaker, name=name))

    @extend_schema(parameters=[NAME], request=BreakerConfigSerializer, responses=CircuitBreakerDetailSerializer)
    def patch(self, request, name: str):
        with transaction.atomic():  # refused whole, or saved whole with the config version bumped
            row = get_object_or_404(Breaker.objects.select_for_update(), name=name)
            form = BreakerConfigSerializer(row, data=request.data, partial=True)
            form.is_valid(raise_exception=True)
            form.save()
        return self._detail(row)

    def _detail(self, row: Breaker) -> Response:
        return success(
            CircuitBreakerDetailSerializer,
            circuit_breaker=_breaker_status(row.name),
            config=row,
            processes=breaker_windows(row).select_related("source").order_by("process"),
            transitions=breaker_transitions(row).select_related("source").order_by("-at", "-id")[:TRANSITIONS_SHOWN],
        )


class CircuitBreakerSwitchView(APIView):
    """Switch a breaker as the admin's actions do, in every process sharing its state; answer the new state."""

    switch = ""  # the console breaker's method: force_open, force_closed, reset or set_auto

    @extend_schema(parameters=[NAME], request=BreakerSwitchSerializer, responses=CircuitBreakerSwitchedSerializer)
    def post(self, request, name: str):
        row = get_object_or_404(Breaker, name=name)
        form = BreakerSwitchSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        note = form.validated_data.get("reason", "")
        reason = f"api: {request.user.get_username()}" + (f": {note}" if note else "")
        getattr(process_runtime.breaker(row.name), self.switch)(reason=reason)
        return success(CircuitBreakerSwitchedSerializer, circuit_breaker=_breaker_status(row.name))


# Degradation


class DegradationModeView(APIView):
    """The console runtime's service level, the features it takes away and what serves them instead.

    The level comes from the degradation rules and features saved in admin, evaluated by this
    process's runtime against the breakers' shared state (and features recovery marked degraded).
    """

    @extend_schema(responses=DegradationModeSerializer)
    def get(self, request):
        refuse_parameters(request)
        target = _current_runtime()
        manager = target.degradation
        level = manager.evaluate()
        affected = [_affected(target, feature, level) for feature in manager.features]
        affected = [entry for entry in affected if entry is not None]
        open_circuits = [name for name, status in breaker_statuses().items() if status["state"] == OPEN]
        return success(
            DegradationModeSerializer,
            is_degraded=level is not Level.FULL or bool(affected),
            level=level.name,
            open_circuits=open_circuits,
            affected_features=affected,
            fallback_available=all(entry["fallback"] for entry in affected),
        )


def _current_runtime() -> Runtime:
    """This process's runtime, with the latest saved config applied (its watcher may not have got to it yet)."""
    target = process_runtime.runtime()
    if target.version != config_version():
        process_runtime.apply_saved_config(target)
    return target


def _affected(target: Runtime, feature: Feature, level: Level) -> dict | None:
    if target.degradation.is_available(feature.name):
        return None
    breakers = target.breakers  # the states the runtime judged by (a breaker it never used is closed)
    open_breakers = [name for name in feature.breakers if name in breakers and breakers.get(name).state == OPEN]
    if open_breakers:
        reason = f"circuit {', '.join(open_breakers)} open"
    elif level > feature.min_level:
        reason = f"the system is at {level.name}, below its minimum level {feature.min_level.name}"
    else:
        reason = "marked degraded by recovery"
    if feature.fallback:
        status, message = "degraded", f"{feature.name} served by its fallback {feature.fallback}"
    else:
        status, message = "unavailable", f"{feature.name} is unavailable: it has no fallback"
    return {
        "feature": feature.name,
        "status": status,
        "message": message,
        "fallback": feature.fallback,
        "reason": reason,
    }
