"""Making, recognising and revoking API keys.

A key reads ``ak_<prefix>_<secret>``: the prefix (8 characters, stored in clear) lets a person
recognise a key in a list; the database keeps only the SHA-256 of the whole key. Keys are 190 bits
of randomness, so a plain hash is as good as a slow one here (nothing to guess) and lets each
request find its key with one indexed look-up.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
from collections.abc import Iterable, Sequence

from django.core.exceptions import ValidationError
from django.db import transaction

from api.models import SCOPES, ApiKey
from consents import clock

PREFIX = "ak_"


def digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def check_networks(networks: Iterable[str]) -> list[str]:
    cleaned = []
    for value in networks:
        value = str(value).strip()
        if not value:
            continue
        try:
            cleaned.append(str(ipaddress.ip_network(value, strict=False)))
        except ValueError as exc:
            raise ValidationError(
                {"allowed_networks": f"{value!r} is not an IP network (e.g. 203.0.113.0/24)."}
            ) from exc
    return cleaned


def check_scopes(scopes: Iterable[str]) -> list[str]:
    scopes = list(dict.fromkeys(scopes))
    for scope in scopes:
        if scope not in SCOPES:
            raise ValidationError({"scopes": f"Unknown scope {scope!r}."})
    if not scopes:
        raise ValidationError({"scopes": "Give the key at least one scope."})
    return scopes


@transaction.atomic
def key_create(
    *,
    name: str,
    scopes: Sequence[str],
    allowed_networks: Sequence[str] = (),
    rate_per_minute: int = 600,
    created_by: object = None,
) -> tuple[ApiKey, str]:
    """A new key and its secret text, returned once."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Name the system that will hold the key."})
    if ApiKey.objects.filter(name=name).exists():
        raise ValidationError({"name": "A key with this name exists."})
    if rate_per_minute < 1:
        raise ValidationError({"rate_per_minute": "At least one request a minute."})
    prefix = secrets.token_hex(4)
    while ApiKey.objects.filter(prefix=prefix).exists():
        prefix = secrets.token_hex(4)
    raw = f"{PREFIX}{prefix}_{secrets.token_urlsafe(24)}"
    key = ApiKey.objects.create(
        name=name,
        prefix=prefix,
        digest=digest(raw),
        scopes=check_scopes(scopes),
        allowed_networks=check_networks(allowed_networks),
        rate_per_minute=rate_per_minute,
        created_at=clock.now(),
        created_by=created_by if getattr(created_by, "pk", None) else None,
    )
    return key, raw


def key_revoke(*, key: ApiKey) -> ApiKey:
    """From now on the key answers 401, at the next request (nothing caches a key)."""
    if key.revoked_at is None:
        key.revoked_at = clock.now()
        ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=key.revoked_at)
    return key


def key_find(raw: str) -> ApiKey | None:
    if not raw.startswith(PREFIX) or len(raw) > 100:
        return None
    return ApiKey.objects.filter(digest=digest(raw)).first()


def network_allows(key: ApiKey, ip: str | None) -> bool:
    if not key.allowed_networks:
        return True
    if not ip:
        return False
    address = ipaddress.ip_address(ip)
    return any(address in ipaddress.ip_network(n, strict=False) for n in key.allowed_networks)
