"""A real server process on the test database whose output (stdout and stderr) the test reads."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from tests.e2e.conftest import ROOT, _stop
from tests.support import database_url_for_processes

# The web server as runconsole starts it (incidents/management/commands/runconsole.py).
UVICORN = ["-m", "uvicorn", "config.asgi:application", "--http", "config.servers:TimedHttpToolsProtocol"]


class Output:
    """The lines a process writes, read for its whole life so it never blocks on a full pipe."""

    def __init__(self, stream):
        self.lines: list[str] = []
        self.ended = False
        self._changed = threading.Condition()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
            sys.stderr.write(line)
        with self._changed:
            self.ended = True
            self._changed.notify_all()

    def wait_for(self, text: str, timeout: float = 60, nth: int = 1) -> str:
        """The `nth` line containing `text`, once the process has written it."""

        def found() -> str | None:
            matches = [line for line in self.lines if text in line]
            return matches[nth - 1] if len(matches) >= nth else None

        with self._changed:
            self._changed.wait_for(lambda: found() is not None or self.ended, timeout)
            line = found()
        if line is None:
            ending = "the process ended" if self.ended else f"{timeout}s passed"
            raise AssertionError(f"{ending} before line {nth} with {text!r}:\n{self.text}")
        return line

    @property
    def text(self) -> str:
        return "".join(self.lines)


def process_environment(**env) -> dict:
    return {**os.environ, "DATABASE_URL": database_url_for_processes(), "PYTHONPATH": str(ROOT), **env}


@contextlib.contextmanager
def uvicorn(django_db_blocker, *args: str, **env):
    """uvicorn as runconsole runs it on a port of its own; yield (port, Output) once it serves."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(256)
    port = listener.getsockname()[1]
    with django_db_blocker.unblock():
        environment = process_environment(CONSOLE_URL=f"http://127.0.0.1:{port}", **env)
    command = [sys.executable, *UVICORN, "--fd", str(listener.fileno()), *args]
    server = subprocess.Popen(
        command, cwd=ROOT, env=environment, pass_fds=[listener.fileno()],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    output = Output(server.stdout)
    try:
        output.wait_for("Application startup complete")
        yield port, output
    finally:
        _stop(server)
        listener.close()


@contextlib.contextmanager
def granian(django_db_blocker, *args: str, **env):
    """granian on config.wsgi with `args`; yield (port, Output) once its worker serves."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with django_db_blocker.unblock():
        environment = process_environment(CONSOLE_URL=f"http://127.0.0.1:{port}", **env)
    command = [
        sys.executable, "-m", "granian", "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", "--log-level", "info", *args, "config.wsgi:application",
    ]  # fmt: skip
    server = subprocess.Popen(
        command, cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output = Output(server.stdout)
    try:
        output.wait_for("Started worker")
        _accepting(port)
        yield port, output
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
        _stop(server)


def _accepting(port: int, seconds: float = 30) -> None:
    """Return once the port takes connections: granian says its worker started before it listens."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)  # nothing announces the listening socket: try again
