"""A small application that reports real exceptions with the stock sentry-sdk.

Run as: python sentry_app.py <DSN>. It reports three timeouts from one call site with
different order ids, one refused connection, and dies of an unhandled KeyError.
"""

import sys

import sentry_sdk


def fetch_rates(order_id: int) -> None:
    raise TimeoutError(f"read timed out fetching rates for order {order_id}")


def charge_card() -> None:
    raise ConnectionRefusedError(111, "Connection refused")


def main(dsn: str) -> None:
    sentry_sdk.init(dsn=dsn, environment="production", release="shop@1.0.0")
    sentry_sdk.set_user({"id": "customer-7"})
    for order_id in (17, 4242, 99):
        try:
            fetch_rates(order_id)
        except TimeoutError:
            sentry_sdk.capture_exception()
    try:
        charge_card()
    except ConnectionRefusedError:
        sentry_sdk.capture_exception()
    sentry_sdk.flush(timeout=10)
    {}["missing_setting"]  # unhandled: the SDK's excepthook reports it before exit


if __name__ == "__main__":
    main(sys.argv[1])
