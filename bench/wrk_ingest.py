"""Ingest under wrk, beside the bare one-INSERT ceiling, in one run: bench/ingest.py's servers, another generator.

    .venv/bin/python bench/wrk_ingest.py [--duration 10] [--connections 1,4,16]
                                         [--servers bare,make-run,production,embedded]

Needs `wrk` (Debian package). Drives `/api/<id>/envelope/` of each server of bench/servers.py in
turn (each started fresh on a recreated database, stopped and reaped before the next) with wrk at
every connection count. The bodies are sentry-sdk envelopes captured as bench/ingest.py captures
them, one per group (20), uncompressed; wrk's Lua writes a fresh random event id into each.

Prints accepted requests/s, latency p50/p99 (wrk's) and each console figure as a ratio to the
bare view's at the same connection count. It does not wait for the digest nor check what was
stored: bench/ingest.py does.
"""

import argparse
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import GROUPS, capture_envelopes, sentry_auth  # noqa: E402
from bench.servers import Running, server_names, stop_servers_on_signals  # noqa: E402

PLACEHOLDER = b"EVENTIDEVENTIDEVENTIDEVENTIDEVEN"  # 32 characters, as many as an event id

LUA = r"""
local templates = {}
for i = 1, %(count)d do
  local file = io.open("%(dir)s/envelope-" .. i .. ".txt", "rb")
  templates[i] = file:read("*a")
  file:close()
end
local hex = "0123456789abcdef"
local sent = 0
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
request = function()
  local id = {}
  for i = 1, 32 do
    local n = math.random(16)
    id[i] = hex:sub(n, n)
  end
  sent = sent + 1
  local body = templates[sent %% #templates + 1]:gsub("%(placeholder)s", table.concat(id))
  return wrk.format("POST", "%(path)s", {
    ["Content-Type"] = "application/x-sentry-envelope",
    ["User-Agent"] = "%(user_agent)s",
    ["X-Sentry-Auth"] = "%(auth)s",
  }, body)
end
"""


def write_script(directory: Path, path: str, dsn: str) -> Path:
    """The Lua script and its envelopes (one per group, the event id a placeholder) for one server."""
    import sentry_sdk

    templates = capture_envelopes(dsn)[:GROUPS]  # the first variant of every group
    for number, template in enumerate(templates, 1):
        (directory / f"envelope-{number}.txt").write_bytes(template.replace(b"\0" * 32, PLACEHOLDER))
    script = directory / "envelope.lua"
    script.write_text(
        LUA
        % {
            "count": len(templates),
            "dir": directory,
            "placeholder": PLACEHOLDER.decode(),
            "path": path,
            "user_agent": f"sentry.python/{sentry_sdk.VERSION}",
            "auth": sentry_auth(dsn),
        }
    )
    return script


def run_wrk(url: str, script: Path, connections: int, duration: float) -> dict:
    out = subprocess.run(
        ["wrk", f"-t{min(connections, 2)}", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency",
         "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout  # fmt: skip
    total = int(re.search(r"(\d+) requests in", out).group(1))
    # wrk says "in 10.01s", "in 1.05m" past a minute.
    elapsed, unit = re.search(r"requests in ([\d.]+)(ms|s|m|h)", out).groups()
    seconds = float(elapsed) * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    failed = int(failed.group(1)) if failed else 0
    return {
        "accepted/s": (total - failed) / seconds,
        "p50": _latency(out, "50%"),
        "p99": _latency(out, "99%"),
        "failed": failed,
        "socket errors": errors.group(1).strip() if errors else "",
    }


def _latency(out: str, label: str) -> float:
    value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def measure(running: Running, counts: list[int], duration: float) -> dict[int, dict]:
    if running.server.console:
        source_id, _, dsn = running.create_source()
    else:
        source_id, dsn = 1, f"http://bare@127.0.0.1:{running.port}/1"
    script = write_script(running.tmp, f"/api/{source_id}/envelope/", dsn)
    url = f"http://127.0.0.1:{running.port}"
    run_wrk(url, script, 4, 3)  # warm-up: imports, pools, the first digest
    figures = {}
    for count in counts:
        row = figures[count] = run_wrk(url, script, count, duration)
        print(f"  {running.server.name:<10} {count:>2} conn: {row['accepted/s']:7.0f}/s  p50 {row['p50']:6.1f} ms"
              f"  p99 {row['p99']:6.1f} ms  failed {row['failed']} {row['socket errors']}", flush=True)  # fmt: skip
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds per run (whole seconds: wrk's unit)")
    parser.add_argument("--connections", default="1,4,16")
    parser.add_argument(
        "--servers", default="bare,bare-gunicorn,make-run,production,embedded", help="see bench/servers.py"
    )
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    counts = [int(n) for n in args.connections.split(",")]
    servers = server_names(args.servers)

    stop_servers_on_signals()
    print(f"wrk, {args.duration:.0f} s per run, at {args.connections} connections", flush=True)
    results = {}
    for server in servers:
        print(f"{server.name}: {server.title}", flush=True)
        with Running(server) as running:
            results[server.name] = measure(running, counts, args.duration)
        running.report_rss()
    ceilings = [name for name in ("bare", "bare-gunicorn") if name in results]
    heads = "".join(f" x {name} |" for name in ceilings)
    print(f"\n| server | conn | accepted/s | p50 ms | p99 ms |{heads}\n|{'---|' * (5 + len(ceilings))}")
    for server in servers:
        for count in counts:
            row = results[server.name][count]
            ratios = "".join(f" {row['accepted/s'] / results[name][count]['accepted/s']:.2f} |" for name in ceilings)
            figures = f"{row['accepted/s']:.0f} | {row['p50']:.1f} | {row['p99']:.1f} |"
            print(f"| {server.title} | {count} | {figures}{ratios}")
    print(f"\ncommand: .venv/bin/python {shlex.join(['bench/wrk_ingest.py', *sys.argv[1:]])}")


if __name__ == "__main__":
    main()
