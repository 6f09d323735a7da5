"""The resilience runtime applications embed: circuit breakers, retry, recovery, rate-limit
detection and degradation. Pure Python: importable without Django or its settings, for
threads and asyncio alike. The console's models and admin configure it; see resilience/models.py.
"""
