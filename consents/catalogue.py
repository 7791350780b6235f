"""The catalogue (topics), the published notices and the active webhook endpoints, read once per
process while they hold.

Every public page and every sign-up reads them (every ledger event asks which endpoints want
it), and they change a few times a year. A process
keeps one snapshot and a version token; the token lives in the shared cache (Redis), is replaced
whenever a topic or a notice is saved or deleted (at once, and again when the transaction
commits), and a cache read (at most once a second: ``RECHECK_SECONDS``) tells whether the
snapshot still holds. Without a reachable cache, every use reads the database.

A token set by a change this process made but has not committed is never trusted: what this
process read under it could be rolled back. The commit replaces it.
"""

from __future__ import annotations

import functools
import secrets
import threading
import time
from dataclasses import dataclass, field

from django.core.cache import cache
from django.db import transaction

from config.cache import cache_down
from consents.models import Notice, Topic, WebhookEndpoint

CATALOG_KEY = "assent:catalog-version"


@dataclass
class Snapshot:
    topics: list[Topic]  # every topic, in the catalogue's order
    by_slug: dict[str, Topic] = field(default_factory=dict)
    # (topic id or None, language) -> the latest published notice
    notices: dict[tuple[int | None, str], Notice] = field(default_factory=dict)
    # Parts of pages drawn from this catalogue alone (the sign-up form's boxes, unticked), by the
    # page's own key: they live and die with the snapshot, so a change of topic or notice redraws.
    fragments: dict[tuple, str] = field(default_factory=dict)
    # The active webhook endpoints, in id order (``webhooks_out`` writes their deliveries).
    endpoints: list[WebhookEndpoint] = field(default_factory=list)

    @functools.cached_property
    def notice_by_pk(self) -> dict[int, Notice]:
        """The latest published notices by id."""
        return {notice.pk: notice for notice in self.notices.values()}

    @functools.cached_property
    def topic_by_pk(self) -> dict[int, Topic]:
        return {topic.pk: topic for topic in self.topics}

    def notice_for(self, topic: Topic | None, language: str) -> Notice | None:
        """The wording shown for a topic: its latest published notice, else the global one."""
        if topic is not None:
            notice = self.notices.get((topic.pk, language))
            if notice is not None:
                return notice
        return self.notices.get((None, language))

    @property
    def active(self) -> list[Topic]:
        return [t for t in self.topics if t.active]


_lock = threading.Lock()
_kept: dict[str, object] = {"version": None, "snapshot": None}
_untrusted: set[str] = set()


# A page reads the catalogue several times (its topics, their notices, the choices posted): the
# version read from the shared cache is trusted for this long before it is read again. A change
# made by another process shows here within that delay; this process's own changes at once.
RECHECK_SECONDS = 1.0
_checked: dict[str, object] = {"version": None, "at": 0.0}


def _version() -> str | None:
    now = time.monotonic()
    with _lock:
        if _checked["version"] is not None and now - _checked["at"] < RECHECK_SECONDS:  # type: ignore[operator]
            return _checked["version"]  # type: ignore[return-value]
    version = _read_version()
    with _lock:
        _checked["version"], _checked["at"] = version, now
    return version


def version() -> str | None:
    """The catalogue's version as this process knows it (read from the shared cache at most once
    a second), for what is kept under it elsewhere (the preference pages); None while the cache
    is unreachable."""
    return _version()


def _read_version() -> str | None:
    if cache_down(cache):
        return None
    version = cache.get(CATALOG_KEY)
    if not isinstance(version, str):
        version = secrets.token_hex(8)
        if not cache.add(CATALOG_KEY, version, timeout=None):
            version = cache.get(CATALOG_KEY) or version
    return version


def _load() -> Snapshot:
    topics = list(Topic.objects.all())
    snapshot = Snapshot(topics=topics, by_slug={t.slug: t for t in topics})
    published = Notice.objects.filter(published_at__isnull=False).order_by("version")
    for notice in published:  # the latest version last: it wins
        snapshot.notices[(notice.topic_id, notice.language)] = notice
    snapshot.endpoints = list(WebhookEndpoint.objects.filter(active=True).order_by("pk"))
    return snapshot


def snapshot() -> Snapshot:
    version = _version()
    with _lock:
        if version is not None and _kept["version"] == version:
            return _kept["snapshot"]  # type: ignore[return-value]
    loaded = _load()
    if version is not None and version not in _untrusted:
        with _lock:
            _kept["version"], _kept["snapshot"] = version, loaded
    return loaded


def changed() -> None:
    """A topic, a notice or a webhook endpoint changed: a new version now (never trusted by
    this process: the change may be rolled back) and another once the transaction commits."""
    token = secrets.token_hex(8)
    with _lock:
        _untrusted.add(token)
        _kept["version"] = _kept["snapshot"] = None
        _checked["version"] = None
    cache.set(CATALOG_KEY, token, timeout=None)

    def committed() -> None:
        with _lock:
            _untrusted.clear()
            _kept["version"] = _kept["snapshot"] = None
            _checked["version"] = None
        cache.set(CATALOG_KEY, secrets.token_hex(8), timeout=None)

    transaction.on_commit(committed)


def row_changed(sender: type, **kwargs: object) -> None:
    """``post_save`` / ``post_delete`` of ``Topic``, ``Notice`` and ``WebhookEndpoint``."""
    changed()
