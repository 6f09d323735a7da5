"""Django's PostgreSQL backend with a pool that clears out dead connections at once (see base.py)."""
