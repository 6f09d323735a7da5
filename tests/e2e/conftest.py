"""A live console: the one web server (granian's ASGI interface on config.asgi, as config.servers
builds its command) and a real django-q2 cluster on the test database."""

import subprocess
import sys
import uuid

import pytest

from tests.e2e.captured_server import ROOT, free_port, process_environment, start_web, stop_process


class LiveConsole:
    def __init__(self, url: str, env: dict):
        self.url = url
        self.env = env


@pytest.fixture
def live_console(transactional_db, settings):
    """Start web and worker processes sharing the test database; stop them afterwards."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = process_environment(CONSOLE_URL=url, Q_CLUSTER_NAME=f"test-{uuid.uuid4().hex[:8]}")
    settings.CONSOLE_URL = url
    web = start_web(env, port)
    worker = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=env)
    try:
        yield LiveConsole(url, env)
    finally:
        web.stop()
        stop_process(worker)
