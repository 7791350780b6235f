"""What the preference center keeps about a person, wiped when they are erased.

Connected to ``consents.signals.contact_erased`` in ``PreferencesConfig.ready``: sign-ups waiting
for a click (the name and number typed), tracking events not yet drained, open
preference-center sessions, the rendered page, and
the mail files of the embedded default.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.sessions.models import Session
from django.db import transaction

from consents.models import Contact
from preferences import devmail, pagecache
from preferences.models import CenterSession, LinkRequest, PendingSignup, TrackingInbox

DB_SESSION_ENGINES = (
    "django.contrib.sessions.backends.db",
    "django.contrib.sessions.backends.cached_db",
)


def sessions_end(contact: Contact) -> list[str]:
    """End every session a preference link opened for ``contact``: the rows now, in the erasure's
    transaction; the shared cache's copies (``cached_db``) once it commits."""
    rows = CenterSession.objects.filter(contact=contact)
    keys = list(rows.values_list("session_key", flat=True))
    rows.delete()
    if not keys:
        return keys
    if settings.SESSION_ENGINE in DB_SESSION_ENGINES:
        Session.objects.filter(session_key__in=keys).delete()
    store = import_module(settings.SESSION_ENGINE).SessionStore

    def forget() -> None:
        for key in keys:
            store(session_key=key).delete()

    # robust: the erasure is committed whatever the cache says; the sessions' authorisation
    # died with the link version anyway.
    transaction.on_commit(forget, robust=True)
    return keys


def contact_erased(sender: Any, contact: Contact, addresses: Sequence[str], **kwargs: Any) -> None:
    PendingSignup.objects.filter(contact=contact).delete()
    for address in addresses:
        LinkRequest.objects.filter(email__iexact=address).delete()
        TrackingInbox.objects.filter(recipient__iexact=address).delete()
    pagecache.forget_sessions(sessions_end(contact))
    if devmail.writes_files():
        transaction.on_commit(
            functools.partial(devmail.forget_addresses, list(addresses)), robust=True
        )
