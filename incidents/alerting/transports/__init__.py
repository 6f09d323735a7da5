"""Notification transports: one class per channel kind on a shared base, chosen by dotted path."""

from incidents.alerting.transports.base import (
    DEFAULT_TRANSPORTS,
    EVENTS,
    SEVERITIES,
    ConfigField,
    Delivery,
    Message,
    Transport,
    TransportError,
    transport_class,
    transport_for,
)

__all__ = [
    "DEFAULT_TRANSPORTS",
    "EVENTS",
    "SEVERITIES",
    "ConfigField",
    "Delivery",
    "Message",
    "Transport",
    "TransportError",
    "transport_class",
    "transport_for",
]
