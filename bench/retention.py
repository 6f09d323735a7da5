"""Retention bench: expire the 10 oldest of 40 days of history on PostgreSQL while the console ingests.

    BENCH_REDIS_URL=redis://127.0.0.1:6379/13 .venv/bin/python bench/retention.py [--events 3000000]
        [--seconds 20] [--connections 4] [--generators own,wrk] [--server production] [--pause SECONDS]
        [--keep]

Creates the database `bench_retention` (on BENCH_POSTGRES_URL), migrates it, creates a source and
its ingest key (`manage.py createsource`), and writes 40 whole days of history before today
straight in SQL: `--events` events (default 3,000,000) spread evenly, each with a few hundred bytes
to about 1 KB of JSON, grouped into `--incidents` incidents, with their receipts and their minute
and hour rollups; the partitions are made first (`partitions.ensure`) and VACUUM ANALYZE runs after.
The policy keeps events and minute rollups 30 days (hour rollups its default 400), so a purge removes
the 10 oldest days of events, receipts and minute rollups; the schedule's own purge is held back.

Then the console server of bench/servers.py (`--server`, the production recipe by default) starts on
that database, and for each load generator (bench/ingest.py's own, and wrk with
bench/wrk_ingest.py's script) and each connection count: ingest for `--seconds` without a purge,
then again while `manage.py purge` runs in a process of its own (the load starts first, the purge
LEAD_SECONDS later, and the load goes on MARGIN_SECONDS after the purge ends). Each purge after the
first finds the 10 oldest days written again first, so every purge has the same work.

Prints how long generation took; disk before and after the first purge (pg_database_size, the event
table's partitions, the receipts, the rollups) and the bytes freed; per purge its duration and what
it removed; and a table of ingest throughput and p99 without and during the purge, with the ratios
against the targets (at least 90 % of the throughput, p99 at most 1.5 times). The database is
dropped at the end unless `--keep`.
"""

import argparse
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import Requests, capture_envelopes, drive, percentile, sentry_auth, wait_drained  # noqa: E402
from bench.servers import POSTGRES_URL, Running, Store, server_names, stop_servers_on_signals  # noqa: E402
from bench.wrk_ingest import _latency, write_script  # noqa: E402

DATABASE = "bench_retention"
DAYS = 40
RETENTION_DAYS = 30
EXPIRED_DAYS = DAYS - RETENTION_DAYS
BURST = 16  # consecutive events of one incident: a few incidents per minute, as real traffic has
LEAD_SECONDS = 2.0  # load before the purge starts
MARGIN_SECONDS = 2.0  # load after it ends
SLICE_SECONDS = 1.0  # the own generator runs in slices, so it can stop when the purge has ended
MINUTE_TABLES = ("incidents_incidentminute", "incidents_sourceminute")
GENERATION_WORKERS = 2  # one connection per day being written
TARGET_THROUGHPUT, TARGET_P99 = 0.90, 1.5
PURGE_ATTEMPTS = 3
LOCK_SAMPLE_SECONDS = 0.05

