"""A person's rendered preference page, kept until something it shows changes.

The page is the most read page of the product and costs far more to draw than to fetch: the
person's history through ``rules.decide`` for every topic x channel, then dozens of boxes. Most
reads change nothing (a reload, the way back from the history, the second look before saving),
so the HTML is kept in the cache, one entry per browser session (fetched in the same round trip
as the session's own data: ``prefetch``), and served again while its fingerprint still matches.
The fingerprint holds everything the page depends on:

- the person's ledger position (``ContactFacts.last_seq``): any new event changes it;
- the contact's own fields (addresses, name, kind, language), hashed: an address added or wiped;
- the page's language;
- the catalog version, a token replaced whenever a topic or a notice is saved or deleted;
- the code version (a hash of this page's templates and code) and the rules' settings: a deploy
  changes them.

and the entry stops being served at the first instant that changes the page by itself: a pause's
end, the retention expiry, a callback request's end, and ``PREFERENCE_PAGE_CACHE_SECONDS`` at
the latest. An erased or edited contact's entries are deleted outright (``contact_changed``, and
erasure through the sessions it ends).

The CSRF token differs per request: the page is drawn with a placeholder, replaced on the way out.
The flash of a save or an error is never cached: those pages are drawn every time.

The session's entry is small (the fingerprint, its end, the page's digest); the page itself (55 kB
for 20 topics) is kept beside it, under its own key, and each process keeps the pages it served
lately in memory (``_Local``: by session and digest, until the entry's own end, 16 MB at most),
split where the CSRF token goes. A page served again is then not carried from Redis, decoded and
encoded again on every read: only when this process does not hold that digest (another process
drew it, or it was pushed out) is it fetched, in a second round trip.

A process also remembers, per session, the entry it last served or stored and whose page it is.
A read it holds both the entry and the page for makes no Redis call: the session's row and the
contact with its ledger position come in one query (``prefetch``), and the page is served when
that fingerprint still matches the one remembered. So a page is served only while its session
is alive in the database and nothing the page shows has changed, in every process. Dropping the
session's entry (``forget_sessions``) stops it at once in this process and in Redis; in the
others, ending the session, any ledger event or change of the contact stops it.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.sessions.backends import cached_db, db
from django.contrib.sessions.backends.base import SessionBase
from django.core.cache import DEFAULT_CACHE_ALIAS, cache
from django.db import connection, transaction

from config.cache import cache_down
from consents import catalogue, clock, statements
from consents.models import Contact, ContactFacts
from preferences.models import CenterSession

CATALOG_KEY = catalogue.CATALOG_KEY
PAGE_KEY = "assent:preferences-page:{session}"
# Beside a session's entry: (digest, the page's UTF-8 bytes).
HTML_SUFFIX = ":html"
# Replaced by the request's own CSRF token each time the page is served.
CSRF_PLACEHOLDER = "assent-csrf-" + hashlib.sha256(b"assent.preferences.csrf").hexdigest()[:24]
_PLACEHOLDER = CSRF_PLACEHOLDER.encode()
# The pages a process keeps in memory, at most (bytes).
LOCAL_MAX_BYTES = 16 * 1024 * 1024
# The sessions' entries a process remembers (``_Local.entries``), at most.
LOCAL_MAX_ENTRIES = 50_000

_BASE = Path(__file__).resolve().parent.parent


def _code_version() -> str:
    """Changes when the page's templates or the code that fills them change (a deploy)."""
    digest = hashlib.sha256()
    for path in (
        _BASE / "templates" / "base.html",
        _BASE / "templates" / "preferences" / "preferences.html",
        _BASE / "templates" / "jinja2" / "preferences" / "center.html",
        _BASE / "templates" / "jinja2" / "preferences" / "_topic.html",
        _BASE / "templates" / "_controller.html",
        _BASE / "config" / "jinja2.py",
        _BASE / "preferences" / "views" / "preference_center.py",
        _BASE / "preferences" / "center.py",
        _BASE / "preferences" / "presenters.py",
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

    One join on a plain cursor: it is the only SQL of a page served again, and building it
    through the ORM (a queryset, or even a raw one) cost more than its round trip. The row goes
    through the fields' own converters (as the ORM's would), spelt once per process.
    """
    sql, attnames, converters = _contact_reader()
    found = statements.converted(
        statements.rows_prepared("assent_page_contact", sql, [public_id]), converters
    )
    if not found:
        return None
    values = found[0]
    contact = Contact.from_db(connection.alias, attnames, values[:-1])
    contact.page_last_seq = values[-1]  # type: ignore[attr-defined]
    return contact


@functools.cache
def _contact_reader() -> tuple[str, list[str], list[tuple[int, Any, list[Any]]]]:
    """The join's SQL, the contact's field names in its order, and the converters per column."""
    columns, facts = _contact_join()
    qn = connection.ops.quote_name
    sql = (
        f"SELECT {columns} FROM {qn(Contact._meta.db_table)} c {facts} "
        f"WHERE c.{qn('public_id')} = %s"
    )
    fields = Contact._meta.concrete_fields
    converters = statements.converters_for([f.get_col(Contact._meta.db_table) for f in fields])
    return sql, [f.attname for f in fields], converters


def _contact_join() -> tuple[str, str]:
    """The contact's columns then its ledger position (``c`` and ``f``), and the facts' join."""
    qn = connection.ops.quote_name
    columns = ", ".join(f"c.{qn(f.column)}" for f in Contact._meta.concrete_fields)
    facts_fk = qn(ContactFacts._meta.get_field("contact").column)
    join = (
        f"LEFT JOIN {qn(ContactFacts._meta.db_table)} f "
        f"ON f.{facts_fk} = c.{qn(Contact._meta.pk.column)}"
    )
    return f"{columns}, f.{qn('last_seq')}", join


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


def page_key(session_key: str) -> str:
    """The entry of the page a browser session was shown (a digest: the key names no secret)."""
    return PAGE_KEY.format(session=hashlib.sha256(session_key.encode()).hexdigest()[:32])


@functools.cache
def _session_reader(
    session_model: type[Any],
) -> tuple[str, list[str], list[tuple[int, Any, list[Any]]]]:
    """``_contact_reader``'s join from the session's row (its data last): the contact's columns
    are NULL when the contact is gone, and there is no row when the session is."""
    _sql, attnames, converters = _contact_reader()
    columns, facts = _contact_join()
    qn = connection.ops.quote_name
    sql = (
        f"SELECT {columns}, s.{qn('session_data')} "
        f"FROM {qn(session_model._meta.db_table)} s "
        f"LEFT JOIN {qn(Contact._meta.db_table)} c ON c.{qn('public_id')} = %s {facts} "
        f"WHERE s.{qn('session_key')} = %s AND s.{qn('expire_date')} > %s"
    )
    return sql, attnames, converters


def _session_and_contact(
    session: SessionBase, public_id: str
) -> tuple[dict[str, Any], Contact | None] | None:
    """The session's data, as its own load reads it from the database (``db.SessionStore``),
    and the contact with its ledger position, in one query; None when the session has ended or
    expired."""
    sql, attnames, converters = _session_reader(session.model)  # type: ignore[attr-defined]
    params = [public_id, session.session_key, clock.now()]
    rows = statements.rows_prepared("assent_page_session", sql, params)
    if not rows:
        return None
    *values, last_seq, session_data = rows[0]
    data = _local.session_data(session.session_key, session_data, session.decode)
    if values[0] is None:  # the contact's id: it is gone
        return data, None
    values = statements.converted([values], converters)[0]
    contact = Contact.from_db(connection.alias, attnames, values)
    contact.page_last_seq = last_seq  # type: ignore[attr-defined]
    return data, contact


@dataclass(frozen=True)
class Prefetched:
    """What ``prefetch`` read: the session's entry (for ``lookup``), and the contact when it
    came with the session's row (for ``contact_or_read``)."""

    entry: object
    contact: Contact | None = None


