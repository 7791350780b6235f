"""Password logins (the admin's and the store's), counted per account and per client address.

Every login form posts to ``django.contrib.auth.authenticate``, which asks the backend below
first: past ``LOGIN_ATTEMPTS_PER_ACCOUNT`` failed attempts on one account name, or
``LOGIN_ATTEMPTS_PER_IP`` from one address, within ``LOGIN_THROTTLE_WINDOW``, the password is
not even checked, the right one included, until the window ends. Only failures count: staff
behind one shop's address who log in many times a day are never locked out by their own
successes.

The refusal is the same for an account that exists and for one that does not, so it tells an
attacker nothing; the first refusal of each lockout is logged and written to the compliance
access log.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from consents import services
from consents.http import client_key
from preferences import ratelimit

logger = logging.getLogger(__name__)

# The error code the login pages look for, to answer 429 rather than 200.
LOGIN_THROTTLED = "login_throttled"
TOO_MANY = _("Too many login attempts. Wait %(minutes)s minutes, then try again.")
# Rate-limit scopes: "<SCOPE>-account", "<SCOPE>-ip", "<SCOPE>-noted".
SCOPE = "login"


def _window_seconds() -> int:
    return int(settings.LOGIN_THROTTLE_WINDOW.total_seconds())


def _keys(request: HttpRequest, username: str) -> tuple[str, str]:
    # The address as every page reads it (``NUM_PROXIES``); counted as one when unreadable.
    return username.strip().casefold()[:150], client_key(request)


def login_attempt_allowed(*, request: HttpRequest, username: str) -> bool:
    """May this password be checked? No once the account name or the address has had too many
    failed attempts in the window (the refusal is noted once per lockout)."""
    account, address = _keys(request, username)
    by_account = ratelimit.hits(f"{SCOPE}-account", account) < settings.LOGIN_ATTEMPTS_PER_ACCOUNT
    by_address = ratelimit.hits(f"{SCOPE}-ip", address) < settings.LOGIN_ATTEMPTS_PER_IP
    if not by_account:
        _note_lockout(request=request, username=username, address=address, reason="account")
    if not by_address:
        _note_lockout(request=request, username=username, address=address, reason="address")
    return by_account and by_address


def login_failed(*, request: HttpRequest, username: str) -> None:
    """Count one failed attempt against the account name and the address."""
    account, address = _keys(request, username)
    window = _window_seconds()
    ratelimit.hit(f"{SCOPE}-account", account, window_seconds=window)
    ratelimit.hit(f"{SCOPE}-ip", address, window_seconds=window)


def _note_lockout(*, request: HttpRequest, username: str, address: str, reason: str) -> None:
    """Once per lockout (the first refused attempt of the window), not once per attempt."""
    key = f"{reason}:{username.strip().casefold()[:150] if reason == 'account' else address}"
    if not ratelimit.allow(f"{SCOPE}-noted", key, limit=1, window_seconds=_window_seconds()):
        return
    what = "the account name" if reason == "account" else "the client address"
    logger.warning(
        "login locked for %s minutes: too many attempts on %s (account %r, address %s, page %s)",
        _window_seconds() // 60,
        what,
        username[:150],
        address,
        request.path,
    )
    User = get_user_model()
    user = User._default_manager.filter(**{User.USERNAME_FIELD: username[:150]}).first()
    services.access_log(
        user=user or AnonymousUser(),
        username=username[:150] or "-",
        action="login_locked",
        contact=None,
        detail=f"too many login attempts on {what}; address: {address}; page: {request.path}",
    )


class ThrottledModelBackend(ModelBackend):
    """Django's model backend behind the login counters.

    A refused attempt raises ``ValidationError``: the login form (``AuthenticationForm.clean``
    calls ``authenticate``) shows it as its own error, in the page's language. Calls without a
    request (a test client's ``login()``, a management command) are not web logins and are not
    counted.
    """

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> Any:
        name = username if username is not None else kwargs.get(get_user_model().USERNAME_FIELD)
        web_login = request is not None and name is not None
        if web_login and not login_attempt_allowed(request=request, username=str(name)):
            minutes = _window_seconds() // 60
            raise ValidationError(TOO_MANY, code=LOGIN_THROTTLED, params={"minutes": minutes})
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if web_login and user is None:
            login_failed(request=request, username=str(name))
        return user

    async def aauthenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> Any:
        return await sync_to_async(self.authenticate)(
            request, username=username, password=password, **kwargs
        )
