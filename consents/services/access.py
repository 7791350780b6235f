"""The access log: who looked at or exported what, and when (written before the data is handed
over)."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from consents import clock
from consents.models import AccessLog, Contact


def access_log(
    *,
    user: AbstractBaseUser | AnonymousUser,
    action: str,
    contact: Contact | None,
    detail: str = "",
    username: str = "",
) -> AccessLog:
    """Who looked at or exported what, and when. Written before the data is handed over.

    ``username`` names an actor who is not a user account (the person, from their own page)."""
    return AccessLog.objects.create(
        at=clock.now(),
        user=user if getattr(user, "pk", None) else None,
        username=username or getattr(user, "get_username", lambda: "")() or "anonymous",
        action=action,
        contact=contact,
        detail=detail[:2000],
    )
