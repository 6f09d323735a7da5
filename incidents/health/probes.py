"""Probes: /healthz (the process answers) and /readyz (its database, Redis and workers answer).

Both are open to anyone, as load balancers and Kubernetes call them: they say ok or name what
fails in a few words, never an address, a URL or an exception's text (logged instead).

    GET /healthz  ->  200 {"status": "ok"}
    GET /readyz   ->  200 {"status": "ready", "checks": {"database": "ok", "redis": "ok", "workers": "ok"}}
                      503 {"status": "not ready", "error": "workers: ...", "field": null,
                           "failing": ["workers"], "checks": {...}}

The database check has its own short timeout (a probe that hangs is no probe) and fails while
the database cannot take ingest's writes: down, out of connections, a standby or read-only.

The workers check reads django-q2's cluster heartbeats: every running cluster saves its status
(a signed `django_q.status.Stat`) every half second with a 3-second expiry, so a cluster counts
as alive while its last save has not expired. The Redis broker keeps them in Redis under
`django_q:<name>:cluster:<id>`; the other brokers in Q_CLUSTER's cache, listed under
`django_q:<name>:cluster`. That cache must be shared by all processes (not local memory).
"""

import concurrent.futures
import logging
import threading

import redis
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.dummy import DummyCache
from django.core.cache.backends.locmem import LocMemCache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from django_q import core_signing
from django_q.conf import Conf
from django_q.signing import PickleSerializer

logger = logging.getLogger(__name__)

# Connect and read timeout of each Redis call (seconds): a probe answers quickly or fails.
REDIS_TIMEOUT_SECONDS = 0.1
# How long the probe waits for the database (connection from the pool and query) before calling it failing.
DATABASE_TIMEOUT_SECONDS = 0.5
OK = "ok"
NOT_CONFIGURED = "not configured"

_redis_clients: dict[str, redis.Redis] = {}
_database_checker = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="readyz-database")
_database_check: concurrent.futures.Future | None = None
_database_check_lock = threading.Lock()


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is up and serving requests; no I/O."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    """The database, Redis (when configured) and at least one worker cluster answer."""
    checks = {"database": check_database(), "redis": check_redis()}
    checks["workers"] = check_workers(redis_down=checks["redis"] not in (OK, NOT_CONFIGURED))
    failing = [name for name, result in checks.items() if result not in (OK, NOT_CONFIGURED)]
    if not failing:
        return JsonResponse({"status": "ready", "checks": checks})
    error = "; ".join(f"{name}: {checks[name]}" for name in failing)
    body = {"status": "not ready", "error": error, "field": None, "failing": failing, "checks": checks}
    return JsonResponse(body, status=503)


def check_database() -> str:
    """OK while the database takes writes, answered within DATABASE_TIMEOUT_SECONDS whatever it does.

    The check runs on its own thread, so a database that hangs cannot hold up the probe; while
    one check still hangs, later probes say so instead of starting more threads.
    """
    global _database_check
    with _database_check_lock:
        if _database_check is None or _database_check.done():
            _database_check = _database_checker.submit(_query_database)
        check = _database_check
    try:
        return check.result(timeout=DATABASE_TIMEOUT_SECONDS)
    except concurrent.futures.TimeoutError:
        logger.warning("readyz: database check took over %s s", DATABASE_TIMEOUT_SECONDS)
        return f"no answer within {DATABASE_TIMEOUT_SECONDS} s"


def _query_database() -> str:
    try:
        return _writable()
    except Exception as exc:
        logger.warning("readyz: database check failed", exc_info=True)
        return f"query failed ({type(exc).__name__})"
    finally:
        connection.close()  # this thread's connection goes back to the pool


def _writable() -> str:
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            cursor.execute("SELECT 1")
            cursor.fetchone()
            return OK
        # A standby, or a server set read-only, answers queries but refuses every ingest INSERT.
        cursor.execute("SELECT pg_is_in_recovery(), current_setting('transaction_read_only') = 'on'")
        in_recovery, read_only = cursor.fetchone()
    return "read-only (a standby)" if in_recovery else "read-only" if read_only else OK


def check_redis() -> str:
    if not settings.REDIS_URL:
        return NOT_CONFIGURED
    try:
        redis_client(settings.REDIS_URL).ping()
    except Exception as exc:
        logger.warning("readyz: redis check failed", exc_info=True)
        return f"unreachable ({type(exc).__name__})"
    return OK


def check_workers(*, redis_down: bool = False) -> str:
    """OK while a cluster of this console's name has a live heartbeat, else why not."""
    q_cluster = settings.Q_CLUSTER
    prefix = q_cluster.get("name", "default")  # django-q2's Conf.PREFIX: stat keys and signing salt
    stat_key = f"django_q:{prefix}:cluster"  # django-q2's Conf.Q_STAT
    broker_redis = q_cluster.get("redis")
    try:
        if broker_redis:
            if redis_down and broker_redis == settings.REDIS_URL:
                return "heartbeats unreadable (redis unreachable)"
            packs = _redis_stats(broker_redis, stat_key)
        else:
            cache = caches[q_cluster.get("cache", "default")]
            if isinstance(cache, LocMemCache | DummyCache):
                return "heartbeats unreadable (Q_CLUSTER's cache is local to each process)"
            keys = cache.get(stat_key) or []
            packs = list(cache.get_many(keys).values()) if keys else []
    except Exception as exc:
        logger.warning("readyz: reading cluster heartbeats failed", exc_info=True)
        return f"heartbeats unreadable ({type(exc).__name__})"
    running = {str(Conf.IDLE), str(Conf.WORKING)}
    secret = q_cluster.get("secret_key", settings.SECRET_KEY)
    for pack in packs:
        stat = _load_stat(pack, secret=secret, salt=prefix)
        if stat is not None and str(stat.status) in running:
            return OK
    return "no running cluster has a recent heartbeat"


def redis_client(config: str | dict) -> redis.Redis:
    """A client (a URL or Q_CLUSTER-style keywords) with short timeouts, kept for the process."""
    key = config if isinstance(config, str) else repr(sorted(config.items()))
    client = _redis_clients.get(key)
    if client is None:
        timeouts = {"socket_timeout": REDIS_TIMEOUT_SECONDS, "socket_connect_timeout": REDIS_TIMEOUT_SECONDS}
        if isinstance(config, str):
            client = redis.Redis.from_url(config, **timeouts)
        else:
            client = redis.Redis(**{**config, **timeouts})
        _redis_clients[key] = client
    return client


def _redis_stats(broker_redis: str | dict, stat_key: str) -> list[bytes]:
    client = redis_client(broker_redis)
    # The Redis broker saves each cluster's stat under its own expiring key, with no list of them.
    keys = list(client.scan_iter(match=f"{stat_key}:*", count=10_000))
    return [pack for pack in client.mget(keys) if pack] if keys else []


def _load_stat(pack, *, secret: str, salt: str):
    """A cluster's Stat as django_q.signing.SignedPackage loads it, or None if it is not one of ours."""
    try:
        text = pack.decode() if isinstance(pack, bytes) else pack
        return core_signing.loads(text, key=secret, salt=salt, serializer=PickleSerializer)
    except Exception:
        return None
