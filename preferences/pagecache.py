"""A person's rendered preference page, kept until something it shows changes.

The page is the most read page of the product and costs far more to draw than to fetch: the
person's history through ``rules.decide`` for every topic x channel, then dozens of boxes. Most
reads change nothing (a reload, the way back from the history, the second look before saving),
so the HTML is kept in the cache, one entry per person, and served again while its fingerprint
still matches. The fingerprint holds everything the page depends on:

- the person's ledger position (``ContactFacts.last_seq``): any new event changes it;
- the contact's own fields (addresses, name, kind, language), hashed: an address added or wiped;
- the page's language;
- the catalog version, a token replaced whenever a topic or a notice is saved or deleted;
- the code version (a hash of this page's templates and code) and the rules' settings: a deploy
  changes them.

and the entry stops being served at the first instant that changes the page by itself: a pause's
end, the retention expiry, a callback request's end, and ``PREFERENCE_PAGE_CACHE_SECONDS`` at
the latest. An erased or edited contact's entry is deleted outright (``contact_changed``).

The CSRF token differs per request: the page is drawn with a placeholder, replaced on the way out.
The flash of a save or an error is never cached: those pages are drawn every time.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction

from config.cache import cache_down
from consents import catalogue, clock
from consents.models import Contact, ContactFacts

CATALOG_KEY = catalogue.CATALOG_KEY
PAGE_KEY = "assent:preferences-page:{pk}"
# Replaced by the request's own CSRF token each time the page is served.
CSRF_PLACEHOLDER = "assent-csrf-" + hashlib.sha256(b"assent.preferences.csrf").hexdigest()[:24]

_BASE = Path(__file__).resolve().parent.parent


def _code_version() -> str:
    """Changes when the page's templates or the code that fills them change (a deploy)."""
    digest = hashlib.sha256()
    for path in (
        _BASE / "templates" / "base.html",
        _BASE / "templates" / "preferences" / "preferences.html",
        _BASE / "templates" / "preferences" / "_boxes.html",
        _BASE / "preferences" / "views" / "preference_center.py",
        _BASE / "preferences" / "center.py",
        _BASE / "preferences" / "presenters.py",
        _BASE / "preferences" / "templatetags" / "center_tags.py",
        _BASE / "preferences" / "pagecache.py",
    ):
        try:
            digest.update(path.read_bytes())
        except OSError:
            digest.update(path.name.encode())
    return digest.hexdigest()[:16]


CODE_VERSION = _code_version()


def enabled() -> bool:
    """Configured, and the cache reachable: while Redis is down the page is drawn each time."""
    return settings.PREFERENCE_PAGE_CACHE_SECONDS > 0 and not cache_down(cache)


def _contact_digest(contact: Contact) -> str:
    fields = (
        contact.email or "",
        contact.phone,
        contact.first_name,
        contact.postal_address,
        contact.push_token,
        contact.kind,
        contact.profession,
        contact.locale,
        str(contact.informed_at_collection),
        contact.collected_at.isoformat() if contact.collected_at else "",
    )
    return hashlib.sha256("\x1f".join(fields).encode()).hexdigest()[:16]


def _last_seq(contact: Contact) -> int:
    seq = getattr(contact, "page_last_seq", None)
    if seq is not None:
        return int(seq)
    try:
        return contact.facts.last_seq
    except ContactFacts.DoesNotExist:
        return 0


def contact_for_page(public_id: str) -> Contact | None:
    """The contact and its ledger position in one query, for every read of the page.

    Written as one raw join rather than ``select_related``: it is the only query of a page
    served again, and building it through the ORM cost three times its round trip
    (bench/PREFERENCES.md). The contact's fields still go through Django's converters; the SQL
    is spelt once per process.
    """
    for contact in Contact.objects.raw(_contact_sql(), [public_id]):
        return contact
    return None


@functools.cache
def _contact_sql() -> str:
    qn = connection.ops.quote_name
    contact_table = qn(Contact._meta.db_table)
    facts_table = qn(ContactFacts._meta.db_table)
    contact_pk = qn(Contact._meta.pk.column)
    facts_fk = qn(ContactFacts._meta.get_field("contact").column)
    return (
        f"SELECT c.*, f.{qn('last_seq')} AS page_last_seq FROM {contact_table} c "
        f"LEFT JOIN {facts_table} f ON f.{facts_fk} = c.{contact_pk} "
        f"WHERE c.{qn('public_id')} = %s"
    )


def _rules_version() -> str:
    """The settings of RULES.md that change what the page says ("covered by another basis")."""
    return hashlib.sha256(
        repr(
            (
                settings.RETENTION_YEARS,
                settings.DOI_CONFIRM_TTL,
                settings.REPERMISSION_WINDOW,
                settings.CALLBACK_VALIDITY,
                sorted(settings.GENERIC_LOCAL_PARTS),
            )
        ).encode()
    ).hexdigest()[:8]


def fingerprint(contact: Contact, *, language: str, catalog: str) -> str:
    return ":".join(
        (
            str(contact.pk),
            str(_last_seq(contact)),
            language,
            catalog,
            CODE_VERSION,
            _rules_version(),
            _contact_digest(contact),
        )
    )


@dataclass(frozen=True)
class Lookup:
    """What one cache round trip brought back: the catalog version and the entry, if usable."""

    catalog: str
    html: str | None


def lookup(contact: Contact, *, language: str) -> Lookup:
    """One round trip to the cache: the catalog version and, if it still fits, the page."""
    page_key = PAGE_KEY.format(pk=contact.pk)
    found = cache.get_many([CATALOG_KEY, page_key])
    catalog = found.get(CATALOG_KEY)
    if not isinstance(catalog, str):
        # A cold or flushed cache: a new version, so that nothing kept before can match.
        catalog = secrets.token_hex(8)
        if not cache.add(CATALOG_KEY, catalog, timeout=None):
            catalog = cache.get(CATALOG_KEY) or catalog
        return Lookup(catalog=catalog, html=None)
    entry = found.get(page_key)
    if not isinstance(entry, tuple) or len(entry) != 3:
        return Lookup(catalog=catalog, html=None)
    fp, until, html = entry
    if fp != fingerprint(contact, language=language, catalog=catalog):
        return Lookup(catalog=catalog, html=None)
    if clock.now().timestamp() >= until:
        return Lookup(catalog=catalog, html=None)
    return Lookup(catalog=catalog, html=html)


def store(
    contact: Contact,
    *,
    language: str,
    catalog: str,
    html: str,
    changes_at: Iterable[datetime | None],
) -> None:
    """Keep ``html`` until the first of ``changes_at`` still to come, or the configured limit."""
    now = clock.now()
    limit = settings.PREFERENCE_PAGE_CACHE_SECONDS
    until = now.timestamp() + limit
    for at in changes_at:
        if at is not None and at > now:
            until = min(until, at.timestamp())
    timeout = max(1, int(until - now.timestamp()) + 1)
    entry = (fingerprint(contact, language=language, catalog=catalog), until, html)
    cache.set(PAGE_KEY.format(pk=contact.pk), entry, timeout=timeout)


def forget(contact_pk: int) -> None:
    """Drop a person's page now and once the transaction commits (a read may race the change)."""
    key = PAGE_KEY.format(pk=contact_pk)
    cache.delete(key)
    transaction.on_commit(lambda: cache.delete(key))


# --- Signal receivers, connected in ``PreferencesConfig.ready`` --------------------------------


def contact_changed(sender: type, instance: Contact, **kwargs: object) -> None:
    if kwargs.get("created"):
        return  # a new contact has no page yet (and its id was never anyone else's)
    forget(instance.pk)
