"""The rate limiter's windows on Redis: one counter per window, counted in one round trip."""

from __future__ import annotations

import secrets

import pytest
from django.core.cache import cache

from preferences import ratelimit

pytestmark = pytest.mark.redis


def test_a_window_counts_each_hit_and_keeps_its_end() -> None:
    scope = f"test-{secrets.token_hex(4)}"
    assert hasattr(cache, "hit"), "Redis is the cache (config.cache.RedisCache)"
    assert [ratelimit.hit(scope, "203.0.113.7", window_seconds=60) for _ in range(3)] == [1, 2, 3]
    assert ratelimit.hits(scope, "203.0.113.7") == 3
    assert ratelimit.hits(scope, "198.51.100.1") == 0
    key = cache.make_and_validate_key(ratelimit._cache_key(scope, "203.0.113.7"))
    client = cache._cache.get_client(key, write=True)
    assert 0 < client.ttl(key) <= 60
    # Later hits never push the window's end back.
    client.expire(key, 5)
    assert ratelimit.allow(scope, "203.0.113.7", limit=4, window_seconds=60)
    assert not ratelimit.allow(scope, "203.0.113.7", limit=4, window_seconds=60)
    assert 0 < client.ttl(key) <= 5
    client.delete(key)
