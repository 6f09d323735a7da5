"""The one HTTP POST every HTTP transport uses: address policy, outcomes, limits, TLS."""

from __future__ import annotations

import base64
import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from django.core.exceptions import ImproperlyConfigured

from incidents.alerting.transports import TransportError
from incidents.alerting.transports.http import (
    MAX_RESPONSE_BYTES,
    USER_AGENT,
    check_headers,
    check_url,
    is_public,
    parse_retry_after,
    post,
)
from resilience.exceptions import ConfigError
from tests.receivers import Reply

BODY = b'{"hello":"world"}'


def post_to(receiver, **reply) -> object:
    receiver.reply = Reply(**reply)
    return post(receiver.url(), BODY)


# What goes out


def test_it_posts_the_body_with_its_own_user_agent(receiver, allow_loopback):
    delivery = post(receiver.url("/hook?team=payments"), BODY, headers={"Authorization": "Bearer t0ken"})

    request = receiver.last
    assert (request.method, request.path, request.body) == ("POST", "/hook?team=payments", BODY)
    assert request.headers["user-agent"] == USER_AGENT
    assert request.headers["content-type"] == "application/json"
    assert request.headers["authorization"] == "Bearer t0ken"
    assert request.headers["host"] == f"127.0.0.1:{receiver.port}"
    assert (delivery.status_code, delivery.response) == (200, "ok")


def test_it_sends_url_credentials_as_basic_auth_and_never_shows_them(receiver, allow_loopback):
    url = f"http://hook-user:s%40cret@127.0.0.1:{receiver.port}/T000/B000/secret-path"
    receiver.reply = Reply(status=500, body=b"boom")

    with pytest.raises(TransportError) as caught:
        post(url, BODY)

    assert receiver.last.headers["authorization"] == "Basic " + base64.b64encode(b"hook-user:s@cret").decode()
    assert str(caught.value) == f"HTTP 500 from http://127.0.0.1:{receiver.port}: boom"


def test_it_keeps_only_the_first_thousand_characters_of_the_answer(receiver, allow_loopback):
    delivery = post_to(receiver, status=202, body="é".encode() * 3000)

    assert delivery.status_code == 202
    assert delivery.response == "é" * 1000


def test_it_stops_reading_an_endless_answer_at_the_cap(receiver, allow_loopback, settings, release):
    settings.NOTIFICATION_TIMEOUT_SECONDS = 2
    delivery = post_to(receiver, stream_until=release)

    # Without the cap the read would run into the timeout and fail.
    assert delivery.status_code == 200
    assert delivery.response == "x" * 1000
    assert MAX_RESPONSE_BYTES == 64 * 1024


# Outcomes


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_it_accepts_any_2xx(receiver, allow_loopback, status):
    assert post_to(receiver, status=status, body=b"").status_code == status


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 413, 422])
def test_a_client_error_is_permanent(receiver, allow_loopback, status):
    with pytest.raises(TransportError) as caught:
        post_to(receiver, status=status, body=b'{"error": "invalid payload"}', headers={"Retry-After": "5"})

    error = caught.value
    assert (error.permanent, error.status_code, error.retry_after) == (True, status, None)
    assert "invalid payload" in str(error)


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_timeouts_throttling_and_server_errors_are_transient(receiver, allow_loopback, status):
    with pytest.raises(TransportError) as caught:
        post_to(receiver, status=status)

    assert (caught.value.permanent, caught.value.status_code, caught.value.retry_after) == (False, status, None)


def test_it_reads_retry_after_in_seconds(receiver, allow_loopback):
    with pytest.raises(TransportError) as caught:
        post_to(receiver, status=429, headers={"Retry-After": "7"})

    assert caught.value.retry_after == 7.0


