"""Django's PostgreSQL backend, its psycopg pool checking connections and sweeping dead ones at once.

A database restart kills every connection the pool holds. psycopg_pool's check on checkout
(`ConnectionPool.check_connection`) finds them one by one, and from the second failed check in
a row it backs off until the request's pool timeout runs out: with a few idle connections the
first requests after a restart got no connection from a healthy database. Here the first dead
connection a check finds makes the pool check all its idle ones (`ConnectionPool.check`, which
replaces the dead), so the request gets a live connection as soon as one is opened.

The full check is a round trip per request (a sixth of an ingest request's time), so it runs
only for a connection with input waiting: an idle connection the server closed (a restart, an
administrator's terminate) has its final notice or EOF to read, a live idle one has nothing.
Django's own CONN_HEALTH_CHECKS would run the round trip on every checkout.

When the pool fails to open a connection (the database is down) it tries again after 1 s, then
2 s, 4 s...: a database back within a second was then not found for a second or more, and every
request meanwhile waited out its 0.5 s pool timeout for a 503. Background threads (the ingest
writers) give connections back while the database restarts, so the pool often meets the outage
itself. Here the first retry comes after 0.1 s, doubling from there: a restarted database is in
use again within about its own restart time, and a long outage still costs a handful of attempts.
"""

import select

from django.db.backends.postgresql import base
from django.db.backends.postgresql.base import NO_DB_ALIAS
from psycopg_pool.base import AttemptWithBackoff

# psycopg_pool reads the delay from the class for every retry; there is no pool option for it.
AttemptWithBackoff.INITIAL_DELAY = 0.1


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self):
        options = self.settings_dict["OPTIONS"].get("pool")
        if options and self.alias != NO_DB_ALIAS and self.alias not in self._connection_pools:
            self._connection_pools.setdefault(self.alias, self._new_pool({} if options is True else options))
        return super().pool

    def _new_pool(self, options: dict):
        """The pool Django would make (not opened yet), with the sweeping check."""
        from psycopg_pool import ConnectionPool

        def check(connection) -> None:
            if not _has_input(connection):
                return  # alive as far as the kernel knows; a failing insert is retried (incidents/ingest/storage.py)
            try:
                ConnectionPool.check_connection(connection)
            except Exception:
                pool.check()  # checks idle connections only, with the plain check: no recursion
                raise

        connect_kwargs = self.get_connection_params()
        connect_kwargs["autocommit"] = True  # as Django's: it sets autocommit itself later on
        pool = ConnectionPool(
            kwargs=connect_kwargs, open=False, configure=self._configure_connection, check=check, **options
        )
        return pool


def _has_input(connection) -> bool:
    """Whether an idle connection has anything to read (a closed one counts: it needs the full check)."""
    try:
        readable, _, _ = select.select([connection.fileno()], [], [], 0)
    except Exception:  # closed: psycopg refuses fileno(), or the descriptor is gone
        return True
    return bool(readable)
