"""Fixed-window counters in the cache (Redis in production), for forms that can be abused."""

from __future__ import annotations

import hashlib

from django.core.cache import cache


def allow(scope: str, key: str, *, limit: int, window_seconds: int) -> bool:
    """Count one hit; False once ``limit`` hits were counted in the current window."""
    digest = hashlib.sha256(f"{scope}:{key}".encode()).hexdigest()[:32]
    cache_key = f"ratelimit:{scope}:{digest}"
    cache.add(cache_key, 0, timeout=window_seconds)
    try:
        count = cache.incr(cache_key)
    except ValueError:  # expired between add and incr
        cache.set(cache_key, 1, timeout=window_seconds)
        count = 1
    return count <= limit
