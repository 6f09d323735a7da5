"""Run the web server and the django-q2 worker together until Ctrl-C, restarting either when it dies."""

import contextlib
import ctypes
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from config.servers import web_command

FIRST_RESTART_DELAY = 1.0  # seconds; doubled after each death that follows a short run, up to:
MAX_RESTART_DELAY = 30.0
STABLE_SECONDS = 60.0  # a process that ran this long before dying is restarted after the first delay again
STOP_GRACE_SECONDS = 10.0  # to finish what they are doing when asked to stop, before they are killed
ORPHAN_GRACE_SECONDS = 3.0  # for what a dead process left behind to exit when asked to, before it is killed


def _interrupt(signum, frame):
    raise KeyboardInterrupt


class Child:
    """One supervised command, started in a process group of its own so that all of it (django-q2's
    worker processes too) can be stopped at once, even after its leader died."""

    def __init__(self, name: str, command: list[str], deaths: queue.Queue):
        self.name = name
        self.command = command
        self.deaths = deaths
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0
        self.delay = FIRST_RESTART_DELAY

    def start(self) -> int:
        self.process = subprocess.Popen(self.command, start_new_session=True, preexec_fn=_die_with_parent)
        self.started_at = time.monotonic()
        threading.Thread(target=self._wait, args=(self.process,), daemon=True, name=f"wait-{self.name}").start()
        return self.process.pid

    def _wait(self, process: subprocess.Popen) -> None:
        process.wait()
        self.deaths.put((self, process))

    def next_delay(self) -> float:
        """How long to wait before restarting: doubling while it keeps dying young."""
        if time.monotonic() - self.started_at >= STABLE_SECONDS:
            self.delay = FIRST_RESTART_DELAY
        delay, self.delay = self.delay, min(self.delay * 2, MAX_RESTART_DELAY)
        return delay

    def ask_to_stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self, deadline: float) -> None:
        """Wait for the leader until `deadline`, then kill whatever is left of the group."""
        if self.process is None:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        stop_group(self.process.pid, grace=0.0)
        self.process.wait()


class Command(BaseCommand):
    help = "Start the ASGI web server and the django-q2 cluster, restart either if it dies; Ctrl-C stops both."

    def handle(self, *args, **options):
        deaths: queue.Queue = queue.Queue()
        children = [Child("web", _web_command(), deaths), Child("worker", _worker_command(), deaths)]
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, _interrupt)
        try:
            for child in children:
                child.start()
            self.stdout.write(f"Console running on {settings.CONSOLE_URL}/ (Ctrl-C stops web and worker)")
            self._supervise(deaths)
        except KeyboardInterrupt:
            pass
        finally:
            self._stop(children)

    def _supervise(self, deaths: queue.Queue) -> None:
        due: dict[Child, float] = {}  # children waiting to be restarted, and when
        while True:
            timeout = max(0.0, min(due.values()) - time.monotonic()) if due else None
            try:
                child, process = deaths.get(timeout=timeout)
            except queue.Empty:
                for child in [child for child, at in due.items() if at <= time.monotonic()]:
                    del due[child]
                    self.stderr.write(f"runconsole: {child.name} restarted (pid {child.start()})")
                continue
            left_behind = stop_group(process.pid, grace=ORPHAN_GRACE_SECONDS)
            delay = child.next_delay()
            due[child] = time.monotonic() + delay
            leftovers = f"; stopped {left_behind} process(es) it left running" if left_behind else ""
            self.stderr.write(
                f"runconsole: {child.name} (pid {process.pid}) {_how_it_ended(process.returncode)}{leftovers};"
                f" restarting it in {delay:g}s"
            )

    def _stop(self, children: list[Child]) -> None:
        self.stderr.write("runconsole: stopping web and worker")
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # a second one must not cut the stop short
            signal.signal(signum, signal.SIG_IGN)
        for child in children:
            child.ask_to_stop()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for child in children:
            child.stop(deadline)
        self.stderr.write("runconsole: web and worker stopped")


def stop_group(pgid: int, *, grace: float) -> int:
    """Ask every live process of the group to stop, kill those still there after `grace`; return how many there were."""
    members = _live_members(pgid)
    if not members:
        return 0
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _live_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)  # a process group's end is not an event anyone can wait for
    _signal_group(pgid, signal.SIGKILL)
    return len(members)


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def _live_members(pgid: int) -> list[int]:
    """The group's processes that still run (zombies, which only wait to be reaped, are not counted)."""
    proc = Path("/proc")
    if not proc.is_dir():  # not Linux: the group exists or it does not
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    members = []
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # it ended while we looked
        if int(fields[2]) == pgid and fields[0] not in "ZX":  # fields: state, ppid, pgrp, ...
            members.append(int(stat.parent.name))
    return members


def _how_it_ended(returncode: int) -> str:
    if returncode < 0:
        return f"was killed by {signal.Signals(-returncode).name}"
    return f"exited with status {returncode}"


# Loaded here, not in the child: between fork and exec only the call itself is safe to make.
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: on Linux, get SIGTERM if runconsole itself is killed (kill -9 included)."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _web_command() -> list[str]:
    return web_command(host=settings.HOST, port=settings.PORT, workers=settings.WEB_WORKERS)


def _worker_command() -> list[str]:
    worker = [sys.executable, "manage.py", "qcluster"]
    if shutil.which("nice"):
        # Background work yields the CPU to requests: ingest latency is what clients feel,
        # while the digest catches up a burst within a second.
        worker = ["nice", "-n", "10", *worker]
    return worker
