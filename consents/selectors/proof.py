"""What a compliance officer hands over: a person's proof, their data, the rules' answers.

Everything here reads one contact: the history is loaded once and every decision is computed
from it in Python with ``rules.decide``, exactly as the rules say. Who looked is written by
``services.access_log``; an export is handed over as a file by ``consents.http.json_file``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings

from consents import clock, ledger, rules
from consents.audience import retired_topics
from consents.models import (
    CatalogFact,
    Category,
    ChainHead,
    ConsentState,
    Contact,
    Event,
    Evidence,
    Notice,
    Outbox,
    Topic,
)
from consents.projections import fact_from_event, person_from_contact
from consents.vocab import ANY, CHANNELS, EventType, Purpose


def history(contact: Contact) -> tuple[list[Event], list[rules.Fact]]:
    events = list(
        Event.objects.filter(contact=contact).select_related("store", "notice").order_by("seq")
    )
    return events, [fact_from_event(e) for e in events]


def catalog() -> dict[str, str]:
    return dict(Category.objects.values_list("slug", "family"))


@dataclass(frozen=True)
class StateRow:
    topic: Topic
    channel: str
    decision: rules.Decision
    stored: str


def state_grid(contact: Contact, facts: list[rules.Fact], now: datetime) -> list[StateRow]:
    """Per active topic and each of its channels: ``decide`` for the topic's own purpose."""
    person = person_from_contact(contact)
    s = rules.RuleSettings.from_django()
    cat = catalog()
    stored = {
        (cs.topic, cs.channel): cs.status for cs in ConsentState.objects.filter(contact=contact)
    }
    rows = []
    for topic in Topic.objects.filter(active=True):
        for channel in topic.channels:
            message = rules.Message(channel=channel, purpose=topic.purpose, topic=topic.slug)
            decision = rules.decide(person, facts, message, now, catalog=cat, settings=s)
            rows.append(StateRow(topic, channel, decision, stored.get((topic.slug, channel), "")))
    return rows


