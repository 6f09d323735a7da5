"""Admin benchmark: incident list, incident page and event pages with 1,000,000 events loaded.

    .venv/bin/python bench/admin.py [--events 1000000] [--incidents 10000] [--requests 40] [--keep]

Loads PostgreSQL database `console_bench_admin` (BENCH_ADMIN_DATABASE_URL) with set-based
SQL shaped like digested sentry-sdk events (a real SDK exception chain, rollups,
environments, timelines), then times each admin page in-process (server time: URL
routing, middleware, view, queries and template rendering) and prints p50/p95 and the
number of queries per page. --keep reuses an already loaded database.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import recreate_database  # noqa: E402

DATABASE_URL = os.environ.get("BENCH_ADMIN_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/console_bench_admin")


def sample_exception() -> str:
    """Take the exception chain of a real sentry-sdk event, as the digest stores it."""
    from tests.support import sdk_envelopes

    def charge_card():
        raise ConnectionRefusedError(111, "Connection refused")

    [envelope] = sdk_envelopes("http://k@127.0.0.1:9/1", charge_card)
    return json.dumps(envelope.get_event()["exception"]["values"])


LOAD_SQL = """
INSERT INTO incidents_source (name, slug, environments, is_active, created_at)
SELECT 'source ' || g, 'source-' || g, '[]', true, now() FROM generate_series(1, 5) g;

INSERT INTO incidents_incident (source_id, fingerprint, title, culprit, error_type_id, category, severity, status,
    status_changed_at, first_seen, last_seen, event_count, user_count, regressed)
SELECT 1 + g % 5, md5(g::text) || md5((g * 7)::text), 'ConnectionRefusedError: connection ' || g || ' refused',
    'app.payments in charge_card_' || (g % 300), et.id, et.category, et.default_severity,
    (ARRAY['open', 'open', 'acknowledged', 'resolved', 'muted'])[1 + g % 5], now(),
    now() - interval '30 days' + (g % 1000) * interval '1 minute', now() - (g % 1440) * interval '1 minute',
    0, g % 50, g % 17 = 0
FROM generate_series(1, %(incidents)s) g
JOIN (SELECT id, category, default_severity, row_number() OVER (ORDER BY id) - 1 AS n FROM incidents_errortype) et
  ON et.n = g % (SELECT count(*) FROM incidents_errortype);

INSERT INTO incidents_errorevent (source_id, event_id, incident_id, timestamp, received_at, level, message, exception,
    http_status, logger, component, platform, server_name, release, environment, transaction, tags, "user", request,
    contexts, extra, sdk, fingerprint, title, culprit, error_type_id, severity)
SELECT i.source_id, gen_random_uuid(), i.id, ts, ts, 'error', '', $json$%(exception)s$json$::jsonb, NULL,
    'app.payments', '', 'python', 'web-' || (g % 4), 'shop@1.' || (g % 9),
    (ARRAY['production', 'staging'])[1 + g % 2], '',
    jsonb_build_object('region', 'eu-' || (g % 3)), jsonb_build_object('id', 'user-' || (g % 5000)), '{}', '{}', '{}',
    '{"name": "sentry.python", "version": "2.0"}', i.fingerprint, i.title, i.culprit, i.error_type_id, i.severity
FROM (SELECT g, 1 + (g::bigint * 7919) % %(incidents)s AS incident_id,
             now() - (g % 43200) * interval '1 minute' AS ts
      FROM generate_series(1, %(events)s) g) e
JOIN incidents_incident i ON i.id = e.incident_id;

UPDATE incidents_incident i SET event_count = c.n
FROM (SELECT incident_id, count(*) AS n FROM incidents_errorevent GROUP BY incident_id) c WHERE c.incident_id = i.id;

INSERT INTO incidents_incidenthour (incident_id, hour, count)
SELECT i.id, date_trunc('hour', now()) - h * interval '1 hour', 1 + (i.id * h) % 40
FROM incidents_incident i, generate_series(0, 23) h;

INSERT INTO incidents_incidentenvironment (incident_id, environment)
SELECT id, env FROM incidents_incident, unnest(ARRAY['production', 'staging']) env;

INSERT INTO incidents_incidentactivity (incident_id, created_at, kind, actor, from_status, to_status, detail)
SELECT id, first_seen, 'created', 'system:digest', '', 'open', '{}' FROM incidents_incident;
"""


def load(events: int, incidents: int) -> None:
    exception = sample_exception()
    started = time.monotonic()
    with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
        for statement in LOAD_SQL.split(";\n"):
            if statement.strip():
                sql = statement.replace("%(incidents)s", str(incidents)).replace("%(events)s", str(events))
                conn.execute(sql.replace("%(exception)s", exception).encode())
        conn.execute("VACUUM ANALYZE")
    print(f"loaded {events} events and {incidents} incidents in {time.monotonic() - started:.0f} s")


def time_pages(requests: int) -> None:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from incidents.models import ErrorEvent, Incident

    user, _ = get_user_model().objects.get_or_create(username="bench", defaults={"is_staff": True})
    user.is_superuser = True
    user.save()
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    busiest = Incident.objects.order_by("-event_count").first()
    event = ErrorEvent.objects.filter(incident=busiest).first()
    pages = {
        "incident list": "/admin/incidents/incident/",
        "incident list, status=open": "/admin/incidents/incident/?status__exact=open",
        "incident list, environment=staging": "/admin/incidents/incident/?environment=staging",
        "incident list, search": "/admin/incidents/incident/?q=refused",
        "incident list, page 50": "/admin/incidents/incident/?p=50",
        "incident page (busiest)": f"/admin/incidents/incident/{busiest.pk}/change/",
        "incident page, events page 3": f"/admin/incidents/incident/{busiest.pk}/change/?page=3",
        "event list": "/admin/incidents/errorevent/",
        "event list, source=1": "/admin/incidents/errorevent/?source__id__exact=1",
        "event page": f"/admin/incidents/errorevent/{event.pk}/change/",
    }
    print_timings(client, pages, requests, heading="page")


def print_timings(client, pages: dict[str, str], requests: int, *, heading: str) -> None:
    """GET each page `requests` times in-process and print p50/p95 server time and its query count."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    print(f"{heading:40} {'p50 ms':>8} {'p95 ms':>8} {'queries':>8}")
    for name, url in pages.items():
        timings = []
        for _ in range(requests):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get(url)
                timings.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise SystemExit(f"{name}: {url} answered {response.status_code}: {response.content[:200]}")
        timings.sort()
        p95 = timings[max(0, int(len(timings) * 0.95) - 1)]
        print(f"{name:40} {statistics.median(timings):8.1f} {p95:8.1f} {len(queries):8d}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--incidents", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--keep", action="store_true", help="reuse the loaded database")
    args = parser.parse_args()
    env = {**os.environ, "DATABASE_URL": DATABASE_URL}
    os.environ.update({"DATABASE_URL": DATABASE_URL, "DJANGO_SETTINGS_MODULE": "config.settings"})
    if not args.keep:
        recreate_database(DATABASE_URL)
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    import django

    django.setup()
    if not args.keep:
        load(args.events, args.incidents)
    time_pages(args.requests)


if __name__ == "__main__":
    main()
