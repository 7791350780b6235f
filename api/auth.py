"""Who is calling: an API key in ``Authorization: Bearer``, checked on every request.

Nothing caches a key: a revoked key answers 401 at its next request. A key limited to networks
answers 403 from any other address (``consents.http.client_ip``: the proxy settings decide which
address is the caller's).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission

from api import keys
from api.models import ApiKey
from consents import clock
from consents.http import client_ip

# ``last_used_at`` is written at most this often per key (not one write per request).
LAST_USED_EVERY = timedelta(minutes=1)


class Client:
    """``request.user`` for a request made with a key."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, key: ApiKey) -> None:
        self.key = key
        self.pk = None

    def get_username(self) -> str:
        return self.key.actor

    def __str__(self) -> str:
        return self.key.actor


class NetworkNotAllowed(exceptions.PermissionDenied):
    slug = "network-not-allowed"
    default_detail = "This key cannot be used from this address."


class ScopeMissing(exceptions.PermissionDenied):
    slug = "scope-missing"


class ApiKeyAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Any) -> tuple[Client, ApiKey] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        parts = header.split()
        if len(parts) != 2 or parts[0].lower() != "bearer":
            raise exceptions.AuthenticationFailed(
                "Send the key as `Authorization: Bearer <key>`.", code="malformed"
            )
        key = keys.key_find(parts[1])
        if key is None:
            raise exceptions.AuthenticationFailed("Unknown API key.", code="unknown")
        if key.revoked_at is not None:
            raise exceptions.AuthenticationFailed("This API key is revoked.", code="revoked")
        if not keys.network_allows(key, client_ip(request._request)):
            raise NetworkNotAllowed()
        now = clock.now()
        if key.last_used_at is None or now - key.last_used_at >= LAST_USED_EVERY:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
            key.last_used_at = now
        return Client(key), key

    def authenticate_header(self, request: Any) -> str:
        return 'Bearer realm="api"'


class HasScope(BasePermission):
    """The view's ``scopes`` maps a method to the scope it needs (``"*"`` for every method);
    a view without one needs only a valid key."""

    def has_permission(self, request: Any, view: Any) -> bool:
        key = request.auth
        if not isinstance(key, ApiKey):
            raise exceptions.NotAuthenticated("Send `Authorization: Bearer <key>`.")
        required = getattr(view, "scopes", {})
        scope = required.get(request.method, required.get("*"))
        if scope and scope not in key.scopes:
            raise ScopeMissing(f"This needs the scope {scope!r}.")
        return True


def key_of(request: Any) -> ApiKey:
    return request.auth
