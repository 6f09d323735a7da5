"""The live dashboard: one page rendered with the current state, then kept current by dashboard.js."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.shortcuts import render

from access.roles import Role, role_of
from incidents.api.serializers import SEVERITY_NAMES
from incidents.live.outbox import newest_id
from incidents.models import Alert, Incident
from resilience.api.views import breaker_statuses
from resilience.process_runtime import runtime

RECENT_INCIDENTS = 25


@login_required(login_url="/admin/login/")
def dashboard(request):
    """Open incidents by severity, recent incidents, firing alerts, the breaker board and the degradation level."""
    if role_of(request.user) < Role.VIEWER:
        raise PermissionDenied
    live_after = newest_id()  # first, so nothing that happens while the page is read is missed
    open_incidents = Incident.objects.filter(status=Incident.Status.OPEN)
    by_severity = dict(open_incidents.values_list("severity").annotate(n=Count("id")).values_list("severity", "n"))
    context = {
        "live_after": live_after,
        "severities": [
            (SEVERITY_NAMES[level], by_severity.get(level, 0)) for level in sorted(SEVERITY_NAMES, reverse=True)
        ],
        "incidents": Incident.objects.exclude(status=Incident.Status.RESOLVED).order_by("-last_seen", "-id")[
            :RECENT_INCIDENTS
        ],
        "alerts": Alert.objects.filter(state=Alert.State.FIRING).select_related("rule").order_by("-fired_at")[:50],
        "breakers": list(breaker_statuses().values()),
        "degradation": runtime().degradation.evaluate().name,
        "can_triage": role_of(request.user) >= Role.TRIAGER,
    }
    return render(request, "incidents/dashboard.html", context)
