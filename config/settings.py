"""Settings for the incident console, read from the environment.

With no environment at all the console runs on the embedded default (SQLite in
WAL mode, in-memory channel layer, django-q2 ORM broker). `DATABASE_URL` and
`REDIS_URL` switch it to PostgreSQL and Redis.
"""

import ipaddress
import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("CONSOLE_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """Use SECRET_KEY, or a key generated once and kept in the var directory."""
    configured = env_str("SECRET_KEY")
    if configured:
        return configured
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DEBUG", False)
HOST = env_str("HOST", "127.0.0.1")
PORT = env_int("PORT", 8000, minimum=1)
CONSOLE_URL = env_str("CONSOLE_URL", f"http://{HOST}:{PORT}").rstrip("/")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", HOST])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [CONSOLE_URL])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "channels",
    "incidents",
    "resilience",
    "access",  # last: its post_migrate gives the role groups the other apps' permissions
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "incidents.ingest.unavailable.DatabaseUnavailableMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def _sqlite(path) -> dict:
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        # IMMEDIATE transactions and a busy timeout make the web process and the
        # worker wait for each other instead of failing with "database is locked".
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
        # A file, not memory, so that server and worker processes started by tests share it;
        # one per test run, so that two runs side by side do not trample each other.
        "TEST": {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")},
    }


def _databases() -> dict:
    """PostgreSQL with a psycopg 3 pool from DATABASE_URL, else SQLite in WAL mode."""
    url = env_str("DATABASE_URL")
    if not url:
        return {"default": _sqlite(VAR_DIR / "console.sqlite3")}
    config = dj_database_url.parse(url)
    if config["ENGINE"] == "django.db.backends.sqlite3":
        return {"default": _sqlite(config["NAME"])}
    if config["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured(f"DATABASE_URL must be a postgres:// or sqlite:/// URL, got {url.split(':')[0]}")
    config["CONN_MAX_AGE"] = 0  # the pool keeps connections; Django must not
    # Django's backend, its pool checking each connection it hands out (one empty round trip) and
    # sweeping out every dead one when it finds one, as all die together in a database restart.
    config["ENGINE"] = "config.postgresql"
    config["OPTIONS"] = {
        "pool": {
            "min_size": env_int("DATABASE_POOL_MIN", 1, minimum=0),
            "max_size": env_int("DATABASE_POOL_MAX", 8, minimum=1),
            # A request waits this long for a connection, then answers 503 with Retry-After: while the
            # database is down the pool has none to give, and a client is better told so at once.
            "timeout": env_float("DATABASE_POOL_TIMEOUT", 0.5, minimum=0.05),
            # Reconnection attempts back off (1, 2, 4 s ...) for this long, then stop until a request
            # asks again; psycopg_pool's default of 5 minutes could leave a recovered database idle
            # for minutes, waiting for the next attempt.
            "reconnect_timeout": 5,
        }
    }
    return {"default": config}


DATABASES = _databases()
# What a client is told to wait (Retry-After) when the database is unavailable and it gets a 503.
DATABASE_RETRY_AFTER_SECONDS = env_int("DATABASE_RETRY_AFTER_SECONDS", 5, minimum=1)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL")

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # A group member that stopped without leaving (a killed process) is dropped after 15
            # minutes, not the default day: every signal is sent to every member. Members rejoin
            # every 5 minutes (incidents/live/consumers.py).
            "CONFIG": {"hosts": [REDIS_URL], "group_expiry": 900},
        }
    }
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

Q_CLUSTER = {
    "name": env_str("Q_CLUSTER_NAME", "console"),
    "workers": env_int("Q_WORKERS", 2, minimum=1),
    "timeout": 120,
    "retry": 180,
    "max_attempts": 5,
    "ack_failures": True,
    "catch_up": False,
    "save_limit": -1,  # keep failed tasks only: successful digests would be thousands of rows an hour
    "poll": 0.1,
    "label": "Tasks",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
    # django-q2 keeps each cluster's heartbeat in a cache and /readyz reads it from the web processes,
    # so it must be shared; without Redis every process runs on one machine, where files are.
    CACHES["django_q"] = {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": str(VAR_DIR / "django_q_cache"),
    }
    Q_CLUSTER["cache"] = "django_q"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# Credentials in URLs (?token=, ?sentry_key=) are redacted from every record, including those of the
# servers' own handlers (uvicorn, granian, daphne), which configure() filters too.
LOGGING_CONFIG = "config.logging_filters.configure"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "redact_tokens": {"()": "config.logging_filters.RedactTokens"},
        "quiet_refusals": {"()": "config.logging_filters.QuietRefusals"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["redact_tokens", "quiet_refusals"]}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "WARNING")},
    # While the database is down the pool logs every connection attempt (several a second at first, see
    # config/postgresql/base.py); the console's own "database unavailable" lines say it per refused request.
    "loggers": {"psycopg.pool": {"level": "ERROR"}},
}

# Ingest limits. Bodies over the compressed limit, or growing past the decompressed
# limit while they are inflated, are refused with 413.
INGEST_MAX_COMPRESSED_BYTES = env_int("INGEST_MAX_COMPRESSED_BYTES", 1024 * 1024, minimum=1024)
INGEST_MAX_DECOMPRESSED_BYTES = env_int("INGEST_MAX_DECOMPRESSED_BYTES", 20 * 1024 * 1024, minimum=1024)
INGEST_MAX_BATCH_EVENTS = env_int("INGEST_MAX_BATCH_EVENTS", 500, minimum=1)
INGEST_DEFAULT_RATE_LIMIT_PER_MINUTE = env_int("INGEST_DEFAULT_RATE_LIMIT_PER_MINUTE", 60_000, minimum=0)
# Ask for the digest after storing events (ingest.pipeline.digest_request); tests digesting in-process turn it off.
INGEST_WAKE_DIGEST = env_bool("INGEST_WAKE_DIGEST", True)
# How often each process reads the resilience config version (seconds); Redis, when set, wakes it sooner.
RESILIENCE_CONFIG_POLL_SECONDS = env_float("RESILIENCE_CONFIG_POLL_SECONDS", 0.25, minimum=0.01)
# How often each process reads other processes' breaker transitions from the database store (seconds).
RESILIENCE_STATE_POLL_SECONDS = env_float("RESILIENCE_STATE_POLL_SECONDS", 0.25, minimum=0.01)
# How often each process reports its breakers' window figures (calls, failures) to the console.
RESILIENCE_WINDOW_REPORT_SECONDS = env_float("RESILIENCE_WINDOW_REPORT_SECONDS", 5.0, minimum=0.1)
# Where breakers share transitions, forced modes and half-open permits: "database" or "redis".
RESILIENCE_STATE_STORE = env_str("RESILIENCE_STATE_STORE", "database")
if RESILIENCE_STATE_STORE not in ("database", "redis") or (RESILIENCE_STATE_STORE == "redis" and not REDIS_URL):
    raise ImproperlyConfigured('RESILIENCE_STATE_STORE must be "database", or "redis" with REDIS_URL set')
# Digests start at most this often (seconds): events of a busy moment join one digest (incidents.models.DigestRequest).
DIGEST_MIN_INTERVAL_SECONDS = env_float("DIGEST_MIN_INTERVAL_SECONDS", 0.05, minimum=0.0)
# Threads per web process committing ingested events (PostgreSQL; SQLite takes one writer at a time).
INGEST_WRITER_THREADS = env_int("INGEST_WRITER_THREADS", 3, minimum=1)
# A worker's claim on a notification attempt; one that dies mid-send is retried after it (seconds).
NOTIFICATION_LEASE_SECONDS = env_float("NOTIFICATION_LEASE_SECONDS", 60.0, minimum=0.1)
# Extra key names whose values are scrubbed, on top of the built-in list.
SCRUB_EXTRA_KEYS = env_list("SCRUB_EXTRA_KEYS", [])

# Notification transports (incidents/alerting/transports)
# Which class delivers each channel kind, by dotted path; replace one to customise a kind.
NOTIFICATION_TRANSPORTS = {
    "webhook": "incidents.alerting.transports.webhook.WebhookTransport",
    "slack": "incidents.alerting.transports.slack.SlackTransport",
    "pagerduty": "incidents.alerting.transports.pagerduty.PagerDutyTransport",
    "email": "incidents.alerting.transports.email.EmailTransport",
    "alertmanager": "incidents.alerting.transports.alertmanager.AlertmanagerTransport",
}
# Connect and read timeout of one notification attempt (seconds); the whole answer is read within it too.
NOTIFICATION_TIMEOUT_SECONDS = env_float("NOTIFICATION_TIMEOUT_SECONDS", 5.0, minimum=0.01)
# Channel URLs may only reach public addresses, so a typed-in URL cannot probe the console's own network.
# These CIDRs (e.g. "10.20.0.0/16,fd00::/8") and host names are exempt, for receivers inside it.
NOTIFICATION_ALLOWED_NETWORKS = env_list("NOTIFICATION_ALLOWED_NETWORKS", [])
NOTIFICATION_ALLOWED_HOSTS = env_list("NOTIFICATION_ALLOWED_HOSTS", [])
for _cidr in NOTIFICATION_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_cidr)
    except ValueError as _exc:
        raise ImproperlyConfigured(f"NOTIFICATION_ALLOWED_NETWORKS: {_exc}") from None
# A PEM file of CA certificates trusted for https channels on top of the system ones, e.g. an internal CA.
NOTIFICATION_CA_FILE = env_str("NOTIFICATION_CA_FILE", "")
# Email channels send through this SMTP server; without EMAIL_HOST the console cannot email anyone.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured("EMAIL_USE_TLS and EMAIL_USE_SSL are exclusive: set one of them")
# Django's default is no timeout at all: a silent mail server would hang a worker for good.
EMAIL_TIMEOUT = env_float("EMAIL_TIMEOUT", 10.0, minimum=0.1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "incident-console@localhost")

# Retention (the periods themselves are the RetentionPolicy, edited in admin): rows per purge batch,
# each its own short transaction; a rest after each batch of REST_PER_WORK times what it took (at least
# PAUSE_SECONDS), so a purge takes at most a fifth of the database's time and ingest keeps the rest;
# and how long one scheduled run may take before it leaves the rest to the next (every 10 minutes),
# within the worker's task timeout.
RETENTION_BATCH_ROWS = env_int("RETENTION_BATCH_ROWS", 2000, minimum=1)
MAX_RETENTION_REST_SECONDS = 30.0  # the longest rest between two batches (and a batch's margin)
RETENTION_BATCH_PAUSE_SECONDS = env_float("RETENTION_BATCH_PAUSE_SECONDS", 0.05, minimum=0.0)
RETENTION_REST_PER_WORK = env_float("RETENTION_REST_PER_WORK", 4.0, minimum=0.0)
RETENTION_RUN_SECONDS = env_float("RETENTION_RUN_SECONDS", 60.0, minimum=1.0)
if Q_CLUSTER["timeout"] - MAX_RETENTION_REST_SECONDS < RETENTION_RUN_SECONDS:
    # django-q2 kills a task at its timeout, before the run can record how far it got.
    raise ImproperlyConfigured(
        f"RETENTION_RUN_SECONDS must be at most {Q_CLUSTER['timeout'] - MAX_RETENTION_REST_SECONDS:g}: "
        f"the worker stops a task after {Q_CLUSTER['timeout']} s"
    )

# Live stream: messages are kept this long, so a browser that was away less can catch up exactly.
LIVE_MESSAGE_RETENTION_SECONDS = env_int("LIVE_MESSAGE_RETENTION_SECONDS", 3600, minimum=60)
# Batches of live messages a websocket connection may have waiting while its client is slow;
# past that the batches are dropped and it catches up from the table when the client reads again.
LIVE_INBOX_BATCHES = env_int("LIVE_INBOX_BATCHES", 50, minimum=1)
# Live websockets one API token (or one user's sessions) may hold open in a web process; past it the
# handshake is refused with close code 4429.
LIVE_MAX_SOCKETS_PER_CLIENT = env_int("LIVE_MAX_SOCKETS_PER_CLIENT", 20, minimum=1)
# The web server (config/servers.py) closes a connection whose request headers are not in within
# HTTP_HEADER_TIMEOUT_SECONDS; a body not complete within HTTP_BODY_TIMEOUT_SECONDS is answered 408.
HTTP_HEADER_TIMEOUT_SECONDS = env_float("HTTP_HEADER_TIMEOUT_SECONDS", 10.0, minimum=0.1)
HTTP_BODY_TIMEOUT_SECONDS = env_float("HTTP_BODY_TIMEOUT_SECONDS", 30.0, minimum=0.1)
# Web server processes runconsole (`make run`) starts; each serves everything on its own event loop.
WEB_WORKERS = env_int("WEB_WORKERS", 2, minimum=1)

# Reporting API (/api/v1/): API tokens or a session, roles from groups, one error shape, cursor pages.
API_THROTTLE_RATE = env_str("API_THROTTLE_RATE", "1200/min")
API_MAX_BODY_BYTES = env_int("API_MAX_BODY_BYTES", 256 * 1024, minimum=1024)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "access.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["access.permissions.RolePermission"],
    "DEFAULT_THROTTLE_CLASSES": ["access.authentication.TokenRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"api": API_THROTTLE_RATE},
    "DEFAULT_PAGINATION_CLASS": "access.pagination.StrictCursorPagination",
    "DEFAULT_FILTER_BACKENDS": [
        "access.filters.StrictFilterBackend",
        "rest_framework.filters.SearchFilter",
        "access.filters.StrictOrderingFilter",
    ],
    "DEFAULT_PARSER_CLASSES": ["access.parsers.BoundedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "EXCEPTION_HANDLER": "access.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Incident console API",
    "DESCRIPTION": "Incidents, events, statistics, circuit breakers, alerting and health. "
    "Authenticate with `Authorization: Bearer <API token>`.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["access.permissions.RolePermission"],  # the schema and docs need a login too
    "SWAGGER_UI_DIST": "SIDECAR",  # served from our static files: works offline, no CDN
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "access.schema.add_error_responses",
    ],
}
# /metrics answers an API token of an admin, or any request from these addresses (Prometheus scrapers).
METRICS_ALLOWED_IPS = env_list("METRICS_ALLOWED_IPS", [])