def test_it_reads_retry_after_as_an_http_date(receiver, allow_loopback):
    when = datetime.now(UTC) + timedelta(seconds=120)
    with pytest.raises(TransportError) as caught:
        post_to(receiver, status=503, headers={"Retry-After": format_datetime(when, usegmt=True)})

    assert 110 <= caught.value.retry_after <= 120


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("30", 30.0),
        (" 1.5 ", 1.5),
        ("Sat, 01 Mar 2025 12:01:00 GMT", 60.0),
        ("Sat, 01 Mar 2025 11:00:00 GMT", 0.0),  # already past: go now
        ("-3", None),
        ("soon", None),
        ("nan", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_parsing(header, seconds):
    assert parse_retry_after(header, now=datetime(2025, 3, 1, 12, 0, tzinfo=UTC)) == seconds


def test_it_does_not_follow_a_redirect(receiver, allow_loopback):
    elsewhere = receiver.url("/elsewhere")
    with pytest.raises(TransportError) as caught:
        post_to(receiver, status=302, headers={"Location": elsewhere})

    assert caught.value.permanent is True
    assert caught.value.status_code == 302
    assert f"redirect to {elsewhere} not followed" in str(caught.value)
    assert [request.path for request in receiver.requests] == ["/hook"]


def test_a_receiver_slower_than_the_timeout_is_a_transient_failure(receiver, allow_loopback, settings, release):
    settings.NOTIFICATION_TIMEOUT_SECONDS = 0.2
    receiver.reply = Reply(hold=release)

    with pytest.raises(TransportError) as caught:
        post(receiver.url(), BODY)

    assert caught.value.permanent is False
    assert "did not answer within 0.2s" in str(caught.value)
    assert len(receiver.requests) == 1


def test_a_refused_connection_is_a_transient_failure(allow_loopback):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound but not listening: connecting is refused
        port = closed.getsockname()[1]
        with pytest.raises(TransportError) as caught:
            post(f"http://127.0.0.1:{port}/hook", BODY)

    assert caught.value.permanent is False
    assert "ConnectionRefusedError" in str(caught.value)


def test_a_malformed_url_is_a_permanent_failure():
    with pytest.raises(TransportError) as caught:
        post("ftp://example.com/hook", BODY)

    assert caught.value.permanent is True


# Address policy


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.9.9.9",
        "0.0.0.0",
        "[::ffff:127.0.0.1]",
        "2130706433",  # 127.0.0.1 as one decimal number: the resolver still says loopback
        "localhost",
    ],
)
def test_it_refuses_loopback_and_sends_nothing(receiver, strict_network, host):
    with pytest.raises(TransportError) as caught:
        post(receiver.url(host=host), BODY)

    assert caught.value.permanent is True
    assert "not a public address" in str(caught.value)
    assert receiver.requests == []


def test_it_refuses_ipv6_loopback_and_sends_nothing(receiver6, strict_network):
    with pytest.raises(TransportError) as caught:
        post(receiver6.url(), BODY)

    assert caught.value.permanent is True
    assert "::1" in str(caught.value)
    assert receiver6.requests == []


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("10.0.0.1", "10.0.0.1"),
        ("172.16.5.4", "172.16.5.4"),
        ("192.168.1.1", "192.168.1.1"),
        ("169.254.169.254", "169.254.169.254"),
        ("100.64.0.1", "100.64.0.1"),
        ("224.0.0.1", "224.0.0.1"),
        ("[fd00::1]", "fd00::1"),
        ("[fe80::1]", "fe80::1"),
        ("[::ffff:10.0.0.1]", "::ffff:a00:1 (IPv4 10.0.0.1)"),
        ("[64:ff9b::a00:1]", "64:ff9b::a00:1 (IPv4 10.0.0.1)"),
    ],
)
def test_it_refuses_private_addresses_naming_them(strict_network, host, address):
    with pytest.raises(TransportError) as caught:
        post(f"http://{host}:8080/hook", BODY)

    assert caught.value.permanent is True
    assert f"resolves to {address}, which is not a public address" in str(caught.value)


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "64:ff9b::808:808", "::ffff:8.8.8.8"])
def test_public_addresses_pass_the_policy(address):
    import ipaddress

    assert is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["2002:7f00:1::", "2002:a00:1::", "fec0::1", "ff02::1", "::", "192.0.2.1"])
def test_addresses_that_hide_or_are_not_unicast_fail_the_policy(address):
    import ipaddress

    assert not is_public(ipaddress.ip_address(address))


def test_an_allowed_network_is_reachable(receiver, allow_loopback):
    assert post(receiver.url(), BODY).status_code == 200


def test_an_ipv4_mapped_address_is_judged_by_its_ipv4(receiver, settings):
    settings.NOTIFICATION_ALLOWED_NETWORKS = ["127.0.0.0/8"]

    assert post(receiver.url(host="[::ffff:127.0.0.1]"), BODY).status_code == 200


def test_an_allowed_host_name_is_reachable(receiver, strict_network, settings):
    settings.NOTIFICATION_ALLOWED_HOSTS = ["LOCALHOST"]

    post(receiver.url(host="localhost"), BODY)

    assert receiver.last.headers["host"] == f"localhost:{receiver.port}"


@pytest.fixture
def fake_dns(monkeypatch):
    """Answer chosen names with chosen addresses, as a DNS server would; count the lookups."""
    real = socket.getaddrinfo
    answers: dict[str, list[str]] = {}
    lookups: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in answers:
            return real(host, port, *args, **kwargs)
        lookups.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)) for address in answers[host]]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers, lookups


def test_it_resolves_once_connects_to_the_vetted_address_and_keeps_the_host_header(receiver, allow_loopback, fake_dns):
    answers, lookups = fake_dns
    answers["hooks.example.test"] = ["127.0.0.1"]

    post(f"http://hooks.example.test:{receiver.port}/hook", BODY)

    assert lookups == ["hooks.example.test"]
    assert receiver.last.headers["host"] == f"hooks.example.test:{receiver.port}"


def test_it_tries_the_next_vetted_address_when_one_does_not_answer(receiver, allow_loopback, fake_dns):
    answers, lookups = fake_dns
    # Nothing listens on 127.0.0.2 (the receiver is bound to 127.0.0.1 only), as with an unreachable IPv6 address.
    answers["dual.example.test"] = ["127.0.0.2", "127.0.0.1"]

    assert post(f"http://dual.example.test:{receiver.port}/hook", BODY).status_code == 200
    assert lookups == ["dual.example.test"]


