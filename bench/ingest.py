"""Ingest benchmark: real sentry-sdk envelopes against each server, beside the bare one-INSERT ceiling.

    .venv/bin/python bench/ingest.py [--duration 20] [--connections 1,4,16]
                                     [--servers bare,make-run,production,embedded]

For each server of bench/servers.py in turn (started fresh on a recreated database, stopped and
reaped before the next), and for each connection count, sends envelopes that the real sentry-sdk
produced (its default integrations; about 4.3 KB with this venv's `modules` list, 3.6 KB in
issue 13's table; 20 groups: ten exception types each raised from two call sites), uncompressed,
over keep-alive connections, one request in flight per connection, each request with
a fresh event id (written into both the envelope header and the event, same length). Then waits
until the digest has grouped every stored event, reading the database directly.

Per run it prints accepted events/s, client-side latency p50/p99, the ratio to the ceiling
(`bare`, measured in the same run at the same connection count), the time to drain the digest
after the load stopped, fully processed events/s (accepted / (load + drain time)), events lost
(accepted event ids not stored), and the load generator's own CPU. At the end, a markdown table.

The generator is one thread on epoll: request bytes are pre-built but for the event id, and a
response is read only as far as its status and Content-Length (or its chunks' sizes). Latency is
from sending a request to reading its response's last byte.
"""

import argparse
import os
import resource
import select
import shlex
import socket
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import sentry_sdk
from sentry_sdk.transport import Transport
from sentry_sdk.utils import Dsn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# recreate_database, stop_tree and wait_for_port: bench/live.py, alerting.py, admin.py, api.py and
# config_propagation.py import them from here.
from bench.servers import (  # noqa: E402
    Running,
    postgres_cpu_seconds,
    server_names,
    stop_servers_on_signals,
)
from bench.servers import recreate_database as recreate_database  # noqa: E402
from bench.servers import stop_tree as stop_tree  # noqa: E402
from bench.servers import wait_for_port as wait_for_port  # noqa: E402

GROUPS = 20
VARIANTS = 5  # envelopes captured per group (their values and locals differ)
WARM_UP_SECONDS = 3
RESPONSE_GRACE_SECONDS = 30  # for requests in flight when the load stops


# Ten exception types raised from distinct functions, as an application would; each is reached from
# two call sites (worker and view below), and the console groups by type and call site: 20 groups.
def fetch_rates(i):
    raise TimeoutError(f"read timed out after 30s (request {i})")


def connect_db(i):
    raise ConnectionRefusedError(111, f"Connection refused to db-{i % 7}")


def resolve_host(i):
    raise socket.gaierror(-2, "Name or service not known")


def parse_payload(i):
    import json

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


RAISERS = [fetch_rates, connect_db, resolve_host, parse_payload, validate_amount, lookup_customer, open_snapshot,
           divide_shares, check_permissions, call_attribute]  # fmt: skip


# Each catches and reports as a framework integration would: the stack starts where it was caught.
def run_job(raiser, i):
    job = {"id": i, "queue": "default"}
    try:
        raiser(job["id"])
    except Exception:
        sentry_sdk.capture_exception()


def handle_request(raiser, i):
    request = {"path": f"/orders/{i}", "order": i}
    try:
        raiser(request["order"])
    except Exception:
        sentry_sdk.capture_exception()


def capture_envelopes(dsn: str) -> list[bytes]:
    """Run the real sentry-sdk (its default integrations, no transport) and keep each envelope's bytes,
    exactly as its HTTP transport would send them uncompressed."""

    class CaptureTransport(Transport):
        def __init__(self, options=None):
            super().__init__(options)
            self.sent = []  # not a local of a frame below: the SDK would put its repr in every later event

        def capture_envelope(self, envelope):
            if envelope.get_event() is not None:
                self.sent.append((envelope.get_event()["event_id"], envelope.serialize()))

    client = sentry_sdk.Client(
        dsn=dsn, transport=CaptureTransport, auto_enabling_integrations=False,
        release="bench@1.0", environment="production", _experiments={"transport_compression_level": 0},
    )  # fmt: skip
    with sentry_sdk.isolation_scope() as scope:
        scope.set_client(client)
        for variant in range(VARIANTS):
            for raiser in RAISERS:
                for site in (run_job, handle_request):
                    site(raiser, 1000 + variant)
    captured = client.transport.sent
    client.close()
    templates = []
    for event_id, body in captured:
        if body.count(event_id.encode()) != 2:  # the envelope header's and the event's
            raise RuntimeError(f"event id {event_id} is not twice in the envelope")
        templates.append(body.replace(event_id.encode(), b"\0" * 32))
    return templates


