"""Projections: what the ledger implies, rewritten in the same transaction as each append.

Each append recomputes the contact's projections from the contact's whole history, with the same
helpers that ``rules.decide`` uses, so that the two cannot drift. Questions about one channel are
asked of that channel's sub-history (``_by_channel``), which gives the helpers the same answers for
a fraction of the walking; ``tests/consents/test_projections_equivalence.py`` holds ``derive`` to
the former implementation, which asked every question of the whole history. Instants the rules
derive (expiry, pause end, callback validity) are computed here, in Python and in UTC; the
audience query then only compares stored instants with ``now``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils.dateparse import parse_datetime

from consents import rules
from consents.models import CatalogFact, ChannelState, ConsentState, Contact, ContactFacts, Event
from consents.vocab import ANY, CHANNELS, Channel, EventType


def _when(value: Any) -> datetime | None:
    return parse_datetime(value) if isinstance(value, str) else None


def fact_from_row(
    *,
    type: str,
    occurred_at: datetime,
    seq: int,
    topic: str,
    channel: str,
    method: str,
    proof: str,
    data: dict[str, Any],
) -> rules.Fact:
    return rules.Fact(
        type=type,
        at=occurred_at,
        seq=seq,
        topic=topic or None,
        channel=channel or None,
        method=method or None,
        proof=proof or None,
        prechecked=bool(data.get("prechecked", False)),
        bundled=bool(data.get("bundled", False)),
        doi=data.get("doi", "none"),
        until=_when(data.get("until")),
        category=data.get("category") or None,
        product=data.get("product") or None,
        warranty_until=_when(data.get("warranty_until")),
        contract=data.get("contract") or None,
        kind=data.get("kind") or None,
        hard=bool(data.get("hard", False)),
        frequency=data.get("frequency") or None,
        automated=bool(data.get("automated", False)),
    )


def fact_from_event(event: Event) -> rules.Fact:
    return fact_from_row(
        type=event.type,
        occurred_at=event.occurred_at,
        seq=event.seq,
        topic=event.topic,
        channel=event.channel,
        method=event.method,
        proof=event.proof,
        data=event.data,
    )


def person_from_contact(contact: Contact) -> rules.Person:
    return rules.Person(
        kind=contact.kind,
        collected_at=contact.collected_at,
        informed_at_collection=contact.informed_at_collection,
        email=contact.email or None,
        phone=contact.phone or None,
        postal_address=contact.postal_address or None,
        push_token=contact.push_token or None,
        profession=contact.profession or None,
    )


@dataclass
class Projection:
    """Everything the projections hold for one contact, before it is written."""

    facts: dict[str, Any]
    channel_states: list[dict[str, Any]] = field(default_factory=list)
    consent_states: list[dict[str, Any]] = field(default_factory=list)
    catalog_facts: list[dict[str, Any]] = field(default_factory=list)


def _topic_channels(h: Sequence[rules.Fact]) -> dict[str, set[str]]:
    """Every (topic, channel) with an event of its own; ``opt_out(T, *)`` reaches every channel."""
    pairs: dict[str, set[str]] = {}
    for e in h:
        if e.type not in (EventType.OPT_IN, EventType.DOI_CONFIRMED, EventType.OPT_OUT):
            continue
        if not e.topic or e.topic == ANY or not e.channel:
            continue
        channels = pairs.setdefault(e.topic, set())
        channels.update(CHANNELS if e.channel == ANY else (e.channel,))
    return pairs


def _consent_state(
    h: Sequence[rules.Fact], topic: str, channel: str, s: rules.RuleSettings
) -> dict[str, Any]:
    pair = rules.pair_state(h, topic, channel, s)
    row: dict[str, Any] = {"automated": False, "callback_lifts": False}
    if pair.opt_out is not None:
        status, since = ConsentState.Status.OPTED_OUT, pair.opt_out.at
        # Only a phone call can be asked for (step 6's exception).
        row["callback_lifts"] = channel == Channel.PHONE and rules.callback_lifts(h, pair.opt_out)
    elif pair.consent is not None:
        status, since = ConsentState.Status.OPTED_IN, pair.consent.at
        row["automated"] = pair.automated_consent is not None
    elif pair.blocker == rules.Reason.CONSENT_PENDING:
        status, since = ConsentState.Status.PENDING, pair.latest_opt_in.at  # type: ignore[union-attr]
    elif pair.blocker == rules.Reason.INVALID_CONSENT:
        status, since = ConsentState.Status.INVALID, pair.latest_opt_in.at  # type: ignore[union-attr]
    else:
        status, since = ConsentState.Status.NONE, None
    return {"status": status, "since": since, **row}


_CHANNEL_SET = frozenset(CHANNELS)


def _by_channel(h: Sequence[rules.Fact]) -> dict[str, list[rules.Fact]]:
    """For each channel, in order, every event of ``h`` that a question about that channel reads.

    The helpers of ``rules`` that answer for a channel C (``opted_out_event``,
    ``valid_consent_event``, ``consent_blocker``, ``pause_until``, ``repermission_opted_out``,
    ``has_valid_consent_on``) only ever look at events on C or on ``*``, plus, for the phone,
    callback requests: given this sub-history instead of the whole one, they give the same
    answers (indices are only compared within the list they are taken from). A channel with no
    such event is absent.
    """
    lists: dict[str, list[rules.Fact]] = {}
    for e in h:
        channel = e.channel
        if channel == ANY:
            for c in CHANNELS:
                lists.setdefault(c, []).append(e)
            continue
        if channel in _CHANNEL_SET:
            lists.setdefault(channel, []).append(e)  # type: ignore[arg-type]
        if e.type == EventType.CALLBACK_REQUEST and channel != Channel.PHONE:
            lists.setdefault(Channel.PHONE, []).append(e)
    return lists


def derive(
    person: rules.Person, history: Iterable[rules.Fact], s: rules.RuleSettings
) -> Projection:
    h = rules.ordered(history)
    callback = rules.latest_callback(h)
    active_contracts = rules.active_contracts(h)
    anchor = rules.retention_anchor(person, h)
    projection = Projection(
        facts={
            "is_customer": rules.is_customer(h),
            "retention_anchor": anchor,
            # rules.retention_expiry, without computing the anchor and the contracts twice.
            "expires_at": (
                None if active_contracts else rules.add_years(anchor, s.retention_years)
            ),
            "undeliverable_email": rules.is_undeliverable(h),
            "generic_email": rules.is_generic_address(person.email, s),
            "repermission_asked": rules.repermission_asked(h),
            "callback_until": callback.at + s.callback_validity if callback else None,
            "last_seq": max((e.seq for e in h), default=0),
            "rules_fingerprint": s.fingerprint(),
        }
    )
    by_channel = _by_channel(h)
    for channel in CHANNELS:
        hc = by_channel.get(channel)
        if not hc:  # every answer below is falsy on an empty history: no row
            continue
        wildcard_opt_out = rules.opted_out_event(hc, None, channel, s)
        state = {
            "channel": channel,
            "opted_out": wildcard_opt_out is not None,
            "callback_lifts": channel == Channel.PHONE
            and rules.callback_lifts(hc, wildcard_opt_out),
            "pause_until": rules.pause_until(hc, channel),
            "repermission_opted_out": rules.repermission_opted_out(hc, channel, s),
            "has_valid_consent": rules.has_valid_consent_on(hc, channel, s),
        }
        if any(v for k, v in state.items() if k != "channel"):
            projection.channel_states.append(state)

    frequencies: dict[str, str] = {}
    purchases: set[tuple[str, str]] = set()
    for e in h:
        if e.type == EventType.OPT_IN and e.topic and e.frequency:
            frequencies[e.topic] = e.frequency
        elif e.type == EventType.PURCHASE:
            purchases.add((e.category or "", e.product or ""))
    for topic, channels in sorted(_topic_channels(h).items()):
        for channel in sorted(channels):
            # A channel outside CHANNELS has no sub-history: the whole history answers for it.
            state = _consent_state(by_channel.get(channel, h), topic, channel, s)
            projection.consent_states.append(
                {
                    "topic": topic,
                    "channel": channel,
                    **state,
                    "frequency": frequencies.get(topic, ""),
                }
            )

    projection.catalog_facts += [
        {
            "kind": CatalogFact.Kind.PURCHASE,
            "category": c,
            "product": p,
            "contract": "",
            "active": False,
        }
        for c, p in sorted(purchases)
    ]
    active = {id(e) for e in active_contracts}
    contracts: set[tuple[str, str, bool]] = set()
    for e in h:
        if e.type == EventType.CONTRACT_START:
            contracts.add((e.category or "", e.contract or "", id(e) in active))
    projection.catalog_facts += [
        {
            "kind": CatalogFact.Kind.CONTRACT,
            "category": c,
            "product": "",
            "contract": k,
            "active": a,
        }
        for c, k, a in sorted(contracts)
    ]
    return projection


def projection_write(contact: Contact, projection: Projection) -> None:
    ContactFacts.objects.update_or_create(contact=contact, defaults=projection.facts)
    ChannelState.objects.filter(contact=contact).delete()
    ConsentState.objects.filter(contact=contact).delete()
    CatalogFact.objects.filter(contact=contact).delete()
    ChannelState.objects.bulk_create(
        [ChannelState(contact=contact, **row) for row in projection.channel_states]
    )
    ConsentState.objects.bulk_create(
        [ConsentState(contact=contact, **row) for row in projection.consent_states]
    )
    CatalogFact.objects.bulk_create(
        [CatalogFact(contact=contact, **row) for row in projection.catalog_facts]
    )


def projection_refresh(contact: Contact, s: rules.RuleSettings | None = None) -> Projection:
    """Recompute and rewrite one contact's projections from its whole ledger history."""
    s = s or rules.RuleSettings.from_django()
    rows = Event.objects.filter(contact=contact).values(
        "type", "occurred_at", "seq", "topic", "channel", "method", "proof", "data"
    )
    history = [fact_from_row(**row) for row in rows]
    projection = derive(person_from_contact(contact), history, s)
    projection_write(contact, projection)
    return projection


