"""The ledger's hash chain: canonical form of an event and the chain hash.

``hash = sha256(prev_hash + canonical_json(event))``, per contact. The canonical form covers
every proof field of the event but not the personal evidence, of which it holds only the digest,
so that erasure can wipe the evidence while the chain still verifies.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

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


# --- Verification -----------------------------------------------------------------------------

_VERIFY_SQL = (
    "SELECT e.id, e.contact_id, e.seq, e.type, e.topic, e.channel, e.occurred_at, e.recorded_at,"
    " e.method, e.actor, e.collection_point, e.store_id, e.notice_id, e.proof, e.data,"
    " e.evidence_digest, e.prev_hash, e.hash"
    " FROM consents_event e WHERE e.contact_id >= %s AND e.contact_id < %s"
    " ORDER BY e.contact_id, e.seq"
)


def verify_range(lo: int, hi: int, chunk_size: int = 10000) -> tuple[int, dict[str, Any] | None]:
    """Walk the chains of contacts ``lo <= id < hi``; return (events checked, first broken link)."""
    from django.db import connection

    checked = 0
    contact, expected_seq, expected_prev = None, 1, GENESIS
    with connection.chunked_cursor() as cursor:
        cursor.execute(_VERIFY_SQL, [lo, hi])
        while rows := cursor.fetchmany(chunk_size):
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
                    data,
                    evidence,
                    prev_hash,
                    stored_hash,
                ) = row
                if contact_id != contact:
                    contact, expected_seq, expected_prev = contact_id, 1, GENESIS
                if isinstance(data, str):  # SQLite hands JSON back as text
                    data = json.loads(data)
                if occurred_at.tzinfo is None:  # and instants as naive UTC
                    occurred_at = occurred_at.replace(tzinfo=UTC)
                    recorded_at = recorded_at.replace(tzinfo=UTC)
                problem = None
                if seq != expected_seq:
                    problem = f"expected position {expected_seq}, found {seq} (a missing event)"
                elif prev_hash != expected_prev:
                    problem = "prev_hash does not match the previous event's hash"
                else:
                    canonical = canonical_event(
                        contact_id=contact_id,
                        seq=seq,
                        type=type_,
                        topic=topic,
                        channel=channel,
                        occurred_at=occurred_at,
                        recorded_at=recorded_at,
                        method=method,
                        actor=actor,
                        collection_point=collection_point,
                        store_id=store_id,
                        notice_id=notice_id,
                        proof=proof,
                        data=data,
                        evidence_digest=evidence,
                    )
                    if chain_hash(prev_hash, canonical) != stored_hash:
                        problem = "the event's content does not match its hash (altered)"
                if problem:
                    return checked, {
                        "contact_id": contact_id,
                        "event_id": event_id,
                        "seq": seq,
                        "problem": problem,
                    }
                checked += 1
                expected_seq, expected_prev = seq + 1, stored_hash
    return checked, None