EXCEPTION_SQL = (
    """'[{"type":"BenchError","value":"order ' || g || ' failed: ' || md5(g::text) || '","module":"app.orders",'"""
    """ || '"mechanism":{"type":"generic","handled":true},"stacktrace":{"frames":[' || rtrim(repeat("""
    """'{"filename":"app/orders/service.py","abs_path":"/srv/app/orders/service.py","function":"handle",'"""
    """ || '"module":"app.orders.service","lineno":120,"in_app":true},', (1 + g %% 6)::int), ',') || ']}}]'"""
)
EVENTS_SQL = f"""
INSERT INTO incidents_errorevent (source_id, event_id, incident_id, timestamp, received_at, level, message,
    exception, http_status, logger, component, platform, server_name, release, environment, transaction, tags,
    "user", request, contexts, extra, sdk, client_fingerprint, fingerprint, title, culprit, error_type_id, severity)
SELECT %(source)s, md5('event-' || g)::uuid, inc.id, at - interval '1 second', at, 'error', inc.title,
    ({EXCEPTION_SQL})::jsonb, NULL, 'app.orders', 'orders', 'python', 'web-' || g %% 8, 'app@1.' || g / 100000,
    'production', '/orders/{{id}}',
    jsonb_build_object('server_name', 'web-' || g %% 8, 'region', 'eu-west-' || g %% 3, 'customer', md5(g::text)),
    jsonb_build_object('id', g %% 5000, 'ip_address', '10.0.' || g %% 250 || '.' || g %% 200),
    jsonb_build_object('method', 'POST', 'url', 'https://shop.example/orders/' || g,
        'headers', jsonb_build_object('User-Agent', 'Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0')),
    jsonb_build_object('runtime', jsonb_build_object('name', 'CPython', 'version', '3.12.7'),
        'os', jsonb_build_object('name', 'Linux'), 'trace', jsonb_build_object('trace_id', md5('t' || g))),
    '{{}}'::jsonb, '{{"name":"sentry.python","version":"2.19.0"}}'::jsonb, NULL,
    inc.fingerprint, inc.title, inc.culprit, inc.error_type_id, inc.severity
FROM (SELECT g, %(start)s::timestamptz + (g - %(first)s) * %(step)s * interval '1 second' AS at
      FROM generate_series(%(first)s::bigint, %(last)s::bigint) g) e
JOIN incidents_incident inc ON inc.id = %(first_incident)s + (g / {BURST} * 7919) %% %(incidents)s
"""
DAY_FILTER = "received_at >= %(start)s AND received_at < %(end)s"
RECEIPTS_SQL = f"""
INSERT INTO incidents_eventreceipt (source_id, event_id, received_at)
SELECT source_id, event_id, received_at FROM incidents_errorevent WHERE {DAY_FILTER}"""
MINUTE_ROLLUPS_SQL = (
    f"""INSERT INTO incidents_incidentminute (incident_id, minute, count)
SELECT incident_id, date_trunc('minute', received_at), count(*) FROM incidents_errorevent WHERE {DAY_FILTER}
GROUP BY 1, 2""",
    f"""INSERT INTO incidents_sourceminute (source_id, error_type_id, severity, environment, minute, count)
SELECT source_id, error_type_id, severity, environment, date_trunc('minute', received_at), count(*)
FROM incidents_errorevent WHERE {DAY_FILTER} GROUP BY 1, 2, 3, 4, 5""",
)
HOUR_ROLLUPS_SQL = (
    f"""INSERT INTO incidents_incidenthour (incident_id, hour, count)
SELECT incident_id, date_trunc('hour', received_at), count(*) FROM incidents_errorevent WHERE {DAY_FILTER}
GROUP BY 1, 2""",
    f"""INSERT INTO incidents_sourcehour (source_id, error_type_id, severity, environment, hour, count)
SELECT source_id, error_type_id, severity, environment, date_trunc('hour', received_at), count(*)
FROM incidents_errorevent WHERE {DAY_FILTER} GROUP BY 1, 2, 3, 4, 5""",
)
INCIDENTS_SQL = """
INSERT INTO incidents_incident (source_id, fingerprint, title, culprit, error_type_id, category, severity, status,
    first_seen, last_seen, event_count, user_count, regressed)
SELECT %(source)s, md5('incident-' || g), 'BenchError ' || g || ': order processing failed for a customer',
    'app.orders.service in handle_' || g %% 40, t.id, t.category, t.default_severity, 'open', %(at)s, %(at)s, 0, 0,
    false
FROM generate_series(0, %(incidents)s - 1) g
JOIN (SELECT id, category, default_severity, row_number() OVER (ORDER BY id) - 1 AS k, count(*) OVER () AS n
      FROM incidents_errortype) t ON t.k = g %% t.n
RETURNING id"""
# The incidents' counts and times, as the digest would have left them (counts are totals seen).
INCIDENT_TOTALS_SQL = """
UPDATE incidents_incident i SET event_count = m.n, first_seen = m.first, last_seen = m.last
FROM (SELECT incident_id, sum(count) AS n, min(minute) AS first, max(minute) + interval '59 seconds' AS last
      FROM incidents_incidentminute GROUP BY incident_id) m
WHERE i.id = m.incident_id"""
# The event partitions before today hold the history; today's and later the load's events.
PARTITIONS = """FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'incidents_errorevent'::regclass"""
HISTORY = "c.relname < 'incidents_errorevent_p' || to_char(current_date, 'YYYYMMDD')"
DISK_SQL = f"""
SELECT pg_database_size(current_database()),
    (SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint {PARTITIONS} AND {HISTORY}),
    (SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint {PARTITIONS} AND NOT {HISTORY}),
    (SELECT count(*) {PARTITIONS}),
    (SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint {PARTITIONS}),
    pg_total_relation_size('incidents_eventreceipt'),
    pg_total_relation_size('incidents_incidentminute') + pg_total_relation_size('incidents_sourceminute')
    + pg_total_relation_size('incidents_incidenthour') + pg_total_relation_size('incidents_sourcehour')"""
