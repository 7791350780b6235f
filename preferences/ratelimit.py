"""Fixed-window counters in the cache (Redis in production), for forms that can be abused.

While Redis cannot be reached the counting goes on in this process (``_local``): a limit then
applies per web process rather than across them, which still stops a flood, and the pages keep
working.
"""

from __future__ import annotations

import hashlib
import threading
import time

from django.core.cache import cache

from config.cache import CacheUnavailable

# Counters kept in this process while the shared cache is down: key -> (window end, count).
_local: dict[str, tuple[float, int]] = {}
_local_lock = threading.Lock()
_LOCAL_MAX_KEYS = 50_000


def _cache_key(scope: str, key: str) -> str:
    digest = hashlib.sha256(f"{scope}:{key}".encode()).hexdigest()[:32]
    return f"ratelimit:{scope}:{digest}"


def hit(scope: str, key: str, *, window_seconds: int) -> int:
    """Count one hit in the current window; how many there are now."""
    cache_key = _cache_key(scope, key)
    try:
        return _shared_count(cache_key, window_seconds)
    except CacheUnavailable:
        return _local_count(cache_key, window_seconds)


def hits(scope: str, key: str) -> int:
    """How many hits the current window holds, without counting one."""
    cache_key = _cache_key(scope, key)
    try:
        shared = cache.get(cache_key)
    except CacheUnavailable:
        shared = None
    with _local_lock:
        end, count = _local.get(cache_key, (0.0, 0))
    local = count if end > time.monotonic() else 0
    return max(int(shared or 0), local)


def allow(scope: str, key: str, *, limit: int, window_seconds: int) -> bool:
    """Count one hit; False once ``limit`` hits were counted in the current window."""
    return hit(scope, key, window_seconds=window_seconds) <= limit


def _shared_count(cache_key: str, window_seconds: int) -> int:
    if hasattr(cache, "hit"):  # Redis (``config.cache``): one round trip
        return cache.hit(cache_key, window_seconds)
    cache.add(cache_key, 0, timeout=window_seconds)
    try:
        return cache.incr(cache_key)
    except ValueError:  # expired between add and incr
        cache.set(cache_key, 1, timeout=window_seconds)
        return 1


def _local_count(cache_key: str, window_seconds: int) -> int:
    now = time.monotonic()
    with _local_lock:
        if len(_local) >= _LOCAL_MAX_KEYS:
            for expired in [k for k, (end, _count) in _local.items() if end <= now]:
                del _local[expired]
            if len(_local) >= _LOCAL_MAX_KEYS:
                _local.clear()  # a flood of distinct keys: start the windows again
        end, count = _local.get(cache_key, (0.0, 0))
        if end <= now:
            end, count = now + window_seconds, 0
        _local[cache_key] = (end, count + 1)
        return count + 1
