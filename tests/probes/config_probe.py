"""A separate process running a ConfigWatcher: prints each config version it applies.

    python tests/probes/config_probe.py    (DATABASE_URL, REDIS_URL and poll settings from the environment)

Stops when its stdin closes.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django

django.setup()

from resilience.config_watcher import ConfigWatcher  # noqa: E402


def report(version: int) -> None:
    print(f"applied {version}", flush=True)


watcher = ConfigWatcher(report).start()
sys.stdin.read()  # until the test closes our stdin
watcher.stop()
