"""A separate process racing for half-open permits: prints how many it was granted.

    python tests/probes/permit_probe.py STORE NAME GENERATION LIMIT ATTEMPTS [REDIS_PREFIX]

STORE is "database" (DATABASE_URL from the environment) or "redis" (REDIS_URL). It
prints "ready", waits for a line on stdin so that every probe starts together, then
tries ATTEMPTS times and prints "granted N".
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def make_store(kind: str, prefix: str):
    if kind == "redis":
        from resilience.stores.redis import RedisStateStore

        return RedisStateStore.from_url(os.environ["REDIS_URL"], prefix=prefix)
    import django

    django.setup()
    from resilience.stores.database import DatabaseStateStore

    return DatabaseStateStore()


def main() -> None:
    kind, name, generation, limit, attempts = sys.argv[1:6]
    store = make_store(kind, sys.argv[6] if len(sys.argv) > 6 else "")
    store.read(name)  # connect before the start signal
    print("ready", flush=True)
    sys.stdin.readline()
    granted = sum(store.acquire_half_open_permit(name, int(generation), int(limit)) for _ in range(int(attempts)))
    print(f"granted {granted}", flush=True)


if __name__ == "__main__":
    main()
