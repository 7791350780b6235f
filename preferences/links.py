"""Signed links in emails: one salt per purpose, an explicit lifetime, revocable.

A token carries the contact's public id and link version; bumping the version (``sign out of all
links``) revokes every preference link already sent. A confirmation token is also bound to one
pending sign-up, so that it works once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.urls import reverse

from consents.models import Contact

SALTS = {
    "confirm": "assent.links.confirm",
    "preferences": "assent.links.preferences",
    "unsubscribe": "assent.links.unsubscribe",
}


class LinkError(Exception):
    """Why a link cannot be used: ``invalid``, ``expired``, ``revoked`` or ``unknown``."""

    def __init__(self, reason: str, payload: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.payload = payload or {}


@dataclass(frozen=True)
class Link:
    contact: Contact
    payload: dict[str, Any]


def make_token(purpose: str, contact: Contact, **extra: Any) -> str:
    payload = {"c": contact.public_id, "v": contact.link_version, **extra}
    return signing.dumps(payload, salt=SALTS[purpose], compress=True)


def token_digest(token: str) -> str:
    """What the ledger keeps of a token: its hash, never the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()


def read_token(
    purpose: str, token: str, *, max_age: timedelta | None, check_version: bool = True
) -> Link:
    """The contact a token names, or a ``LinkError`` saying why not."""
    salt = SALTS[purpose]
    try:
        payload = signing.loads(token, salt=salt, max_age=max_age)
    except signing.SignatureExpired:
        # The signature is good, only old: say which contact, so the page can offer a new link.
        payload = signing.loads(token, salt=salt)
        raise LinkError("expired", payload) from None
    except signing.BadSignature:
        raise LinkError("invalid") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("c"), str):
        raise LinkError("invalid")
    contact = Contact.objects.filter(public_id=payload["c"]).first()
    if contact is None:
        raise LinkError("unknown", payload)
    if check_version and payload.get("v") != contact.link_version:
        raise LinkError("revoked", payload)
    return Link(contact=contact, payload=payload)


def absolute(path: str) -> str:
    return f"{settings.SITE_URL}{path}"


def confirm_url(contact: Contact, signup_nonce: str) -> str:
    token = make_token("confirm", contact, s=signup_nonce)
    return absolute(reverse("confirm", args=[token]))


def preferences_url(contact: Contact) -> str:
    return absolute(reverse("preferences_open", args=[make_token("preferences", contact)]))


def unsubscribe_url(contact: Contact) -> str:
    # An unsubscribe link never expires and survives "sign out of all links": leaving must
    # always work, from any email ever sent (CNIL; GDPR art. 7(3) and 21).
    return absolute(reverse("unsubscribe", args=[make_token("unsubscribe", contact)]))
