"""Ingest under wrk, beside a bare one-INSERT Django view, in one run.

    .venv/bin/python bench/wrk_ingest.py [--duration 10] [--connections 1,4,16] [--servers bare,make run,production]

Needs `wrk` (Debian package) and PostgreSQL and Redis on 127.0.0.1. Recreates the database
`console_bench_wrk`, captures one sentry-sdk envelope (uncompressed, a fresh event id per request
from wrk's Lua), and drives `/api/<id>/envelope/` of three servers in turn, each with wrk at every
connection count:

- `bare`: `bench/bare_insert.py` under granian WSGI, 2 workers x 2 threads (the ceiling);
- `make run`: `manage.py runconsole` exactly as `make run` starts it (web and worker);
- `production`: granian WSGI 2 x 2 on `config.wsgi` and one qcluster, as the README advises.

Prints accepted requests/s, latency p50/p99 and each console figure as a ratio to the ceiling.
"""

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import bench_env, recreate_database, stop_tree, wait_for_port  # noqa: E402

DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/console_bench_wrk")

# The table bench/bare_insert.py writes to (that module configures Django its own way: not imported here).
BARE_TABLE_SQL = "CREATE TABLE bare_event (id bigserial PRIMARY KEY, event_id uuid UNIQUE, body bytea)"

LUA = r"""
local file = io.open("%(body_file)s", "rb")
local template = file:read("*a")
file:close()
local hex = "0123456789abcdef"
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
request = function()
  local id = {}
  for i = 1, 32 do
    local n = math.random(16)
    id[i] = hex:sub(n, n)
  end
  local body = template:gsub("EVENTIDEVENTIDEVENTIDEVENTIDEVEN", table.concat(id))
  return wrk.format("POST", "%(path)s", {
    ["Content-Type"] = "application/x-sentry-envelope",
    ["X-Sentry-Auth"] = "%(auth)s",
  }, body)
end
"""


def free_port() -> int:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        return listener.getsockname()[1]


def envelope_template(dsn: str) -> str:
    """One envelope the real sentry-sdk produced, its event id replaced by a placeholder."""
    from tests.support import sdk_envelopes

    def charge():
        raise ValueError("amount -3 for order 17 must be positive")

    envelope = sdk_envelopes(dsn, charge, release="bench@1.0", environment="production")[0]
    event_id = envelope.get_event()["event_id"]
    body = envelope.serialize().decode()
    return body.replace(event_id, "EVENTIDEVENTIDEVENTIDEVENTIDEVEN")


def run_wrk(url: str, script: Path, connections: int, duration: float) -> dict:
    threads = min(connections, 2)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{int(duration)}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    total = int(re.search(r"(\d+) requests in", out).group(1))
    elapsed = float(re.search(r"requests in ([\d.]+)(m?s)", out).group(1))
    unit = re.search(r"requests in [\d.]+(m?s)", out).group(1)
    elapsed = elapsed / 1000 if unit == "ms" else elapsed
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "accepted/s": (total - (int(failed.group(1)) if failed else 0)) / elapsed,
        "p50": _latency(out, "50%"),
        "p99": _latency(out, "99%"),
        "failed": int(failed.group(1)) if failed else 0,
        "socket errors": errors.group(1).strip() if errors else "",
    }


def _latency(out: str, label: str) -> float:
    value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def start_bare(port: int) -> list[subprocess.Popen]:
    cmd = [
        sys.executable, "-m", "granian", "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(port),
        "--workers", "2", "--blocking-threads", "2", "--log-level", "warning", "bench.bare_insert:application",
    ]  # fmt: skip
    return [subprocess.Popen(cmd, cwd=ROOT, env=bench_env(DATABASE_POOL_MAX="3"))]


def start_make_run(port: int) -> list[subprocess.Popen]:
    cmd = [sys.executable, "manage.py", "runconsole"]
    return [subprocess.Popen(cmd, cwd=ROOT, env=bench_env(HOST="127.0.0.1", PORT=str(port)), start_new_session=True)]


def start_production(port: int) -> list[subprocess.Popen]:
    web = [
        sys.executable, "-m", "granian", "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(port),
        "--workers", "2", "--blocking-threads", "2", "--log-level", "warning", "config.wsgi:application",
    ]  # fmt: skip
    worker = ["nice", "-n", "10", sys.executable, "manage.py", "qcluster"]
    return [
        subprocess.Popen(web, cwd=ROOT, env=bench_env(DATABASE_POOL_MAX="3")),
        subprocess.Popen(worker, cwd=ROOT, env=bench_env(Q_WORKERS="1")),
    ]


def measure(name, start, script_for, counts, duration) -> dict[int, dict]:
    port = free_port()
    processes = start(port)
    try:
        wait_for_port(port)
        url = f"http://127.0.0.1:{port}"
        run_wrk(url, script_for(url), 4, 3)  # warm-up: imports, pools, the first digest
        figures = {}
        for count in counts:
            figures[count] = run_wrk(url, script_for(url), count, duration)
            row = figures[count]
            print(f"  {name:<10} {count:>2} conn: {row['accepted/s']:7.0f}/s  p50 {row['p50']:6.1f} ms"
                  f"  p99 {row['p99']:6.1f} ms  failed {row['failed']} {row['socket errors']}", flush=True)  # fmt: skip
        return figures
    finally:
        for process in processes:
            stop_tree(process)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--connections", default="1,4,16")
    parser.add_argument("--servers", default="bare,make run,production", help="which of them to run, comma-separated")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    counts = [int(n) for n in args.connections.split(",")]

    recreate_database(DATABASE_URL)
    os.environ.update(bench_env(DATABASE_URL=DATABASE_URL))
    import bench.ingest

    bench.ingest.DATABASE_URL = DATABASE_URL  # bench_env() hands it to every server started below
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=bench_env(), check=True)
    with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
        conn.execute(BARE_TABLE_SQL)
    import django

    django.setup()
    from incidents import services

    source, key = services.source_create(name="wrk bench", rate_limit_per_minute=0)
    template = envelope_template(key.dsn)
    auth = f"Sentry sentry_key={key.public_key}, sentry_version=7, sentry_client=sentry.python/bench"
    scripts = Path(tempfile.mkdtemp(prefix="wrk-"))

    def script_for(url: str) -> Path:
        script, body_file = scripts / "envelope.lua", scripts / "envelope.txt"
        body_file.write_text(template)
        script.write_text(LUA % {"body_file": body_file, "path": f"/api/{source.pk}/envelope/", "auth": auth})
        return script

    print(f"wrk, {args.duration:.0f} s per run, envelope of {len(template)} bytes")
    results = {}
    servers = {"bare": start_bare, "make run": start_make_run, "production": start_production}
    for name in args.servers.split(","):
        results[name] = measure(name, servers[name], script_for, counts, args.duration)
        time.sleep(1)  # let the previous server's sockets and PostgreSQL backends go
    if "bare" not in results:
        return
    print("\nratio of accepted/s to the bare one-INSERT view:")
    for name in results.keys() - {"bare"}:
        ratios = ", ".join(
            f"{count} conn {results[name][count]['accepted/s'] / results['bare'][count]['accepted/s']:.2f}"
            for count in counts
        )
        print(f"  {name:<10} {ratios}")


if __name__ == "__main__":
    main()
