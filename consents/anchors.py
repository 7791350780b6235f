"""Ledger anchors: a signed digest of every chain head, so that rewritten history shows.

A hash chain shows an event altered in its middle. It cannot show, by itself, a chain that lost
its tail, a chain deleted whole, or a chain rewritten from an early event with every later hash
recomputed by someone who can write to the database. The recorded heads (``ChainHead``) show the
first two until the next append; anchors show all three, for good, against a signature that the
database cannot make:

- every hour (Celery beat, or ``manage.py anchor_ledger``) the heads of every chain *as of an
  instant* are digested, bucket by bucket of contact ids, into a root, signed with
  ``LEDGER_ANCHOR_KEY`` (HMAC-SHA256: the key lives in the processes' environment, never in the
  database) and stored append-only, each anchor linked to the previous one by its digest;
- an anchor is made only if the previous one still matches the ledger, so that a rewrite cannot
  be signed over by the next anchor;
- ``verify_ledger`` recomputes the latest anchor and names the buckets that differ, and
  ``export_anchors`` (or the admin) hands the anchors over as JSON, to be kept outside.

"As of an instant": for each contact, its event of the greatest ``seq`` recorded at or before the
instant. It is computed from the ledger, so an anchor stores no heads of its own: the recorded
head where it was recorded by then, the ledger itself for the few chains that moved since. The
instant lags the anchor's making (``LEDGER_ANCHOR_LAG``) so that a transaction still open then
cannot commit an event recorded before it afterwards.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from consents import clock
from consents.ledger import GENESIS, canonical_json, iso
from consents.models import ChainHead, LedgerAnchor

FORMAT = "assent.anchors.v1"
# Buckets of contact ids: a power of two, at least MIN_BUCKET, so that about BUCKETS of them
# cover the ledger. A mismatch is named by bucket; an anchor stays a few kilobytes.
BUCKETS = 256
MIN_BUCKET = 1024
ALGORITHM = {
    "heads": "per contact, its event of the greatest seq recorded at or before `at`",
    "bucket_root": "sha256 of '<contact id>:<seq>:<hash>\\n' for each head of the bucket, "
    "by contact id",
    "root": "sha256 of '<first contact id>:<chains>:<events>:<bucket root>\\n' for each "
    "non-empty bucket, in order",
    "signature": "HMAC-SHA256(LEDGER_ANCHOR_KEY, canonical JSON of the anchor's fields but "
    "id, buckets, signature and digest)",
    "digest": "sha256 of the canonical JSON of those fields and the signature; the next "
    "anchor's `previous`",
}


# --- The key ------------------------------------------------------------------------------------


def anchor_key() -> bytes:
    if settings.LEDGER_ANCHOR_KEY:
        return settings.LEDGER_ANCHOR_KEY.encode()
    # A key of its own, derived from SECRET_KEY, which the database does not hold either.
    # Production sets a dedicated one (``check --deploy`` says so): rotating SECRET_KEY would
    # otherwise change the key the past anchors were signed with.
    secret = settings.SECRET_KEY.encode()
    return hmac.new(secret, b"assent.ledger-anchor.v1", hashlib.sha256).digest()


def key_id(key: bytes | None = None) -> str:
    """Names a key (which key signed an anchor) without revealing anything of it."""
    key = anchor_key() if key is None else key
    return hmac.new(key, b"assent.ledger-anchor.key-id", hashlib.sha256).hexdigest()[:16]


# --- Heads as of an instant, and their digest ----------------------------------------------------

_HEADS_AS_OF_SQL = (
    "SELECT h.contact_id, h.seq, h.hash FROM consents_chainhead h WHERE h.recorded_at <= %s"
    " UNION ALL"
    " SELECT e.contact_id, e.seq, e.hash FROM consents_chainhead h"
    " JOIN consents_event e ON e.contact_id = h.contact_id AND e.seq = ("
    "  SELECT MAX(e2.seq) FROM consents_event e2"
    "  WHERE e2.contact_id = h.contact_id AND e2.recorded_at <= %s)"
    " WHERE h.recorded_at > %s"
    " ORDER BY 1"
)


def heads_as_of(at: datetime, chunk_size: int = 20000) -> Iterator[tuple[int, int, str]]:
    """(contact id, seq, hash) of each chain's last event recorded at or before ``at``, in
    contact order, streamed (one statement: one consistent view)."""
    value = connection.ops.adapt_datetimefield_value(at)
    if connection.vendor == "postgresql":
        # In a transaction, a server-side cursor streams instead of materialising the result.
        with transaction.atomic(savepoint=False):
            yield from _stream(value, chunk_size)
    else:
        yield from _stream(value, chunk_size)


def _stream(at: Any, chunk_size: int) -> Iterator[tuple[int, int, str]]:
    with connection.chunked_cursor() as cursor:
        cursor.execute(_HEADS_AS_OF_SQL, [at, at, at])
        while rows := cursor.fetchmany(chunk_size):
            yield from rows


def bucket_size_for(max_contact_id: int) -> int:
    size = MIN_BUCKET
    while size * BUCKETS <= max_contact_id:
        size *= 2
    return size


@dataclass
class HeadsDigest:
    bucket_size: int
    chains: int = 0
    events: int = 0
    buckets: list[list[Any]] = field(default_factory=list)  # [first id, chains, events, root]
    root: str = ""


def root_of(buckets: Iterable[list[Any]]) -> str:
    lines = "".join(
        f"{first}:{chains}:{events}:{root}\n" for first, chains, events, root in buckets
    )
    return hashlib.sha256(lines.encode()).hexdigest()


def digest_heads(heads: Iterable[tuple[int, int, str]], bucket_size: int) -> HeadsDigest:
    """Per bucket of ``bucket_size`` contact ids, the digest of its heads; then the root."""
    result = HeadsDigest(bucket_size=bucket_size)
    first, hasher, chains, events = None, None, 0, 0
    for contact_id, seq, hash_ in heads:
        bucket = contact_id - contact_id % bucket_size
        if bucket != first:
            if hasher is not None:
                result.buckets.append([first, chains, events, hasher.hexdigest()])
            first, hasher, chains, events = bucket, hashlib.sha256(), 0, 0
        hasher.update(f"{contact_id}:{seq}:{hash_}\n".encode())  # type: ignore[union-attr]
        chains += 1
        events += seq
    if hasher is not None:
        result.buckets.append([first, chains, events, hasher.hexdigest()])
    result.chains = sum(b[1] for b in result.buckets)
    result.events = sum(b[2] for b in result.buckets)
    result.root = root_of(result.buckets)
    return result


# --- Signing and linking -----------------------------------------------------------------------


def anchor_record(anchor: LedgerAnchor) -> dict[str, Any]:
    """What the signature covers (the buckets through the root)."""
    return {
        "v": 1,
        "at": iso(anchor.at),
        "created_at": iso(anchor.created_at),
        "chains": anchor.chains,
        "events": anchor.events,
        "bucket_size": anchor.bucket_size,
        "root": anchor.root,
        "previous": anchor.previous,
        "key_id": anchor.key_id,
    }


def sign(record: dict[str, Any], key: bytes | None = None) -> str:
    key = anchor_key() if key is None else key
    return hmac.new(key, canonical_json(record).encode(), hashlib.sha256).hexdigest()


def anchor_digest(anchor: LedgerAnchor) -> str:
    """The link the next anchor keeps (``previous``)."""
    signed = {**anchor_record(anchor), "signature": anchor.signature}
    return hashlib.sha256(canonical_json(signed).encode()).hexdigest()


# --- Checking an anchor ------------------------------------------------------------------------


@dataclass
class AnchorCheck:
    anchor: LedgerAnchor
    problems: list[str] = field(default_factory=list)
    # Buckets that differ: {"first", "last", "anchored": [chains, events, root] | None, "now": ...}
    differences: list[dict[str, Any]] = field(default_factory=list)
    linked: int = 0  # anchors whose link to the previous one was checked

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def name(self) -> str:
        return f"anchor #{self.anchor.pk} of {iso(self.anchor.at)}"


def _bucket_problem(difference: dict[str, Any]) -> str:
    where = f"contacts {difference['first']} to {difference['last']}"
    anchored, now = difference["anchored"], difference["now"]
    if anchored is None:
        return f"{where}: no chain anchored, now {now[0]} chains and {now[1]} events"
    if now is None:
        return (
            f"{where}: anchored {anchored[0]} chains and {anchored[1]} events, now none (deleted)"
        )
    text = (
        f"{where}: anchored {anchored[0]} chains and {anchored[1]} events, "
        f"now {now[0]} chains and {now[1]} events"
    )
    if anchored[:2] == now[:2]:
        text += " (as many, but other hashes: rewritten)"
    return text


def anchor_check(anchor: LedgerAnchor) -> AnchorCheck:
    """Is ``anchor`` signed with this deployment's key, linked to the anchor before it, and does
    the ledger as of its instant still digest to its root? Names the buckets that differ."""
    check = AnchorCheck(anchor)
    current = key_id()
    if anchor.key_id != current:
        check.problems.append(
            f"signed with another key (key id {anchor.key_id}; this deployment's is {current}): "
            "LEDGER_ANCHOR_KEY changed, or the anchor is forged"
        )
    elif not hmac.compare_digest(sign(anchor_record(anchor)), anchor.signature):
        check.problems.append("its signature does not match its content (altered or forged)")
    try:
        stored = [[int(b[0]), int(b[1]), int(b[2]), str(b[3])] for b in anchor.buckets]
        adds_up = root_of(stored) == anchor.root and (
            sum(b[1] for b in stored),
            sum(b[2] for b in stored),
        ) == (anchor.chains, anchor.events)
    except (TypeError, ValueError, IndexError, KeyError):
        stored, adds_up = [], False
    if not adds_up:
        check.problems.append("its buckets do not add up to its root and counts (altered)")
    previous = LedgerAnchor.objects.filter(at__lt=anchor.at).order_by("-at").first()
    expected = anchor_digest(previous) if previous is not None else GENESIS
    if anchor.previous != expected:
        before = f"anchor #{previous.pk}" if previous is not None else "no anchor"
        check.problems.append(
            f"its link to the anchor before it does not match {before} "
            "(an anchor was altered, removed or inserted)"
        )

    now = digest_heads(heads_as_of(anchor.at), anchor.bucket_size)
    anchored = {b[0]: b[1:] for b in stored}
    recomputed = {b[0]: list(b[1:]) for b in now.buckets}
    for first in sorted(anchored.keys() | recomputed.keys()):
        if anchored.get(first) != recomputed.get(first):
            check.differences.append(
                {
                    "first": first,
                    "last": first + anchor.bucket_size - 1,
                    "anchored": anchored.get(first),
                    "now": recomputed.get(first),
                }
            )
    if check.differences or now.root != anchor.root:
        check.problems.append(
            f"the ledger as of {iso(anchor.at)} no longer matches it: anchored "
            f"{anchor.chains} chains and {anchor.events} events, now {now.chains} chains and "
            f"{now.events} events"
        )
        check.problems.extend(_bucket_problem(d) for d in check.differences)
    return check


def unlinked_anchors() -> tuple[int, list[LedgerAnchor]]:
    """Walk the links of every anchor (not their buckets): (anchors, those not linked to the
    anchor before them)."""
    unlinked = []
    previous = None
    count = 0
    for anchor in LedgerAnchor.objects.defer("buckets").order_by("at").iterator():
        count += 1
        expected = anchor_digest(previous) if previous is not None else GENESIS
        if anchor.previous != expected:
            unlinked.append(anchor)
        previous = anchor
    return count, unlinked


def latest_check() -> AnchorCheck | None:
    """The latest anchor checked against the ledger, and every anchor's link; None if none."""
    latest = LedgerAnchor.objects.order_by("-at").first()
    if latest is None:
        return None
    check = anchor_check(latest)  # names its own link, if broken
    check.linked, unlinked = unlinked_anchors()
    check.problems.extend(
        f"anchor #{anchor.pk} of {iso(anchor.at)} is not linked to the anchor before it "
        "(an anchor was altered, removed or inserted)"
        for anchor in unlinked
        if anchor.pk != latest.pk
    )
    return check


