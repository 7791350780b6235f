"""The ledger's hash chain: canonical form of an event and the chain hash.

``hash = sha256(prev_hash + canonical_json(event))``, per contact. The canonical form covers
every proof field of the event but not the personal evidence, of which it holds only a keyed
digest, so that erasure can wipe the evidence (and the digest's key) while the chain still
verifies. The last event of every chain is also recorded as its head (``ChainHead``), so that a
chain that lost its tail, or disappeared whole, shows.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

GENESIS = "0" * 64


def iso(at: datetime | None) -> str | None:
    """One spelling per instant: UTC, microseconds, a Z."""
    if at is None:
        return None
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_event(
    *,
    contact_id: int,
    seq: int,
    type: str,
    topic: str,
    channel: str,
    occurred_at: datetime,
    recorded_at: datetime,
    method: str,
    actor: str,
    collection_point: str,
    store_id: int | None,
    notice_id: int | None,
    proof: str,
    data: dict[str, Any],
    evidence_digest: str,
) -> str:
    return canonical_json(
        {
            "v": 1,
            "contact": contact_id,
            "seq": seq,
            "type": type,
            "topic": topic,
            "channel": channel,
            "occurred_at": iso(occurred_at),
            "recorded_at": iso(recorded_at),
            "method": method,
            "actor": actor,
            "collection_point": collection_point,
            "store": store_id,
            "notice": notice_id,
            "proof": proof,
            "data": data,
            "evidence": evidence_digest,
        }
    )


def chain_hash(prev_hash: str, canonical: str) -> str:
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


def evidence_digest(
    ip_address: str | None,
    user_agent: str,
    details: dict[str, Any] | None,
    *,
    salt: str = "",
) -> str:
    """Digest of the personal evidence; empty when there is none.

    Keyed: ``HMAC-SHA256(salt, canonical_json(evidence))``, with a random salt kept in the
    erasable ``Evidence`` row. Once erasure has wiped the salt, nobody can tell which IP address
    the chained digest was made from by trying them all (there are only 2^32 IPv4 addresses).
    Without a salt: the plain SHA-256 of events recorded before digests were keyed, kept so that
    their evidence can still be checked against their digest.
    """
    if not ip_address and not user_agent and not details:
        return ""
    payload = canonical_json({"ip": ip_address, "ua": user_agent, "details": details or {}})
    if salt:
        return hmac.new(salt.encode(), payload.encode(), hashlib.sha256).hexdigest()
    return hashlib.sha256(payload.encode()).hexdigest()


def evidence_salt() -> str:
    """A fresh key for one event's evidence digest (128 random bits)."""
    return secrets.token_hex(16)


def evidence_seal(
    ip_address: str | None, user_agent: str, details: dict[str, Any] | None
) -> tuple[str, str]:
    """(digest, salt) for a new event's evidence; ("", "") when there is none. The one place
    that new digests come from, for ``services._append`` and ``bulk`` alike."""
    if not ip_address and not user_agent and not details:
        return "", ""
    salt = evidence_salt()
    return evidence_digest(ip_address, user_agent, details, salt=salt), salt


# A URL (a scheme, or a path on our own site): its query string and fragment are the page's
# parameters (``/subscribe/?email=...``), and its user information a login; none is a collection
# point, and a chained field is never erased.
_URL = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*://|/)")
_AUTHORITY = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/]*@")


def collection_point(value: str) -> str:
    """What the chain keeps of where a fact was collected: URLs without their query string,
    fragment or user information; other references (``store:PAR01``, ``call:…``) as they are."""
    value = value or ""
    if _URL.match(value):
        value = re.split(r"[?#]", value, maxsplit=1)[0]
        value = _AUTHORITY.sub(r"\1", value)
    return value[:500]


def event_hash(event: Any) -> str:
    """Recompute an ``Event`` row's hash from its stored fields."""
    return chain_hash(
        event.prev_hash,
        canonical_event(
            contact_id=event.contact_id,
            seq=event.seq,
            type=event.type,
            topic=event.topic,
            channel=event.channel,
            occurred_at=event.occurred_at,
            recorded_at=event.recorded_at,
            method=event.method,
            actor=event.actor,
            collection_point=event.collection_point,
            store_id=event.store_id,
            notice_id=event.notice_id,
            proof=event.proof,
            data=event.data,
            evidence_digest=event.evidence_digest,
        ),
    )