def contact_or_read(public_id: str, prefetched: Prefetched | None) -> Contact | None:
    """The session's contact: the one ``prefetch`` read with the session, or read now."""
    found = prefetched.contact if prefetched is not None else None
    if found is not None and found.public_id == public_id:
        return found
    return contact_for_page(public_id)


def _shares_the_cache(session: SessionBase) -> bool:
    """The session is read through the page cache's own cache (``cached_db`` on "default")."""
    return (
        isinstance(session, cached_db.SessionStore)
        and settings.SESSION_CACHE_ALIAS == DEFAULT_CACHE_ALIAS
    )


def prefetch(session: SessionBase) -> Prefetched | None:
    """One round trip for a read of the page: the session's data and the page kept for this
    session, before anything reads either.

    With sessions read through the same cache (``cached_db``, as deployed), the session's data
    comes with the page and is handed to the session as its load would have (a miss is left to
    the session: it reads the database). When this process remembers the session's entry and
    holds its page, the session's row comes from the database with the contact instead, and
    Redis is not asked (the module's docstring). Returns what was read, or None."""
    key = session.session_key
    if not key or not enabled():
        return None
    page = page_key(key)
    loaded = hasattr(session, "_session_cache")
    known = _local.entry(page) if not loaded and isinstance(session, db.SessionStore) else None
    if known is not None:
        entry, public_id = known
        read = _session_and_contact(session, public_id)
        if read is not None:
            # What the session's own load does with its row from the database.
            session._session_cache = read[0]  # type: ignore[attr-defined]
            return Prefetched(entry, read[1])
        # Ended or expired: the usual way, which finds no session either.
    if not _shares_the_cache(session) or loaded:
        return Prefetched(cache.get(page))
    session_key = session.cache_key  # type: ignore[attr-defined]
    found = cache.get_many([session_key, page])
    data = found.get(session_key)
    if isinstance(data, dict):
        # What ``cached_db.SessionStore.load`` does with a cache hit.
        session._session_cache = data  # type: ignore[attr-defined]
    return Prefetched(found.get(page))


