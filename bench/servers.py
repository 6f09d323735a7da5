"""The servers the ingest benchmarks drive, as data, and how to start, probe and stop them.

Shared by bench/ingest.py (its own load generator) and bench/wrk_ingest.py (wrk), so both
measure the same commands. Each server runs on a database of its own, recreated before it
starts: PostgreSQL databases named `console_bench_<name>` (on BENCH_POSTGRES_URL), or a
SQLite file in a fresh temporary directory; Redis is BENCH_REDIS_URL (db 2 by default),
flushed before a server that uses it. A server's processes are started in process groups of
their own and stopped with SIGTERM (to each leader, then to the groups of whatever outlives the
grace); what is still left is killed, and every one is reaped before the next server starts.
"""

import contextlib
import os
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg
import redis

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432").rstrip("/")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/2")
STOP_GRACE_SECONDS = 20
START_TIMEOUT_SECONDS = 60

# The table bench/bare_insert.py writes to (that module configures Django its own way: no migrations).
BARE_TABLE_SQL = "CREATE TABLE bare_event (id bigserial PRIMARY KEY, event_id uuid UNIQUE, body bytea)"


@dataclass(frozen=True)
class Server:
    name: str  # what --servers names it by
    title: str  # one line for tables
    # Command lines as a user types them, {port} standing for the port; `python` and `granian` run from
    # the benchmark's own interpreter (the checkout's venv).
    commands: tuple[str, ...]
    database: str = "postgres"  # or "sqlite": the embedded default
    uses_redis: bool = True
    console: bool = True  # False: bench/bare_insert.py, no migrations, no source, no digest
    env: dict[str, str] = field(default_factory=dict)

    def argvs(self, port: int) -> list[list[str]]:
        interpreters = {
            "python": [sys.executable],
            "granian": [sys.executable, "-m", "granian"],
            "gunicorn": [sys.executable, "-m", "gunicorn"],
        }
        argvs = []
        for command in self.commands:
            program, *args = shlex.split(command.format(port=port))
            argvs.append([*interpreters.get(program, [program]), *args])
        return argvs