# --- The canonical text, fast -----------------------------------------------------------------
# Building ``canonical_event``'s text is most of the cost of chaining (consents.bulk) and of
# verifying (below), so both spell it with one template: the same keys in the same (sorted)
# order, each value encoded as ``json.dumps(ensure_ascii=False)`` encodes it, the two instants
# passed as their ``iso`` text (which a caller can compute once per batch, or have PostgreSQL
# format) and ``data`` as its canonical JSON text (which a caller can share with the stored row).
# The template is compared with ``canonical_event`` on sample events when this module is imported
# (``CANONICAL_TEMPLATE``); its callers fall back to ``canonical_event`` when it disagrees, and
# compare it again on samples of real events as they go.

_encode = json.encoder.encode_basestring  # what json.dumps(ensure_ascii=False) does to a str
# canonical_json's encoder (sort_keys, compact separators, ensure_ascii=False), built once
# instead of once per call.
_c_encoder = json.encoder.c_make_encoder
_json_chunks = (
    _c_encoder(None, json.JSONEncoder().default, _encode, None, ":", ",", True, False, True)
    if _c_encoder is not None
    else None
)


def canonical_data(value: Any) -> str:
    """``canonical_json(value)``, faster for a dict (an event's ``data``)."""
    if _json_chunks is None or type(value) is not dict:
        return canonical_json(value)
    return "".join(_json_chunks(value, 0))


def fast_iso(at: datetime) -> str:
    """``iso(at)``, faster."""
    utc = at.astimezone(UTC)
    if utc.year < 1000:  # strftime does not pad the year
        return iso(utc)  # type: ignore[return-value]
    return utc.isoformat(timespec="microseconds")[:-6] + "Z"


def _number(value: Any) -> str:
    if value is None:
        return "null"
    return str(value) if type(value) is int else canonical_data(value)


def canonical_text(
    contact_id: int,
    seq: int,
    kind: str,
    topic: str,
    channel: str,
    occurred_iso: str,
    recorded_iso: str,
    method: str,
    actor: str,
    collection_point: str,
    store_id: int | None,
    notice_id: int | None,
    proof: str,
    data_json: str,
    evidence_digest: str,
) -> str:
    """``canonical_event``'s text from the instants' ``iso`` text and ``data``'s canonical JSON."""
    enc = _encode
    return (
        f'{{"actor":{enc(actor)},"channel":{enc(channel)},'
        f'"collection_point":{enc(collection_point)},"contact":{contact_id},"data":{data_json},'
        f'"evidence":{enc(evidence_digest)},"method":{enc(method)},"notice":{_number(notice_id)},'
        f'"occurred_at":{enc(occurred_iso)},"proof":{enc(proof)},'
        f'"recorded_at":{enc(recorded_iso)},"seq":{seq},"store":{_number(store_id)},'
        f'"topic":{enc(topic)},"type":{enc(kind)},"v":1}}'
    )


def evidence_text(ip_address: str | None, user_agent: str, details_json: str) -> str:
    """``evidence_digest``'s payload, ``canonical_json({"details", "ip", "ua"})``, from the
    details' canonical JSON text (which a caller can share with the stored ``Evidence`` row)."""
    ip = "null" if ip_address is None else _encode(ip_address)
    return f'{{"details":{details_json},"ip":{ip},"ua":{_encode(user_agent)}}}'


def evidence_seal_text(
    ip_address: str | None, user_agent: str, details_json: str
) -> tuple[str, str]:
    """``evidence_seal`` for evidence whose details are already canonical JSON text (a str
    address and user agent; there is evidence): the same (digest, salt)."""
    salt = evidence_salt()
    payload = evidence_text(ip_address, user_agent, details_json)
    return hmac.digest(salt.encode(), payload.encode(), "sha256").hex(), salt


def canonical_text_agrees(fields: dict[str, Any]) -> bool:
    """Does ``canonical_text`` spell these ``canonical_event`` arguments as it does?"""
    expected = canonical_event(**fields)
    actual = canonical_text(
        fields["contact_id"],
        fields["seq"],
        fields["type"],
        fields["topic"],
        fields["channel"],
        fast_iso(fields["occurred_at"]),
        fast_iso(fields["recorded_at"]),
        fields["method"],
        fields["actor"],
        fields["collection_point"],
        fields["store_id"],
        fields["notice_id"],
        fields["proof"],
        canonical_data(fields["data"]),
        fields["evidence_digest"],
    )
    return actual == expected


