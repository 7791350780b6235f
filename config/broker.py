"""Celery's broker transport: kombu's Redis transport, keeping one client per connection pool.

kombu builds a new ``redis.Redis`` object around its pool for every message it publishes (about a
fifth of the cost of queueing a task: the client's table of reply parsers is filled each time),
as Django's cache client did before ``config.cache``. A ``redis.Redis`` is safe to share: it
borrows a connection from its pool per command. The consumer's (asynchronous) clients are
kombu's own.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    _kept: tuple[Any, Any] | None = None  # (pool, client)

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)
        pool = self.pool
        kept = self._kept
        if kept is None or kept[0] is not pool:  # a new pool after a reconnection
            kept = self._kept = (pool, super()._create_client())
        return kept[1]


class Transport(kombu_redis.Transport):
    Channel = Channel


def use() -> None:
    """``redis://`` broker URLs take this transport (called before Celery's app is built)."""
    TRANSPORT_ALIASES["redis"] = f"{__name__}:Transport"