SERVERS = {
    server.name: server
    for server in [
        Server(
            name="bare",
            title="bare one-INSERT view, granian WSGI 2x2 (ceiling)",
            commands=(
                "granian --interface wsgi --host 127.0.0.1 --port {port} --workers 2 --blocking-threads 2"
                " --log-level warning bench.bare_insert:application",
            ),
            uses_redis=False,
            console=False,
            env={"DATABASE_POOL_MAX": "3"},  # one connection per thread, and one spare
        ),
        Server(
            name="bare-gunicorn",
            title="bare one-INSERT view, gunicorn 3 sync workers (the issue's ceiling)",
            commands=(
                "gunicorn --workers 3 --bind 127.0.0.1:{port} --log-level warning bench.bare_insert:application",
            ),
            uses_redis=False,
            console=False,
            env={"DATABASE_POOL_MAX": "2"},
        ),
        Server(
            name="make-run",
            title="make run (runconsole), PostgreSQL + Redis",
            commands=("python manage.py runconsole",),
        ),
        Server(
            name="production",
            title="production recipe (granian ASGI x2 + qcluster), PostgreSQL + Redis",
            commands=(
                "granian --interface asgi --host 127.0.0.1 --port {port} --workers 2"
                " --http1-header-read-timeout 10000 config.asgi:application",
                "python manage.py qcluster",
            ),
        ),
        Server(
            name="embedded",
            title="make run, embedded default (SQLite, ORM broker)",
            commands=("python manage.py runconsole",),
            database="sqlite",
            uses_redis=False,
        ),
    ]
}


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def stop_servers_on_signals() -> None:
    """Make SIGTERM and SIGHUP (a `timeout`, a shell's kill) unwind like Ctrl-C, so that `with Running`
    still stops the server: its processes run in sessions of their own and would outlive the bench."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)


def server_names(spec: str) -> list[Server]:
    names = [name.strip() for name in spec.split(",") if name.strip()]
    unknown = [name for name in names if name not in SERVERS]
    if unknown:
        raise SystemExit(f"unknown server(s) {', '.join(unknown)}; known: {', '.join(SERVERS)}")
    return [SERVERS[name] for name in names]


def free_port() -> int:
    """A port in 18000-18999 nothing listens on (the range this benchmark may use)."""
    for port in range(18000 + os.getpid() % 500, 19000):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise SystemExit("no free port in 18000-18999")


class Store:
    """Reads what a server stored, straight from its database (psycopg or sqlite3, not Django)."""

    def __init__(self, url: str, sqlite_path: Path | None, console: bool):
        self.url, self.sqlite_path = url, sqlite_path
        self.table = "incidents_errorevent" if console else "bare_event"
        self.console = console

    @contextlib.contextmanager
    def _cursor(self):
        if self.sqlite_path:
            conn = sqlite3.connect(self.sqlite_path, timeout=30)
            try:
                yield conn.cursor()
            finally:
                conn.close()
        else:
            with psycopg.connect(self.url, autocommit=True) as conn:
                yield conn.cursor()

    def _one(self, sql: str):
        with self._cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchone()[0]

    def last_id(self) -> int:
        return self._one(f"SELECT coalesce(max(id), 0) FROM {self.table}")

    def undigested(self) -> int:
        """Stored events not grouped into an incident yet (the bare view has no digest)."""
        if not self.console:
            return 0
        return self._one("SELECT count(*) FROM incidents_errorevent WHERE incident_id IS NULL")

    def counted(self) -> int:
        """Events the incidents count (the digest adds each event it groups)."""
        if not self.console:
            return 0
        return self._one("SELECT coalesce(sum(event_count), 0) FROM incidents_incident")

    def incidents(self) -> int:
        return self._one("SELECT count(*) FROM incidents_incident") if self.console else 0

    def event_ids_after(self, last_id: int) -> list[str]:
        """The event ids (32 hex digits) of the rows stored after `last_id`."""
        with self._cursor() as cursor:
            cursor.execute(f"SELECT event_id FROM {self.table} WHERE id > {int(last_id)}")
            # PostgreSQL gives UUIDs, Django keeps them on SQLite as 32 hex digits.
            return [value.hex if hasattr(value, "hex") and not isinstance(value, str) else value for (value,) in cursor]


class Running:
    """A server started on a fresh database: `with Running(server) as running:` ... stopped on exit."""

    def __init__(self, server: Server):
        self.server = server
        self.port = free_port()
        self.tmp = Path(tempfile.mkdtemp(prefix=f"bench-{server.name}-"))
        self.processes: list[subprocess.Popen] = []
        self.peak_rss: dict[int, tuple[str, float]] = {}  # pid -> (command, MB), kept until stopped
        if server.database == "sqlite":
            self.sqlite_path = self.tmp / "console.sqlite3"
            self.database_url = f"sqlite:///{self.sqlite_path}"  # an absolute path: four slashes in all
        else:
            self.sqlite_path = None
            self.database_url = f"{POSTGRES_URL}/console_bench_{server.name.replace('-', '_')}"
        self.store = Store(self.database_url, self.sqlite_path, server.console)
        self.log = self.tmp / "server.log"

    def env(self) -> dict[str, str]:
        """The server's whole environment: the bench's own DATABASE_URL and REDIS_URL never leak in."""
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "HOST", "PORT")}
        env.update(
            DATABASE_URL=self.database_url,
            HOST="127.0.0.1",
            PORT=str(self.port),
            CONSOLE_VAR_DIR=str(self.tmp / "var"),  # secret key, file caches: not the checkout's var/
            **self.server.env,
        )
        if self.server.uses_redis:
            env["REDIS_URL"] = REDIS_URL
        return env

    def manage(self, *args: str) -> str:
        return subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env(), check=True, capture_output=True, text=True
        ).stdout

    def prepare(self) -> None:
        if self.sqlite_path is None:
            recreate_database(self.database_url)
        if self.server.uses_redis:
            redis.Redis.from_url(REDIS_URL).flushdb()  # no queued task or cached key of an earlier run
        if self.server.console:
            self.manage("migrate", "-v", "0", "--noinput")
        else:
            with psycopg.connect(self.database_url, autocommit=True) as conn:
                conn.execute(BARE_TABLE_SQL)

    def create_source(self) -> tuple[int, str, str]:
        """A source without a rate limit: (its id, its ingest key, its DSN), from `manage.py createsource`."""
        printed = self.manage("createsource", "bench", "--rate-limit", "0")
        lines = dict(line.split(":", 1) for line in printed.splitlines())
        source_id = int(lines["source"].rsplit("(id ", 1)[1].rstrip(")"))
        return source_id, lines["ingest key"].strip(), lines["dsn"].strip()

    def __enter__(self) -> "Running":
        self.prepare()
        with self.log.open("ab") as log:
            for argv in self.server.argvs(self.port):
                self.processes.append(
                    subprocess.Popen(
                        argv, cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                    )
                )
        try:
            self.wait_until_serving()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.stop()
        if exc_type is None:
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            print(f"  {self.server.name}: its log and files are kept in {self.tmp}")

    def wait_until_serving(self) -> None:
        """Until an HTTP request gets an answer (any status): the port may be bound before workers run."""
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"{self.server.name}: {process.args} exited {process.returncode}\n{self.tail()}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=5).close()
                return
            except urllib.error.HTTPError:
                return  # answered (the bare view has no /healthz)
            except OSError as error:
                if time.monotonic() > deadline:
                    message = f"{self.server.name}: no answer in {START_TIMEOUT_SECONDS}s\n{self.tail()}"
                    raise RuntimeError(message) from error
                time.sleep(0.2)  # still starting: there is no event to wait on

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def members(self) -> list[psutil.Process]:
        """Every live process of the server: its leaders and all they started (in any process group)."""
        found = []
        for process in self.processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                leader = psutil.Process(process.pid)
                found += [leader, *leader.children(recursive=True)]
        return found

    def record_rss(self) -> None:
        """Note each process's peak RSS (VmHWM): called before stopping, while they all still exist."""
        for member in self.members():
            with contextlib.suppress(psutil.Error, OSError):
                status = Path(f"/proc/{member.pid}/status").read_text()
                hwm = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
                command = " ".join(member.cmdline()).replace(sys.executable, "python")
                self.peak_rss[member.pid] = (command[:90], int(hwm.split()[1]) / 1024)

    def cpu_seconds(self) -> float:
        """CPU time of the server's processes, including what their exited children used (reaped ones)."""
        total = 0.0
        for member in self.members():
            with contextlib.suppress(psutil.Error):
                total += _with_reaped_children(member.cpu_times())
        return total

    def stop(self) -> None:
        """SIGTERM each leader (which stops its own processes, as a supervisor would ask it), then the
        whole process group of what is still there after the grace, kill the rest; reap everything."""
        self.record_rss()
        members = self.members()
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
        _, alive = psutil.wait_procs(members, timeout=STOP_GRACE_SECONDS)
        if alive:
            print(f"  {self.server.name}: {len(alive)} process(es) still running after SIGTERM: signalling groups")
            for member in alive:
                with contextlib.suppress(psutil.Error, ProcessLookupError):
                    os.killpg(os.getpgid(member.pid), signal.SIGTERM)
            _, alive = psutil.wait_procs(alive, timeout=5)
        for member in alive:
            print(f"  {self.server.name}: pid {member.pid} still running: killed", flush=True)
            with contextlib.suppress(psutil.NoSuchProcess):
                member.kill()
        psutil.wait_procs(alive, timeout=5)
        for process in self.processes:
            process.wait()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # anything of the group that was still unseen
        self.processes = []

    def report_rss(self) -> None:
        for pid, (command, megabytes) in sorted(self.peak_rss.items()):
            print(f"  peak RSS {megabytes:5.0f} MB  pid {pid}  {command}")


def recreate_database(url: str) -> None:
    """Drop and create the PostgreSQL database the URL names, through the server's `postgres` database."""
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


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


def stop_tree(process: subprocess.Popen) -> None:
    """Stop a process and every process it started, killing what does not stop in time; reap it."""
    try:
        parent = psutil.Process(process.pid)
        members = [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        members = []
    process.terminate()
    _, alive = psutil.wait_procs(members, timeout=STOP_GRACE_SECONDS)
    for member in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()
    process.wait()


def postgres_cpu_seconds() -> float:
    """CPU time of every PostgreSQL process on the machine (others' too: read it as an upper bound).

    Backends come and go with connections; the postmaster's reaped-children times keep what the
    ended ones used, so the total only grows."""
    total = 0.0
    for process in psutil.process_iter(["name", "cpu_times"]):
        if process.info["name"] == "postgres" and process.info["cpu_times"]:
            total += _with_reaped_children(process.info["cpu_times"])
    return total


def _with_reaped_children(times) -> float:
    return times.user + times.system + times.children_user + times.children_system