def _self_test() -> bool:
    from datetime import timedelta, timezone

    at = datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=timezone(timedelta(hours=2)))
    samples = [
        {
            "contact_id": 1, "seq": 1, "type": "opt_in", "topic": "promotions", "channel": "email",
            "occurred_at": at, "recorded_at": at.astimezone(UTC), "method": "web_form",
            "actor": "person", "collection_point": "https://x.example/a?b=1&c=\"d\"",
            "store_id": None, "notice_id": None, "proof": "",
            "data": {"doi": "none", "prechecked": False, "bundled": False},
            "evidence_digest": "",
        },
        {
            "contact_id": 123456789012, "seq": 42, "type": "purchase", "topic": "", "channel": "",
            "occurred_at": at.replace(microsecond=0), "recorded_at": at, "method": "",
            "actor": "staff:Zoé \t\n\\ \u2028 \U0001f600", "collection_point": "",
            "store_id": 7, "notice_id": 3, "proof": "réf. «1»",
            "data": {"product": "ü\"x", "category": "books", "n": [1, None, True, 1.5]},
            "evidence_digest": "a" * 64,
        },
        {
            "contact_id": 5, "seq": 2, "type": "pause", "topic": "", "channel": "*",
            "occurred_at": datetime(1999, 12, 31, tzinfo=UTC), "recorded_at": at, "method": "",
            "actor": "system", "collection_point": "", "store_id": None, "notice_id": 9,
            "proof": "", "data": {}, "evidence_digest": "",
        },
        {
            "contact_id": 6, "seq": 3, "type": "interaction", "topic": "", "channel": "",
            "occurred_at": datetime(987, 6, 5, 4, 3, 2, 1, tzinfo=UTC), "recorded_at": at,
            "method": "", "actor": "system", "collection_point": "", "store_id": None,
            "notice_id": None, "proof": "", "data": {"kind": "click", "z": {"b": 1, "a": 2}},
            "evidence_digest": "",
        },
    ]  # fmt: skip
    evidence = [
        ("203.0.113.9", "", {"source": "mailchimp", "OPTIN_TIME": "2024-01-02 03:04:05"}),
        (None, "Mozilla/5.0 «x» \t\u2028", {}),
        ("2001:db8::1", "ua", {"n": [1, None, True, 1.5], "z": {"b": 1, "a": "é"}}),
    ]
    try:
        return all(canonical_text_agrees(sample) for sample in samples) and all(
            evidence_text(ip, ua, canonical_data(details))
            == canonical_json({"ip": ip, "ua": ua, "details": details})
            for ip, ua, details in evidence
        )
    except Exception:  # a changed signature is a changed canonical form too
        return False


CANONICAL_TEMPLATE = _self_test()


# --- Verification -----------------------------------------------------------------------------

# Problems kept per verification, to name them; all of them are counted.
PROBLEM_LIMIT = 1000


@dataclass
class Verification:
    """What walking the chains of a range of contacts, beside their recorded heads, found."""

    checked: int = 0  # events whose link and hash were checked
    chains: int = 0  # contacts with at least one event in the range
    heads: int = 0  # recorded heads in the range
    # One dict per problem (contact_id, event_id, seq, kind, problem), in contact order: the
    # first broken link of each chain, and each chain that does not end at its recorded head.
    problems: list[dict[str, Any]] = field(default_factory=list)
    problem_count: int = 0  # beyond PROBLEM_LIMIT too

    @property
    def broken(self) -> dict[str, Any] | None:
        """The first problem (of the lowest contact id), if any."""
        return self.problems[0] if self.problems else None

    def add(self, problem: dict[str, Any]) -> None:
        self.problem_count += 1
        if len(self.problems) < PROBLEM_LIMIT:
            self.problems.append(problem)

    @classmethod
    def combine(cls, parts: Iterable[Verification]) -> Verification:
        """The verifications of ranges that do not overlap, as one."""
        total = cls()
        for part in parts:
            total.checked += part.checked
            total.chains += part.chains
            total.heads += part.heads
            total.problem_count += part.problem_count
            total.problems.extend(part.problems)
        total.problems.sort(key=lambda p: (p["contact_id"], p["seq"]))
        del total.problems[PROBLEM_LIMIT:]
        return total


