"""`manage.py runconsole` as `make run` starts it: a real uvicorn and a real django-q2 cluster, supervised."""

import contextlib
import signal
import socket
import subprocess
import sys
import urllib.request
import uuid

import psutil
import pytest

from tests.e2e.captured_server import Output, process_environment
from tests.e2e.conftest import ROOT

pytestmark = [pytest.mark.django_db(transaction=True, serialized_rollback=True), pytest.mark.live]


class Console:
    def __init__(self, process: subprocess.Popen, output: Output, port: int):
        self.process, self.output, self.port = process, output, port
        self.tree = psutil.Process(process.pid)

    def child(self, word: str) -> psutil.Process:
        return next(child for child in self.tree.children() if word in " ".join(child.cmdline()))

    def serves(self) -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=10) as response:
            return response.status == 200

    def worker_with_its_processes(self, start: int = 1) -> list[psutil.Process]:
        """The qcluster process and those it started, once its `start`th start is complete."""
        self.output.wait_for("] running.", nth=start)  # "... running.", logged once every process is up
        worker = self.child("qcluster")
        return [worker, *worker.children(recursive=True)]


@pytest.fixture
def console(django_db_blocker):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with django_db_blocker.unblock():
        env = process_environment(
            PORT=str(port),
            CONSOLE_URL=f"http://127.0.0.1:{port}",
            Q_CLUSTER_NAME=f"rc-{uuid.uuid4().hex[:6]}",
            LOG_LEVEL="INFO",  # for django-q2's line saying its cluster runs
        )
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runconsole"], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    output = Output(process.stdout)
    running = Console(process, output, port)
    try:
        output.wait_for("Uvicorn running on")
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


def test_a_killed_worker_is_restarted_with_its_orphans_stopped_while_the_web_server_keeps_serving(console):
    web = console.child("uvicorn")
    old_worker = console.worker_with_its_processes()

    old_worker[0].send_signal(signal.SIGKILL)

    console.output.wait_for(f"worker (pid {old_worker[0].pid}) was killed by SIGKILL")
    restarted = console.output.wait_for("worker restarted (pid")
    assert gone(old_worker)
    assert console.serves() and console.child("uvicorn").pid == web.pid
    assert console.child("qcluster").pid == int(restarted.rsplit("pid ", 1)[1].rstrip(")\n"))


def test_a_killed_web_server_is_restarted_and_serves_again(console):
    web = console.child("uvicorn")

    web.send_signal(signal.SIGKILL)

    console.output.wait_for(f"web (pid {web.pid}) was killed by SIGKILL")
    console.output.wait_for("web restarted (pid")
    console.output.wait_for("Uvicorn running on", nth=2)
    assert console.serves()


def test_stopping_runconsole_after_a_worker_died_leaves_no_process_of_its_tree(console):
    console.worker_with_its_processes()[0].send_signal(signal.SIGKILL)
    console.output.wait_for("worker restarted (pid")
    tree = [*console.worker_with_its_processes(start=2), console.child("uvicorn")]

    console.process.send_signal(signal.SIGTERM)

    assert console.process.wait(timeout=60) == 0
    assert "web and worker stopped" in console.output.wait_for("web and worker stopped")
    assert gone(tree)
