"""Alerting benchmark: from the event that crosses a threshold to the webhook a receiver gets,
and a full sweep of 1,000 rules over rollups of 1,000,000 events.

    .venv/bin/python bench/alerting.py [--trials 30] [--skip-sweep] [--skip-latency]

Latency, once with the django-q2 ORM broker and once with the Redis broker: recreates the
PostgreSQL database `console_bench_alerts` (BENCH_ALERTS_DATABASE_URL), starts the console's server (granian
ASGI, 2 workers, config.asgi) and a qcluster, creates a rule (any event, grouped per incident) routed to a
webhook receiver on loopback, then posts one event of a new incident at a time and measures
the time from the POST to the receiver getting the firing notification. Prints p50/p95/max.

Sweep: fills SourceMinute with rollups adding up to 1,000,000 events over the last day
(20 sources x 30 error types x 4 severities) and the incident rollups of 10,000 incidents
(minutes, users, environments), creates 1,000 enabled rules of every value kind, window
and filter, evaluates them once (creating their alerts), then times `evaluate_rules()`
over all of them again in the same minute and a minute later, when every window has slid.
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import recreate_database, stop_tree, wait_for_port  # noqa: E402

DATABASE_URL = os.environ.get("BENCH_ALERTS_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/console_bench_alerts")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


class Receiver(ThreadingHTTPServer):
    """Records when each notification arrived."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.arrivals: list[tuple[float, dict]] = []
        self.arrived = threading.Condition()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def wait_for(self, count: int, timeout: float = 30) -> float:
        with self.arrived:
            if not self.arrived.wait_for(lambda: len(self.arrivals) >= count, timeout):
                raise TimeoutError(f"notification {count} did not arrive within {timeout} s")
            return self.arrivals[count - 1][0]


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.arrived:
            self.server.arrivals.append((time.time(), body))
            self.server.arrived.notify_all()
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def env_for(broker: str) -> dict:
    env = {
        **os.environ,
        "DATABASE_URL": DATABASE_URL,
        "Q_CLUSTER_NAME": f"bench-alerts-{broker}",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "NOTIFICATION_ALLOWED_NETWORKS": "127.0.0.0/8",
        "PYTHONPATH": str(ROOT),
    }
    if broker == "redis":
        env["REDIS_URL"] = REDIS_URL
    else:
        env.pop("REDIS_URL", None)
        env.pop("RESILIENCE_STATE_STORE", None)
    return env


def manage(env: dict, *args: str) -> str:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    ).stdout


SETUP = """
from incidents import services
from incidents.models import AlertRule, NotificationChannel
source, key = services.source_create(name="Bench")
hook = NotificationChannel.objects.create(name="bench-hook", kind="webhook", config={"url": %r})
rule = AlertRule.objects.create(name="any event", source=source, window_minutes=1, comparator="gte",
                                warning_threshold=1, group_by=["incident"], cooldown=3600)
rule.channels.add(hook)
print(key.public_key)
"""


