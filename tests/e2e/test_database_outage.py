"""Fault test: the database goes away under a running console (the real web server, granian's ASGI
interface on config.asgi, a real django-q2 worker, a private PostgreSQL cluster the test stops and
starts) and comes back.

Ingest must answer 503 with Retry-After at once while the database is down (Sentry SDKs drop an
event answered 500, and back off on X-Sentry-Rate-Limits), never 500, recover by itself, and lose
no event it accepted: every event answered 200 ends up stored and digested into an incident.
"""

import json
import os
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest

from incidents.models import ErrorEvent
from tests.e2e.captured_server import ROOT, free_port, start_web, stop_process
from tests.e2e.private_postgres import PrivatePostgres, private_postgres  # noqa: F401 (a fixture)
from tests.support import envelope_bytes, native_event, wait_until

pytestmark = pytest.mark.live  # a private PostgreSQL cluster, the web server and a worker, in their own processes

DATABASE = "console"
# The promise under test: a client waiting on a dead database hears so within a second.
PROMPT_SECONDS = 1.0

_CREATE_SOURCE = """
import json
from incidents import services
from django.contrib.auth.models import User
from access.services import api_token_create
source, key = services.source_create(name="Outage probe")
_token, raw_token = api_token_create(user=User.objects.create_superuser("outage-admin"), name="outage probe")
print(json.dumps({"id": source.pk, "key": key.public_key, "token": raw_token}))
"""


@dataclass
class OutageConsole:
    url: str
    cluster: PrivatePostgres
    source_id: int
    key: str
    token: str
    env: dict
    worker: subprocess.Popen | None = None

    def start_worker(self) -> None:
        self.worker = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=self.env)

    def supervise_worker(self) -> None:
        """Restart the worker if the outage ended it, as `runconsole` does; only the ORM broker may need it.

        On the ORM broker a django-q2 cluster whose processes restart while the database is down
        cannot reach its broker and exits; on Redis it must ride the outage out.
        """
        if self.worker.poll() is None:
            return
        assert not self.env.get("REDIS_URL"), f"the worker on the Redis broker exited ({self.worker.returncode})"
        self.start_worker()

    def digested_event_ids(self) -> set[str]:
        rows = self.cluster.query(
            DATABASE, f"SELECT event_id FROM {ErrorEvent._meta.db_table} WHERE incident_id IS NOT NULL"
        )
        return {row[0].hex for row in rows}


@dataclass
class Answer:
    status: int
    headers: httpx.Headers
    seconds: float
    event_id: str
    sentry: bool


def _manage(env: dict, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def console_database(private_postgres):  # noqa: F811 (the fixture imported above)
    """The console's database on the private cluster, migrated, with one source and its key."""
    private_postgres.create_database(DATABASE)
    env = {**os.environ, "DATABASE_URL": private_postgres.url(DATABASE), "PYTHONPATH": str(ROOT)}
    _manage(env, "migrate", "--noinput")
    return json.loads(_manage(env, "shell", "-c", _CREATE_SOURCE).strip().splitlines()[-1])


@pytest.fixture
def outage_console(private_postgres, console_database):  # noqa: F811 (the fixture imported above)
    """Web and worker processes on the private cluster."""
    if not private_postgres.running():
        private_postgres.start()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DATABASE_URL": private_postgres.url(DATABASE),
        "CONSOLE_URL": url,
        "Q_CLUSTER_NAME": f"outage-{uuid.uuid4().hex[:8]}",
        "PYTHONPATH": str(ROOT),
        # The resilience runtime's pollers read the database four times a second; slowed, they leave
        # the connections a restart kills to the requests, as on a web process with quieter threads.
        "RESILIENCE_CONFIG_POLL_SECONDS": "3600",
        "RESILIENCE_STATE_POLL_SECONDS": "3600",
    }
    web = start_web(env, port)
    created = console_database
    console = OutageConsole(url, private_postgres, created["id"], created["key"], created["token"], env)
    console.start_worker()
    try:
        yield console
    finally:
        web.stop()
        stop_process(console.worker)


