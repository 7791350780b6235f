"""Commercial and delivery facts: purchases, contracts, interactions, bounces, address changes.

As in ``consents.services.consents``: each service checks its fact, then ``_append`` writes it
(its own transaction, or the caller's)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from consents import ledger, validation
from consents.models import Contact, Event
from consents.services.writing import Proof, _append
from consents.vocab import Channel, EventType


def purchase_record(
    *,
    contact: Contact,
    category: str,
    product: str,
    proof: Proof,
    warranty_until: datetime | None = None,
    occurred_at: datetime | None = None,
) -> Event:
    validation.data(EventType.PURCHASE, {"category": category})
    data: dict[str, Any] = {"category": category, "product": product or ""}
    if warranty_until is not None:
        validation.instant("warranty_until", warranty_until, future_ok=True)
        data["warranty_until"] = ledger.iso(warranty_until)
    return _append(
        contact=contact, type=EventType.PURCHASE, occurred_at=occurred_at, proof=proof, data=data
    )


def contract_start(
    *,
    contact: Contact,
    contract: str,
    category: str,
    proof: Proof,
    occurred_at: datetime | None = None,
) -> Event:
    validation.data(EventType.CONTRACT_START, {"contract": contract, "category": category})
    return _append(
        contact=contact,
        type=EventType.CONTRACT_START,
        occurred_at=occurred_at,
        proof=proof,
        data={"contract": contract, "category": category},
    )


def contract_end(
    *,
    contact: Contact,
    contract: str,
    proof: Proof,
    occurred_at: datetime | None = None,
) -> Event:
    validation.data(EventType.CONTRACT_END, {"contract": contract})
    return _append(
        contact=contact,
        type=EventType.CONTRACT_END,
        occurred_at=occurred_at,
        proof=proof,
        data={"contract": contract},
    )


def interaction_record(
    *,
    contact: Contact,
    kind: str,
    proof: Proof,
    occurred_at: datetime | None = None,
) -> Event:
    validation.data(EventType.INTERACTION, {"kind": kind})
    return _append(
        contact=contact,
        type=EventType.INTERACTION,
        occurred_at=occurred_at,
        proof=proof,
        data={"kind": kind},
    )


def bounce_record(
    *,
    contact: Contact,
    hard: bool,
    proof: Proof,
    channel: str = Channel.EMAIL,
    occurred_at: datetime | None = None,
) -> Event:
    validation.channel(channel)
    return _append(
        contact=contact,
        type=EventType.BOUNCE,
        occurred_at=occurred_at,
        proof=proof,
        channel=channel,
        data={"hard": bool(hard)},
    )


def address_change_record(
    *,
    contact: Contact,
    channel: str,
    proof: Proof,
    occurred_at: datetime | None = None,
) -> Event:
    validation.channel(channel)
    return _append(
        contact=contact,
        type=EventType.ADDRESS_CHANGED,
        occurred_at=occurred_at,
        proof=proof,
        channel=channel,
    )
