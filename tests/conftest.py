"""Shared fixtures: sources with keys, a digest that runs like the worker's, alerting channels and the
receivers they deliver to, and the resets that start every test from a fresh process state.

Model factories are in tests/factories.py, builders of what clients send in tests/support.py.

Markers: `live` marks tests that start real server or worker processes (granian, django-q2 clusters,
probe programs); they are the slow ones. `make test-fast` runs the suite without them
(`pytest -m "not live"`); `make test` runs everything.
"""

from collections.abc import Iterator

import pytest
import redis
from django.core.cache import cache
from django.test.utils import override_settings

from incidents import services
from incidents.ingest import endpoints, quotas
from incidents.ingest.classification import forget_rules
from incidents.ingest.digest import digest_pending
from incidents.retention import partitions, sizes
from resilience import process_runtime
from tests.factories import alert_rule, webhook_channel
from tests.receivers import Receiver

pytest_plugins = ["tests.api_support"]


@pytest.fixture
def source(db):
    """A source with one usable ingest key."""
    created, _key = services.source_create(name="Checkout service")
    return created


@pytest.fixture
def ingest_key(source):
    return source.keys.get()


@pytest.fixture
def shop(db):
    """A service's source, with its ingest key: the breakers it runs are registered under it."""
    created, _key = services.source_create(name="Shop")
    return created


@pytest.fixture
def warehouse(db):
    """A second service's source, with its ingest key."""
    created, _key = services.source_create(name="Warehouse")
    return created


@pytest.fixture
def digest(db):
    """Run the digest in-process, as the worker's task does."""
    return digest_pending


@pytest.fixture
def channel(db):
    """A webhook channel with a secret and a header, on a URL nothing is sent to."""
    return webhook_channel(secret="s" * 32, headers={"Authorization": "Bearer x"})


@pytest.fixture
def rule(channel):
    """An alert rule notifying `channel`."""
    return alert_rule(channel)


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    """The HTTP receivers a test started, closed after it."""
    opened: list[Receiver] = []
    yield opened
    for receiver in opened:
        receiver.close()


@pytest.fixture
def receiver(receivers) -> Receiver:
    """An HTTP receiver on 127.0.0.1 that records what it is sent."""
    started = Receiver()
    receivers.append(started)
    return started


@pytest.fixture
def receiver6(receivers) -> Receiver:
    """An HTTP receiver on ::1."""
    try:
        started = Receiver("::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    receivers.append(started)
    return started


@pytest.fixture
def receiver_channel(receiver, settings):
    """A webhook channel delivering to `receiver`: loopback allowed, as an operator would allow an internal
    network (processes the test starts are allowed it through their environment)."""
    settings.NOTIFICATION_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    return webhook_channel(url=receiver.url())


@pytest.fixture(autouse=True)
def fresh_quotas(settings):
    """Start every test with empty ingest quotas: source ids repeat across tests."""
    if settings.REDIS_URL:
        client = redis.Redis.from_url(settings.REDIS_URL)
        for key in client.scan_iter("quota:*"):
            client.delete(key)
    quotas.reset()
    yield
    quotas.reset()  # a test may have set a clock of its own


@pytest.fixture(autouse=True)
def fresh_throttles(settings):
    """Start every test with no API requests counted: token ids repeat across tests."""
    if settings.REDIS_URL:
        client = redis.Redis.from_url(settings.REDIS_URL)
        for key in client.scan_iter("*throttle_*"):
            client.delete(key)
    else:
        cache.clear()


@pytest.fixture(autouse=True)
def fresh_key_cache():
    """Forget cached ingest keys: each test makes its own sources and keys."""
    endpoints.forget_keys()


@pytest.fixture(autouse=True)
def no_digest_wakeups(settings):
    """In-process tests digest explicitly; live tests run a real worker in their own processes."""
    settings.INGEST_WAKE_DIGEST = False


@pytest.fixture(autouse=True)
def fresh_retention_figures():
    """Forget cached table sizes and the days known to have partitions: each test's database differs."""
    sizes.forget()
    partitions.forget()
    yield
    sizes.forget()
    partitions.forget()


@pytest.fixture(autouse=True)
def fresh_rules():
    """Forget cached classification rules: each test's database starts from the seeded ones."""
    forget_rules()


@pytest.fixture(autouse=True, scope="session")
def stop_console_runtime(django_db_setup):
    """Keep this process's console runtime from reporting windows on its own, and stop its threads
    before the test database goes away. Its housekeeper would otherwise write window reports into
    whichever test runs when the interval is up; tests that need reports make them explicitly."""
    fast_hashing = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # test users need no costly hashes
    with override_settings(RESILIENCE_WINDOW_REPORT_SECONDS=24 * 3600, PASSWORD_HASHERS=fast_hashing):
        yield
        process_runtime.reset()


@pytest.fixture
def console_inline():
    """A fresh console runtime whose reports (transitions, recovery outcomes, refused config) made on the
    test's thread are written at once, in the test's transaction: such a test needs no transactional
    database. Use console_threads where the reports come from other threads or processes."""
    process_runtime.reset()
    with process_runtime.recording_inline():
        yield process_runtime
    process_runtime.reset()


@pytest.fixture
def console_threads():
    """A fresh console runtime for a test whose breakers report from background threads: their
    writes use other connections, so such tests are transactional and wait for them at the end."""
    process_runtime.reset()
    yield process_runtime
    process_runtime.reset()  # writes the reports still queued, then stops the threads
