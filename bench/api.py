"""Reporting API benchmark: list endpoints, summary and stats with 1,000,000 events and 10,000 incidents.

    .venv/bin/python bench/api.py [--events 1000000] [--incidents 10000] [--requests 40] [--keep]

Loads PostgreSQL database `console_bench_api` (BENCH_API_DATABASE_URL) with the admin
benchmark's set-based loader (events spread over 30 days), builds the minute rollups
from those events, then times each endpoint in-process with a real API token (server
time: routing, authentication, throttling, view, queries, serialisation) and prints
p50/p95 and the number of queries. --keep reuses an already loaded database.
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATABASE_URL = os.environ.get("BENCH_API_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/console_bench_api")
os.environ["BENCH_ADMIN_DATABASE_URL"] = DATABASE_URL  # the admin benchmark's loader fills this database

from bench.admin import load, print_timings  # noqa: E402
from bench.ingest import recreate_database  # noqa: E402

ROLLUP_SQL = """
INSERT INTO incidents_sourceminute (source_id, error_type_id, severity, environment, minute, count)
SELECT source_id, error_type_id, severity, environment, date_trunc('minute', received_at), count(*)
FROM incidents_errorevent GROUP BY 1, 2, 3, 4, 5;
INSERT INTO incidents_incidentminute (incident_id, minute, count)
SELECT incident_id, date_trunc('minute', received_at), count(*) FROM incidents_errorevent GROUP BY 1, 2;
VACUUM ANALYZE
"""


def build_rollups() -> None:
    import psycopg

    with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
        for statement in ROLLUP_SQL.split(";\n"):
            conn.execute(statement)


def endpoints() -> dict[str, str]:
    from incidents.models import Incident, Source

    busiest = Incident.objects.order_by("-event_count").first()
    source = Source.objects.order_by("id").first()
    return {
        "incidents": "/api/v1/incidents/",
        "incidents, status=open": "/api/v1/incidents/?status=open",
        "incidents, min_severity=high": "/api/v1/incidents/?min_severity=high",
        "incidents, by event count": "/api/v1/incidents/?ordering=-event_count",
        "incidents, search": "/api/v1/incidents/?search=refused",
        "incident detail (busiest)": f"/api/v1/incidents/{busiest.pk}/",
        "events": "/api/v1/events/",
        "events of the busiest incident": f"/api/v1/events/?incident={busiest.pk}",
        "events, source, staging": f"/api/v1/events/?source={source.slug}&environment=staging",
        "summary (24 h)": "/api/v1/summary/",
        "summary (7 days)": "/api/v1/summary/?minutes=10080",
        "stats per minute (1 h)": "/api/v1/stats/",
        "stats per minute (24 h), source": f"/api/v1/stats/?minutes=1440&source={source.slug}",
        "stats per hour (7 days)": "/api/v1/stats/?interval=hour&minutes=10080",
        "notifications": "/api/v1/notifications/?severity=high",
    }


def time_endpoints(requests: int) -> None:
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    from access.models import ApiToken
    from access.services import api_token_create

    user, _ = get_user_model().objects.get_or_create(username="bench", defaults={"is_superuser": True})
    ApiToken.objects.filter(user=user).delete()
    _token, raw = api_token_create(user=user, name="bench")
    client = APIClient(HTTP_HOST="127.0.0.1")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    print_timings(client, endpoints(), requests, heading="endpoint")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--incidents", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--keep", action="store_true", help="reuse the loaded database")
    args = parser.parse_args()
    env = {**os.environ, "DATABASE_URL": DATABASE_URL}
    os.environ.update({"DATABASE_URL": DATABASE_URL, "DJANGO_SETTINGS_MODULE": "config.settings"})
    os.environ.pop("REDIS_URL", None)  # throttling counts in this process's memory cache
    os.environ["API_THROTTLE_RATE"] = "1000000/min"
    if not args.keep:
        recreate_database(DATABASE_URL)
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        load(args.events, args.incidents)
        build_rollups()
    import django

    django.setup()
    time_endpoints(args.requests)


if __name__ == "__main__":
    main()
