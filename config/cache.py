"""Django's Redis cache, keeping one client per connection pool, and carrying on without Redis.

Django's ``RedisCacheClient`` builds a new ``redis.Redis`` object around its pool for every cache
call; on the pages that read the cache on every request (sessions, the preference page, rate
limits) that costs as much as the round trip. A ``redis.Redis`` is safe to share: it borrows a
connection from its pool per command.

The cache is an optimisation, never a dependency of a page (ARCHITECTURE.md). While Redis cannot
be reached, reads miss and writes are dropped, after a short connect and socket timeout, and for
``RETRY_AFTER`` seconds after a failure no call tries Redis at all, so that a page is not slowed
down by each of its cache calls. The outage is logged once, and its end. Every key whose write or
delete was dropped is deleted once Redis answers again: it may hold a value the outage made
stale (a session signed out meanwhile, a catalog version). ``incr`` has no answer to fall back
on: it raises ``CacheUnavailable``, and its caller (the rate limiter) counts elsewhere.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from django.core.cache.backends import redis as django_redis
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Seconds: how long a connection attempt or a command may take before Redis counts as down.
CONNECT_TIMEOUT = 0.5
SOCKET_TIMEOUT = 1.0
# Seconds without trying Redis after a failure.
RETRY_AFTER = 2.0
# Keys remembered as stale during one outage; beyond, the oldest are forgotten (and logged).
MAX_STALE_KEYS = 100_000


class CacheUnavailable(Exception):
    """Redis cannot be reached: there is no value to answer with."""


class RedisCacheClient(django_redis.RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("socket_connect_timeout", CONNECT_TIMEOUT)
        kwargs.setdefault("socket_timeout", SOCKET_TIMEOUT)
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class RedisCache(django_redis.RedisCache):
    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = RedisCacheClient
        self._lock = threading.Lock()
        self._retry_at = 0.0  # time.monotonic(): no call tries Redis before this
        self._down = False
        self._stale: dict[str, None] = {}  # ordered: the oldest are dropped first

    # --- The outage -------------------------------------------------------------------------

    def is_down(self) -> bool:
        """True while Redis is known to be unreachable (no call tries it)."""
        return time.monotonic() < self._retry_at

    def _failed(self, exc: Exception, keys: Iterable[str]) -> None:
        with self._lock:
            self._retry_at = time.monotonic() + RETRY_AFTER
            if not self._down:
                self._down = True
                logger.warning(
                    "cache: Redis unreachable (%s: %s); pages carry on without it: reads miss "
                    "and writes are dropped until it answers again",
                    type(exc).__name__,
                    exc,
                )
            self._remember(keys)

    def _remember(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._stale.pop(key, None)
            self._stale[key] = None
        overflow = len(self._stale) - MAX_STALE_KEYS
        if overflow > 0:
            for key in list(self._stale)[:overflow]:
                del self._stale[key]
            logger.error("cache: more than %d keys written during the outage", MAX_STALE_KEYS)

    def _purge(self) -> None:
        """Delete what the outage may have left stale, before anything is read again."""
        with self._lock:
            stale, self._stale = list(self._stale), {}
        try:
            self._cache.delete_many(stale)
        except RedisError:
            with self._lock:
                self._remember(stale)
            raise
        logger.warning("cache: %d keys written during the outage deleted", len(stale))

    def _run(self, call: Callable[[], T], default: T, *, writes: Iterable[str] = ()) -> T:
        """``call()`` against Redis, or ``default`` while it is down (``writes`` are the keys
        the call would have changed: remembered as stale)."""
        if self.is_down():
            with self._lock:
                self._remember(writes)
            return default
        try:
            if self._stale:
                self._purge()
            result = call()
        except RedisError as exc:
            self._failed(exc, writes)
            return default
        if self._down:
            self._down = False
            logger.warning("cache: Redis answers again")
        return result

    # --- Django's cache API -------------------------------------------------------------------

    def add(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None
    ) -> bool:
        key = self.make_and_validate_key(key, version=version)
        return self._run(
            lambda: self._cache.add(key, value, self.get_backend_timeout(timeout)),
            False,
            writes=[key],
        )

    def get(self, key: Any, default: Any = None, version: Any = None) -> Any:
        key = self.make_and_validate_key(key, version=version)
        return self._run(lambda: self._cache.get(key, default), default)

    def set(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None
    ) -> None:
        key = self.make_and_validate_key(key, version=version)
        self._run(
            lambda: self._cache.set(key, value, self.get_backend_timeout(timeout)),
            None,
            writes=[key],
        )

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        return self._run(
            lambda: self._cache.touch(key, self.get_backend_timeout(timeout)), False, writes=[key]
        )

    def delete(self, key: Any, version: Any = None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        return self._run(lambda: self._cache.delete(key), False, writes=[key])

    def get_many(self, keys: Any, version: Any = None) -> dict[Any, Any]:
        key_map = {self.make_and_validate_key(key, version=version): key for key in keys}
        found = self._run(lambda: self._cache.get_many(key_map.keys()), {})
        return {key_map[k]: v for k, v in found.items()}

    def has_key(self, key: Any, version: Any = None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        return self._run(lambda: self._cache.has_key(key), False)

    def incr(self, key: Any, delta: int = 1, version: Any = None) -> int:
        key = self.make_and_validate_key(key, version=version)
        missing = object()
        value = self._run(lambda: self._cache.incr(key, delta), missing)
        if value is missing:
            raise CacheUnavailable("Redis cannot be reached")
        return value  # type: ignore[return-value]

    def hit(self, key: Any, window_seconds: int, version: Any = None) -> int:
        """Count one hit on a counter that lives ``window_seconds`` from its first hit, and
        return the count: ``INCR`` then ``EXPIRE ... NX`` in one round trip (``add`` then
        ``incr`` took three: Django's ``incr`` asks whether the key exists first). Raises
        ``CacheUnavailable`` while Redis is down, as ``incr`` does."""
        key = self.make_and_validate_key(key, version=version)
        missing = object()

        def count() -> int:
            pipe = self._cache.get_client(key, write=True).pipeline(transaction=False)
            pipe.incr(key)
            pipe.expire(key, window_seconds, nx=True)
            return int(pipe.execute()[0])

        value = self._run(count, missing, writes=[key])
        if value is missing:
            raise CacheUnavailable("Redis cannot be reached")
        return value  # type: ignore[return-value]

    def set_many(self, data: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None) -> list:
        if not data:
            return []
        safe = {
            self.make_and_validate_key(key, version=version): value for key, value in data.items()
        }
        failed = list(data)
        return self._run(
            lambda: self._cache.set_many(safe, self.get_backend_timeout(timeout)) or [],
            failed,
            writes=list(safe),
        )

    def delete_many(self, keys: Any, version: Any = None) -> None:
        if not keys:
            return
        safe = [self.make_and_validate_key(key, version=version) for key in keys]
        self._run(lambda: self._cache.delete_many(safe), None, writes=safe)

    def clear(self) -> bool:
        return self._run(lambda: self._cache.clear(), False)


def cache_down(cache: Any) -> bool:
    """True while a cache that can tell (this backend) knows Redis to be unreachable."""
    is_down = getattr(cache, "is_down", None)
    return bool(is_down()) if callable(is_down) else False