PURGE_RUNS_SQL = """
SELECT status, extract(epoch FROM finished_at - started_at), removed, partitions_dropped, bytes_freed, error
FROM incidents_purgerun WHERE id > %s ORDER BY id"""
LOCK_WAITS_SQL = """
SELECT left(regexp_replace(a.query, '\\s+', ' ', 'g'), 70), extract(epoch FROM now() - l.waitstart) * 1000
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE NOT l.granted AND a.datname = current_database() AND l.waitstart IS NOT NULL"""


def connect(url: str) -> psycopg.Connection:
    conn = psycopg.connect(url, autocommit=True)
    conn.execute("SET TIME ZONE 'UTC'")  # date_trunc in the rollups cuts UTC minutes and hours
    return conn


class History:
    """Where the generated events lie: DAYS whole UTC days before today, `per_day` events each."""

    def __init__(self, url: str, source_id: int, events: int, incidents: int):
        self.url, self.source_id, self.incidents = url, source_id, incidents
        self.per_day = events // DAYS
        self.first_day = datetime.now(UTC).date() - timedelta(days=DAYS)
        self.first_incident = 0

    def days(self, count: int = DAYS) -> list[date]:
        return [self.first_day + timedelta(days=n) for n in range(count)]

    def create_incidents(self) -> None:
        with connect(self.url) as conn:
            at = datetime.combine(self.first_day, datetime.min.time(), tzinfo=UTC)
            ids = [
                row[0]
                for row in conn.execute(
                    INCIDENTS_SQL, {"source": self.source_id, "at": at, "incidents": self.incidents}
                )
            ]
        if ids != list(range(ids[0], ids[0] + len(ids))):
            raise RuntimeError("the incidents' ids are not consecutive")
        self.first_incident = ids[0]

    def write(self, days: list[date], hour_rollups: bool) -> None:
        """Each day's events, receipts and minute rollups (and hour rollups), a day per connection."""
        pool = ThreadPoolExecutor(GENERATION_WORKERS)
        try:
            list(pool.map(lambda day: self._write_day(day, hour_rollups), days))
        finally:
            pool.shutdown(cancel_futures=True)  # interrupted: the days not started are not written

    def _write_day(self, day: date, hour_rollups: bool) -> None:
        n = (day - self.first_day).days
        start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
        bounds = {"start": start, "end": start + timedelta(days=1)}
        with connect(self.url) as conn:
            conn.execute(
                EVENTS_SQL,
                {
                    "source": self.source_id,
                    "first": n * self.per_day,
                    "last": (n + 1) * self.per_day - 1,
                    "start": start,
                    "step": 86400 / self.per_day,
                    "first_incident": self.first_incident,
                    "incidents": self.incidents,
                },
            )
            for sql in (RECEIPTS_SQL, *MINUTE_ROLLUPS_SQL, *(HOUR_ROLLUPS_SQL if hour_rollups else ())):
                conn.execute(sql, bounds)


