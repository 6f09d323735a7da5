"""`manage.py runconsole` as `make run` starts it: the real web server (granian's ASGI interface on
config.asgi, one worker process here) and a real django-q2 cluster, supervised."""

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import urllib.request
import uuid

import httpx
import psutil
import pytest
import websockets

from access.services import api_token_create
from incidents import services
from incidents.models import ErrorEvent
from tests.api_support import user_with_role
from tests.e2e.captured_server import ROOT, Output, free_port, process_environment, wait_until_accepting
from tests.support import envelope_bytes, sentry_event, wait_until

pytestmark = [pytest.mark.django_db(transaction=True, serialized_rollback=True), pytest.mark.live]


class Console:
    def __init__(self, process: subprocess.Popen, output: Output, port: int):
        self.process, self.output, self.port = process, output, port
        self.tree = psutil.Process(process.pid)

    def child(self, word: str) -> psutil.Process:
        return next(child for child in self.tree.children() if word in " ".join(child.cmdline()))

    def serves(self) -> bool:
        wait_until_accepting(self.port)  # granian's worker says it started a moment before it listens
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=10) as response:
            return response.status == 200

    def worker_with_its_processes(self, start: int = 1) -> list[psutil.Process]:
        """The qcluster process and those it started, once its `start`th start is complete."""
        self.output.wait_for("] running.", nth=start)  # "... running.", logged once every process is up
        worker = self.child("qcluster")
        return [worker, *worker.children(recursive=True)]


@pytest.fixture
def console(django_db_blocker):
    port = free_port()
    with django_db_blocker.unblock():
        env = process_environment(
            PORT=str(port),
            CONSOLE_URL=f"http://127.0.0.1:{port}",
            Q_CLUSTER_NAME=f"rc-{uuid.uuid4().hex[:6]}",
            LOG_LEVEL="INFO",  # for django-q2's line saying its cluster runs
            WEB_WORKERS="1",
        )
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runconsole"], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    output = Output(process.stdout)
    running = Console(process, output, port)
    try:
        output.wait_for("Started worker-1")
        wait_until_accepting(port)
        yield running
    finally:
        if process.poll() is None:  # the test failed midway: leave nothing behind
            for leftover in [*running.tree.children(recursive=True), running.tree]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    leftover.kill()
            process.wait()


def gone(processes: list[psutil.Process]) -> bool:
    """Whether none of them runs any more (a zombie only waits for its parent to read its status)."""
    _, alive = psutil.wait_procs(processes, timeout=15)
    return all(_is_zombie(process) for process in alive)


def _is_zombie(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_the_one_server_serves_ingest_the_api_admin_static_files_and_websockets(console, django_user_model):
    source, key = services.source_create(name="Everything")
    token = api_token_create(user=user_with_role(django_user_model, "viewer"), name="everything")[1]
    event = sentry_event("served by runconsole")
    url = f"http://127.0.0.1:{console.port}"

    with httpx.Client(base_url=url, timeout=30) as client:
        stored = client.post(
            f"/api/{source.pk}/envelope/",
            content=envelope_bytes(event),
            headers={"X-Sentry-Auth": f"Sentry sentry_key={key.public_key}, sentry_version=7"},
        )
        listed = client.get("/api/v1/incidents/", headers={"Authorization": f"Bearer {token}"})
        login = client.get("/admin/login/")
        stylesheet = client.get("/static/admin/css/base.css")

    async def subscribe() -> str:
        async with websockets.connect(
            f"ws://127.0.0.1:{console.port}/ws/live/", additional_headers={"Authorization": f"Bearer {token}"}
        ) as ws:
            await ws.send('{"type": "subscribe", "topics": ["incident"]}')
            return json.loads(await asyncio.wait_for(ws.recv(), 10))["type"]

    assert (stored.status_code, stored.json()) == (200, {"id": event["event_id"]})
    assert listed.status_code == 200 and "results" in listed.json()
    assert login.status_code == 200 and "csrfmiddlewaretoken" in login.text
    assert stylesheet.status_code == 200 and stylesheet.headers["content-type"].startswith("text/css")
    assert asyncio.run(subscribe()) == "subscribed"
    digested = ErrorEvent.objects.filter(event_id=uuid.UUID(event["event_id"]), incident__isnull=False)
    assert wait_until(digested.exists, timeout=30)  # by the worker runconsole started


def test_a_killed_worker_is_restarted_with_its_orphans_stopped_while_the_web_server_keeps_serving(console):
    web = console.child("granian")
    old_worker = console.worker_with_its_processes()

    old_worker[0].send_signal(signal.SIGKILL)

    console.output.wait_for(f"worker (pid {old_worker[0].pid}) was killed by SIGKILL")
    restarted = console.output.wait_for("worker restarted (pid")
    assert gone(old_worker)
    assert console.serves() and console.child("granian").pid == web.pid
    assert console.child("qcluster").pid == int(restarted.rsplit("pid ", 1)[1].rstrip(")\n"))


def test_a_killed_web_server_is_restarted_with_its_worker_processes_stopped_and_serves_again(console):
    web = console.child("granian")
    old_web = [web, *web.children(recursive=True)]  # granian's main process and its worker

    web.send_signal(signal.SIGKILL)

    console.output.wait_for(f"web (pid {web.pid}) was killed by SIGKILL; stopped 1 process(es) it left running")
    console.output.wait_for("web restarted (pid")
    console.output.wait_for("Started worker-1", nth=2)
    assert gone(old_web)
    assert console.serves()


def test_a_killed_web_worker_process_is_respawned_by_granian_without_restarting_the_web_server(console):
    web = console.child("granian")
    (old_worker,) = web.children()

    old_worker.send_signal(signal.SIGKILL)

    console.output.wait_for("Respawning worker-1")
    console.output.wait_for("Started worker-1", nth=2)
    assert gone([old_worker])
    assert console.serves()
    assert console.child("granian").pid == web.pid and "web (pid" not in console.output.text


def test_stopping_runconsole_after_a_worker_died_leaves_no_process_of_its_tree(console):
    console.worker_with_its_processes()[0].send_signal(signal.SIGKILL)
    console.output.wait_for("worker restarted (pid")
    web = console.child("granian")
    tree = [*console.worker_with_its_processes(start=2), web, *web.children(recursive=True)]

    console.process.send_signal(signal.SIGTERM)

    assert console.process.wait(timeout=60) == 0
    assert "web and worker stopped" in console.output.wait_for("web and worker stopped")
    assert gone(tree)
