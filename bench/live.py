"""Live stream benchmark: event POST to websocket message, 500 held connections, and a burst.

    .venv/bin/python bench/live.py [--trials 30] [--clients 500] [--burst 5000]

Recreates PostgreSQL database `console_bench_live` (BENCH_LIVE_DATABASE_URL), starts the console's
server (granian ASGI on config.asgi, 2 workers) and one qcluster, both on Redis (channel layer and broker), then:

1. latency: while a background thread posts 100 events/s of one source, a websocket client
   subscribed to a second source gets the incident.created of each event posted there (a new
   incident each time); prints p50/p95/max from the POST to the message;
2. memory: opens --clients authenticated websocket connections, each subscribed to
   everything, and prints the server's extra RSS;
3. burst: posts --burst events of one incident as fast as it can (batches of 100) while one
   client counts the messages about that incident per second; prints the highest count.
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from datetime import datetime
from pathlib import Path

import psutil
import websockets

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import recreate_database, stop_tree, wait_for_port  # noqa: E402

DATABASE_URL = os.environ.get("BENCH_LIVE_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/console_bench_live")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
PORT = 8765

SETUP = """
from django.contrib.auth import get_user_model
from access.services import api_token_create
from incidents import services
load, load_key = services.source_create(name="Load", rate_limit_per_minute=0)
probe, probe_key = services.source_create(name="Probe", rate_limit_per_minute=0)
user = get_user_model().objects.create_superuser("bench")
print(load_key.public_key, probe_key.public_key, api_token_create(user=user, name="bench")[1])
"""


def env() -> dict:
    return {
        **os.environ,
        "DATABASE_URL": DATABASE_URL,
        "REDIS_URL": REDIS_URL,
        "CONSOLE_URL": f"http://127.0.0.1:{PORT}",
        "Q_CLUSTER_NAME": "bench-live",
        # The --clients sockets all use one token: the per-client cap (a guard against one runaway client) is lifted.
        "LIVE_MAX_SOCKETS_PER_CLIENT": "100000",
        "PYTHONPATH": str(ROOT),
    }


def post(key: str, events: list[dict]) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{PORT}/api/v1/events/",
        data=json.dumps(events if len(events) > 1 else events[0]).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
    )
    urllib.request.urlopen(request, timeout=10).read()


def event(message: str) -> dict:
    return {"event_id": uuid.uuid4().hex, "level": "error", "message": message, "fingerprint": [message]}


def background_load(key: str, per_second: int, stop: threading.Event) -> None:
    while not stop.is_set():
        started = time.monotonic()
        post(key, [event(f"background {n % 20}") for n in range(per_second // 10)])
        stop.wait(max(0.0, 0.1 - (time.monotonic() - started)))


async def connect(token: str):
    return await websockets.connect(
        f"ws://127.0.0.1:{PORT}/ws/live/",
        origin=f"http://127.0.0.1:{PORT}",
        additional_headers={"Authorization": f"Bearer {token}"},
    )


async def subscribed(token: str, **fields):
    ws = await connect(token)
    await ws.send(json.dumps({"type": "subscribe", **fields}))
    assert json.loads(await ws.recv())["type"] == "subscribed"
    return ws


async def latency(token: str, probe_key: str, trials: int) -> tuple[list[float], list[float]]:
    """Seconds from each POST to its message, and of those, from the POST to the message's row.

    The row's time is the server's wall clock, on this machine, taken in the digest's transaction.
    """
    ws = await subscribed(token, topics=["incident"], source="probe")
    totals, to_row = [], []
    for trial in range(trials):
        title = f"probe {trial} {uuid.uuid4().hex[:6]}"
        started = time.time()
        await asyncio.to_thread(post, probe_key, [event(title)])
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if frame["topic"] == "incident.created" and frame["payload"]["title"] == title:
                totals.append(time.time() - started)
                to_row.append(datetime.fromisoformat(frame["at"]).timestamp() - started)
                break
    await ws.close()
    return totals, to_row


def percentiles(figures: list[float]) -> str:
    figures = sorted(figures)
    p95 = figures[max(0, round(0.95 * len(figures)) - 1)]
    return f"p50 {statistics.median(figures) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, max {figures[-1] * 1000:.0f} ms"


def tree_rss(server: psutil.Process) -> int:
    """The server's resident memory with its worker processes'."""
    return sum(process.memory_info().rss for process in [server, *server.children(recursive=True)])


async def memory(token: str, clients: int, server: psutil.Process) -> tuple[float, float]:
    before = tree_rss(server)
    sockets = []
    for _ in range(clients):
        sockets.append(await subscribed(token, topics=["*"]))
    await asyncio.sleep(1)  # let the server settle its buffers before reading its size
    after = tree_rss(server)
    await asyncio.gather(*(ws.close() for ws in sockets))
    return before / 2**20, (after - before) / 2**20


async def burst(token: str, key: str, count: int) -> tuple[int, int]:
    ws = await subscribed(token, topics=["incident"], source="load")
    per_second: dict[int, int] = {}

    async def count_messages():  # until the stream has been quiet for 3 s
        while True:
            try:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 3))
            except TimeoutError:
                return
            if frame["payload"].get("title") == "burst":
                second = int(time.monotonic())
                per_second[second] = per_second.get(second, 0) + 1

    counter = asyncio.create_task(count_messages())
    for _ in range(count // 100):
        await asyncio.to_thread(post, key, [event("burst") for _ in range(100)])
    await counter
    await ws.close()
    return max(per_second.values(), default=0), sum(per_second.values())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--burst", type=int, default=5000)
    args = parser.parse_args()
    recreate_database(DATABASE_URL)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env(), check=True)
    load_key, probe_key, token = (
        subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", SETUP],
            cwd=ROOT,
            env=env(),
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.splitlines()[-1]
        .split()
    )  # the last line: whatever Django printed before it is not ours
    web = subprocess.Popen(  # the console's one server, as `make run` and the production recipe start it
        [sys.executable, "-m", "granian", "--interface", "asgi", "config.asgi:application",
         "--host", "127.0.0.1", "--port", str(PORT), "--workers", "2"],
        cwd=ROOT,
        env=env(),
    )  # fmt: skip
    worker = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=env())
    stop = threading.Event()
    try:
        wait_for_port(PORT)
        loader = threading.Thread(target=background_load, args=(load_key, 100, stop), daemon=True)
        loader.start()
        totals, to_row = asyncio.run(latency(token, probe_key, args.trials))
        print(
            f"event POST -> websocket message, 100 events/s of background load, {len(totals)} trials: "
            f"{percentiles(totals)}"
        )
        print(f"  of which POST -> message row written by the digest: {percentiles(to_row)}")
        print(f"  and row -> websocket: {percentiles([t - r for t, r in zip(totals, to_row, strict=True)])}")
        stop.set()
        loader.join()
        base, extra = asyncio.run(memory(token, args.clients, psutil.Process(web.pid)))
        print(f"{args.clients} websocket clients held: server RSS {base:.0f} MB before, {extra:.0f} MB extra")
        most, total = asyncio.run(burst(token, load_key, args.burst))
        print(f"burst of {args.burst} events of one incident: at most {most} messages a second ({total} in all)")
    finally:
        stop.set()
        for process in (web, worker):
            stop_tree(process)


if __name__ == "__main__":
    main()
