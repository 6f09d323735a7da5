"""One safe HTTP POST for every HTTP transport.

Channel URLs are typed in by users, so a POST must not become a way to reach the console's own
network (server-side request forgery). The host is resolved once; if any of its addresses is not a
public unicast address the request is refused, unless the address is inside
`NOTIFICATION_ALLOWED_NETWORKS` or the host name is in `NOTIFICATION_ALLOWED_HOSTS`. The socket is then
opened to the vetted address itself, never re-resolved (no DNS-rebinding window), while the Host header,
TLS SNI and certificate check use the original host name.

Other rules: http and https only; no redirects (a 3xx is a permanent failure naming its Location); no
proxies; connect and read timeouts of NOTIFICATION_TIMEOUT_SECONDS, with the whole body read within that
time too; at most 64 KiB of the answer read. A user:password in the URL is sent as HTTP basic
authentication and never appears in an error: errors name only scheme, host and port, because webhook
paths (Slack's among them) are secrets themselves.
"""

from __future__ import annotations

import base64
import email.utils
import http.client
import ipaddress
import json
import math
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from incidents.alerting.transports.base import Delivery, TransportError
from resilience.exceptions import ConfigError

USER_AGENT = "incident-console/1"
MAX_URL_LENGTH = 2048
MAX_RESPONSE_BYTES = 64 * 1024
LOGGED_RESPONSE_CHARS = 1000
# A host with many addresses gets this many connection attempts, so one attempt stays bounded in time.
MAX_CONNECT_ADDRESSES = 3

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LOCAL_NAMES = ("localhost", "localhost.localdomain")
# Header names a channel may not set: they frame the request, or they are the console's own signature.
FORBIDDEN_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "te", "upgrade", "trailer", "keep-alive"}
)
_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
MAX_HEADERS = 20
MAX_HEADER_VALUE_LENGTH = 4096


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed, checked URL: where to connect and what to ask for."""

    scheme: str
    host: str  # IDNA-encoded name, or an IP literal without brackets
    port: int
    path: str  # path and query, never empty
    authorization: str | None  # basic credentials from the URL's userinfo

    @property
    def origin(self) -> str:
        """Return scheme, host and port only: safe to show in errors and logs."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def host_header(self) -> str:
        """Return the Host header value, with the port only when it is not the scheme's default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


# URL checks


def parse_url(url: str) -> Target:
    """Return the URL's target, raising ValueError with a reason when it is not an acceptable URL."""
    if not isinstance(url, str):
        raise ValueError("must be a string")
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"must be at most {MAX_URL_LENGTH} characters")
    if any(char.isspace() or ord(char) < 32 or ord(char) == 127 for char in url):
        raise ValueError("must not contain spaces or control characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError("must start with http:// or https://")
    if not parts.hostname:
        raise ValueError("must name a host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ValueError("has an invalid port") from None
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(parts.scheme, _ascii_host(parts.hostname), port, path, _basic_auth(parts))


def _ascii_host(hostname: str) -> str:
    """Return the host name in its ASCII (IDNA) form, as DNS, Host and SNI need it."""
    hostname = hostname.rstrip(".")
    if _literal_ip(hostname) is not None:
        return hostname
    try:
        return hostname.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise ValueError("has an invalid host name") from None


def _basic_auth(parts) -> str | None:
    if parts.username is None:
        return None
    credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
    return "Basic " + base64.b64encode(credentials).decode("ascii")


def check_url(value: Any, *, field: str = "url") -> str:
    """Return the URL if it is an acceptable channel URL, else raise ConfigError naming the field.

    Only what needs no DNS is checked here (the scheme, the host, literal addresses and localhost
    names); the resolved addresses are checked again on every send.
    """
    try:
        target = parse_url(value)
    except ValueError as exc:
        raise ConfigError(field, str(exc)) from None
    literal = _literal_ip(target.host)
    if literal is not None and not address_allowed(literal):
        raise ConfigError(field, f"points at {describe(literal)}, which is not a public address{_ALLOW_HINT}")
    local_name = target.host in _LOCAL_NAMES or target.host.endswith(".localhost")
    if local_name and not host_allowed(target.host):
        raise ConfigError(field, f"points at {target.host}, a name for this machine{_ALLOW_HINT}")
    return value


_ALLOW_HINT = "; allow it with NOTIFICATION_ALLOWED_NETWORKS or NOTIFICATION_ALLOWED_HOSTS"


def check_headers(value: Any, *, field: str = "headers") -> dict[str, str]:
    """Return extra request headers if they are safe to send, else raise ConfigError naming the field."""
    if not isinstance(value, Mapping):
        raise ConfigError(field, "must be a mapping of header names to values")
    if len(value) > MAX_HEADERS:
        raise ConfigError(field, f"must have at most {MAX_HEADERS} headers")
    for name, header_value in value.items():
        _check_header(field, name, header_value)
    return {str(name): str(header_value) for name, header_value in value.items()}


def _check_header(field: str, name: Any, value: Any) -> None:
    if not isinstance(name, str) or not name or not set(name) <= _TOKEN_CHARS:
        raise ConfigError(field, f"header name {name!r} is not a valid HTTP token")
    if name.lower() in FORBIDDEN_HEADERS or name.lower().startswith("x-console-"):
        raise ConfigError(field, f"header {name} is set by the console and cannot be overridden")
    if not isinstance(value, str):
        raise ConfigError(field, f"header {name} must have a string value")
    if len(value) > MAX_HEADER_VALUE_LENGTH:
        raise ConfigError(field, f"header {name} must be at most {MAX_HEADER_VALUE_LENGTH} characters")
    # CR or LF would let a value start a new header or end the head (request splitting).
    if not value.isascii() or any((ord(char) < 32 and char != "\t") or ord(char) == 127 for char in value):
        raise ConfigError(field, f"header {name} must be printable ASCII without CR or LF")


# Address policy


def _literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """Return the IPv4 address an IPv6 one carries (mapped, NAT64, 6to4, Teredo), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def _plainly_public(address: IPAddress) -> bool:
    # is_global alone misses multicast, and in IPv6 site-local; say every excluded range out loud.
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or address in _CGNAT
        or (address.version == 6 and address.is_site_local)
    )


def is_public(address: IPAddress) -> bool:
    """Return whether an address is public unicast, judging IPv6 that embeds IPv4 by the IPv4 inside."""
    if address.version == 6:
        embedded = _embedded_ipv4(address)
        if embedded is not None and (address.ipv4_mapped is not None or address in _NAT64):
            # Mapped and NAT64 addresses reach exactly the IPv4 address inside: judge that alone.
            return _plainly_public(embedded)
        if embedded is not None and not _plainly_public(embedded):
            return False
    return _plainly_public(address)


def describe(address: IPAddress) -> str:
    """Return the address as text, followed by the IPv4 address it carries when it is IPv6 that embeds one."""
    embedded = _embedded_ipv4(address) if address.version == 6 else None
    return f"{address} (IPv4 {embedded})" if embedded is not None else str(address)


def _allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    networks = []
    for cidr in getattr(settings, "NOTIFICATION_ALLOWED_NETWORKS", []):
        try:
            networks.append(ipaddress.ip_network(cidr))
        except ValueError as exc:
            raise ImproperlyConfigured(f"NOTIFICATION_ALLOWED_NETWORKS: {exc}") from None
    return networks


def address_allowed(address: IPAddress) -> bool:
    """Return whether the console may connect to an address: public, or inside an allowed network."""
    if is_public(address):
        return True
    candidates = [address]
    if address.version == 6 and address.ipv4_mapped is not None:
        candidates.append(address.ipv4_mapped)
    return any(candidate in network for network in _allowed_networks() for candidate in candidates)


def host_allowed(host: str) -> bool:
    """Return whether a host name is allow-listed in NOTIFICATION_ALLOWED_HOSTS, whatever it resolves to."""
    allowed = {name.lower().rstrip(".") for name in getattr(settings, "NOTIFICATION_ALLOWED_HOSTS", [])}
    return host.lower().rstrip(".") in allowed


def _resolve(target: Target) -> list[tuple[int, tuple]]:
    """Return the (family, socket address) pairs the host resolves to, each one vetted."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        # Resolver failures are often passing outages: let the caller try again.
        raise TransportError(f"could not resolve {target.host}: {exc}", permanent=False) from None
    if not host_allowed(target.host):
        for *_, sockaddr in infos:
            address = ipaddress.ip_address(sockaddr[0])
            if not address_allowed(address):
                raise TransportError(
                    f"refused to connect to {target.origin}: it resolves to {describe(address)}, "
                    f"which is not a public address{_ALLOW_HINT}",
                    permanent=True,
                )
    return [(family, sockaddr) for family, _type, _proto, _name, sockaddr in infos]


# The exchange


@lru_cache(maxsize=4)
def _tls_context(cafile: str) -> ssl.SSLContext:
    """Return a verifying TLS context trusting the system CAs, plus those in the file when one is named."""
    context = ssl.create_default_context()
    if cafile:
        try:
            context.load_verify_locations(cafile)
        except (OSError, ssl.SSLError) as exc:
            raise ImproperlyConfigured(f"NOTIFICATION_CA_FILE: {exc}") from None
    return context


def _timeout() -> float:
    return float(getattr(settings, "NOTIFICATION_TIMEOUT_SECONDS", 5.0))


def _open(addresses: list[tuple[int, tuple]], timeout: float) -> socket.socket:
    """Return a socket connected to the first of the vetted addresses that answers."""
    error: OSError = OSError("no address to connect to")
    for family, sockaddr in addresses[:MAX_CONNECT_ADDRESSES]:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            error = exc
        else:
            return sock
    raise error


def _connect(target: Target, addresses: list[tuple[int, tuple]], timeout: float) -> socket.socket:
    """Return a socket connected to a vetted address, TLS-wrapped for https."""
    if target.scheme != "https":
        return _open(addresses, timeout)
    context = _tls_context(getattr(settings, "NOTIFICATION_CA_FILE", ""))
    sock = _open(addresses, timeout)
    try:
        # The original host name, not the address, is what SNI and the certificate check must see.
        return context.wrap_socket(sock, server_hostname=target.host)
    except BaseException:
        sock.close()
        raise


def _request_headers(target: Target, headers: Mapping[str, str], content_type: str) -> dict[str, str]:
    merged = {
        "Host": target.host_header,
        "User-Agent": USER_AGENT,
        "Content-Type": content_type,
        "Accept": "*/*",
        "Accept-Encoding": "identity",
    }
    if target.authorization:
        merged["Authorization"] = target.authorization
    lowered = {name.lower(): name for name in merged}
    for name, value in headers.items():
        merged.pop(lowered.get(name.lower(), name), None)
        merged[name] = value
    return merged


def _read_capped(response: http.client.HTTPResponse, sock: socket.socket, deadline: float) -> bytes:
    """Return at most MAX_RESPONSE_BYTES of the body, read before the deadline."""
    chunks, size = [], 0
    while size < MAX_RESPONSE_BYTES:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the answer took too long to read")
        sock.settimeout(remaining)
        chunk = response.read1(MAX_RESPONSE_BYTES - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _exchange(target: Target, sock: socket.socket, body: bytes, headers: dict[str, str], timeout: float):
    """Send the request on the connected socket and return status, headers and the capped body."""
    connection = http.client.HTTPConnection(target.host, target.port, timeout=timeout)
    connection.sock = sock
    # Never let http.client open a connection of its own: that would resolve the host again.
    connection.auto_open = 0
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        response = connection.getresponse()
        raw = _read_capped(response, sock, time.monotonic() + timeout)
        return response.status, response.headers, raw
    finally:
        connection.close()


def post(
    url: str, body: bytes, *, headers: Mapping[str, str] | None = None, content_type: str = "application/json"
) -> Delivery:
    """POST the body to a vetted address of the URL's host once and return the delivery, or raise TransportError."""
    try:
        target = parse_url(url)
    except ValueError as exc:
        raise TransportError(f"url {exc}", permanent=True) from None
    addresses = _resolve(target)
    timeout = _timeout()
    request_headers = _request_headers(target, headers or {}, content_type)
    try:
        sock = _connect(target, addresses, timeout)
        status, response_headers, raw = _exchange(target, sock, body, request_headers, timeout)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise _network_error(target, exc, timeout) from exc
    return _classify(target, status, response_headers, raw)


def post_json(url: str, payload: Any, *, headers: Mapping[str, str] | None = None) -> Delivery:
    """POST the payload as compact UTF-8 JSON once and return the delivery, or raise TransportError."""
    return post(url, encode_json(payload), headers=headers)


def encode_json(payload: Any) -> bytes:
    """Return the payload as compact UTF-8 JSON, refusing NaN and infinities that JSON cannot spell."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


# Outcomes


def _network_error(target: Target, exc: Exception, timeout: float) -> TransportError:
    """Return the TransportError a failure to talk to the host means."""
    where = target.origin
    if isinstance(exc, ssl.SSLCertVerificationError):
        # A certificate that does not match will not match on the next try either.
        return TransportError(f"TLS certificate of {where} rejected: {exc.verify_message}", permanent=True)
    if isinstance(exc, TimeoutError):
        return TransportError(f"{where} did not answer within {timeout:g}s", permanent=False)
    if isinstance(exc, ValueError):
        # http.client refuses header values it cannot send: a config problem, not a passing one.
        return TransportError(f"request to {where} refused before sending: {exc}", permanent=True)
    return TransportError(f"could not talk to {where}: {type(exc).__name__}: {exc}", permanent=False)


def _snippet(raw: bytes, limit: int) -> str:
    return raw[: limit * 4].decode("utf-8", errors="replace")[:limit]


def _classify(target: Target, status: int, headers: http.client.HTTPMessage, raw: bytes) -> Delivery:
    """Return the delivery for a 2xx answer, else raise the TransportError the status means."""
    text = _snippet(raw, LOGGED_RESPONSE_CHARS)
    if 200 <= status < 300:
        return Delivery(status_code=status, response=text)
    detail = " ".join(text[:200].split())
    if 300 <= status < 400:
        location = (headers.get("Location") or "no Location")[:300]
        message = f"HTTP {status} from {target.origin}: redirect to {location} not followed"
        raise TransportError(message, permanent=True, status_code=status)
    transient = status in (408, 429) or 500 <= status < 600
    retry_after = parse_retry_after(headers.get("Retry-After")) if transient else None
    message = f"HTTP {status} from {target.origin}: {detail}" if detail else f"HTTP {status} from {target.origin}"
    raise TransportError(message, permanent=not transient, status_code=status, retry_after=retry_after)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Return the seconds a Retry-After header asks to wait (delay-seconds or an HTTP date), or None."""
    if not value or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        return _seconds_until(value, now or datetime.now(UTC))
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


def _seconds_until(http_date: str, now: datetime) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(http_date)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())
