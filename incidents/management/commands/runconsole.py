"""Run the web server and the django-q2 worker together until Ctrl-C."""

import os
import shutil
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand


def _interrupt(signum, frame):
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = "Start the ASGI web server and the django-q2 cluster; Ctrl-C stops both."

    def handle(self, *args, **options):
        web = [
            sys.executable, "-m", "uvicorn", "config.asgi:application",
            "--host", settings.HOST, "--port", str(settings.PORT), "--no-access-log",
        ]  # fmt: skip
        worker = [sys.executable, "manage.py", "qcluster"]
        if shutil.which("nice"):
            # Background work yields the CPU to requests: ingest latency is what clients feel,
            # while the digest catches up a burst within a second.
            worker = ["nice", "-n", "10", *worker]
        named = {"web": subprocess.Popen(web), "worker": subprocess.Popen(worker)}
        processes = list(named.values())
        self.stdout.write(f"Console running on {settings.CONSOLE_URL}/ (Ctrl-C stops web and worker)")
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            os.wait()  # returns as soon as either process exits
        except KeyboardInterrupt:
            pass
        finally:
            self._stop(processes)
        stopped_cleanly = (0, -signal.SIGINT, -signal.SIGTERM)
        failed = [name for name, process in named.items() if process.returncode not in stopped_cleanly]
        if failed:
            raise SystemExit(f"stopped because a process exited: {failed}")

    @staticmethod
    def _stop(processes) -> None:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 10
        for process in processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