_VERIFY_SQL = (
    "SELECT e.id, e.contact_id, e.seq, e.type, e.topic, e.channel, e.occurred_at, e.recorded_at,"
    " e.method, e.actor, e.collection_point, e.store_id, e.notice_id, e.proof, e.data,"
    " e.evidence_digest, e.prev_hash, e.hash"
    " FROM consents_event e WHERE e.contact_id >= %s AND e.contact_id < %s"
    " ORDER BY e.contact_id, e.seq"
)
_HEADS_SQL = (
    "SELECT h.contact_id, h.seq, h.hash, h.recorded_at FROM consents_chainhead h"
    " WHERE h.contact_id >= %s AND h.contact_id < %s ORDER BY h.contact_id"
)

# The same rows for PostgreSQL, with the instants already spelt as ``iso`` spells them (UTC,
# microseconds, a Z; the year is padded to 4 digits, which ``_pg_iso`` undoes below 1000) and
# ``data`` as the server's text, which is parsed once per distinct value (``_DataCache``).
_PG_ISO = """to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
_VERIFY_PG_SQL = (
    "SELECT e.id, e.contact_id, e.seq, e.type, e.topic, e.channel, "
    + _PG_ISO.format("e.occurred_at")
    + ", "
    + _PG_ISO.format("e.recorded_at")
    + ", e.method, e.actor, e.collection_point, e.store_id, e.notice_id, e.proof, e.data::text,"
    " e.evidence_digest, e.prev_hash, e.hash"
    " FROM consents_event e WHERE e.contact_id >= %s AND e.contact_id < %s"
    " ORDER BY e.contact_id, e.seq"
)
_HEADS_PG_SQL = (
    "SELECT h.contact_id, h.seq, h.hash, "
    + _PG_ISO.format("h.recorded_at")
    + " FROM consents_chainhead h WHERE h.contact_id >= %s AND h.contact_id < %s"
    " ORDER BY h.contact_id"
)


def _pg_iso(text: str) -> str:
    """``to_char``'s spelling of an instant as ``iso`` spells it (which does not pad the year)."""
    if text[0] != "0":
        return text
    year, rest = text.split("-", 1)
    return f"{int(year)}-{rest}"


class _DataCache(dict):
    """PostgreSQL's text of a ``data`` value -> (the value, its canonical JSON). Most events of a
    ledger share a few dozen ``data`` values; each is parsed and re-spelt once, not per event."""

    limit = 20_000

    def __missing__(self, text: str) -> tuple[Any, str]:
        if len(self) >= self.limit:
            self.clear()
        value = json.loads(text)
        entry = self[text] = (value, canonical_data(value))
        return entry


class _Row(NamedTuple):
    """A row of ``_VERIFY_SQL`` / ``_VERIFY_PG_SQL``, in their column order."""

    event_id: int
    contact_id: int
    seq: int
    type: str
    topic: str
    channel: str
    occurred_at: Any  # a datetime, or its ``iso`` text from PostgreSQL
    recorded_at: Any
    method: str
    actor: str
    collection_point: str
    store_id: int | None
    notice_id: int | None
    proof: bool
    data: Any
    evidence: str
    prev_hash: str
    hash: str


MISSING = "expected position {expected}, found {seq} (a missing event)"
RELINKED = "prev_hash does not match the previous event's hash"
ALTERED = "the event's content does not match its hash (altered)"
# A chain against its recorded head:
TAIL_DELETED = (
    "the chain ends at event #{last} but its recorded head is #{head}: "
    "its tail (events #{first} to #{head}) was deleted"
)
CHAIN_DELETED = "no events, but its recorded head is #{head}: the whole chain was deleted"
UNRECORDED = (
    "events #{first} to #{last} follow the recorded head #{head}: "
    "they were not written by the ledger's writer"
)
HEAD_DIFFERS = (
    "the last event, #{seq}, is not the recorded head (another {what}): the tail was rewritten"
)
NO_HEAD = "the chain (events #1 to #{last}) has no recorded head"
# Problems that compare a chain with its head, which a verification reads in two statements:
# an append committed between them is rechecked before being called a problem.
HEAD_KINDS = frozenset({"tail", "chain", "unrecorded", "head", "no_head"})