def acting_for(session: SessionBase, public_id: str) -> None:
    """This session acts for this contact (``prefetch_contact`` reads both in one query next)."""
    if session.session_key and isinstance(session, db.SessionStore):
        _local.act(session.session_key, public_id)


def prefetch_contact(session: SessionBase) -> Prefetched | None:
    """For a request that serves no page kept (a save, a drawing with the page cache off): the
    session's row and the contact it last acted for in this process (``acting_for``), in one
    query, the session's data handed to it as its own load from the database would have (so
    that ``cached_db`` does not ask Redis). None (the usual way) when this process does not
    know the session, or it has ended or expired; the caller checks that the contact read is
    the one the session names (``contact_or_read``)."""
    key = session.session_key
    if not key or hasattr(session, "_session_cache") or not isinstance(session, db.SessionStore):
        return None
    public_id = _local.acting_for(key)
    if public_id is None:
        return None
    read = _session_and_contact(session, public_id)
    if read is None:
        return None
    session._session_cache = read[0]  # type: ignore[attr-defined]
    return Prefetched(None, read[1])


class _Local:
    """The pages this process served lately: {(entry key, digest): (end, parts)}, the oldest
    dropped first beyond ``LOCAL_MAX_BYTES``, none served past its entry's end."""

    def __init__(self) -> None:
        self.pages: OrderedDict[tuple[str, str], tuple[float, tuple[bytes, ...]]] = OrderedDict()
        self.size = 0
        self.lock = threading.Lock()
        # {entry key: (entry, the contact's public id)}: what this process last served or
        # stored for a session, the oldest dropped beyond ``LOCAL_MAX_ENTRIES``.
        self.entries: OrderedDict[str, tuple[tuple[str, float, str], str]] = OrderedDict()
        # {session key: (its signed data as stored, that data decoded)}: the session read with
        # the contact is decoded (its signature checked, its JSON read) when it changed only.
        self.sessions: OrderedDict[str, tuple[str, dict[str, Any]]] = OrderedDict()
        # {session key: the contact's public id}: whom the session acted for here last.
        self.acting: OrderedDict[str, str] = OrderedDict()

    def session_data(
        self, session_key: str, stored: str, decode: Callable[[str], dict[str, Any]]
    ) -> dict[str, Any]:
        """A copy of ``decode(stored)``, decoded again only when ``stored`` is not the string
        decoded last for this session (the same signed bytes decode to the same data)."""
        with self.lock:
            found = self.sessions.get(session_key)
        if found is None or found[0] != stored:
            found = (stored, decode(stored))
            with self.lock:
                self.sessions[session_key] = found
                self.sessions.move_to_end(session_key)
                while len(self.sessions) > LOCAL_MAX_ENTRIES:
                    self.sessions.popitem(last=False)
        return dict(found[1])

    def entry(self, key: str) -> tuple[tuple[str, float, str], str] | None:
        """The entry remembered for ``key`` and whose page it is, if its page is held too."""
        with self.lock:
            found = self.entries.get(key)
            if found is None:
                return None
            if (key, found[0][2]) not in self.pages:
                del self.entries[key]
                return None
            return found

    def remember(self, key: str, entry: tuple[str, float, str], public_id: str) -> None:
        with self.lock:
            self.entries[key] = (entry, public_id)
            self.entries.move_to_end(key)
            while len(self.entries) > LOCAL_MAX_ENTRIES:
                self.entries.popitem(last=False)

    def get(self, key: tuple[str, str], now: float) -> tuple[bytes, ...] | None:
        with self.lock:
            found = self.pages.get(key)
            if found is None:
                return None
            if now >= found[0]:
                self._drop(key)
                return None
            self.pages.move_to_end(key)
            return found[1]

    def put(self, key: tuple[str, str], until: float, parts: tuple[bytes, ...]) -> None:
        with self.lock:
            if key in self.pages:
                self._drop(key)
            self.pages[key] = (until, parts)
            self.size += sum(len(p) for p in parts)
            now = clock.now().timestamp()
            while self.size > LOCAL_MAX_BYTES and self.pages:
                self._drop(next(iter(self.pages)))
            for old in [k for k, (end, _) in self.pages.items() if end <= now]:
                self._drop(old)

    def _drop(self, key: tuple[str, str]) -> None:
        _until, parts = self.pages.pop(key)
        self.size -= sum(len(p) for p in parts)

    def forget(self, entry_keys: Iterable[str]) -> None:
        """Drop what is kept for these entries (``page_key``)."""
        gone = set(entry_keys)
        with self.lock:
            for key in [k for k in self.pages if k[0] in gone]:
                self._drop(key)
            for key in gone:
                self.entries.pop(key, None)

    def acting_for(self, session_key: str) -> str | None:
        with self.lock:
            return self.acting.get(session_key)

    def act(self, session_key: str, public_id: str) -> None:
        with self.lock:
            if self.acting.get(session_key) == public_id:
                return
            self.acting[session_key] = public_id
            while len(self.acting) > LOCAL_MAX_ENTRIES:
                self.acting.popitem(last=False)

    def forget_sessions(self, session_keys: Iterable[str]) -> None:
        with self.lock:
            for key in session_keys:
                self.sessions.pop(key, None)
                self.acting.pop(key, None)

    def clear(self) -> None:
        with self.lock:
            self.pages.clear()
            self.entries.clear()
            self.sessions.clear()
            self.acting.clear()
            self.size = 0


