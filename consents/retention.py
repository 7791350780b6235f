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

from consents import clock, links, projections, services
from consents.audience import audience
from consents.locks import run_lock
from consents.models import Contact, ContactFacts, Erasure
from consents.outbox import email_enqueue
from consents.rules import Message
from consents.selectors import proof
from consents.vocab import Channel, InteractionKind, Purpose

TEMPLATE = "repermission"
REPERMISSION = Message(channel=Channel.EMAIL, purpose=Purpose.REPERMISSION)


@dataclass
class Plan:
    now: datetime
    # (contact id, public id, reason)
    repermission: list[tuple[int, str, str]] = field(default_factory=list)
    # (contact id, public id, expired at)
    erase: list[tuple[int, str, datetime]] = field(default_factory=list)


def plan(now: datetime | None = None, *, limit: int | None = None) -> Plan:
    now = now or clock.now()
    # Expiry dates stored under another RETENTION_YEARS (or rules) would erase on a wrong date.
    projections.projections_rebuild(stale_only=True)
    result = Plan(now=now)
    for row in audience(REPERMISSION, now):
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
    """Send one repermission email and record ``repermission_sent``, in one transaction.

    The plan was read before; under the contact's lock the question is asked again of ``decide``
    with what the ledger holds now: another run may have asked them since (two beat processes,
    the command during the daily task), they may have answered, left or been erased."""
    contact = Contact.objects.select_for_update().get(pk=contact_id)
    if not contact.email or Erasure.objects.filter(contact=contact).exists():
        return False
    _, facts = proof.history(contact)
    asked_at = max(now, clock.now())
    decision = proof.decide_for(contact, facts, REPERMISSION, asked_at)
    if not decision.allowed:
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


@transaction.atomic
def expire(contact_id: int, now: datetime) -> bool:
    """Erase one contact whose retention period is over, if it still is under its lock (a "keep
    me" since the plan restarts the clock; an officer may have erased them meanwhile)."""
    contact = Contact.objects.select_for_update().get(pk=contact_id)
    if Erasure.objects.filter(contact=contact).exists():
        return False
    facts = ContactFacts.objects.filter(contact=contact).first()
    if facts is None or facts.expires_at is None or facts.expires_at > now:
        return False
    services.contact_erase(
        contact=contact,
        reason=f"retention: expired on {facts.expires_at:%Y-%m-%d}",
        actor="system:retention",
    )
    return True


def run(now: datetime | None = None) -> dict[str, int]:
    """The daily job: ask those due, erase those expired. Idempotent: a second run finds nobody.

    One run at a time (``locks.run_lock``): a run that finds another under way does nothing and
    says so with ``skipped``."""
    with run_lock("retention") as held:
        if not held:
            return {"asked": 0, "erased": 0, "skipped": 1}
        current = plan(now)
        asked = sum(ask(contact_id, current.now) for contact_id, _, _ in current.repermission)
        erased = sum(expire(contact_id, current.now) for contact_id, _, _ in current.erase)
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
