"""One fact from a generic description, for callers that hold one rather than a call: the
integration API (``POST /api/v1/events``) and the case-book runner.

Each type has its service; ``event_record`` calls it with the fields of the description that the
service takes (by their names: ``topic``, ``channel``, ``until``, ``category``...). A field the
description lacks, or gives as ``None``, takes the service's default where it has one, and is
``None`` for the service's own checks where it has none.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from consents.models import Contact, Event
from consents.services.commerce import (
    address_change_record,
    bounce_record,
    contract_end,
    contract_start,
    interaction_record,
    purchase_record,
)
from consents.services.consents import (
    callback_request,
    complaint_record,
    consent_confirm,
    consent_grant,
    consent_withdraw,
    marketing_pause,
    repermission_record,
)
from consents.services.writing import Proof
from consents.vocab import EventType

RECORDERS: dict[str, Callable[..., Event]] = {
    EventType.OPT_IN: consent_grant,
    EventType.DOI_CONFIRMED: consent_confirm,
    EventType.OPT_OUT: consent_withdraw,
    EventType.COMPLAINT: complaint_record,
    EventType.PAUSE: marketing_pause,
    EventType.PURCHASE: purchase_record,
    EventType.CONTRACT_START: contract_start,
    EventType.CONTRACT_END: contract_end,
    EventType.INTERACTION: interaction_record,
    EventType.BOUNCE: bounce_record,
    EventType.ADDRESS_CHANGED: address_change_record,
    EventType.CALLBACK_REQUEST: callback_request,
    EventType.REPERMISSION_SENT: repermission_record,
}
# What the caller gives apart from the description; a description never sets these.
_CALL = frozenset({"contact", "proof", "occurred_at", "created_here", "renewal"})
# Per type: the service's own parameters, and whether each has a default.
_FIELDS = {
    kind: tuple(
        (name, p.default is not inspect.Parameter.empty)
        for name, p in inspect.signature(recorder).parameters.items()
        if name not in _CALL
    )
    for kind, recorder in RECORDERS.items()
}


def event_record(
    *,
    type: str,
    contact: Contact,
    proof: Proof,
    occurred_at: datetime | None,
    fields: Mapping[str, Any],
) -> Event:
    """Record one fact of ``type`` (an ``EventType``) through its service."""
    given = {
        name: fields.get(name)
        for name, optional in _FIELDS[type]
        if not optional or fields.get(name) is not None
    }
    return RECORDERS[type](contact=contact, proof=proof, occurred_at=occurred_at, **given)