_local = _Local()


def served(parts: tuple[bytes, ...], csrf_token: str) -> bytes:
    """The page kept (its bytes cut where the CSRF token goes), with this response's token."""
    return csrf_token.encode().join(parts)


@dataclass(frozen=True)
class Lookup:
    """The catalog version the page is drawn under (None: do not keep it), and the page kept
    (its bytes cut where the CSRF token goes: ``served``), if it still fits."""

    catalog: str | None
    parts: tuple[bytes, ...] | None


def lookup(contact: Contact, *, language: str, entry: object, session_key: str) -> Lookup:
    """Whether ``entry`` (from ``prefetch``) still fits. The catalog version is the one
    ``consents.catalogue`` holds for this process (the snapshot the page is drawn from)."""
    catalog = catalogue.version()
    if catalog is None:
        return Lookup(catalog=None, parts=None)
    if not isinstance(entry, tuple) or len(entry) != 3:
        return Lookup(catalog=catalog, parts=None)
    fp, until, digest = entry
    if fp != fingerprint(contact, language=language, catalog=catalog):
        return Lookup(catalog=catalog, parts=None)
    now = clock.now().timestamp()
    if now >= until:
        return Lookup(catalog=catalog, parts=None)
    key = page_key(session_key)
    parts = _local.get((key, digest), now)
    if parts is None:
        kept = cache.get(key + HTML_SUFFIX)
        if not isinstance(kept, tuple) or len(kept) != 2 or kept[0] != digest:
            return Lookup(catalog=catalog, parts=None)
        parts = tuple(kept[1].split(_PLACEHOLDER))
        _local.put((key, digest), until, parts)
    _local.remember(key, (fp, until, digest), contact.public_id)
    return Lookup(catalog=catalog, parts=parts)


