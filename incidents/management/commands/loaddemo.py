"""Load demo sources and a few hundred realistic events, so a new console is not empty."""

import json
import random
import socket
import traceback
from datetime import timedelta

from django.core.management.base import BaseCommand
from django.utils import timezone

from incidents import services
from incidents.ingest import pipeline
from incidents.ingest.digest import digest_pending
from incidents.ingest.normalize import normalize_native_event
from incidents.models import Incident, Source


class HTTPError(Exception):
    """An HTTP client error carrying its status, as requests and httpx raise them."""

    def __init__(self, status: int, reason: str, url: str):
        super().__init__(f"{status} {reason} for url: {url}")
        self.status = status


class NetworkException(Exception):
    pass


class BrokerException(Exception):
    pass


class IntegrityError(Exception):
    pass


# Each scenario raises a real exception from its own call site; the message carries ids
# that differ per event, so the console shows grouping at work.


def charge_card(rng):
    raise HTTPError(502, "Bad Gateway", f"https://payments.example.com/v1/charges/{rng.randint(1000, 9999)}")


def fetch_rates(rng):
    raise TimeoutError(f"read timed out after {rng.choice([10, 30])}s talking to rates.example.com")


def connect_inventory(rng):
    raise ConnectionRefusedError(111, "Connection refused")


def call_partner_api(rng):
    raise HTTPError(429, "Too Many Requests", f"https://partner.example.com/orders?page={rng.randint(1, 50)}")


def refresh_token(rng):
    raise HTTPError(401, "Unauthorized", "https://auth.example.com/oauth/token")


def validate_order(rng):
    raise ValueError(f"order {rng.randint(10000, 99999)}: amount {rng.randint(-50, -1)} must be positive")


def parse_webhook(rng):
    json.loads('{"event": "charge.succeeded", "amount": ' + str(rng.randint(1, 999)))


def save_customer(rng):
    raise IntegrityError(f'duplicate key value violates unique constraint "customer_email_key" ({rng.randint(1, 500)})')


def resolve_exchange(rng):
    raise socket.gaierror(-2, "Name or service not known")


def read_snapshot(rng):
    open(f"/nonexistent/snapshots/{rng.randint(1, 99)}.parquet").close()


def write_partition(rng):
    raise OSError(28, "No space left on device")


def place_order(rng):
    raise BrokerException(f"Insufficient funds for BTCUSDT order {rng.randint(1, 10**6)}")


def stream_ticks(rng):
    try:
        raise ConnectionResetError(104, "Connection reset by peer")
    except ConnectionResetError as cause:
        raise NetworkException("websocket feed dropped; reconnecting") from cause


SCENARIOS = {
    "Checkout API": [
        (charge_card, {}, 40),
        (fetch_rates, {}, 30),
        (connect_inventory, {}, 15),
        (call_partner_api, {}, 35),
        (refresh_token, {}, 8),
        (validate_order, {"during_validation": True}, 25),
        (parse_webhook, {}, 12),
        (save_customer, {}, 6),
    ],
    "Data pipeline": [
        (resolve_exchange, {}, 10),
        (read_snapshot, {"storage_operation": "read"}, 20),
        (write_partition, {"storage_operation": "write"}, 4),
    ],
    "Trading bot": [
        (place_order, {"component": "broker"}, 30),
        (stream_ticks, {"component": "market_data"}, 45),
    ],
}


def _exception_chain(exc: BaseException) -> list[dict]:
    """Describe the exception and its causes, oldest first, as the native API takes them."""
    chain = []
    while exc is not None:
        frames = [
            {
                "filename": frame.filename,
                "function": frame.name,
                "lineno": frame.lineno,
                "context_line": frame.line,
                "in_app": "site-packages" not in frame.filename,
            }
            for frame in traceback.extract_tb(exc.__traceback__)
        ]
        cls = type(exc)
        chain.append(
            {
                "type": cls.__name__,
                "value": str(exc),
                "module": cls.__module__,
                "bases": [base.__name__ for base in cls.__mro__[1:] if base not in (object, BaseException)],
                "stacktrace": {"frames": frames},
            }
        )
        exc = exc.__cause__ or exc.__context__
    return list(reversed(chain))


def _raise(scenario, rng) -> BaseException:
    try:
        scenario(rng)
    except Exception as exc:  # every scenario raises; we want the exception itself
        return exc
    raise AssertionError(f"{scenario.__name__} did not raise")


def _events_for(scenarios, rng, now) -> list[dict]:
    events = []
    for scenario, context, count in scenarios:
        for _ in range(count):
            exc = _raise(scenario, rng)
            status = getattr(exc, "status", None)
            events.append(
                {
                    "timestamp": (now - timedelta(minutes=rng.triangular(0, 24 * 60, 60))).isoformat(),
                    "level": "error",
                    "exception": _exception_chain(exc),
                    "http_status": status,
                    "logger": f"demo.{scenario.__name__}",
                    "environment": rng.choice(["production", "production", "production", "staging"]),
                    "release": rng.choice(["2.4.0", "2.4.1", "2.5.0"]),
                    "user": {"id": f"user-{rng.randint(1, 120)}"},
                    "tags": {"region": rng.choice(["eu-west-1", "us-east-1"])},
                    "context": dict(context),
                    **({"component": context["component"]} if "component" in context else {}),
                }
            )
    return events


def _empty_data_events(rng, now) -> list[dict]:
    return [
        {
            "timestamp": (now - timedelta(minutes=rng.uniform(0, 24 * 60))).isoformat(),
            "level": "info",
            "message": f"No data available for BTCUSDT 1m between {rng.randint(0, 23):02d}:00 and the next hour",
            "logger": "demo.pipeline",
            "environment": "production",
            "context": {"empty_reason": "date_range"},
        }
        for _ in range(25)
    ]


class Command(BaseCommand):
    help = "Load demo sources and a few hundred realistic events (once; skipped when sources exist)."

    def handle(self, *args, **options):
        if Source.objects.exists():
            self.stdout.write("Demo data: sources exist already, nothing loaded.")
            return
        rng = random.Random(7)
        now = timezone.now()
        total = 0
        for name, scenarios in SCENARIOS.items():
            source, _key = services.source_create(name=name)
            raw_events = _events_for(scenarios, rng, now)
            if name == "Data pipeline":
                raw_events += _empty_data_events(rng, now)
            events = [normalize_native_event(raw, received_at=now) for raw in raw_events]
            pipeline.events_store(source=source, events=events, received_at=now)
            total += len(events)
        digest_pending()
        self._triage_a_few()
        self.stdout.write(f"Demo data: {total} events in {Incident.objects.count()} incidents.")

    @staticmethod
    def _triage_a_few() -> None:
        """Give the demo some acknowledged, resolved and muted incidents."""
        incidents = list(Incident.objects.order_by("pk"))
        for incident in incidents[1:3]:
            services.incident_acknowledge(incident=incident, by="system:demo")
        for incident in incidents[3:5]:
            services.incident_resolve(incident=incident, by="system:demo")
        for incident in incidents[5:6]:
            services.incident_mute(incident=incident, by="system:demo", duration=timedelta(hours=24))
