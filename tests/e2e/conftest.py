"""A live console: a real ASGI server and a real django-q2 cluster on the test database."""

import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def _test_database_url() -> str:
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    password = f":{settings['PASSWORD']}" if settings.get("PASSWORD") else ""
    return f"postgres://{settings['USER']}{password}@{settings['HOST']}:{settings['PORT']}/{settings['NAME']}"


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


@pytest.fixture
def live_console(transactional_db, settings):
    """Start web and worker processes sharing the test database; stop them afterwards."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(256)  # bound before the server starts: clients queue instead of polling for the port
    port = listener.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DATABASE_URL": _test_database_url(),
        "CONSOLE_URL": url,
        "Q_CLUSTER_NAME": f"test-{uuid.uuid4().hex[:8]}",
        "PYTHONPATH": str(ROOT),
    }
    settings.CONSOLE_URL = url
    web = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "config.asgi:application", "--fd", str(listener.fileno()), "--no-access-log"],
        cwd=ROOT,
        env=env,
        pass_fds=[listener.fileno()],
    )
    worker = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=env)
    try:
        yield LiveConsole(url, env)
    finally:
        for process in (web, worker):
            _stop(process)
        listener.close()
