"""Rate limits per key, counted in the cache (Redis in production), with the IETF headers.

A fixed window of one minute per key: ``RateLimit-Policy: "per-key";q=<limit>;w=60`` and
``RateLimit: "per-key";r=<remaining>;t=<seconds to the window's end>`` on every answer, and
``Retry-After`` on a 429 (draft-ietf-httpapi-ratelimit-headers).
"""

from __future__ import annotations

import time
from typing import Any

from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from api.models import ApiKey

WINDOW = 60


class KeyRateThrottle(BaseThrottle):
    def allow_request(self, request: Any, view: Any) -> bool:
        key = request.auth
        if not isinstance(key, ApiKey):
            return True
        now = time.time()
        window = int(now // WINDOW)
        name = f"api:rate:{key.prefix}:{window}"
        cache.add(name, 0, WINDOW + 5)
        try:
            count = cache.incr(name)
        except ValueError:  # expired between the two calls
            cache.set(name, 1, WINDOW + 5)
            count = 1
        limit = key.rate_per_minute
        self.reset = max(1, int((window + 1) * WINDOW - now))
        request.ratelimit = (limit, max(0, limit - count), self.reset)
        return count <= limit

    def wait(self) -> float:
        return float(getattr(self, "reset", WINDOW))


def headers(request: Any) -> dict[str, str]:
    state = getattr(request, "ratelimit", None)
    if state is None:
        return {}
    limit, remaining, reset = state
    return {
        "RateLimit-Policy": f'"per-key";q={limit};w={WINDOW}',
        "RateLimit": f'"per-key";r={remaining};t={reset}',
    }