class BenchServer(Running):
    """A console server of bench/servers.py on `bench_retention`, the history written before it starts."""

    def __init__(self, server, args):
        super().__init__(server)
        self.database_url = f"{POSTGRES_URL}/{DATABASE}"
        self.store = Store(self.database_url, None, True)
        self.args = args
        self.history: History | None = None
        self.dsn = ""

    def prepare(self) -> None:
        super().prepare()  # a fresh database, migrated; Redis flushed
        source_id, _, self.dsn = self.create_source()
        with connect(self.database_url) as conn:
            # The schedule's purge would run as soon as the qcluster starts: only the bench's purges run.
            conn.execute(
                "UPDATE django_q_schedule SET next_run = now() + interval '365 days' "
                "WHERE func = 'incidents.tasks.purge_expired'"
            )
            conn.execute(
                "UPDATE incidents_retentionpolicy SET event_days = %s, minute_rollup_days = %s",
                [RETENTION_DAYS, RETENTION_DAYS],
            )
        self.history = History(self.database_url, source_id, self.args.events, self.args.incidents)
        started = time.monotonic()
        self.ensure_partitions(self.history.days())
        self.history.create_incidents()
        self.history.write(self.history.days(), hour_rollups=True)
        with connect(self.database_url) as conn:
            conn.execute(INCIDENT_TOTALS_SQL)
        written = time.monotonic() - started
        vacuum(self.database_url)
        total = self.history.per_day * DAYS
        print(
            f"history: {total:,} events over {DAYS} days ({self.history.per_day:,}/day) in {self.args.incidents}"
            f" incidents, with receipts and rollups, written in {written:.0f} s ({total / written:,.0f} events/s),"
            f" VACUUM ANALYZE {time.monotonic() - started - written:.0f} s",
            flush=True,
        )

    def ensure_partitions(self, days: list[date]) -> None:
        ordinals = [day.toordinal() for day in days]
        self.manage(
            "shell",
            "-c",
            f"from datetime import date; from incidents.retention import partitions;"
            f" partitions.ensure(date.fromordinal(n) for n in {ordinals})",
        )

    def refill(self) -> None:
        """Write the expired days again (their hour rollups were kept), for the next purge."""
        started = time.monotonic()
        days = self.history.days(EXPIRED_DAYS)
        self.ensure_partitions(days)
        self.history.write(days, hour_rollups=False)
        tables = [name_for(day) for day in days] + ["incidents_eventreceipt", *MINUTE_TABLES]
        vacuum(self.database_url, tables)
        print(f"  the {EXPIRED_DAYS} oldest days written again in {time.monotonic() - started:.0f} s", flush=True)


def vacuum(url: str, tables: list[str] = ()) -> None:
    """VACUUM ANALYZE these tables, or the whole database."""
    with connect(url) as conn:
        conn.execute(f"VACUUM ANALYZE {', '.join(tables)}")


def name_for(day: date) -> str:
    return f"incidents_errorevent_p{day:%Y%m%d}"  # as incidents/retention/partitions.py names them


def disk(url: str) -> dict[str, int]:
    with connect(url) as conn:
        values = conn.execute(DISK_SQL).fetchone()
    return dict(zip(("database", "history", "today", "partitions", "rows", "receipts", "rollups"), values, strict=True))


def print_disk(label: str, figures: dict[str, int]) -> None:
    print(
        f"disk {label}: database {mb(figures['database'])}, events {mb(figures['history'] + figures['today'])} in"
        f" {figures['partitions']} partitions (~{figures['rows']:,} rows; today's and later {mb(figures['today'])}),"
        f" receipts {mb(figures['receipts'])},"
        f" rollups {mb(figures['rollups'])}",
        flush=True,
    )


