"""Every signed link we hand out: one table of scopes, one ``make``, one ``read``, one error.

A link grants exactly its scope, nothing more: an unsubscribe link unsubscribes, it never opens
the preference center or a data export. A token carries:

- ``c``, the contact's public id, and ``v``, its link version: "sign out of all links" (and
  erasure) bumps the version and every link of a scope that checks it stops working;
- ``a``, the address binding: a short keyed hash of the address the email went to. On read it must
  match the contact's current address, so that changing a person's email address kills every
  link sent to the old one (as Django's password-reset tokens hash the email);
- the scope's own parameters, for one-time links the state they change (``s`` a sign-up's
  nonce, ``r`` a re-confirmation request, ``e`` the new address, ``n`` the downloads so far),
  so that a second use finds nothing to do;
- the signing time: the scope's lifetime (a setting) is checked when the token is read.

Tokens minted before the address binding existed (no ``a``) still carry a good signature under
the same salts, but nothing says where they were sent. An unsubscribe link of that kind keeps
working for the rest of its lifetime (a year from its email), unless the person signed out of
all links: every email must keep a working way out, and it grants nothing else. Any other such
token is read as expired, and its page offers a new link without naming any address.

Outbox rows never hold tokens: they hold ``intent(scope, **params)`` and the links are minted
when the email is rendered for sending (``consents.outbox.render_email``).

The store tablet's enrolment cookie is in the table too (scope ``device``): it names a device,
not a contact, so it has no version or address; the store checks the device's secret.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.urls import reverse
from django.utils.crypto import constant_time_compare, salted_hmac

from consents.models import Contact

# Payload keys the module owns; a scope's parameters use other (single-letter) names.
RESERVED = frozenset({"c", "v", "a"})
BINDING_SALT = "assent.links.address"
# 64 bits of HMAC: the token is signed anyway; this only has to tell two addresses apart.
BINDING_LENGTH = 16
DEVICE_TTL = timedelta(days=400)  # the longest lifetime browsers keep a cookie


@dataclass(frozen=True)
class Scope:
    """What one kind of link allows, for how long, and what it is bound to."""

    salt: str
    ttl: Callable[[], timedelta]
    # The page the link opens (a URL name, so that consents imports nothing from preferences).
    url_name: str = ""
    # "sign out of all links" revokes it.
    check_version: bool = True
    # The address the binding covers: "recipient", the address the email goes to; "contact",
    # the contact's current address when the email goes elsewhere (a new address to confirm);
    # "" for a token that names no contact.
    binds: str = "recipient"
    params: frozenset[str] = frozenset()
    # A token minted before the address binding existed still works (see the module docstring).
    accepts_unbound: bool = False

    @property
    def names_contact(self) -> bool:
        return bool(self.binds)


# Salts are those of the earlier modules: tokens already in mailboxes still verify, and are then
# read as expired (see the module docstring).
SCOPES: dict[str, Scope] = {
    # Double opt-in. It survives "sign out of all links" (confirming gives nothing back but the
    # confirmation itself) and is bound to one pending sign-up.
    "confirm": Scope(
        salt="assent.links.confirm",
        ttl=lambda: settings.DOI_CONFIRM_TTL,
        url_name="confirm",
        check_version=False,
        params=frozenset({"s"}),
    ),
    "preferences": Scope(
        salt="assent.links.preferences",
        ttl=lambda: settings.PREFERENCE_LINK_TTL,
        url_name="preferences_open",
    ),
    "unsubscribe": Scope(
        salt="assent.links.unsubscribe",
        ttl=lambda: settings.UNSUBSCRIBE_LINK_TTL,
        url_name="unsubscribe",
        accepts_unbound=True,
    ),
    "keep": Scope(
        salt="assent.retention.keep",
        ttl=lambda: settings.RETENTION_KEEP_LINK_TTL,
        url_name="retention_keep",
    ),
    "reconfirm": Scope(
        salt="assent.notice.reconfirm",
        ttl=lambda: settings.RECONFIRM_LINK_TTL,
        url_name="notice_reconfirm",
        params=frozenset({"r"}),
    ),
    # Sent to the new address, bound to the current one: the change it makes kills it.
    "email_change": Scope(
        salt="assent.rectify.email",
        ttl=lambda: settings.RECTIFY_LINK_TTL,
        url_name="email_confirm",
        binds="contact",
        params=frozenset({"e"}),
    ),
    # "Download my data": a fresh proof of mailbox control, once.
    "data_download": Scope(
        salt="assent.links.data-download",
        ttl=lambda: settings.DATA_DOWNLOAD_LINK_TTL,
        url_name="data_download",
        params=frozenset({"n"}),
    ),
    "device": Scope(
        salt="assent.store.device",
        ttl=lambda: DEVICE_TTL,
        check_version=False,
        binds="",
        params=frozenset({"d", "s"}),
    ),
}


class LinkError(Exception):
    """Why a link cannot be used: ``invalid``, ``expired``, ``revoked`` or ``unknown``.

    ``contact`` is the contact the token names, when its signature holds; ``same_address`` says
    that it was sent to the contact's current address, so that a page may show that address
    (to anyone else the link does not say where it went).
    """

    def __init__(
        self,
        reason: str,
        payload: dict[str, Any] | None = None,
        *,
        contact: Contact | None = None,
        same_address: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.payload = payload or {}
        self.contact = contact
        self.same_address = same_address


@dataclass(frozen=True)
class Link:
    contact: Contact | None
    payload: dict[str, Any]


def _scope(name: str) -> Scope:
    try:
        return SCOPES[name]
    except KeyError:
        raise ValueError(f"No such link scope: {name!r}.") from None


def _check_params(name: str, spec: Scope, params: dict[str, Any]) -> None:
    unknown = set(params) - spec.params
    if unknown:
        raise ValueError(f"A {name!r} link takes {sorted(spec.params)}, not {sorted(unknown)}.")


def binding(address: str, *, secret: str | None = None) -> str:
    """The address as a token carries it: a short keyed hash, case-insensitive."""
    return _binding(
        (address or "").strip().lower(), settings.SECRET_KEY if secret is None else secret
    )


@functools.lru_cache(maxsize=4096)
def _binding(value: str, secret: str) -> str:
    """``binding`` of a normalised address under one key, remembered: every read of a person's
    page checks the session's binding against the address (a key derived and a keyed hash)."""
    return salted_hmac(BINDING_SALT, value, secret=secret, algorithm="sha256").hexdigest()[
        :BINDING_LENGTH
    ]