def stale_contact_ids(s: rules.RuleSettings | None = None) -> list[int]:
    """Contacts whose projections were computed under other rules or settings (or never)."""
    s = s or rules.RuleSettings.from_django()
    current = ContactFacts.objects.filter(rules_fingerprint=s.fingerprint()).values("contact_id")
    return list(Contact.objects.exclude(pk__in=current).order_by("pk").values_list("pk", flat=True))


def projections_rebuild(
    *,
    stale_only: bool = True,
    s: rules.RuleSettings | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Recompute projections from the ledger: every contact's, or only the stale ones.

    Each contact is recomputed under its row lock, in a transaction of its own, so that an append
    running at the same time (which takes the same lock) is never lost and the job can stop and
    resume. Returns how many contacts were recomputed.
    """
    from django.db import transaction

    s = s or rules.RuleSettings.from_django()
    ids = (
        stale_contact_ids(s)
        if stale_only
        else list(Contact.objects.order_by("pk").values_list("pk", flat=True))
    )
    for done, contact_id in enumerate(ids, start=1):
        with transaction.atomic():
            contact = Contact.objects.select_for_update().filter(pk=contact_id).first()
            if contact is not None:
                projection_refresh(contact, s)
        if progress is not None:
            progress(done, len(ids))
    return len(ids)


def rebuild_stale_after_migrate(*, verbosity: int = 1, **kwargs: Any) -> None:
    """``post_migrate``: projections computed under other rules are wrong; recompute them now when
    there are few, else say which command to run (it may take a while on a large ledger)."""
    from django.conf import settings
    from django.db import DatabaseError

    try:
        stale = stale_contact_ids()
    except DatabaseError:  # a partial migration: the tables are not there yet
        return
    if not stale:
        return
    if len(stale) <= settings.PROJECTIONS_REBUILD_ON_MIGRATE_MAX:
        projections_rebuild(stale_only=True)
        if verbosity:
            print(f"  Recomputed the projections of {len(stale)} contact(s) under {RULES_NOTE}.")
    elif verbosity:
        print(
            f"  {len(stale)} contacts have projections computed under other rules or settings: "
            "run `python manage.py rebuild_projections --stale` before serving decisions."
        )


RULES_NOTE = f"{rules.RULES_VERSION} and the current settings"
