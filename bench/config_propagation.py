"""Config propagation benchmark: from a config save to every running process applying it.

    .venv/bin/python bench/config_propagation.py [--processes 8] [--changes 40]

Recreates the PostgreSQL database `console_bench_config` (BENCH_CONFIG_DATABASE_URL),
starts N separate processes each running the console's ConfigWatcher, then saves a
breaker config change M times and measures, for every process, the time from the
commit to the process reporting the new version. Runs twice: polling only (no Redis),
and with Redis publishing each change. Prints p50, p95 and max per mode.
"""

import argparse
import os
import queue
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import recreate_database  # noqa: E402

DATABASE_URL = os.environ.get("BENCH_CONFIG_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/console_bench_config")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
PROBE = ROOT / "tests" / "resilience" / "config_probe.py"


class Watcher:
    """A separate process whose applied versions arrive, stamped on receipt, on a queue."""

    def __init__(self, env: dict):
        self.process = subprocess.Popen(
            [sys.executable, str(PROBE)], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.applied: queue.Queue[tuple[int, float]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.applied.put((int(line.split()[1]), time.time()))

    def wait_for(self, version: int, timeout: float = 30) -> float:
        while True:
            seen, at = self.applied.get(timeout=timeout)
            if seen >= version:
                return at

    def stop(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=15)


def measure(processes: int, changes: int, redis_url: str) -> list[float]:
    from resilience.config_watcher import config_version
    from resilience.models import Breaker

    env = {
        **os.environ,
        "DATABASE_URL": DATABASE_URL,
        "REDIS_URL": redis_url,
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    watchers = [Watcher(env) for _ in range(processes)]
    try:
        current = config_version()
        for watcher in watchers:
            watcher.wait_for(current)
        breaker, _ = Breaker.objects.get_or_create(name="bench-api")
        delays = []
        for change in range(changes):
            breaker.failure_rate_threshold = 40 + change % 50
            saved_at = time.time()
            breaker.save()  # commits and bumps the version (autocommit)
            version = config_version()
            delays += [watcher.wait_for(version) - saved_at for watcher in watchers]
        return delays
    finally:
        for watcher in watchers:
            watcher.stop()


def report(label: str, delays: list[float]) -> None:
    ordered = sorted(delays)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    p50, worst = statistics.median(delays), ordered[-1]
    print(f"{label:<28} {len(delays):>6} {p50 * 1000:>8.0f} {p95 * 1000:>8.0f} {worst * 1000:>8.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--changes", type=int, default=40)
    args = parser.parse_args()
    recreate_database(DATABASE_URL)
    os.environ.update(
        {"DATABASE_URL": DATABASE_URL, "REDIS_URL": REDIS_URL, "DJANGO_SETTINGS_MODULE": "config.settings"}
    )
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, check=True)
    import django

    django.setup()
    print(f"{args.processes} processes, {args.changes} changes; ms from save to applied in each process")
    print(f"{'mode':<28} {'samples':>6} {'p50':>8} {'p95':>8} {'max':>8}")
    report("polling every 0.25 s", measure(args.processes, args.changes, redis_url=""))
    report("Redis publish + polling", measure(args.processes, args.changes, redis_url=REDIS_URL))


if __name__ == "__main__":
    main()