def test_it_refuses_a_host_when_any_of_its_addresses_is_private(receiver, strict_network, fake_dns):
    answers, _lookups = fake_dns
    answers["mixed.example.test"] = ["8.8.8.8", "127.0.0.1"]

    with pytest.raises(TransportError) as caught:
        post(f"http://mixed.example.test:{receiver.port}/hook", BODY)

    assert caught.value.permanent is True
    assert "resolves to 127.0.0.1" in str(caught.value)
    assert receiver.requests == []


def test_an_unresolvable_host_is_a_transient_failure(strict_network):
    with pytest.raises(TransportError) as caught:
        post("http://no-such-host.invalid/hook", BODY)

    assert caught.value.permanent is False
    assert "could not resolve no-such-host.invalid" in str(caught.value)


# TLS


def test_tls_uses_the_host_name_for_sni_and_the_certificate(tls_receiver, certificate, strict_network, settings):
    settings.NOTIFICATION_ALLOWED_HOSTS = ["localhost"]
    settings.NOTIFICATION_CA_FILE = certificate[0]

    delivery = post(tls_receiver.url(host="localhost"), BODY)

    assert delivery.status_code == 200
    assert tls_receiver.server_names == ["localhost"]
    assert tls_receiver.last.headers["host"] == f"localhost:{tls_receiver.port}"


def test_a_certificate_for_another_name_is_a_permanent_failure(tls_receiver, certificate, allow_loopback, settings):
    settings.NOTIFICATION_CA_FILE = certificate[0]

    with pytest.raises(TransportError) as caught:
        post(tls_receiver.url(host="127.0.0.1"), BODY)

    assert caught.value.permanent is True
    assert "TLS certificate" in str(caught.value)
    assert tls_receiver.requests == []


def test_an_untrusted_certificate_is_refused(tls_receiver, strict_network, settings):
    settings.NOTIFICATION_ALLOWED_HOSTS = ["localhost"]
    settings.NOTIFICATION_CA_FILE = ""

    with pytest.raises(TransportError) as caught:
        post(tls_receiver.url(host="localhost"), BODY)

    assert caught.value.permanent is True
    assert tls_receiver.requests == []


def test_a_missing_ca_file_is_improperly_configured(tls_receiver, allow_loopback, settings):
    settings.NOTIFICATION_CA_FILE = "/nonexistent/ca.pem"

    with pytest.raises(ImproperlyConfigured, match="NOTIFICATION_CA_FILE"):
        post(tls_receiver.url(), BODY)


# Config checks


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("", "must start with http:// or https://"),
        ("ftp://example.com/x", "must start with http:// or https://"),
        ("https:///path", "must name a host"),
        ("https://example.com:99999/", "has an invalid port"),
        ("https://exa mple.com/", "must not contain spaces or control characters"),
        ("https://example.com/\r\nX-Injected: 1", "must not contain spaces or control characters"),
        ("https://example.com/" + "a" * 2100, "must be at most 2048 characters"),
        ("http://10.1.2.3/hook", "points at 10.1.2.3, which is not a public address"),
        ("http://[::1]:8080/hook", "points at ::1, which is not a public address"),
        ("http://localhost:8080/hook", "points at localhost, a name for this machine"),
        ("http://api.localhost/hook", "points at api.localhost, a name for this machine"),
        (42, "must be a string"),
    ],
)
def test_check_url_names_the_field_and_the_reason(strict_network, url, reason):
    with pytest.raises(ConfigError) as caught:
        check_url(url, field="url")

    assert caught.value.field == "url"
    assert reason in str(caught.value)


def test_check_url_accepts_a_public_url_and_an_allowed_private_one(strict_network, settings):
    assert check_url("https://hooks.slack.com/services/T0/B0/x") == "https://hooks.slack.com/services/T0/B0/x"
    settings.NOTIFICATION_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    assert check_url("http://10.1.2.3/hook") == "http://10.1.2.3/hook"


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"Host": "evil.example"}, "header Host is set by the console"),
        ({"content-length": "0"}, "header content-length is set by the console"),
        ({"Transfer-Encoding": "chunked"}, "is set by the console"),
        ({"X-Console-Signature": "sha256=0"}, "is set by the console"),
        ({"X-Token": "a\r\nHost: evil"}, "without CR or LF"),
        ({"X-Token": "a\nb"}, "without CR or LF"),
        ({"Bad Name": "x"}, "is not a valid HTTP token"),
        ({"X-Token": 5}, "must have a string value"),
        ({"X-Token": "ü"}, "printable ASCII"),
        (["X-Token", "x"], "must be a mapping"),
        ({f"X-{n}": "x" for n in range(21)}, "at most 20 headers"),
    ],
)
def test_check_headers_refuses_unsafe_headers(headers, reason):
    with pytest.raises(ConfigError) as caught:
        check_headers(headers)

    assert caught.value.field == "headers"
    assert reason in str(caught.value)