def store(
    session_key: str,
    contact: Contact,
    *,
    language: str,
    catalog: str,
    html: str,
    changes_at: Iterable[datetime | None],
) -> tuple[bytes, ...]:
    """Keep ``html`` for this session until the first of ``changes_at`` still to come, or the
    configured limit; returns its bytes cut where the CSRF token goes (``served``)."""
    now = clock.now()
    limit = settings.PREFERENCE_PAGE_CACHE_SECONDS
    until = now.timestamp() + limit
    for at in changes_at:
        if at is not None and at > now:
            until = min(until, at.timestamp())
    timeout = max(1, int(until - now.timestamp()) + 1)
    data = html.encode()
    digest = hashlib.sha256(data).hexdigest()[:32]
    key = page_key(session_key)
    entry = (fingerprint(contact, language=language, catalog=catalog), until, digest)
    cache.set_many({key: entry, key + HTML_SUFFIX: (digest, data)}, timeout=timeout)
    parts = tuple(data.split(_PLACEHOLDER))
    _local.put((key, digest), until, parts)
    _local.remember(key, entry, contact.public_id)
    return parts


def forget_sessions(session_keys: Iterable[str]) -> None:
    """Drop the pages kept for these sessions now and once the transaction commits (a read may
    race the change)."""
    session_keys = list(session_keys)
    entries = [page_key(k) for k in session_keys]
    if not entries:
        return
    _local.forget(entries)
    _local.forget_sessions(session_keys)
    keys = [k + suffix for k in entries for suffix in ("", HTML_SUFFIX)]
    cache.delete_many(keys)
    transaction.on_commit(lambda: cache.delete_many(keys))


def forget(contact_pk: int) -> None:
    """Drop a person's pages: those of every session a link of theirs opened."""
    forget_sessions(
        CenterSession.objects.filter(contact_id=contact_pk).values_list("session_key", flat=True)
    )


# --- Signal receivers, connected in ``PreferencesConfig.ready`` --------------------------------


def contact_changed(sender: type, instance: Contact, **kwargs: object) -> None:
    if kwargs.get("created"):
        return  # a new contact has no page yet (and no session was ever shown one)
    forget(instance.pk)