def sentry_auth(dsn: str) -> str:
    return Dsn(dsn).to_auth(f"sentry.python/{sentry_sdk.VERSION}").to_header()


class Requests:
    """Every request's bytes but its event id, cut where the id goes; a request costs one join."""

    def __init__(self, port: int, path: str, auth: str, templates: list[bytes]):
        self.parts = []
        for body in templates:
            head = (
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: sentry.python/{sentry_sdk.VERSION}\r\n"
                f"Content-Type: application/x-sentry-envelope\r\nX-Sentry-Auth: {auth}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            self.parts.append((head + body).split(b"\0" * 32))
        self.mean_body = statistics.mean(len(body) for body in templates)
        self.run_prefix = os.urandom(8).hex().encode()  # event ids: this run's 16 digits, then a counter
        self.issued = 0

    def next(self) -> tuple[int, bytes]:
        n = self.issued
        self.issued += 1
        event_id = self.run_prefix + b"%016x" % n
        return n, event_id.join(self.parts[n % len(self.parts)])

    def event_id(self, n: int) -> str:
        return (self.run_prefix + b"%016x" % n).decode()


@dataclass
class Connection:
    sock: socket.socket
    out: memoryview | None = None  # what is left to send of a request the socket did not take at once
    buf: bytearray = field(default_factory=bytearray)
    need: int = -1  # bytes of the whole response, once its head (and a chunked body) is read
    head_end: int = -1
    status: int = 0
    close: bool = False
    n: int = -1  # the request in flight, or -1
    started: float = 0.0


@dataclass
class Load:
    seconds: float  # from the first request sent to the last response read
    latencies: list[float]  # seconds, every answered request
    statuses: dict[int, int]
    accepted: list[int]  # request numbers answered 200
    errors: int  # connections that broke (reset, closed mid-request)
    unanswered: int
    cpu_seconds: float  # the generator's own, user + system


def response_length(buf: bytearray, end: int) -> int:
    """The length of the response whose head ends at `end` (its blank line), or -1 if a chunked body is
    not all there yet. A head is read lower-cased; Content-Length first, else chunks are walked."""
    head = bytes(buf[:end]).lower()
    at = head.find(b"\r\ncontent-length:")
    if at >= 0:
        line_end = head.find(b"\r\n", at + 17)
        return end + 4 + int(head[at + 17 : line_end if line_end > 0 else None])
    if b"\r\ntransfer-encoding: chunked" not in head:
        raise RuntimeError(f"a response with neither Content-Length nor chunks: {head[:300]!r}")
    at = end + 4
    while (line_end := buf.find(b"\r\n", at)) >= 0:
        size = int(bytes(buf[at:line_end]).split(b";")[0], 16)
        at = line_end + 2 + size + 2
        if size == 0:
            return at if len(buf) >= at else -1  # no trailers: the console and granian send none
    return -1


def drive(port: int, requests: Requests, connections: int, duration: float) -> Load:
    """Keep `connections` keep-alive connections busy, one request in flight each, for `duration`."""
    poller = select.epoll()
    by_fd: dict[int, Connection] = {}
    latencies, accepted, statuses, errors = [], [], {}, 0

    def connect() -> Connection:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        conn = Connection(sock)
        by_fd[sock.fileno()] = conn
        poller.register(sock.fileno(), select.EPOLLIN)
        return conn

    def drop(conn: Connection) -> None:
        poller.unregister(conn.sock.fileno())
        del by_fd[conn.sock.fileno()]
        conn.sock.close()

    def send(conn: Connection) -> None:
        conn.n, data = requests.next()
        conn.started = time.perf_counter()
        sent = conn.sock.send(data)
        if sent < len(data):
            conn.out = memoryview(data)[sent:]
            poller.modify(conn.sock.fileno(), select.EPOLLIN | select.EPOLLOUT)

    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_before = usage.ru_utime + usage.ru_stime
    started = time.perf_counter()
    stop_at = started + duration
    last_answer = started
    for _ in range(connections):
        send(connect())
    while by_fd:
        now = time.perf_counter()
        if now >= stop_at and all(conn.n < 0 for conn in by_fd.values()):
            break
        deadline = stop_at if now < stop_at else stop_at + RESPONSE_GRACE_SECONDS
        if now >= deadline:
            break
        for fd, mask in poller.poll(deadline - now):
            conn = by_fd[fd]
            try:
                if mask & select.EPOLLOUT:
                    sent = conn.sock.send(conn.out)
                    conn.out = conn.out[sent:]
                    if not conn.out:
                        poller.modify(fd, select.EPOLLIN)
                if not mask & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
                    continue
                data = conn.sock.recv(262144)
                if not data:
                    raise ConnectionResetError("closed by the server")
            except OSError:
                errors += conn.n >= 0
                drop(conn)
                if time.perf_counter() < stop_at:
                    send(connect())
                continue
            conn.buf += data
            if conn.head_end < 0:
                conn.head_end = conn.buf.find(b"\r\n\r\n")
                if conn.head_end < 0:
                    continue
                conn.status = int(conn.buf[9:12])
                conn.close = b"\r\nconnection: close" in bytes(conn.buf[: conn.head_end]).lower()
            if conn.need < 0:
                conn.need = response_length(conn.buf, conn.head_end)
                if conn.need < 0:
                    continue
            if len(conn.buf) < conn.need:
                continue
            last_answer = time.perf_counter()
            latencies.append(last_answer - conn.started)
            statuses[conn.status] = statuses.get(conn.status, 0) + 1
            if conn.status == 200:
                accepted.append(conn.n)
            del conn.buf[: conn.need]
            conn.need, conn.head_end, conn.n = -1, -1, -1
            if conn.close:
                drop(conn)
                conn = connect() if last_answer < stop_at else None
            if conn is not None and last_answer < stop_at:
                send(conn)
    unanswered = sum(1 for conn in by_fd.values() if conn.n >= 0)
    for conn in list(by_fd.values()):
        drop(conn)
    poller.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return Load(
        seconds=last_answer - started,
        latencies=latencies,
        statuses=statuses,
        accepted=accepted,
        errors=errors,
        unanswered=unanswered,
        cpu_seconds=usage.ru_utime + usage.ru_stime - cpu_before,
    )


def wait_drained(running: Running, timeout: float) -> tuple[float, int]:
    """Seconds until no stored event waits for the digest, and how many still wait if it timed out."""
    started = time.monotonic()
    while (waiting := running.store.undigested()) and time.monotonic() - started < timeout:
        time.sleep(0.05)  # the digest's progress is only visible in the database
    return time.monotonic() - started, waiting


def percentile(sorted_values: list[float], fraction: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * fraction))] if sorted_values else 0.0