def _problem(contact_id: int, event_id: int | None, seq: int, kind: str, text: str) -> dict:
    return {
        "contact_id": contact_id,
        "event_id": event_id,
        "seq": seq,
        "kind": kind,
        "problem": text,
    }


def _broken(row: Any, kind: str, problem: str) -> dict[str, Any]:
    r = _Row._make(row)
    return _problem(r.contact_id, r.event_id, r.seq, kind, problem)


class _Heads:
    """The recorded heads of a range, read in contact order beside the chains' events: each
    chain's last event must be its head, and each head must end a chain."""

    def __init__(self, rows: Iterator[tuple], result: Verification) -> None:
        self._rows = rows
        self._result = result
        self._next = next(rows, None)

    def _advance(self) -> None:
        self._result.heads += 1
        self._next = next(self._rows, None)

    def chain_start(self, contact_id: int | None) -> None:
        """Heads before ``contact_id`` (all that are left, if None) end no chain."""
        while self._next is not None and (contact_id is None or self._next[0] < contact_id):
            head_contact, head_seq = self._next[0], self._next[1]
            self._result.add(
                _problem(head_contact, None, 1, "chain", CHAIN_DELETED.format(head=head_seq))
            )
            self._advance()

    def chain_end(
        self, contact_id: int, event_id: int, seq: int, hash_: str, recorded_at: Any
    ) -> None:
        head = self._next
        if head is None or head[0] != contact_id:
            self._result.add(
                _problem(contact_id, event_id, seq, "no_head", NO_HEAD.format(last=seq))
            )
            return
        self._advance()
        _, head_seq, head_hash, head_recorded = head
        add = self._result.add
        if head_seq > seq:
            text = TAIL_DELETED.format(last=seq, head=head_seq, first=seq + 1)
            add(_problem(contact_id, None, seq + 1, "tail", text))
        elif head_seq < seq:
            text = UNRECORDED.format(first=head_seq + 1, last=seq, head=head_seq)
            add(_problem(contact_id, None, head_seq + 1, "unrecorded", text))
        elif head_hash != hash_ or head_recorded != recorded_at:
            what = "hash" if head_hash != hash_ else "recording instant"
            add(
                _problem(contact_id, event_id, seq, "head", HEAD_DIFFERS.format(seq=seq, what=what))
            )


def _fetch(cursor: Any, size: int, convert: Callable[[tuple], tuple] | None = None) -> Iterator:
    while rows := cursor.fetchmany(size):
        if convert is not None:
            rows = [convert(row) for row in rows]
        yield from rows


def _slow_hash(r: _Row, *, data: Any, occurred_at: datetime, recorded_at: datetime) -> str:
    """The row's hash through ``canonical_event`` itself (the reference spelling)."""
    return chain_hash(
        r.prev_hash,
        canonical_event(
            contact_id=r.contact_id,
            seq=r.seq,
            type=r.type,
            topic=r.topic,
            channel=r.channel,
            occurred_at=occurred_at,
            recorded_at=recorded_at,
            method=r.method,
            actor=r.actor,
            collection_point=r.collection_point,
            store_id=r.store_id,
            notice_id=r.notice_id,
            proof=r.proof,
            data=data,
            evidence_digest=r.evidence,
        ),
    )


def _exact_hash(row: Any, data: Any) -> str:
    """A row of ``_VERIFY_PG_SQL`` (instants as text) hashed the slow way."""
    r = _Row._make(row)
    return _slow_hash(
        r,
        data=data,
        occurred_at=datetime.fromisoformat(r.occurred_at),
        recorded_at=datetime.fromisoformat(r.recorded_at),
    )