# --- Making anchors ----------------------------------------------------------------------------


class AnchorRefused(Exception):
    """The previous anchor no longer matches the ledger: a new one would sign over the change."""

    def __init__(self, check: AnchorCheck) -> None:
        self.check = check
        super().__init__(f"{check.name}: " + "; ".join(check.problems))


# Any number: the anchors of one database are made one at a time.
_LOCK = 0x61737365_6E74_0001


@transaction.atomic
def anchor_create(*, at: datetime | None = None, force: bool = False) -> LedgerAnchor:
    """Sign the chain heads as of ``at`` (default: ``LEDGER_ANCHOR_LAG`` ago).

    Refused (``AnchorRefused``) when the previous anchor no longer matches the ledger, unless
    ``force``: after a tampering has been looked into, the next anchor starts from what is there.
    """
    now = clock.now()
    at = at if at is not None else now - settings.LEDGER_ANCHOR_LAG
    if timezone.is_naive(at):
        raise ValidationError({"at": "Give a timezone-aware instant (with an offset)."})
    if at > now:
        raise ValidationError({"at": "An anchor covers what is recorded already, not the future."})
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK])
    previous = LedgerAnchor.objects.order_by("-at").first()
    if previous is not None:
        if at <= previous.at:
            raise ValidationError(
                {"at": f"The latest anchor already covers until {iso(previous.at)}."}
            )
        if not force:
            check = anchor_check(previous)
            if not check.ok:
                raise AnchorRefused(check)
    highest = ChainHead.objects.aggregate(highest=Max("contact_id"))["highest"] or 0
    digest = digest_heads(heads_as_of(at), bucket_size_for(highest))
    anchor = LedgerAnchor(
        at=at,
        created_at=now,
        chains=digest.chains,
        events=digest.events,
        bucket_size=digest.bucket_size,
        buckets=digest.buckets,
        root=digest.root,
        previous=anchor_digest(previous) if previous is not None else GENESIS,
        key_id=key_id(),
    )
    anchor.signature = sign(anchor_record(anchor))
    anchor.save(force_insert=True)
    return anchor


