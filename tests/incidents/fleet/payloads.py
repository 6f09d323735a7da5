"""What a remote process sends the fleet endpoints: their URLs, and a transition and a window report
filled in with plausible figures (a test overrides the fields it is about)."""

import time

CONFIG = "/api/v1/resilience/config/"
TRANSITIONS = "/api/v1/resilience/transitions/"
WINDOWS = "/api/v1/resilience/windows/"
BREAKERS = "/api/v1/circuit-breakers/"


def transition(**fields) -> dict:
    """Breaker payments-api opened by its failure rate, as worker-1:4242 reports it."""
    return {
        "breaker": "payments-api",
        "from_state": "closed",
        "to_state": "open",
        "mode": "auto",
        "generation": 3,
        "reason": "failure rate 62% >= 50%",
        "process": "worker-1:4242",
        "at": time.time(),
        **fields,
    }


def window(**fields) -> dict:
    """A closed payments-api's window: 10 calls, 4 of them failed, 1 slow."""
    return {
        "breaker": "payments-api",
        "state": "closed",
        "mode": "auto",
        "calls": 10,
        "failures": 4,
        "slow_calls": 1,
        "not_permitted": 0,
        **fields,
    }