def _verify_postgresql(lo: int, hi: int, chunk_size: int) -> Verification:
    """The chains of ``lo <= contact < hi`` from a cursor that streams (inside a transaction: out
    of one, a server-side cursor is declared ``WITH HOLD`` and PostgreSQL materialises the whole
    result before the first row), the canonical text spelt with ``canonical_text``; the recorded
    heads from a second cursor, merged by contact."""
    from django.db import connection, transaction

    result = Verification()
    data_cache = _DataCache()
    template = CANONICAL_TEMPLATE
    sha256 = hashlib.sha256
    text = canonical_text
    contact, expected_seq, expected_prev = None, 1, GENESIS
    last: Any = None  # the previous row: the last of its chain when the contact changes
    skip = False  # the rest of a chain whose first broken link is named
    checked = chains = 0
    with transaction.atomic(savepoint=False):
        connection.ensure_connection()
        pg = connection.connection
        with (
            pg.cursor(name="verify_ledger") as cursor,
            pg.cursor(name="verify_ledger_heads") as head_cursor,
        ):
            cursor.itersize = chunk_size
            cursor.execute(_VERIFY_PG_SQL, [lo, hi])
            head_cursor.execute(_HEADS_PG_SQL, [lo, hi])
            heads = _Heads(_fetch(head_cursor, chunk_size), result)
            while rows := cursor.fetchmany(chunk_size):
                sample = True
                for row in rows:
                    (
                        event_id,
                        contact_id,
                        seq,
                        type_,
                        topic,
                        channel,
                        occurred_at,
                        recorded_at,
                        method,
                        actor,
                        collection_point,
                        store_id,
                        notice_id,
                        proof,
                        data_text,
                        evidence,
                        prev_hash,
                        stored_hash,
                    ) = row
                    if contact_id != contact:
                        if last is not None:
                            heads.chain_end(contact, last[0], last[2], last[17], last[7])
                        heads.chain_start(contact_id)
                        contact, expected_seq, expected_prev, skip = contact_id, 1, GENESIS, False
                        chains += 1
                    last = row
                    if skip:
                        continue
                    if seq != expected_seq:
                        problem = MISSING.format(expected=expected_seq, seq=seq)
                        result.add(_broken(row, "missing", problem))
                        skip = True
                        continue
                    if prev_hash != expected_prev:
                        result.add(_broken(row, "relinked", RELINKED))
                        skip = True
                        continue
                    data, data_json = data_cache[data_text]
                    if template:
                        canonical = text(
                            contact_id, seq, type_, topic, channel, _pg_iso(occurred_at),
                            _pg_iso(recorded_at), method, actor, collection_point, store_id,
                            notice_id, proof, data_json, evidence,
                        )  # fmt: skip
                        computed = sha256((prev_hash + canonical).encode()).hexdigest()
                        if sample:  # the first event of every chunk is also hashed the slow way
                            sample = False
                            exact = _exact_hash(row, data)
                            if exact != computed:
                                template, computed = False, exact  # canonical_event from now on
                    else:
                        computed = _exact_hash(row, data)
                    if computed != stored_hash and (
                        not template or _exact_hash(row, data) != stored_hash
                    ):
                        result.add(_broken(row, "altered", ALTERED))
                        skip = True
                        continue
                    checked += 1
                    expected_seq, expected_prev = seq + 1, stored_hash
            if last is not None:
                heads.chain_end(contact, last[0], last[2], last[17], last[7])
            heads.chain_start(None)
    result.checked, result.chains = checked, chains
    return result


def _aware(at: Any) -> Any:
    # SQLite hands instants back as naive UTC.
    return at.replace(tzinfo=UTC) if isinstance(at, datetime) and at.tzinfo is None else at