def mb(size: int) -> str:
    return f"{size / 1e6:,.0f} MB"


class Purge:
    """`manage.py purge` in a process of its own; a run that fails (a deadlock, say) is started again."""

    def __init__(self, running: BenchServer, pause: float | None):
        self.running, self.pause = running, pause
        self.process: subprocess.Popen | None = None
        self.failures: list[str] = []
        self.started = self.wall = 0.0
        with connect(running.database_url) as conn:
            self.after_id = conn.execute("SELECT coalesce(max(id), 0) FROM incidents_purgerun").fetchone()[0]

    def start(self) -> None:
        argv = [sys.executable, "manage.py", "purge", "--no-progress"]
        argv += ["--pause", str(self.pause)] if self.pause is not None else []
        self.started = self.started or time.monotonic()
        self.process = subprocess.Popen(
            argv, cwd=ROOT, env=self.running.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    def done(self) -> bool:
        """Whether the purge has ended, starting it again if it failed (up to PURGE_ATTEMPTS runs)."""
        if self.process.poll() is None:
            return False
        output = self.process.communicate()[0]
        if self.process.returncode:
            lines = output.strip().splitlines() or [f"exit {self.process.returncode}"]
            self.failures.append(next((line for line in reversed(lines) if "Error" in line), lines[-1]))
            if len(self.failures) < PURGE_ATTEMPTS:
                self.start()
                return False
        self.wall = time.monotonic() - self.started
        return True

    def record(self) -> dict:
        """What this purge's runs (more than one if one failed) removed, and how long they took."""
        with connect(self.running.database_url) as conn:
            runs = conn.execute(PURGE_RUNS_SQL, [self.after_id]).fetchall()
        removed: dict[str, int] = {}
        for _, _, run_removed, _, _, _ in runs:
            for key, rows in run_removed.items():
                removed[key] = removed.get(key, 0) + rows
        return {
            "statuses": [status for status, *_ in runs],
            "seconds": sum(float(seconds or 0) for _, seconds, *_ in runs),
            "removed": removed,
            "partitions": sum(partitions for _, _, _, partitions, _, _ in runs),
            "estimated bytes": sum(freed for *_, freed, _ in runs),
            "errors": [error for *_, error in runs if error],
            "failures": self.failures,
            "wall": self.wall,
        }


class LockWaits:
    """Samples the bench database's lock waits every LOCK_SAMPLE_SECONDS while a load runs (its own thread)."""

    def __init__(self, url: str):
        self.url = url
        self.samples = self.waiting = 0
        self.longest: dict[str, float] = {}  # statement -> longest wait seen, in ms
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> "LockWaits":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.thread.join()

    def _sample(self) -> None:
        with connect(self.url) as conn:
            while not self.stopping.wait(LOCK_SAMPLE_SECONDS):
                rows = conn.execute(LOCK_WAITS_SQL).fetchall()
                self.samples += 1
                self.waiting += bool(rows)
                for query, waited in rows:
                    self.longest[query] = max(self.longest.get(query, 0.0), waited)

    def summary(self) -> str:
        if not self.longest:
            return f"no lock waits seen ({self.samples} samples)"
        top = sorted(self.longest.items(), key=lambda item: -item[1])[:3]
        waits = "; ".join(f"{waited:.0f} ms: {query}" for query, waited in top)
        return f"lock waits in {self.waiting} of {self.samples} samples; longest: {waits}"


def during_purge(purge: Purge) -> Callable[[], bool]:
    """A keep-going test for the load: start the purge after LEAD_SECONDS, stop MARGIN_SECONDS after it ends."""
    started, ended = time.monotonic(), None

    def keep_going() -> bool:
        nonlocal ended
        now = time.monotonic()
        if purge.process is None:
            if now - started >= LEAD_SECONDS:
                purge.start()
            return True
        if ended is None and not purge.done():
            return True
        ended = ended or now
        return now - ended < MARGIN_SECONDS

    return keep_going


def for_seconds(seconds: float) -> Callable[[], bool]:
    started = time.monotonic()
    return lambda: time.monotonic() - started < seconds


def own_load(running: BenchServer, requests: Requests, connections: int, keep_going: Callable[[], bool]) -> dict:
    """bench/ingest.py's generator, in slices of SLICE_SECONDS until `keep_going` says stop."""
    latencies, accepted, seconds, failed = [], 0, 0.0, 0
    while keep_going():
        load = drive(running.port, requests, connections, SLICE_SECONDS)
        latencies += load.latencies
        accepted += len(load.accepted)
        seconds += load.seconds
        failed += sum(n for status, n in load.statuses.items() if status != 200) + load.errors + load.unanswered
    latencies.sort()
    return {"accepted/s": accepted / seconds, "p50": percentile(latencies, 0.5) * 1000,
            "p99": percentile(latencies, 0.99) * 1000, "max": latencies[-1] * 1000, "seconds": seconds,
            "accepted": accepted, "failed": failed}  # fmt: skip


def wrk_load(url: str, script: Path, connections: int, keep_going: Callable[[], bool]) -> dict:
    """wrk until `keep_going` says stop, then SIGINT (wrk then prints its figures for the time it ran)."""
    argv = ["wrk", f"-t{min(connections, 2)}", f"-c{connections}", "-d3600s", "--latency", "-s", str(script), url]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while keep_going():
        time.sleep(0.1)  # pacing the checks: the purge's end is only seen by polling its process
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    if process.returncode:
        raise RuntimeError(f"wrk exited {process.returncode}: {err}")
    total = int(re.search(r"(\d+) requests in", out).group(1))
    elapsed, unit = re.search(r"requests in ([\d.]+)(us|ms|s|m|h),", out).groups()  # past a minute: "3.50m"
    seconds = float(elapsed) * {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}[unit]
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    failed = int(failed.group(1)) if failed else 0
    return {"accepted/s": (total - failed) / seconds, "p50": _latency(out, "50%"), "p99": _latency(out, "99%"),
            "max": _latency(out, r"Latency\s+\S+\s+\S+"), "seconds": seconds,
            "accepted": total - failed, "failed": failed}  # fmt: skip


def print_load(label: str, row: dict) -> None:
    print(
        f"    {label:<13} {row['accepted/s']:6.0f} accepted/s over {row['seconds']:4.1f} s, p50 {row['p50']:6.1f} ms,"
        f" p99 {row['p99']:6.1f} ms, max {row['max']:6.0f} ms" + (f", failed {row['failed']}" if row["failed"] else ""),
        flush=True,
    )


def print_purge(record: dict) -> None:
    removed = ", ".join(f"{key} {rows:,}" for key, rows in record["removed"].items() if rows)
    failed = (
        f"; {len(record['failures'])} run(s) failed, started again: {record['failures']}" if record["failures"] else ""
    )
    print(
        f"    purge {'/'.join(record['statuses'])} in {record['seconds']:.1f} s (runs' own time;"
        f" {record['wall']:.1f} s from the first command's start to the last's end): {record['partitions']}"
        f" partitions dropped; rows removed: {removed}{failed}",
        flush=True,
    )


def print_freed(before: dict, after: dict, record: dict) -> None:
    print(
        f"freed: {mb(before['database'] - after['database'])} of the database, while the load stored"
        f" {mb(after['today'] - before['today'])} in today's partition; history's partitions"
        f" {mb(before['history'] - after['history'])}, receipts {mb(before['receipts'] - after['receipts'])},"
        f" rollups {mb(before['rollups'] - after['rollups'])} (the purge estimated {mb(record['estimated bytes'])})",
        flush=True,
    )


def compare(running: BenchServer, load: Callable, args, first: bool) -> tuple[dict, dict, dict]:
    """Ingest without a purge, then during one; the first purge also prints disk before and after."""
    with LockWaits(running.database_url) as waits:
        baseline = load(for_seconds(args.seconds))
    print_load("no purge:", baseline)
    print(f"      {waits.summary()}", flush=True)
    wait_drained(running, 120)
    if first:
        before = disk(running.database_url)
        print_disk("before the purge", before)
    purge = Purge(running, args.pause)
    with LockWaits(running.database_url) as waits:
        during = load(during_purge(purge))
    record = purge.record()
    print_load("during purge:", during)
    print(f"      {waits.summary()}", flush=True)
    print_purge(record)
    wait_drained(running, 120)
    if first:
        after = disk(running.database_url)
        print_disk("after the purge", after)
        print_freed(before, after, record)
    return baseline, during, record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=3_000_000, help="events of history, spread over 40 days")
    parser.add_argument("--incidents", type=int, default=500, help="incidents the history's events belong to")
    parser.add_argument("--seconds", type=float, default=20, help="seconds of load without a purge")
    parser.add_argument("--connections", default="4", help="connection counts, comma-separated (e.g. 1,4,16)")
    parser.add_argument("--generators", default="own,wrk", help="own (bench/ingest.py's), wrk, or both")
    parser.add_argument("--server", default="production", help="a server of bench/servers.py")
    parser.add_argument("--pause", type=float, default=None, help="purge --pause (default: the setting)")
    parser.add_argument("--keep", action="store_true", help=f"keep the database {DATABASE}")
    args = parser.parse_args()
    counts = [int(n) for n in args.connections.split(",")]
    generators = [name.strip() for name in args.generators.split(",")]
    if "wrk" in generators and not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    (server,) = server_names(args.server)
    if server.database != "postgres":
        raise SystemExit("the retention bench needs a PostgreSQL server")

    stop_servers_on_signals()
    print(f"bench/retention.py: {server.title}; {os.cpu_count()} CPUs; {time.strftime('%Y-%m-%d %H:%M')}", flush=True)
    running = BenchServer(server, args)
    results = []
    try:
        with running:
            path = f"/api/{running.history.source_id}/envelope/"
            requests = Requests(running.port, path, sentry_auth(running.dsn), capture_envelopes(running.dsn))
            script = write_script(running.tmp, path, running.dsn)
            drive(running.port, requests, 4, 3)  # warm-up: imports, pools, the first digest
            wait_drained(running, 120)
            for generator in generators:
                for count in counts:
                    print(f"{generator} generator, {count} connections:", flush=True)
                    if results:
                        running.refill()
                        wait_drained(running, 120)

                    def load(keep_going, generator=generator, count=count):
                        if generator == "own":
                            return own_load(running, requests, count, keep_going)
                        return wrk_load(f"http://127.0.0.1:{running.port}", script, count, keep_going)

                    results.append((generator, count, *compare(running, load, args, first=not results)))
    finally:
        if not args.keep:
            with psycopg.connect(f"{POSTGRES_URL}/postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    running.report_rss()
    print_table(results)
    print(f"\ncommand: .venv/bin/python {shlex.join(['bench/retention.py', *sys.argv[1:]])}")


def print_table(results: list) -> None:
    print(
        "\n| generator | conn | purge s | partitions | accepted/s no purge | during | ratio (>= 0.90) |"
        " p99 ms no purge | during | ratio (<= 1.5) |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    for generator, count, baseline, during, record in results:
        throughput = during["accepted/s"] / baseline["accepted/s"]
        p99 = during["p99"] / baseline["p99"]
        print(
            f"| {generator} | {count} | {record['seconds']:.1f} | {record['partitions']} |"
            f" {baseline['accepted/s']:.0f} | {during['accepted/s']:.0f} |"
            f" {throughput:.2f} {'ok' if throughput >= TARGET_THROUGHPUT else 'MISSED'} |"
            f" {baseline['p99']:.1f} | {during['p99']:.1f} | {p99:.2f} {'ok' if p99 <= TARGET_P99 else 'MISSED'} |"
        )


if __name__ == "__main__":
    main()