# --- Export ------------------------------------------------------------------------------------


def anchor_json(anchor: LedgerAnchor) -> dict[str, Any]:
    return {
        "id": anchor.pk,
        **anchor_record(anchor),
        "buckets": anchor.buckets,
        "signature": anchor.signature,
        "digest": anchor_digest(anchor),
    }


def anchors_export(*, since: int | None = None) -> dict[str, Any]:
    """Every anchor (after anchor ``since``), oldest first, to be kept outside the database."""
    anchors = LedgerAnchor.objects.order_by("at")
    if since is not None:
        anchors = anchors.filter(pk__gt=since)
    return {
        "format": FORMAT,
        "generated_at": iso(clock.now()),
        "key_id": key_id(),
        "genesis": GENESIS,
        "algorithm": ALGORITHM,
        "anchors": [anchor_json(anchor) for anchor in anchors.iterator()],
    }


# --- Anchors kept outside -------------------------------------------------------------------------


class BadExport(ValueError):
    """Not an export of ``anchors_export``."""


def anchor_from_json(item: dict[str, Any]) -> LedgerAnchor:
    """An exported anchor, as a (not saved) ``LedgerAnchor``."""
    try:
        anchor = LedgerAnchor(
            pk=int(item["id"]),
            at=datetime.fromisoformat(item["at"]),
            created_at=datetime.fromisoformat(item["created_at"]),
            chains=int(item["chains"]),
            events=int(item["events"]),
            bucket_size=int(item["bucket_size"]),
            buckets=list(item["buckets"]),
            root=str(item["root"]),
            previous=str(item["previous"]),
            key_id=str(item["key_id"]),
            signature=str(item["signature"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BadExport(f"anchor {item.get('id', '?')!r}: {exc!r}") from exc
    if anchor_digest(anchor) != item.get("digest"):
        raise BadExport(f"anchor #{anchor.pk}: its digest does not match its fields")
    return anchor


def outside_check(data: dict[str, Any]) -> tuple[AnchorCheck | None, list[str]]:
    """Anchors kept outside (``anchors_export``) against the database and the ledger: each must
    still be in the database as it was exported, and the latest must match the ledger.
    Returns (the latest's check, the problems of the others)."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BadExport(f"not a {FORMAT} export")
    kept = sorted((anchor_from_json(item) for item in data.get("anchors", [])), key=lambda a: a.at)
    problems = []
    stored = {a.pk: a for a in LedgerAnchor.objects.filter(pk__in=[a.pk for a in kept])}
    for anchor in kept:
        found = stored.get(anchor.pk)
        name = f"anchor #{anchor.pk} of {iso(anchor.at)}, kept outside,"
        if found is None:
            problems.append(f"{name} is no longer in the database")
        elif anchor_digest(found) != anchor_digest(anchor):
            problems.append(f"{name} differs from the database's (altered since exported)")
    return (anchor_check(kept[-1]) if kept else None), problems
