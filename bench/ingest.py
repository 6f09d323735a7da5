"""Ingest benchmark: sentry-sdk envelopes against the envelope endpoint on PostgreSQL.

    .venv/bin/python bench/ingest.py [--duration 30] [--connections 16] [--server granian|gunicorn]
                                     [--web-workers 2] [--threads 2] [--worker-class sync|gthread]

Recreates the database `console_bench` (BENCH_DATABASE_URL), starts the WSGI server
(granian by default, as the README advises for production; gunicorn to compare) on
config.wsgi and one django-q2 cluster on the Redis broker, drives the envelope endpoint
with events the real sentry-sdk produced (distinct exception types and call sites,
brotli-compressed as the SDK sends them) over N keep-alive connections, then waits
until every accepted event is grouped and counted. Prints accepted events/s, latency
percentiles, the time to drain the digest, events lost and peak RSS per process.
"""

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import brotli
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/console_bench")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def recreate_database(url: str) -> None:
    """Drop and create the database the URL names, through the server's `postgres` database."""
    name = url.rsplit("/", 1)[1]
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def bench_env(**extra) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": DATABASE_URL,
        "REDIS_URL": REDIS_URL,
        "Q_CLUSTER_NAME": "bench",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        **extra,
    }


# Distinct exception types raised from distinct call sites, as an application would.
def _raisers():
    import json
    import socket as sock

    def fetch_rates(i):
        raise TimeoutError(f"read timed out after 30s (request {i})")

    def connect_db(i):
        raise ConnectionRefusedError(111, f"Connection refused to db-{i % 7}")

    def resolve_host(i):
        raise sock.gaierror(-2, "Name or service not known")

    def parse_payload(i):
        json.loads('{"order": ' + str(i))

    def validate_amount(i):
        raise ValueError(f"amount {-i} for order {i} must be positive")

    def lookup_customer(i):
        return {}["customer_" + str(i)]

    def open_snapshot(i):
        with open(f"/nonexistent/snapshot-{i}.parquet"):
            pass

    def divide_shares(i):
        return i / 0

    def check_permissions(i):
        raise PermissionError(13, f"Permission denied: /srv/reports/{i}.csv")

    def call_attribute(i):
        return None.upper()

    return [
        fetch_rates,
        connect_db,
        resolve_host,
        parse_payload,
        validate_amount,
        lookup_customer,
        open_snapshot,
        divide_shares,
        check_permissions,
        call_attribute,
    ]


def make_bodies(dsn: str, count: int) -> list[tuple[str, bytes]]:
    """Capture envelope templates with the real SDK, then stamp fresh event ids and compress."""
    from tests.support import sdk_envelopes

    raisers = _raisers()
    actions = [(lambda r=r, i=i: r(i)) for i in range(20) for r in raisers]
    templates = []
    for envelope in sdk_envelopes(dsn, *actions, release="bench@1.0", environment="production"):
        event_id = envelope.get_event()["event_id"]
        templates.append((event_id.encode(), envelope.serialize()))
    bodies = []
    for n in range(count):
        old_id, template = templates[n % len(templates)]
        new_id = uuid.uuid4().hex
        bodies.append((new_id, brotli.compress(template.replace(old_id, new_id.encode()), quality=4)))
    return bodies


