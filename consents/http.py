"""What every page may trust about a request, and the file it may answer with.

``client_ip`` and ``user_agent`` are the evidence recorded beside each fact (preference pages,
sign-up, the links we email); there is one of each so that every page records the same thing.
Whether a request can be read at all is decided before any page, by
``config.middleware.UnreadableRequestMiddleware``.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse

USER_AGENT_MAX = 1000


def _valid_ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def client_ip(request: HttpRequest) -> str | None:
    """The client's address. Behind ``NUM_PROXIES`` trusted proxies, each appending the address
    it saw to ``X-Forwarded-For``, it is the ``NUM_PROXIES``-th from the right (what the client
    wrote further left is not to be trusted); with fewer entries, the peer itself. Only a
    well-formed address is returned: a malformed header must not reach the evidence column."""
    proxies = settings.NUM_PROXIES
    if proxies > 0:
        forwarded = [a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        forwarded = [a for a in forwarded if a]
        if len(forwarded) >= proxies:
            return _valid_ip(forwarded[-proxies])
    return _valid_ip(request.META.get("REMOTE_ADDR") or "")


def client_key(request: HttpRequest) -> str:
    """The client's address as a rate limit counts it: one key for every unreadable address."""
    return client_ip(request) or "unknown"


def user_agent(request: HttpRequest) -> str:
    """The browser's own description, without NUL (PostgreSQL refuses it), cut to a length."""
    return request.META.get("HTTP_USER_AGENT", "").replace("\x00", "")[:USER_AGENT_MAX]


def json_file(data: dict[str, Any], filename: str) -> JsonResponse:
    """An export as a downloaded file: indented, accents kept as they are (the admin's proof and
    access exports, the person's own data from their page)."""
    response = JsonResponse(data, json_dumps_params={"indent": 2, "ensure_ascii": False})
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
