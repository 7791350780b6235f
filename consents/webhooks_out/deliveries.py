"""Writing deliveries, in the transaction of the facts they tell: one row per endpoint, a thin
payload, the per-contact sequence."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max

from consents import catalogue, clock, ledger
from consents.models import Contact, Event, Notice, WebhookDelivery, WebhookEndpoint
from consents.vocab import ANY, METHODS_NEEDING_PROOF, Channel, Doi, EventType, Method
from consents.webhooks_out.sending import queue_many
from consents.webhooks_out.signing import WITH_EMAIL, Kind

logger = logging.getLogger(__name__)


# Imports record history without telling anyone, unless asked to (``imports``' ``webhooks``).
_muted: ContextVar[bool] = ContextVar("assent_webhooks_muted", default=False)


@contextlib.contextmanager
def muted() -> Iterator[None]:
    """Facts recorded inside are not sent to the endpoints."""
    token = _muted.set(True)
    try:
        yield
    finally:
        _muted.reset(token)


def kind_of(event: Event) -> str | None:
    """The webhook type of a ledger event, or None for events other systems are not told of."""
    data = event.data or {}
    if event.type == EventType.OPT_IN:
        if data.get("doi") == Doi.PENDING:
            return Kind.CONSENT_PENDING
        unproven = event.method in METHODS_NEEDING_PROOF and not event.proof
        if data.get("prechecked") or data.get("bundled") or unproven:
            return None  # not consent (RULES.md): nothing to tell
        return Kind.CONSENT_GRANTED
    if event.type == EventType.DOI_CONFIRMED:
        return Kind.DOI_CONFIRMED
    if event.type == EventType.OPT_OUT:
        if event.method == Method.SUPPRESSION:
            return Kind.CONTACT_SUPPRESSED
        return Kind.CONSENT_WITHDRAWN
    if event.type == EventType.COMPLAINT:
        return Kind.CONSENT_WITHDRAWN
    if event.type == EventType.PAUSE:
        return Kind.CONTACT_RESUMED if data.get("resume") else Kind.CONTACT_PAUSED
    if event.type == EventType.BOUNCE and event.channel == Channel.EMAIL and data.get("hard"):
        return Kind.ADDRESS_UNDELIVERABLE
    if event.type == EventType.PURCHASE:
        return Kind.PURCHASE_RECORDED
    return None


def _endpoints_for(kind: str) -> list[WebhookEndpoint]:
    """The active endpoints that want ``kind``, as the catalogue's snapshot holds them (read
    once per process while no endpoint changes: every ledger event asks)."""
    return [
        endpoint
        for endpoint in catalogue.snapshot().endpoints
        if not endpoint.event_types or kind in endpoint.event_types
    ]


def _event_data(event: Event, contact_public_id: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        "event_id": f"evt_{event.pk}",
        "contact": contact_public_id,
        "sequence": event.seq,
        "topic": event.topic or None,
        "channel": event.channel or None,
        "method": event.method or None,
        "occurred_at": ledger.iso(event.occurred_at),
    }
    if event.type == EventType.COMPLAINT:
        data["topic"], data["complaint"] = ANY, True
    if event.type == EventType.PAUSE:
        data["until"] = (event.data or {}).get("until")
    if event.type == EventType.PURCHASE:
        data["category"] = (event.data or {}).get("category")
        data["product"] = (event.data or {}).get("product") or None
    return data


def _email_for(kind: str, event: Event, contact: Contact) -> str:
    if kind not in WITH_EMAIL or not contact.email:
        return ""
    # An address only for facts about email (or every channel): an SMS opt-out needs none.
    if event.channel not in (Channel.EMAIL, ANY, ""):
        return ""
    return contact.email


def event_recorded(*, event: Event, contact: Contact) -> list[WebhookDelivery]:
    """One delivery per interested endpoint, in the caller's transaction (``services._append``
    calls this for every event it appends); each is queued once the transaction commits."""
    kind = kind_of(event)
    if kind is None or _muted.get():
        return []
    endpoints = _endpoints_for(kind)
    if not endpoints:
        return []
    data = _event_data(event, contact.public_id)
    return _write(
        kind,
        endpoints,
        data,
        contact=contact,
        sequence=event.seq,
        email=_email_for(kind, event, contact),
        timestamp=event.occurred_at,
    )


def events_recorded(events: Iterable[tuple[Event, Contact]]) -> int:
    """``event_recorded`` for many events at once (an import that replays its webhooks)."""
    count = 0
    endpoints = catalogue.snapshot().endpoints
    if not endpoints:
        return 0
    rows: list[WebhookDelivery] = []
    now = clock.now()
    for event, contact in events:
        kind = kind_of(event)
        if kind is None:
            continue
        wanted = [e for e in endpoints if not e.event_types or kind in e.event_types]
        for endpoint in wanted:
            rows.append(
                _row(
                    endpoint,
                    kind,
                    _event_data(event, contact.public_id),
                    contact=contact,
                    sequence=event.seq,
                    email=_email_for(kind, event, contact),
                    timestamp=event.occurred_at,
                    now=now,
                )
            )
    if rows:
        _previous_sequences(rows)
        created = WebhookDelivery.objects.bulk_create(rows, batch_size=1000)
        count = len(created)
        ids = [row.pk for row in created]
        transaction.on_commit(lambda: queue_many(ids))
    return count


def _row(
    endpoint: WebhookEndpoint,
    kind: str,
    data: dict[str, Any],
    *,
    contact: Contact | None,
    sequence: int | None,
    email: str,
    timestamp: datetime,
    now: datetime,
) -> WebhookDelivery:
    return WebhookDelivery(
        endpoint=endpoint,
        message_id=f"msg_{uuid.uuid4().hex}",
        type=kind,
        contact=contact,
        sequence=sequence,
        payload={"type": kind, "timestamp": ledger.iso(timestamp), "data": dict(data)},
        email=email,
        created_at=now,
        next_attempt_at=now,
        give_up_at=now + settings.WEBHOOK_RETRY_FOR,
    )


def _previous_sequences(rows: Sequence[WebhookDelivery]) -> None:
    """Fill ``previous_sequence``: the latest sequence this endpoint was already told of for the
    contact (rows earlier in ``rows`` included), or null for the first."""
    last: dict[tuple[int, int], int | None] = {}
    for row in rows:
        if row.contact_id is None or row.sequence is None:
            continue
        key = (row.endpoint_id, row.contact_id)
        if key not in last:
            last[key] = WebhookDelivery.objects.filter(
                endpoint_id=row.endpoint_id, contact_id=row.contact_id
            ).aggregate(m=Max("sequence"))["m"]
        row.payload["data"]["previous_sequence"] = last[key]
        last[key] = row.sequence


def _write(
    kind: str,
    endpoints: Sequence[WebhookEndpoint],
    data: dict[str, Any],
    *,
    contact: Contact | None,
    sequence: int | None,
    email: str,
    timestamp: datetime,
) -> list[WebhookDelivery]:
    now = clock.now()
    rows = [
        _row(
            endpoint,
            kind,
            data,
            contact=contact,
            sequence=sequence,
            email=email,
            timestamp=timestamp,
            now=now,
        )
        for endpoint in endpoints
    ]
    _previous_sequences(rows)
    created = WebhookDelivery.objects.bulk_create(rows)
    ids = [row.pk for row in created]
    transaction.on_commit(lambda: queue_many(ids))
    return created


def contact_erased(*, contact: Contact, erasure_id: int) -> None:
    """In the erasure's transaction: ``contact.erased`` to the endpoints that want it, and the
    address wiped from every message about the contact, sent or not."""
    WebhookDelivery.objects.filter(contact=contact).exclude(email="").update(email="")
    endpoints = _endpoints_for(Kind.CONTACT_ERASED)
    if not endpoints:
        return
    now = clock.now()
    data = {
        "event_id": f"erasure_{erasure_id}",
        "contact": contact.public_id,
        "occurred_at": ledger.iso(now),
    }
    _write(
        Kind.CONTACT_ERASED, endpoints, data, contact=None, sequence=None, email="", timestamp=now
    )


def notice_published(*, notice: Notice) -> None:
    """In the publication's transaction: ``notice.published`` (a new wording, and its hash)."""
    endpoints = _endpoints_for(Kind.NOTICE_PUBLISHED)
    if not endpoints:
        return
    at = notice.published_at or clock.now()
    data = {
        "event_id": f"notice_{notice.pk}",
        "notice": notice.pk,
        "topic": notice.topic.slug if notice.topic_id else None,
        "language": notice.language,
        "version": notice.version,
        "sha256": notice.sha256,
        "occurred_at": ledger.iso(at),
    }
    _write(
        Kind.NOTICE_PUBLISHED, endpoints, data, contact=None, sequence=None, email="", timestamp=at
    )
