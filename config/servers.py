"""The one web server the console runs: granian's ASGI interface on config.asgi, N worker processes.

`make run` (runconsole), the README's production recipe, the tests and the benchmarks all start
the same command, built here. granian's workers serve ingest, the API, admin, static files and
websockets alike; the ingest fast path runs on each worker's event loop (incidents/ingest/asgi.py).
granian bounds how long request headers may take (--http1-header-read-timeout); the body's deadline
is the ASGI middleware's, which reads every body itself.
"""

import sys

from django.conf import settings


def web_command(*, host: str, port: int, workers: int) -> list[str]:
    """The granian command line serving config.asgi on host:port with `workers` processes."""
    return [
        sys.executable, "-m", "granian", "--interface", "asgi", "config.asgi:application",
        "--host", host, "--port", str(port), "--workers", str(workers),
        "--http1-header-read-timeout", str(int(settings.HTTP_HEADER_TIMEOUT_SECONDS * 1000)),
        "--respawn-failed-workers",
        # Open websockets would otherwise hold a stop until runconsole's grace runs out.
        "--workers-kill-timeout", "5",
    ]  # fmt: skip