def _verify_generic(lo: int, hi: int, chunk_size: int) -> Verification:
    """The chains of ``lo <= contact < hi`` through Django's cursor (SQLite), with
    ``canonical_event`` itself; the recorded heads from a second cursor, merged by contact."""
    from django.db import connection

    result = Verification()
    contact, expected_seq, expected_prev = None, 1, GENESIS
    last: _Row | None = None
    skip = False
    with connection.chunked_cursor() as cursor, connection.chunked_cursor() as head_cursor:
        cursor.execute(_VERIFY_SQL, [lo, hi])
        head_cursor.execute(_HEADS_SQL, [lo, hi])
        heads = _Heads(
            _fetch(head_cursor, chunk_size, lambda h: (h[0], h[1], h[2], _aware(h[3]))), result
        )
        while rows := cursor.fetchmany(chunk_size):
            for row in rows:
                r = _Row._make(row)
                if r.contact_id != contact:
                    if last is not None:
                        heads.chain_end(
                            last.contact_id, last.event_id, last.seq, last.hash,
                            _aware(last.recorded_at),
                        )  # fmt: skip
                    heads.chain_start(r.contact_id)
                    contact, expected_seq, expected_prev, skip = r.contact_id, 1, GENESIS, False
                    result.chains += 1
                last = r
                if skip:
                    continue
                # SQLite hands JSON back as text, and instants as naive UTC.
                data = json.loads(r.data) if isinstance(r.data, str) else r.data
                occurred_at, recorded_at = _aware(r.occurred_at), _aware(r.recorded_at)
                problem = kind = None
                if r.seq != expected_seq:
                    kind, problem = "missing", MISSING.format(expected=expected_seq, seq=r.seq)
                elif r.prev_hash != expected_prev:
                    kind, problem = "relinked", RELINKED
                elif (
                    _slow_hash(r, data=data, occurred_at=occurred_at, recorded_at=recorded_at)
                    != r.hash
                ):
                    kind, problem = "altered", ALTERED
                if problem:
                    result.add(_broken(row, kind, problem))
                    skip = True
                    continue
                result.checked += 1
                expected_seq, expected_prev = r.seq + 1, r.hash
        if last is not None:
            heads.chain_end(
                last.contact_id, last.event_id, last.seq, last.hash, _aware(last.recorded_at)
            )
        heads.chain_start(None)
    return result


_RECHECK_SQL = (
    "SELECT h.seq, h.hash, h.recorded_at, e.seq, e.hash, e.recorded_at"
    " FROM consents_contact c"
    " LEFT JOIN consents_chainhead h ON h.contact_id = c.id"
    " LEFT JOIN consents_event e ON e.contact_id = c.id AND e.seq ="
    " (SELECT MAX(e2.seq) FROM consents_event e2 WHERE e2.contact_id = c.id)"
    " WHERE c.id = %s"
)


def _recheck_heads(result: Verification) -> None:
    """Drop the head problems that were an append committed while the verification read the
    ledger and the heads (two statements): in one statement, the head is the last event."""
    from django.db import connection

    kept = []
    with connection.cursor() as cursor:
        for problem in result.problems:
            if problem["kind"] in HEAD_KINDS:
                cursor.execute(_RECHECK_SQL, [problem["contact_id"]])
                row = cursor.fetchone()
                if row is not None and row[0] is not None and row[:3] == row[3:]:
                    result.problem_count -= 1
                    continue
            kept.append(problem)
    result.problems = kept


def verify_chains(lo: int, hi: int, chunk_size: int = 20000) -> Verification:
    """Walk the chains of contacts ``lo <= id < hi``, each up to its first broken link, and
    compare each chain's last event with its recorded head."""
    from django.db import connection

    if connection.vendor == "postgresql":
        result = _verify_postgresql(lo, hi, chunk_size)
    else:
        result = _verify_generic(lo, hi, chunk_size)
    if result.problems:
        _recheck_heads(result)
        result.problems.sort(key=lambda p: (p["contact_id"], p["seq"]))
    return result


def verify_range(lo: int, hi: int, chunk_size: int = 20000) -> tuple[int, dict[str, Any] | None]:
    """Walk the chains of contacts ``lo <= id < hi``; return (events checked, first problem)."""
    result = verify_chains(lo, hi, chunk_size)
    return result.checked, result.broken


def ledger_bounds() -> tuple[int, int] | None:
    """``[lo, hi)``: every contact with an event or a recorded head; None if there is none."""
    from django.db.models import Max, Min

    from consents.models import ChainHead, Event

    lows, highs = [], []
    for model in (Event, ChainHead):
        bounds = model.objects.aggregate(lo=Min("contact_id"), hi=Max("contact_id"))
        if bounds["lo"] is not None:
            lows.append(bounds["lo"])
            highs.append(bounds["hi"])
    return (min(lows), max(highs) + 1) if lows else None


def split_range(lo: int, hi: int, pieces: int) -> list[tuple[int, int]]:
    step = max(1, -(-(hi - lo) // max(1, pieces)))
    return [(start, min(start + step, hi)) for start in range(lo, hi, step)]
