"""A live console: a real web server (uvicorn on config.asgi, or granian on config.wsgi with the
ingest fast path) and a real django-q2 cluster on the test database."""

import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from tests.support import database_url_for_processes

ROOT = Path(__file__).resolve().parents[2]


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class LiveConsole:
    def __init__(self, url: str, env: dict):
        self.url = url
        self.env = env


def _start_uvicorn(env: dict, listener: socket.socket) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "config.asgi:application", "--fd", str(listener.fileno()), "--no-access-log"],
        cwd=ROOT,
        env=env,
        pass_fds=[listener.fileno()],
    )


def _start_granian(env: dict, port: int) -> subprocess.Popen:
    """Start granian on the port and return once its worker has loaded the application."""
    command = [
        sys.executable, "-m", "granian", "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", "--blocking-threads", "4", "--log-level", "info", "config.wsgi:application",
    ]  # fmt: skip
    web = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    started = threading.Event()

    def read_log():  # drains the log for the server's whole life, so it never blocks on a full pipe
        for line in web.stdout:
            if "Started worker" in line:
                started.set()
            sys.stderr.write(line)
        started.set()  # it exited: stop waiting

    threading.Thread(target=read_log, daemon=True).start()
    if not started.wait(timeout=30) or web.poll() is not None:
        _stop(web)
        raise RuntimeError("granian did not start")
    return web


@pytest.fixture(params=["uvicorn-asgi", "granian-wsgi"])
def live_console(request, transactional_db, settings):
    """Start web and worker processes sharing the test database; stop them afterwards."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_processes(),
        "CONSOLE_URL": url,
        "Q_CLUSTER_NAME": f"test-{uuid.uuid4().hex[:8]}",
        "PYTHONPATH": str(ROOT),
    }
    settings.CONSOLE_URL = url
    if request.param == "uvicorn-asgi":
        listener.listen(256)  # bound before the server starts: clients queue instead of polling for the port
        web = _start_uvicorn(env, listener)
    else:
        listener.close()  # granian binds the port itself
        web = _start_granian(env, port)
    worker = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=env)
    try:
        yield LiveConsole(url, env)
    finally:
        for process in (web, worker):
            _stop(process)
        listener.close()
