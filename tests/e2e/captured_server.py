"""The console's one web server as a real process on the test database: granian's ASGI interface on
config.asgi, started by the command config.servers.web_command builds (as runconsole and the
README's production recipe start it), whose output (stdout and stderr) the test reads."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from django.test import override_settings

from config.servers import web_command
from tests.support import database_url_for_processes

ROOT = Path(__file__).resolve().parents[2]


def stop_process(process: subprocess.Popen) -> None:
    """Stop a server or worker process the way its supervisor would: SIGTERM, then SIGKILL after 15 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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

    def wait_for_the_end(self, timeout: float = 15) -> None:
        """Return once every process writing to the pipe has closed it: the text is then complete."""
        with self._changed:
            assert self._changed.wait_for(lambda: self.ended, timeout), "the output was not closed in time"

    @property
    def text(self) -> str:
        return "".join(self.lines)


def process_environment(**env) -> dict:
    return {**os.environ, "DATABASE_URL": database_url_for_processes(), "PYTHONPATH": str(ROOT), **env}


def free_port() -> int:
    """A port nothing listens on now, for a server that binds it itself (granian takes no listening socket)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def command(env: dict, port: int, workers: int) -> list[str]:
    """web_command as the server's own settings would build it: web_command reads
    HTTP_HEADER_TIMEOUT_SECONDS from this process's settings, so a value in `env` is applied here too."""
    overrides = {}
    if "HTTP_HEADER_TIMEOUT_SECONDS" in env:
        overrides["HTTP_HEADER_TIMEOUT_SECONDS"] = float(env["HTTP_HEADER_TIMEOUT_SECONDS"])
    with override_settings(**overrides):
        return web_command(host="127.0.0.1", port=port, workers=workers)


@dataclass
class Web:
    process: subprocess.Popen
    output: Output
    port: int

    def stop(self) -> None:
        """Stop granian and its workers; leave nothing of its process group running."""
        stop_process(self.process)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # a worker its killed main could not stop
        self.output.wait_for_the_end()


def start_web(env: dict, port: int, *args: str, workers: int = 1) -> Web:
    """Start the web server on `port` with `env` (and extra granian `args`); return once every worker serves.

    Each worker says "Started worker-N" once its lifespan startup is done, a moment before the
    port takes connections (a client then is refused): after the last one, the port is polled.
    """
    process = subprocess.Popen(
        [*command(env, port, workers), *args], cwd=ROOT, env=env, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    web = Web(process, Output(process.stdout), port)
    try:
        for number in range(1, workers + 1):
            web.output.wait_for(f"Started worker-{number}")
        wait_until_accepting(port)
    except BaseException:
        web.stop()
        raise
    return web


def wait_until_accepting(port: int, seconds: float = 30) -> None:
    """Return once the port takes connections."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)  # nothing announces the listening socket: try again


@contextlib.contextmanager
def web_server(django_db_blocker, *args: str, **env):
    """The web server on a port of its own, `env` set; yield (port, Output) once it serves."""
    port = free_port()
    with django_db_blocker.unblock():
        environment = process_environment(CONSOLE_URL=f"http://127.0.0.1:{port}", **env)
    web = start_web(environment, port, *args)
    try:
        yield port, web.output
    finally:
        web.stop()
