"""Instants read from PostgreSQL by psycopg's compiled loader.

Django installs its own loader of ``timestamptz`` on every connection (``psycopg_any``): psycopg's
pure-Python one, whose result it gives the connection's time zone. That is 10 µs an instant on
this machine, and every page reads dozens (a person's history, their facts, the session with
their contact): a twentieth of a preference page served again. Where the connection's time zone
is UTC (Django's default with ``USE_TZ``, which also sets the session's ``TimeZone`` to it),
psycopg's compiled loader (``psycopg[binary]``) gives the same instant with the same ``tzinfo``
(``datetime.timezone.utc``) in 1.5 µs: ``UtcInstantLoader`` hands each value to it. Anywhere
else (another time zone, psycopg without its compiled part) Django's loader stays.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from psycopg import adapters
from psycopg.adapt import Loader
from psycopg.pq import Format

_TIMESTAMPTZ = adapters.types["timestamptz"].oid
_COMPILED = adapters.get_loader(_TIMESTAMPTZ, Format.TEXT)


class UtcInstantLoader(Loader):
    # What Django's cursor compares with its connection's time zone before installing its own
    # loader again on the cursor (``DatabaseWrapper.create_cursor``).
    timezone = dt.UTC

    def __init__(self, oid: int, context: Any = None) -> None:
        super().__init__(oid, context)
        self._compiled = _COMPILED(oid, context).load  # type: ignore[misc]

    def load(self, data: Any) -> dt.datetime:
        return self._compiled(data)  # type: ignore[no-any-return]


def usable(connection: Any) -> bool:
    """Does the compiled loader read this connection's instants as Django's would?"""
    return (
        connection.vendor == "postgresql"
        and connection.timezone is dt.UTC
        and _COMPILED is not None
        and _COMPILED.__module__.startswith("psycopg_binary")
        and connection.connection.info.parameter_status("TimeZone") in ("UTC", "Etc/UTC")
    )


def install(sender: Any, connection: Any, **kwargs: Any) -> None:
    """``connection_created``: the compiled loader on a new connection, where ``usable``."""
    if usable(connection):
        connection.connection.adapters.register_loader("timestamptz", UtcInstantLoader)