async def client(port, path, auth, bodies, stop_at, results) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-sentry-envelope\r\n"
        f"Content-Encoding: br\r\nX-Sentry-Auth: {auth}\r\n"
    ).encode()
    while time.monotonic() < stop_at and bodies:
        event_id, body = bodies.pop()
        started = time.perf_counter()
        writer.write(head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        status_line = await reader.readline()
        length, close = 0, False
        while (line := await reader.readline()) not in (b"\r\n", b""):
            lowered = line.lower()
            if lowered.startswith(b"content-length:"):
                length = int(line.split(b":")[1])
            elif lowered.startswith(b"connection:") and b"close" in lowered:
                close = True
        await reader.readexactly(length)
        results.append((time.perf_counter() - started, int(status_line.split()[1]), event_id))
        if close:  # sync workers answer one request per connection, as an SDK's pool would see
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.close()


async def drive(port, path, auth, bodies, duration, connections):
    results: list = []
    stop_at = time.monotonic() + duration
    await asyncio.gather(*(client(port, path, auth, bodies, stop_at, results) for _ in range(connections)))
    return results


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def process_tree(pid: int) -> list[int]:
    import psutil

    parent = psutil.Process(pid)
    return [parent.pid] + [child.pid for child in parent.children(recursive=True)]


def cpu_seconds(pids: list[int]) -> float:
    import psutil

    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
    return total


def postgres_pids() -> list[int]:
    import psutil

    return [p.pid for p in psutil.process_iter(["name"]) if p.info["name"] == "postgres"]


def cpu_snapshot(web_pid: int, worker_pid: int) -> dict[str, float]:
    return {
        "web": cpu_seconds(process_tree(web_pid)),
        "worker": cpu_seconds(process_tree(worker_pid)),
        "postgres": cpu_seconds(postgres_pids()),
        "load client": cpu_seconds([os.getpid()]),
    }


def stop_tree(process: subprocess.Popen) -> None:
    """Stop a server and every process it started, killing what does not stop in time."""
    import psutil

    members = [psutil.Process(pid) for pid in process_tree(process.pid)]
    process.terminate()
    _, alive = psutil.wait_procs(members, timeout=20)
    for member in alive:
        member.kill()


def report_rss(name: str, pid: int) -> None:
    for member in process_tree(pid):
        with contextlib.suppress(FileNotFoundError):  # a process that already exited
            print(f"  peak RSS {name} pid {member}: {peak_rss_mb(member):.0f} MB")


def start_web(args) -> tuple[subprocess.Popen, int]:
    """Start the web server the arguments name; return it and its port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    if args.server == "granian":
        listener.close()  # granian binds the port itself
        web_cmd = [
            sys.executable, "-m", "granian", "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(args.web_workers), "--blocking-threads", str(args.threads), "--log-level", "warning",
            "config.wsgi:application",
        ]  # fmt: skip
        pool, fds = str(args.threads + 1), []
    else:
        listener.listen(1024)
        web_cmd = [
            sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"fd://{listener.fileno()}",
            "--worker-class", args.worker_class, "--workers", str(args.web_workers), "--threads", str(args.threads),
            "--keep-alive", "30", "--log-level", "warning",
        ]  # fmt: skip
        pool, fds = str(args.threads + 1 if args.worker_class == "gthread" else 2), [listener.fileno()]
    web = subprocess.Popen(web_cmd, cwd=ROOT, env=bench_env(DATABASE_POOL_MAX=pool), pass_fds=fds)
    wait_for_port(port)
    return web, port


def wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)  # the server is still starting; there is no event to wait on


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--server", default="granian", choices=["granian", "gunicorn"])
    parser.add_argument("--worker-class", default="sync", choices=["sync", "gthread"], help="gunicorn only")
    parser.add_argument("--threads", type=int, default=2, help="threads per web worker (gthread, granian)")
    args = parser.parse_args()

    recreate_database(DATABASE_URL)
    os.environ.update(bench_env())
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=bench_env(), check=True)
    import django

    django.setup()
    from django.db.models import Sum

    from incidents import services
    from incidents.models import ErrorEvent, Incident

    source, key = services.source_create(name="bench", rate_limit_per_minute=0)
    print(f"generating envelopes with sentry-sdk {__import__('sentry_sdk').VERSION} ...")
    bodies = make_bodies(key.dsn, int(args.duration * 3000))

    web, port = start_web(args)
    # Niced as the README advises: the digest yields the CPU to ingest and catches up after a burst.
    worker_cmd = ["nice", "-n", "10", sys.executable, "manage.py", "qcluster"]
    worker = subprocess.Popen(worker_cmd, cwd=ROOT, env=bench_env(Q_WORKERS="1"))
    try:
        auth = f"Sentry sentry_key={key.public_key}, sentry_version=7, sentry_client=sentry.python/bench"
        path = f"/api/{source.pk}/envelope/"
        asyncio.run(drive(port, path, auth, bodies[:200], 3, 4))  # warm-up: imports, pools, first digest
        warm = ErrorEvent.objects.count()
        cpu_before = cpu_snapshot(web.pid, worker.pid)
        started = time.monotonic()
        results = asyncio.run(drive(port, path, auth, bodies, args.duration, args.connections))
        load_seconds = time.monotonic() - started
        accepted = [r for r in results if r[1] == 200]
        while ErrorEvent.objects.filter(incident__isnull=True).exists():
            time.sleep(0.05)
        drained_at = time.monotonic() - started
        cpu_after = cpu_snapshot(web.pid, worker.pid)
        stored = set(ErrorEvent.objects.values_list("event_id", flat=True))
        lost = sum(1 for _, _, event_id in accepted if uuid.UUID(event_id) not in stored)
        counted = Incident.objects.aggregate(n=Sum("event_count"))["n"] - warm
        latencies = sorted(r[0] * 1000 for r in results)
        print(f"requests: {len(results)} in {load_seconds:.1f} s, accepted {len(accepted)}, "
              f"other statuses {len(results) - len(accepted)}")  # fmt: skip
        print(f"accepted events/s: {len(accepted) / load_seconds:.0f}")
        print(f"fully processed events/s (accepted / time until all digested): {len(accepted) / drained_at:.0f}")
        print(f"latency ms: p50 {statistics.median(latencies):.1f}  p99 {latencies[int(len(latencies) * 0.99)]:.1f}"
              f"  max {latencies[-1]:.1f}")  # fmt: skip
        print(f"digest drained {max(0.0, drained_at - load_seconds):.2f} s after the load stopped")
        print(f"events lost: {lost}; counted in incidents: {counted} of {len(accepted)} accepted")
        print(f"incidents: {Incident.objects.count()}")
        spent = {name: cpu_after[name] - cpu_before[name] for name in cpu_after}
        print("CPU ms per accepted event: " + ", ".join(
            f"{name} {seconds * 1000 / max(1, len(accepted)):.2f}" for name, seconds in spent.items()
        ))  # fmt: skip
        report_rss("web", web.pid)
        report_rss("worker", worker.pid)
        print(f"  peak RSS bench client pid {os.getpid()}: {peak_rss_mb(os.getpid()):.0f} MB")
    finally:
        stop_tree(web)
        stop_tree(worker)


if __name__ == "__main__":
    main()
