"""The ledger's hash chain: canonical form of an event and the chain hash.

``hash = sha256(prev_hash + canonical_json(event))``, per contact. The canonical form covers
every proof field of the event but not the personal evidence, of which it holds only the digest,
so that erasure can wipe the evidence while the chain still verifies.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
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


def evidence_digest(ip_address: str | None, user_agent: str, details: dict[str, Any] | None) -> str:
    """Digest of the personal evidence; empty when there is none."""
    if not ip_address and not user_agent and not details:
        return ""
    payload = canonical_json({"ip": ip_address, "ua": user_agent, "details": details or {}})
    return hashlib.sha256(payload.encode()).hexdigest()


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
    try:
        return all(canonical_text_agrees(sample) for sample in samples)
    except Exception:  # a changed signature is a changed canonical form too
        return False


CANONICAL_TEMPLATE = _self_test()


# --- Verification -----------------------------------------------------------------------------


@dataclass
class Verification:
    """What walking the chains of a range of contacts found."""

    checked: int = 0  # events whose link and hash were checked
    chains: int = 0  # contacts with at least one event in the range
    broken: dict[str, Any] | None = None  # the first broken link, if any


_VERIFY_SQL = (
    "SELECT e.id, e.contact_id, e.seq, e.type, e.topic, e.channel, e.occurred_at, e.recorded_at,"
    " e.method, e.actor, e.collection_point, e.store_id, e.notice_id, e.proof, e.data,"
    " e.evidence_digest, e.prev_hash, e.hash"
    " FROM consents_event e WHERE e.contact_id >= %s AND e.contact_id < %s"
    " ORDER BY e.contact_id, e.seq"
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


def _broken(row: Any, problem: str) -> dict[str, Any]:
    r = _Row._make(row)
    return {"contact_id": r.contact_id, "event_id": r.event_id, "seq": r.seq, "problem": problem}


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
    result before the first row), the canonical text spelt with ``canonical_text``."""
    from django.db import connection, transaction

    result = Verification()
    data_cache = _DataCache()
    template = CANONICAL_TEMPLATE
    sha256 = hashlib.sha256
    text = canonical_text
    contact, expected_seq, expected_prev = None, 1, GENESIS
    checked = chains = 0
    with transaction.atomic(savepoint=False):
        connection.ensure_connection()
        with connection.connection.cursor(name="verify_ledger") as cursor:
            cursor.itersize = chunk_size
            cursor.execute(_VERIFY_PG_SQL, [lo, hi])
            while rows := cursor.fetchmany(chunk_size):
                sample = True
                for row in rows:
                    (
                        _,
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
                        contact, expected_seq, expected_prev = contact_id, 1, GENESIS
                        chains += 1
                    if seq != expected_seq:
                        result.broken = _broken(row, MISSING.format(expected=expected_seq, seq=seq))
                        break
                    if prev_hash != expected_prev:
                        result.broken = _broken(row, RELINKED)
                        break
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
                        result.broken = _broken(row, ALTERED)
                        break
                    checked += 1
                    expected_seq, expected_prev = seq + 1, stored_hash
                if result.broken is not None:
                    break
    result.checked, result.chains = checked, chains
    return result


def _verify_generic(lo: int, hi: int, chunk_size: int) -> Verification:
    """The chains of ``lo <= contact < hi`` through Django's cursor (SQLite), with
    ``canonical_event`` itself."""
    from django.db import connection

    result = Verification()
    contact, expected_seq, expected_prev = None, 1, GENESIS
    with connection.chunked_cursor() as cursor:
        cursor.execute(_VERIFY_SQL, [lo, hi])
        while rows := cursor.fetchmany(chunk_size):
            for row in rows:
                r = _Row._make(row)
                if r.contact_id != contact:
                    contact, expected_seq, expected_prev = r.contact_id, 1, GENESIS
                    result.chains += 1
                # SQLite hands JSON back as text, and instants as naive UTC.
                data = json.loads(r.data) if isinstance(r.data, str) else r.data
                occurred_at, recorded_at = r.occurred_at, r.recorded_at
                if occurred_at.tzinfo is None:
                    occurred_at = occurred_at.replace(tzinfo=UTC)
                    recorded_at = recorded_at.replace(tzinfo=UTC)
                problem = None
                if r.seq != expected_seq:
                    problem = MISSING.format(expected=expected_seq, seq=r.seq)
                elif r.prev_hash != expected_prev:
                    problem = RELINKED
                elif (
                    _slow_hash(r, data=data, occurred_at=occurred_at, recorded_at=recorded_at)
                    != r.hash
                ):
                    problem = ALTERED
                if problem:
                    result.broken = _broken(row, problem)
                    return result
                result.checked += 1
                expected_seq, expected_prev = r.seq + 1, r.hash
    return result


def verify_chains(lo: int, hi: int, chunk_size: int = 20000) -> Verification:
    """Walk the chains of contacts ``lo <= id < hi`` up to the first broken link, if any."""
    from django.db import connection

    if connection.vendor == "postgresql":
        return _verify_postgresql(lo, hi, chunk_size)
    return _verify_generic(lo, hi, chunk_size)


def verify_range(lo: int, hi: int, chunk_size: int = 20000) -> tuple[int, dict[str, Any] | None]:
    """Walk the chains of contacts ``lo <= id < hi``; return (events checked, first broken link)."""
    result = verify_chains(lo, hi, chunk_size)
    return result.checked, result.broken
