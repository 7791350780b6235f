"""Consent receipts anyone can check: ISO/IEC TS 27560 fields, signed with Ed25519.

The ledger's anchors are signed with HMAC (``consents.anchors``), which only a holder of the key
can verify. A receipt is for the person and for third parties (an auditor, a regulator), so it is
signed with an Ed25519 key whose public half the API publishes (``GET /api/v1/receipts/key``, a
JWK). The private key is ``RECEIPT_SIGNING_KEY`` (32 bytes, base64) when set, else derived from
the anchoring key (``HMAC-SHA256(LEDGER_ANCHOR_KEY, "assent.receipts.ed25519.v1")`` as the seed):
the same processes hold it, and rotating the anchoring key rotates it (the ``kid`` changes).

What is signed: the UTF-8 bytes of the receipt's canonical JSON (keys sorted, no spaces, as the
ledger hashes events). To check one: rebuild those bytes from ``receipt``, decode ``signature.
value`` (base64url) and verify it with the public key ``x`` of the JWK whose ``kid`` matches.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings

from consents import anchors, ledger
from consents.models import Contact

SCHEMA = "assent.receipt.v1"
STANDARD = "ISO/IEC TS 27560:2023"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def private_key() -> Ed25519PrivateKey:
    configured = getattr(settings, "RECEIPT_SIGNING_KEY", "")
    if configured:
        seed = base64.b64decode(configured)
    else:
        seed = hmac.new(
            anchors.anchor_key(), b"assent.receipts.ed25519.v1", hashlib.sha256
        ).digest()
    return Ed25519PrivateKey.from_private_bytes(seed[:32])


def public_bytes(key: Ed25519PublicKey | None = None) -> bytes:
    key = key or private_key().public_key()
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(raw_public: bytes | None = None) -> str:
    return hashlib.sha256(raw_public or public_bytes()).hexdigest()[:16]


def jwk() -> dict[str, str]:
    raw = public_bytes()
    return {"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": key_id(raw),
            "x": b64url(raw)}  # fmt: skip


def signed_bytes(receipt: dict[str, Any]) -> bytes:
    return ledger.canonical_json(receipt).encode()


def sign(receipt: dict[str, Any]) -> dict[str, Any]:
    signature = private_key().sign(signed_bytes(receipt))
    return {
        "receipt": receipt,
        "signature": {"alg": "EdDSA", "kid": key_id(), "value": b64url(signature)},
    }


def verify(signed: dict[str, Any], public_jwk: dict[str, str]) -> bool:
    """What anyone can do with the published key (the tests use it as an outsider would)."""
    from cryptography.exceptions import InvalidSignature

    key = Ed25519PublicKey.from_public_bytes(b64url_decode(public_jwk["x"]))
    try:
        key.verify(b64url_decode(signed["signature"]["value"]), signed_bytes(signed["receipt"]))
    except (InvalidSignature, KeyError, ValueError):
        return False
    return True


def _state(entry: dict[str, Any]) -> str:
    event = entry["event"]
    if entry["withdrawn"] is not None:
        return "withdrawn"
    if event.data.get("doi") == "pending" and entry["confirmation"] is None:
        return "pending"
    return "active"


def receipt(contact: Contact, entry: dict[str, Any], issued_at: datetime) -> dict[str, Any]:
    """One consent (an ``opt_in`` of ``consents.selectors.proof.receipts``) as a TS 27560 record."""
    event = entry["event"]
    topic, notice = entry["topic"], entry["notice"]
    confirmation, withdrawn = entry["confirmation"], entry["withdrawn"]
    return {
        "schema": SCHEMA,
        "standard": STANDARD,
        "record_id": f"{contact.public_id}-{event.seq}",
        "issued_at": ledger.iso(issued_at),
        "pii_principal_id": contact.public_id,
        "controller": {"name": settings.BRAND_NAME, "url": settings.SITE_URL},
        "jurisdiction": "EU",
        "purpose": {
            "topic": event.topic,
            "name": topic.name_en if topic else event.topic,
            "purpose": topic.purpose if topic else None,
            "channel": event.channel,
            "lawful_basis": "consent (GDPR art. 6(1)(a))",
        },
        "notice": (
            {
                "id": notice.pk,
                "language": notice.language,
                "version": notice.version,
                "sha256": notice.sha256,
            }
            if notice
            else None
        ),
        "method": event.method,
        "collection_point": event.collection_point,
        "double_opt_in": event.data.get("doi") == "pending",
        "proof_reference": event.proof or None,
        "given_at": ledger.iso(event.occurred_at),
        "recorded_at": ledger.iso(event.recorded_at),
        "confirmed_at": ledger.iso(confirmation.occurred_at) if confirmation else None,
        "withdrawn_at": ledger.iso(withdrawn.occurred_at) if withdrawn else None,
        "state": _state(entry),
        "ledger": {"sequence": event.seq, "hash": event.hash, "prev_hash": event.prev_hash},
    }