def measure(running: Running, requests: Requests, connections: int, duration: float, drain_timeout: float) -> dict:
    store = running.store
    last_id, counted_before = store.last_id(), store.counted()
    server_cpu, postgres_cpu = running.cpu_seconds(), postgres_cpu_seconds()
    load = drive(running.port, requests, connections, duration)
    drain, waiting = wait_drained(running, drain_timeout)
    server_cpu, postgres_cpu = running.cpu_seconds() - server_cpu, postgres_cpu_seconds() - postgres_cpu
    stored = store.event_ids_after(last_id)
    lost = len({requests.event_id(n) for n in load.accepted} - set(stored))
    latencies = sorted(load.latencies)
    accepted = len(load.accepted)
    return {
        "accepted": accepted,
        "accepted/s": accepted / load.seconds if load.seconds else 0.0,
        "p50": percentile(latencies, 0.50) * 1000,
        "p99": percentile(latencies, 0.99) * 1000,
        "max": (latencies[-1] if latencies else 0.0) * 1000,
        "load s": load.seconds,
        "drain s": drain,
        "waiting": waiting,
        "processed/s": accepted / (load.seconds + drain) if load.seconds else 0.0,
        "stored": len(stored),
        "lost": lost,
        "counted": store.counted() - counted_before,
        "others": {status: n for status, n in load.statuses.items() if status != 200},
        "errors": load.errors,
        "unanswered": load.unanswered,
        "client cpu": load.cpu_seconds,
        "client cpu %": 100 * load.cpu_seconds / load.seconds if load.seconds else 0.0,
        "server cpu ms/event": 1000 * server_cpu / max(1, accepted),
        "postgres cpu ms/event": 1000 * postgres_cpu / max(1, accepted),
    }


