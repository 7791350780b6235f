"""Retention (RULES.md): one last neutral ask before expiry, then erasure.

Who is asked is the audience of a ``repermission`` message on email (``audience.py``, one
set-based query over the projections, the same answer as ``rules.decide``); who is erased is every
contact whose stored expiry has passed and who is not erased yet. A "yes, keep me" is recorded as
an ``interaction`` of kind ``contact``: the person contacting us is person-initiated (it restarts
the retention clock) and it is not an ``opt_in`` (answering a neutral question invents no consent
to any topic).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction

from consents import clock, links, services
from consents.audience import audience
from consents.models import Contact, ContactFacts
from consents.outbox import email_enqueue
from consents.rules import Message
from consents.vocab import Channel, InteractionKind, Purpose

TEMPLATE = "repermission"


@dataclass
class Plan:
    now: datetime
    # (contact id, public id, reason)
    repermission: list[tuple[int, str, str]] = field(default_factory=list)
    # (contact id, public id, expired at)
    erase: list[tuple[int, str, datetime]] = field(default_factory=list)


def plan(now: datetime | None = None, *, limit: int | None = None) -> Plan:
    now = now or clock.now()
    result = Plan(now=now)
    for row in audience(Message(channel=Channel.EMAIL, purpose=Purpose.REPERMISSION), now):
        result.repermission.append((row.contact_id, row.public_id, row.reason))
        if limit and len(result.repermission) >= limit:
            break
    expired = (
        ContactFacts.objects.filter(expires_at__lte=now, contact__erasure__isnull=True)
        .order_by("contact_id")
        .values_list("contact_id", "contact__public_id", "expires_at")
    )
    result.erase = list(expired[:limit] if limit else expired)
    return result


@transaction.atomic
def ask(contact_id: int, now: datetime) -> bool:
    """Send one repermission email and record ``repermission_sent``, in one transaction."""
    contact = Contact.objects.select_for_update().get(pk=contact_id)
    if not contact.email:
        return False
    services.repermission_record(
        contact=contact,
        channel=Channel.EMAIL,
        proof=services.Proof(actor="system", collection_point="retention:repermission"),
    )
    email_enqueue(
        to=contact.email,
        template=TEMPLATE,
        context={"first_name": contact.first_name},
        links={"keep_url": links.intent("keep")},
        language=contact.locale,
        contact=contact,
    )
    return True


def run(now: datetime | None = None) -> dict[str, int]:
    """The daily job: ask those due, erase those expired. Idempotent: a second run finds nobody."""
    current = plan(now)
    asked = sum(ask(contact_id, current.now) for contact_id, _, _ in current.repermission)
    erased = 0
    for contact_id, _, expired_at in current.erase:
        services.contact_erase(
            contact=Contact.objects.get(pk=contact_id),
            reason=f"retention: expired on {expired_at:%Y-%m-%d}",
            actor="system:retention",
        )
        erased += 1
    return {"asked": asked, "erased": erased}


def keep(contact: Contact, *, ip_address: str | None, user_agent: str) -> None:
    """The person answered yes: record them contacting us, which restarts the clock."""
    services.interaction_record(
        contact=contact,
        kind=InteractionKind.CONTACT,
        proof=services.Proof(
            actor="person",
            collection_point="retention:keep",
            ip_address=ip_address,
            user_agent=user_agent[:500],
        ),
    )