def _send(console: OutageConsole, number: int) -> Answer:
    """Post one new event, by the Sentry envelope for even numbers and the native API for odd ones."""
    event = native_event(message=f"outage probe {number}")
    sentry = number % 2 == 0
    with httpx.Client(base_url=console.url, timeout=30) as client:
        if sentry:
            auth = f"Sentry sentry_key={console.key}, sentry_version=7"
            body = envelope_bytes({**event, "platform": "python"})
            path = f"/api/{console.source_id}/envelope/"
            response = client.post(path, content=body, headers={"X-Sentry-Auth": auth})
        else:
            response = client.post("/api/v1/events/", json=event, headers=_bearer(console.key))
    return Answer(response.status_code, response.headers, response.elapsed.total_seconds(), event["event_id"], sentry)


def _send_many(console: OutageConsole, count: int, *, start: int = 0, parallel: int = 4) -> list[Answer]:
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        return list(pool.map(lambda number: _send(console, number), range(start, start + count)))


def _bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


def _readyz(console: OutageConsole) -> httpx.Response:
    return httpx.get(f"{console.url}/readyz", timeout=30)


def _accepted(answers: list[Answer]) -> set[str]:
    return {answer.event_id for answer in answers if answer.status == 200}


def _assert_refused_promptly(answer: Answer) -> None:
    assert answer.status == 503, answer
    assert int(answer.headers["Retry-After"]) > 0
    if answer.sentry:
        assert answer.headers["X-Sentry-Rate-Limits"].startswith(answer.headers["Retry-After"] + "::")
    assert answer.seconds < PROMPT_SECONDS, answer


def test_ingest_refuses_promptly_with_retry_after_while_the_database_is_down_and_recovers_losing_nothing(
    outage_console,
):
    before = _send_many(outage_console, 8)
    assert [answer.status for answer in before] == [200] * 8

    outage_console.cluster.stop()
    during = [_send(outage_console, number) for number in range(100, 110)]
    for answer in during:
        _assert_refused_promptly(answer)
    ready = _readyz(outage_console)
    assert ready.status_code == 503
    assert "database" in ready.json()["failing"]
    assert ready.elapsed.total_seconds() < PROMPT_SECONDS
    listed = httpx.get(f"{outage_console.url}/api/v1/incidents/", headers=_bearer(outage_console.token), timeout=30)
    assert listed.status_code == 503
    assert listed.json()["field"] is None and "database" in listed.json()["error"]
    assert int(listed.headers["Retry-After"]) > 0

    outage_console.cluster.start()
    after: list[Answer] = []

    def recovered() -> bool:
        after.append(_send(outage_console, 200 + len(after)))
        return after[-1].status == 200

    assert wait_until(recovered, timeout=30, interval=0.1), after[-1]
    assert {answer.status for answer in after} <= {200, 503}, after
    settled = _send_many(outage_console, 8, start=300)
    assert [answer.status for answer in settled] == [200] * 8
    assert wait_until(lambda: _readyz(outage_console).json()["checks"]["database"] == "ok", timeout=30)
    outage_console.supervise_worker()

    accepted = _accepted(before + during + after + settled)
    assert wait_until(lambda: accepted <= outage_console.digested_event_ids(), timeout=90, interval=0.5), (
        accepted - outage_console.digested_event_ids()
    )


def test_a_database_restart_between_requests_costs_no_request(outage_console):
    # Parallel requests leave the pool holding several connections, which the restart kills.
    warm = _send_many(outage_console, 16, parallel=4)
    assert [answer.status for answer in warm] == [200] * 16
    # Once digested the web process is idle (its digest wake-up is sent): only requests meet the dead connections.
    assert wait_until(lambda: _accepted(warm) <= outage_console.digested_event_ids(), timeout=90, interval=0.5)

    outage_console.cluster.stop()
    outage_console.cluster.start()
    after = _send_many(outage_console, 16, start=100, parallel=4)

    assert [answer.status for answer in after] == [200] * 16, after
    outage_console.supervise_worker()
    accepted = _accepted(after)
    assert wait_until(lambda: accepted <= outage_console.digested_event_ids(), timeout=90, interval=0.5)