def decide_for(
    contact: Contact, facts: list[rules.Fact], message: rules.Message, now: datetime
) -> rules.Decision:
    return rules.decide(
        person_from_contact(contact),
        facts,
        message,
        now,
        catalog=catalog(),
        settings=rules.RuleSettings.from_django(),
        retired_topics=retired_topics(),
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return ledger.iso(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    return value


def _event_json(event: Event, evidence: Evidence | None) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "type": event.type,
        "topic": event.topic,
        "channel": event.channel,
        "occurred_at": ledger.iso(event.occurred_at),
        "recorded_at": ledger.iso(event.recorded_at),
        "method": event.method,
        "actor": event.actor,
        "collection_point": event.collection_point,
        "store": event.store.code if event.store_id else None,
        "notice": event.notice_id,
        "proof": event.proof,
        "data": event.data,
        "evidence_digest": event.evidence_digest,
        "evidence": _evidence_json(evidence),
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


def _evidence_json(evidence: Evidence | None) -> dict[str, Any] | None:
    if evidence is None:
        return None
    if evidence.erased_at:
        return {"erased_at": ledger.iso(evidence.erased_at)}
    return {
        "ip_address": evidence.ip_address,
        "user_agent": evidence.user_agent,
        "details": evidence.details,
        # The key of the event's evidence digest: with it, the digest can be recomputed from the
        # evidence above (``chain.evidence_digest``).
        "salt": evidence.salt,
    }


def contact_json(contact: Contact) -> dict[str, Any]:
    erasure = getattr(contact, "erasure", None)
    return {
        "public_id": contact.public_id,
        "kind": contact.kind,
        "email": contact.email,
        "phone": contact.phone,
        "first_name": contact.first_name,
        "postal_address": contact.postal_address,
        "push_token": contact.push_token,
        "locale": contact.locale,
        "collected_at": ledger.iso(contact.collected_at),
        "informed_at_collection": contact.informed_at_collection,
        "profession": contact.profession,
        "erased_at": ledger.iso(erasure.erased_at) if erasure else None,
    }


def proof_export(contact: Contact) -> dict[str, Any]:
    """Every event with its proof, the notice texts it references, and the chain's hashes."""
    events, _ = history(contact)
    evidence = {e.event_id: e for e in Evidence.objects.filter(event__contact=contact)}
    notice_ids = {e.notice_id for e in events if e.notice_id}
    notices = Notice.objects.filter(pk__in=notice_ids).select_related("topic")
    checked, broken = ledger.verify_range(contact.pk, contact.pk + 1)
    head = ChainHead.objects.filter(contact=contact).values("seq", "hash").first()
    return {
        "format": "assent.proof.v1",
        "generated_at": ledger.iso(clock.now()),
        "contact": contact_json(contact),
        "events": [_event_json(e, evidence.get(e.pk)) for e in events],
        "notices": [
            {
                "id": n.pk,
                "topic": n.topic.slug if n.topic_id else None,
                "language": n.language,
                "version": n.version,
                "text": n.text,
                "sha256": n.sha256,
                "published_at": ledger.iso(n.published_at),
            }
            for n in notices
        ],
        "chain": {
            "algorithm": "sha256(prev_hash + canonical_json(event))",
            "genesis": ledger.GENESIS,
            "head": events[-1].hash if events else ledger.GENESIS,
            "recorded_head": head,
            "evidence_digest": "hmac_sha256(salt, canonical_json({details, ip, ua})); "
            "sha256(canonical_json(...)) when the evidence has no salt (recorded before "
            "digests were keyed)",
            "events_verified": checked,
            "intact": broken is None,
            "broken": broken,
        },
    }


def access_export(contact: Contact, now: datetime) -> dict[str, Any]:
    """A data-subject access request: everything we hold about the person, and what it implies."""
    data = proof_export(contact)
    _, facts = history(contact)
    data["format"] = "assent.access.v1"
    data["current_state"] = [
        {"topic": cs.topic, "channel": cs.channel, "status": cs.status, "since": cs.since}
        for cs in ConsentState.objects.filter(contact=contact).order_by("topic", "channel")
    ]
    data["purchases_and_contracts"] = list(
        CatalogFact.objects.filter(contact=contact).values(
            "kind", "category", "product", "contract", "active"
        )
    )
    data["decisions"] = [
        {
            "topic": row.topic.slug,
            "channel": row.channel,
            "purpose": row.topic.purpose,
            "allowed": row.decision.allowed,
            "reason": row.decision.reason,
        }
        for row in state_grid(contact, facts, now)
    ]
    data["decisions"] += [
        {
            "topic": None,
            "channel": channel,
            "purpose": Purpose.REPERMISSION,
            "allowed": d.allowed,
            "reason": d.reason,
        }
        for channel in CHANNELS
        if channel != "phone"
        for d in [decide_for(contact, facts, rules.Message(channel, Purpose.REPERMISSION), now)]
    ]
    data["emails_sent"] = list(
        Outbox.objects.filter(contact=contact).values("template", "to", "status", "sent_at")
    )
    return _jsonable(data)


def _confirmation_of(event: Event, events: list[Event], ttl: timedelta) -> Event | None:
    """The click that confirmed this pending opt-in: the first ``doi_confirmed`` for its topic and
    channel after it, within the link's lifetime (RULES.md, valid opt-in); not a later one that
    confirmed another sign-up of the same topic."""
    if event.data.get("doi") != "pending":
        return None
    return next(
        (
            e
            for e in events
            if e.seq > event.seq
            and e.type == EventType.DOI_CONFIRMED
            and (e.topic, e.channel) == (event.topic, event.channel)
            and e.occurred_at <= event.occurred_at + ttl
        ),
        None,
    )


def _withdrawal_of(event: Event, events: list[Event]) -> Event | None:
    """The first fact after this consent that took it back: an opt-out covering its topic and
    channel, or a complaint (a spam report) on its channel, which acts as an opt-out of all."""
    return next(
        (
            e
            for e in events
            if e.seq > event.seq
            and (
                (
                    e.type == EventType.OPT_OUT
                    and e.topic in (event.topic, ANY)
                    and e.channel in (event.channel, ANY)
                )
                or (e.type == EventType.COMPLAINT and e.channel == event.channel)
            )
        ),
        None,
    )


def receipts(contact: Contact) -> list[dict[str, Any]]:
    """One receipt per consent (``opt_in``), with what the person was shown and its proof."""
    events, _ = history(contact)
    topics = {t.slug: t for t in Topic.objects.all()}
    ttl = settings.DOI_CONFIRM_TTL
    return [
        {
            "event": event,
            "topic": topics.get(event.topic),
            "notice": event.notice,
            "confirmation": _confirmation_of(event, events, ttl),
            "withdrawn": _withdrawal_of(event, events),
        }
        for event in events
        if event.type == EventType.OPT_IN
    ]