def latency(broker: str, trials: int) -> list[float]:
    recreate_database(DATABASE_URL)
    env = env_for(broker)
    manage(env, "migrate", "--noinput")
    receiver = Receiver()
    key = manage(env, "shell", "-c", SETUP % f"http://127.0.0.1:{receiver.server_address[1]}/hook").split()[-1]
    port = _free_port()
    web = subprocess.Popen(
        [sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "2", "config.asgi:application"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    worker = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=env, start_new_session=True)
    try:
        wait_for_port(port)
        _post_event(port, key, "warm-up")
        receiver.wait_for(1, timeout=60)
        latencies = []
        for trial in range(trials):
            started = time.time()
            _post_event(port, key, f"trial {trial} {uuid.uuid4().hex}")
            latencies.append(receiver.wait_for(trial + 2) - started)
        return latencies
    finally:
        stop_tree(web)
        stop_tree(worker)
        receiver.shutdown()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post_event(port: int, key: str, fingerprint: str) -> None:
    body = json.dumps({"message": f"payment failed: {fingerprint}", "level": "error", "fingerprint": [fingerprint]})
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/events/",
        data=body.encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def sweep() -> tuple[list[float], int]:
    """Time evaluations of 1,000 rules over rollups of 1,000,000 events: steady, then a minute later."""
    recreate_database(DATABASE_URL)
    env = env_for("orm")
    manage(env, "migrate", "--noinput")
    os.environ.update({"DATABASE_URL": DATABASE_URL, "DJANGO_SETTINGS_MODULE": "config.settings"})
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    from datetime import timedelta

    from django.utils import timezone

    from incidents import services
    from incidents.alerting import evaluation
    from incidents.models import AlertRule, ErrorType

    now = timezone.now().replace(second=0, microsecond=0)
    sources = [services.source_create(name=f"Source {i}")[0] for i in range(20)]
    types = list(ErrorType.objects.all()[:30])
    total = _fill_source_minutes(sources, types, now)
    _fill_incident_rollups(sources, types, now)
    rng = random.Random(7)
    values = ["count", "rate", "ratio", "incidents", "users"]
    AlertRule.objects.bulk_create(
        [
            AlertRule(
                name=f"rule {i}",
                source=rng.choice([None, *sources]),
                error_type=rng.choice([None, None, *types]),
                min_severity=rng.choice([None, 30, 40, 50]),
                value=values[i % len(values)],
                window_minutes=rng.choice([1, 5, 60, 1440]),
                comparator="gt",
                warning_threshold=rng.choice([10, 100, 1000]),
                group_by=rng.choice([[], ["source"], ["error_type"]]) if i % 5 < 3 else rng.choice([[], ["source"]]),
            )
            for i in range(1000)
        ]
    )
    evaluation.evaluate_rules(now=now)  # the first evaluation creates the alerts; the sweeps after it update them
    timings = []
    for moment in (now + timedelta(seconds=30), now + timedelta(minutes=1)):
        started = time.perf_counter()
        evaluation.evaluate_rules(now=moment)
        timings.append(time.perf_counter() - started)
    return timings, total


def _fill_source_minutes(sources, types, now) -> int:
    """SourceMinute rows adding up to exactly 1,000,000 events on 60 minutes of the last day."""
    from datetime import timedelta

    from incidents.models import SourceMinute

    combos = [(s, t, sev) for s in sources for t in types for sev in (20, 30, 40, 50)]
    cells = [(now - timedelta(minutes=minute), combo) for minute in range(0, 1440, 24) for combo in combos]
    per_cell, extra = divmod(1_000_000, len(cells))
    rows = [
        SourceMinute(
            source=s, error_type=t, severity=sev, environment="production", minute=at, count=per_cell + (i < extra)
        )
        for i, (at, (s, t, sev)) in enumerate(cells)
    ]
    SourceMinute.objects.bulk_create(rows, batch_size=5000)
    return sum(row.count for row in rows)


def _fill_incident_rollups(sources, types, now) -> None:
    """10,000 incidents, each seen on 6 minutes of the day by 5 users, in production."""
    from datetime import timedelta

    from incidents.models import Incident, IncidentEnvironment, IncidentMinute, IncidentUser

    incidents = Incident.objects.bulk_create(
        [
            Incident(
                source=sources[i % len(sources)],
                fingerprint=f"bench-{i}",
                title=f"incident {i}",
                error_type=types[i % len(types)],
                category=types[i % len(types)].category,
                severity=(20, 30, 40, 50)[i % 4],
                first_seen=now - timedelta(days=1),
                last_seen=now,
            )
            for i in range(10_000)
        ],
        batch_size=5000,
    )
    minutes = [
        IncidentMinute(incident=incident, minute=now - timedelta(minutes=(i * 7 + k * 240) % 1440), count=16)
        for i, incident in enumerate(incidents)
        for k in range(6)
    ]
    IncidentMinute.objects.bulk_create(minutes, batch_size=5000)
    users = [
        IncidentUser(incident=incident, user_hash=f"{i}-{k}", last_seen=now - timedelta(minutes=(i + k * 300) % 1440))
        for i, incident in enumerate(incidents)
        for k in range(5)
    ]
    IncidentUser.objects.bulk_create(users, batch_size=5000)
    IncidentEnvironment.objects.bulk_create(
        [IncidentEnvironment(incident=incident, environment="production") for incident in incidents], batch_size=5000
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--skip-sweep", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    args = parser.parse_args()
    for broker in () if args.skip_latency else ("orm", "redis"):
        figures = sorted(latency(broker, args.trials))
        p95 = figures[max(0, round(0.95 * len(figures)) - 1)]
        print(
            f"event -> webhook, {broker} broker, {len(figures)} trials: "
            f"p50 {statistics.median(figures) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, max {figures[-1] * 1000:.0f} ms"
        )
    if not args.skip_sweep:
        (steady, slid), events = sweep()
        print(
            f"sweep of 1,000 enabled rules over rollups of {events:,} events and 10,000 incidents: "
            f"{steady * 1000:.0f} ms in the same minute, {slid * 1000:.0f} ms a minute later (windows slid)"
        )


if __name__ == "__main__":
    main()
