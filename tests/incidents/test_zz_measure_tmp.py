from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from incidents.models import ErrorEvent, Incident
from tests.incidents.test_admin import CHANGELIST, change_url, many_incidents


def measure(client, url, params=None):
    with CaptureQueriesContext(connection) as q:
        r = client.get(url, params or {})
    assert r.status_code == 200
    return len(q), [x["sql"][:150] for x in q.captured_queries]

def test_measure(admin_client, source, digest):
    many_incidents(source, digest, 5)
    print("list 5", measure(admin_client, CHANGELIST)[0])
    many_incidents(source, digest, 45, start=5)
    n, sqls = measure(admin_client, CHANGELIST)
    print("list 50", n); print("\n".join(sqls))
    print("list 50 filtered env+status+q", measure(admin_client, CHANGELIST, {"environment": "production", "status__exact": "open", "q": "failure"})[0])
    inc = Incident.objects.first()
    n, sqls = measure(admin_client, change_url(inc))
    print("incident page", n); print("\n".join(sqls))
    print("event list", measure(admin_client, reverse("admin:incidents_errorevent_changelist"))[0])
    ev = ErrorEvent.objects.first()
    print("event page", measure(admin_client, reverse("admin:incidents_errorevent_change", args=[ev.pk]))[0])
