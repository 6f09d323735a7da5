"""Live configuration: a change saved in admin reaches every running process within a second.

Saving resilience configuration bumps one version number in the database. Each process
runs a ConfigWatcher thread that compares the version with the one it applied and
calls back when it moved: it reads the version (one primary-key lookup) every
RESILIENCE_CONFIG_POLL_SECONDS, and when Redis is configured a published message wakes
it at once. The poll stays on with Redis, so a lost message or a Redis outage delays a
change by one poll interval at most, never forever.

A bump sends resilience.signals.config_changed inside the saving transaction: the incidents app
tells browsers on the live stream, and resilience.process_runtime.announce_config_version
publishes the version to the watchers on Redis once the transaction commits.
"""

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F

from resilience.models import ConfigVersion
from resilience.signals import config_changed

logger = logging.getLogger(__name__)

CHANNEL = "resilience:config"
RESUBSCRIBE_SECONDS = 5.0
RETRY_SECONDS = 1.0


def config_version() -> int:
    """Return the current configuration version."""
    version = ConfigVersion.objects.filter(id=ConfigVersion.SINGLETON_ID).values_list("version", flat=True).first()
    return version or 0


def config_version_bump() -> int:
    """Record that configuration changed; watchers are told once the surrounding transaction commits."""
    with transaction.atomic():
        updated = ConfigVersion.objects.filter(id=ConfigVersion.SINGLETON_ID).update(version=F("version") + 1)
        if not updated:  # the row is created by a migration; a flushed test database lacks it
            ConfigVersion.objects.get_or_create(id=ConfigVersion.SINGLETON_ID, defaults={"version": 1})
        version = config_version()
        config_changed.send(sender=None, version=version)
    return version


class ConfigWatcher:
    """Call `on_change(version)` in a daemon thread whenever the configuration version moves.

    The first call happens at start, with the version found then, so the callback also
    loads the initial configuration; `apply_now()` makes it in the caller's thread first.
    The callback refuses entries it cannot apply without raising (keeping their last good
    config); when it raises all the same, the database was briefly unreachable, say, and
    the version is tried again after RETRY_SECONDS rather than skipped until the next save.
    """

    def __init__(self, on_change: Callable[[int], None], *, poll_seconds: float | None = None):
        self.on_change = on_change
        self.poll_seconds = settings.RESILIENCE_CONFIG_POLL_SECONDS if poll_seconds is None else poll_seconds
        self.applied: int | None = None
        self._retry_at = 0.0
        self._stopped = threading.Event()
        self._next_subscribe_at = 0.0
        self._thread = threading.Thread(target=self._run, name="resilience-config-watcher", daemon=True)

    def start(self) -> "ConfigWatcher":
        self._thread.start()
        return self

    def apply_now(self) -> "ConfigWatcher":
        """Apply the current version in the caller's thread, before start(): a new process's first
        calls then run on the saved config, not on the defaults. On an event loop, where the
        database may not be used, the thread does it moments later instead."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self._apply_if_moved()
        return self

    def stop(self, timeout: float = 5) -> None:
        self._stopped.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        subscription = None
        try:
            while not self._stopped.is_set():
                self._check()
                if subscription is None and time.monotonic() >= self._next_subscribe_at:
                    # Retried now and then, not every poll: an unreachable Redis must not slow polling.
                    self._next_subscribe_at = time.monotonic() + RESUBSCRIBE_SECONDS
                    subscription = _subscribe()
                subscription = self._wait(subscription)
        finally:
            if subscription is not None:
                subscription.close()

    def _check(self) -> None:
        try:
            self._apply_if_moved()
        finally:
            # Back to the pool after every poll, applying included: a watcher stopped right after
            # applying would otherwise take its connection with it and drain the pool.
            connection.close()

    def _apply_if_moved(self) -> None:
        # Inside a caller's transaction (apply_now), a savepoint: a failed read rolls back to it
        # and leaves the caller's transaction usable.
        savepoint = transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext()
        try:
            with savepoint:
                version = config_version()
                if version == self.applied or time.monotonic() < self._retry_at:
                    return
                self.on_change(version)
        except Exception:
            logger.exception("could not read or apply the resilience config; retrying shortly")
            self._retry_at = time.monotonic() + RETRY_SECONDS
            return
        self.applied = version

    def _wait(self, subscription):
        """Wait one poll interval, or less when a change is published; return the subscription still usable."""
        if subscription is None:
            self._stopped.wait(self.poll_seconds)
            return None
        try:
            subscription.get_message(ignore_subscribe_messages=True, timeout=self.poll_seconds)
            return subscription
        except Exception:
            logger.warning("resilience config subscription failed; polling until it is back", exc_info=True)
            subscription.close()
            self._stopped.wait(self.poll_seconds)
            return None


def _subscribe():
    """Subscribe to published config versions when Redis is configured and reachable."""
    if not settings.REDIS_URL:
        return None
    import redis

    try:
        subscription = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1).pubsub()
        subscription.subscribe(CHANNEL)
        return subscription
    except redis.RedisError:
        logger.warning("could not subscribe to resilience config changes; polling only", exc_info=True)
        return None