def print_run(name: str, connections: int, row: dict, console: bool, postgres_used: bool) -> None:
    others = ", ".join(f"{n}x{status}" for status, n in sorted(row["others"].items()))
    print(
        f"  {name:<10} {connections:>2} conn: accepted {row['accepted']} in {row['load s']:.1f} s ="
        f" {row['accepted/s']:.0f}/s, p50 {row['p50']:.1f} ms, p99 {row['p99']:.1f} ms, max {row['max']:.0f} ms"
        + (f"; other statuses {others}" if others else "")
        + (f"; broken connections {row['errors']}" if row["errors"] else "")
        + (f"; unanswered {row['unanswered']}" if row["unanswered"] else ""),
        flush=True,
    )
    drained = f"drained {row['drain s']:.2f} s after the load" + (
        f" (gave up: {row['waiting']} still undigested)" if row["waiting"] else ""
    )
    digest = f"{drained}, processed {row['processed/s']:.0f}/s, counted in incidents {row['counted']}, "
    digest = digest if console else ""
    # Every PostgreSQL process on the machine, others' included: an upper bound, and noise for SQLite.
    postgres = f", postgres {row['postgres cpu ms/event']:.2f}" if postgres_used else ""
    print(
        f"  {'':<10}          {digest}stored {row['stored']}, lost {row['lost']}; CPU ms/event: server"
        f" {row['server cpu ms/event']:.2f}{postgres};"
        f" load generator {row['client cpu']:.2f} s ({row['client cpu %']:.0f} % of one core,"
        f" {1e6 * row['client cpu'] / max(1, row['accepted']):.0f} us/request)",
        flush=True,
    )


def ratio(value: float, ceiling: float | None) -> str:
    return f"{value / ceiling:.2f}" if ceiling else "-"


CEILINGS = {"bare": "x bare granian", "bare-gunicorn": "x bare gunicorn"}


def print_table(results: dict, servers, counts: list[int]) -> None:
    """One row per server and connection count; each figure also as a ratio to every ceiling measured."""
    ceilings = [name for name in CEILINGS if name in results]
    ratios = "".join(f" {CEILINGS[name]} |" for name in ceilings)
    print(
        f"\n| server | conn | accepted/s | p50 ms | p99 ms | drain s | processed/s |{ratios} lost | load CPU |"
        f"\n|{'---|' * (9 + len(ceilings))}"
    )
    for server in servers:
        for count in counts:
            row = results[server.name][count]
            drain = f"{row['drain s']:.2f}" + (f" ({row['waiting']} left)" if row["waiting"] else "")
            against = "".join(
                f" {ratio(row['processed/s'], results[name].get(count, {}).get('accepted/s'))} |" for name in ceilings
            )
            print(
                f"| {server.title} | {count} | {row['accepted/s']:.0f} | {row['p50']:.1f} | {row['p99']:.1f} |"
                f" {drain if server.console else '-'} | {row['processed/s']:.0f} |{against} {row['lost']} |"
                f" {row['client cpu %']:.0f} % |"
            )
    print("ratios: processed events/s (accepted and digested) to the ceiling's accepted requests/s at that count")


def main() -> None:
    stop_servers_on_signals()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=20, help="seconds of load per connection count")
    parser.add_argument("--connections", default="1,4,16", help="connection counts, comma-separated")
    parser.add_argument(
        "--servers", default="bare,bare-gunicorn,make-run,production,embedded", help="see bench/servers.py"
    )
    parser.add_argument("--drain-timeout", type=float, default=120, help="seconds to wait for the digest")
    args = parser.parse_args()
    counts = [int(n) for n in args.connections.split(",")]
    servers = server_names(args.servers)

    print(
        f"bench/ingest.py: {args.duration:g} s per run at {args.connections} connections, sentry-sdk"
        f" {sentry_sdk.VERSION}, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M')}",
        flush=True,
    )
    results: dict[str, dict[int, dict]] = {}
    for server in servers:
        print(f"{server.name}: {server.title}", flush=True)
        with Running(server) as running:
            if server.console:
                source_id, _, dsn = running.create_source()
            else:
                source_id, dsn = 1, f"http://bare@127.0.0.1:{running.port}/1"
            templates = capture_envelopes(dsn)
            requests = Requests(running.port, f"/api/{source_id}/envelope/", sentry_auth(dsn), templates)
            print(f"  {len(templates)} envelopes captured, {requests.mean_body:.0f} bytes on average", flush=True)
            drive(running.port, requests, 4, WARM_UP_SECONDS)  # imports, pools, the first digest
            wait_drained(running, args.drain_timeout)
            results[server.name] = {}
            for count in counts:
                row = measure(running, requests, count, args.duration, args.drain_timeout)
                results[server.name][count] = row
                print_run(server.name, count, row, server.console, server.database == "postgres")
            if server.console:
                print(f"  incidents: {running.store.incidents()}")
        running.report_rss()
    print_table(results, servers, counts)
    print(f"\ncommand: .venv/bin/python {shlex.join(['bench/ingest.py', *sys.argv[1:]])}")


if __name__ == "__main__":
    main()
