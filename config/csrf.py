"""The CSRF token of a form, as ``django.middleware.csrf.get_token`` gives it, in less time.

A page with a form carries the secret of the CSRF cookie masked with 32 random characters, new at
each response (so that the page's bytes never repeat the secret: BREACH). Django draws the mask
with ``secrets.choice`` one character at a time; on the preference page, served again in a few
hundred microseconds, that was a twentieth of the request. Here the mask is drawn from
``os.urandom`` in one call, each byte below 248 (4 x 62) giving one character (``byte % 62``):
uniform over the 62 characters, as Django's. Everything else is Django's: a request without a
valid cookie gets a new one through ``get_token`` itself, and the cookie is renewed on the
response as ``get_token`` asks (``CSRF_COOKIE_NEEDS_UPDATE``).
"""

from __future__ import annotations

import os

from django.http import HttpRequest
from django.middleware.csrf import CSRF_ALLOWED_CHARS, CSRF_SECRET_LENGTH, get_token

_CHARS = CSRF_ALLOWED_CHARS
_COUNT = len(_CHARS)
_INDEX = {char: i for i, char in enumerate(_CHARS)}
# Bytes at or above this are skipped: below it, each character is equally likely.
_LIMIT = 256 - 256 % _COUNT


def random_chars(length: int) -> str:
    """``length`` characters drawn uniformly from the CSRF alphabet, from ``os.urandom``."""
    out: list[str] = []
    while len(out) < length:
        out += [_CHARS[b % _COUNT] for b in os.urandom(length + 8) if b < _LIMIT]
    return "".join(out[:length])


def token(request: HttpRequest) -> str:
    """What ``get_token(request)`` returns: the cookie's secret, masked afresh."""
    secret = request.META.get("CSRF_COOKIE")
    if not isinstance(secret, str) or len(secret) != CSRF_SECRET_LENGTH:
        return get_token(request)
    try:
        values = [_INDEX[char] for char in secret]
    except KeyError:
        return get_token(request)
    # As ``get_token``: the cookie is sent again, to renew its expiry.
    request.META["CSRF_COOKIE_NEEDS_UPDATE"] = True
    mask = random_chars(CSRF_SECRET_LENGTH)
    return mask + "".join(
        _CHARS[(value + _INDEX[m]) % _COUNT] for value, m in zip(values, mask, strict=True)
    )