def bound_to(address: str | None, value: object) -> bool:
    """The binding ``value`` names ``address`` (under the current key or a fallback one)."""
    if not address or not isinstance(value, str):
        return False
    secrets = [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]
    return any(constant_time_compare(binding(address, secret=s), value) for s in secrets)


def make(
    scope: str, contact: Contact | None = None, *, to: str | None = None, **params: Any
) -> str:
    """A token for ``scope``, sent to ``to`` (by default the contact's address)."""
    spec = _scope(scope)
    _check_params(scope, spec, params)
    if not spec.names_contact:
        return signing.dumps(params, salt=spec.salt, compress=True)
    if contact is None:
        raise ValueError(f"A {scope!r} link names a contact.")
    address = contact.email if spec.binds == "contact" or to is None else to
    payload = {
        "c": contact.public_id,
        "v": contact.link_version,
        "a": binding(address or ""),
        **params,
    }
    return signing.dumps(payload, salt=spec.salt, compress=True)


def absolute(path: str) -> str:
    return f"{settings.SITE_URL}{path}"


def url(scope: str, contact: Contact, *, to: str | None = None, **params: Any) -> str:
    """The absolute address of a link, as an email carries it."""
    token = make(scope, contact, to=to, **params)
    return absolute(reverse(_scope(scope).url_name, args=[token]))


def intent(scope: str, **params: Any) -> dict[str, Any]:
    """What an outbox row keeps of a link: its scope and parameters, never a token."""
    _check_params(scope, _scope(scope), params)
    return {"scope": scope, "params": params}


def read(scope: str, token: str, *, expired_ok: bool = False) -> Link:
    """What a token grants, or a ``LinkError`` saying why not.

    ``expired_ok`` reads a token past its lifetime (to offer a fresh link in its place); every
    other check still applies.
    """
    spec = _scope(scope)
    expired = False
    try:
        payload = signing.loads(token, salt=spec.salt, max_age=None if expired_ok else spec.ttl())
    except signing.SignatureExpired:
        # The signature is good, only old: say which contact, so the page can offer a new link.
        payload = signing.loads(token, salt=spec.salt)
        expired = True
    except signing.BadSignature:
        raise LinkError("invalid") from None
    if not isinstance(payload, dict):
        raise LinkError("invalid")
    if not spec.names_contact:
        if expired:
            raise LinkError("expired", payload)
        return Link(contact=None, payload=payload)
    public_id = payload.get("c")
    if not isinstance(public_id, str):
        # A re-confirmation link of the earlier format named no contact.
        raise LinkError("expired" if "a" not in payload else "invalid", payload)
    contact = Contact.objects.filter(public_id=public_id).first()
    if contact is None:
        raise LinkError("unknown", payload)
    unbound = "a" not in payload
    if unbound:
        if not spec.accepts_unbound:
            raise LinkError("expired", payload, contact=contact)
    elif not bound_to(contact.email, payload["a"]):
        # Sent to an address that is no longer this person's.
        raise LinkError("revoked", payload, contact=contact)
    if spec.check_version and payload.get("v") != contact.link_version:
        raise LinkError("revoked", payload, contact=contact, same_address=not unbound)
    if expired:
        raise LinkError("expired", payload, contact=contact, same_address=not unbound)
    return Link(contact=contact, payload=payload)


def token_digest(token: str) -> str:
    """What the ledger keeps of a token: its hash, never the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()


# --- Signed form values -----------------------------------------------------------------------
# Not links, but the same kind of key: a value the server put in a page and reads back from the
# posted form (which notice wording a form showed), so that the browser cannot choose it.

FORM_SALTS = {"notices_shown": "assent.notices.shown"}


class SealBroken(Exception):
    """The posted value is not one this server signed for this purpose."""


def seal(purpose: str, value: Any) -> str:
    return signing.dumps(value, salt=FORM_SALTS[purpose], compress=True)


def unseal(purpose: str, raw: str) -> Any:
    try:
        return signing.loads(raw, salt=FORM_SALTS[purpose])
    except signing.BadSignature:
        raise SealBroken(purpose) from None
