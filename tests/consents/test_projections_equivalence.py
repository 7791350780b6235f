"""``projections.derive`` gives exactly what it gave before it was made faster.

``derive`` now answers each channel's questions from that channel's sub-history and computes the
retention anchor once; ``reference_derive`` below is the former implementation, kept verbatim
(only renamed), which asked every question of the whole history. Both run here on many random
histories that use every event type, wildcard topics and channels, equal instants, double
opt-ins confirmed in time, late or on another channel, invalid opt-ins, callbacks on any channel,
and values the services would refuse (an unknown channel, an opt-in on ``*``): the projections
must be equal, field by field and row by row. The bulk loader and ``services._append`` both
write what ``derive`` returns, so this is also what keeps the two paths equal.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from consents import projections, rules
from consents.models import CatalogFact, ConsentState
from consents.projections import Projection
from consents.vocab import (
    ANY,
    CHANNELS,
    ContactKind,
    Doi,
    EventType,
    InteractionKind,
    Method,
)

# --- The reference: projections.derive before it was made faster, verbatim but for its name ----


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
) -> dict:
    row = {"automated": False, "callback_lifts": False}
    opt_out = rules.opted_out_event(h, topic, channel, s)
    if opt_out is not None:
        row["callback_lifts"] = channel == "phone" and rules.callback_lifts(h, opt_out)
        return {"status": ConsentState.Status.OPTED_OUT, "since": opt_out.at, **row}
    consent = rules.valid_consent_event(h, topic, channel, s)
    if consent is not None:
        row["automated"] = (
            rules.valid_consent_event(h, topic, channel, s, automated=True) is not None
        )
        return {"status": ConsentState.Status.OPTED_IN, "since": consent.at, **row}
    blocker = rules.consent_blocker(h, topic, channel, s)
    latest = next(
        (
            e
            for e in reversed(h)
            if e.type == EventType.OPT_IN and (e.topic, e.channel) == (topic, channel)
        ),
        None,
    )
    if blocker == rules.Reason.CONSENT_PENDING:
        return {
            "status": ConsentState.Status.PENDING,
            "since": latest.at if latest else None,
            **row,
        }
    if blocker == rules.Reason.INVALID_CONSENT:
        return {
            "status": ConsentState.Status.INVALID,
            "since": latest.at if latest else None,
            **row,
        }
    return {"status": ConsentState.Status.NONE, "since": None, **row}


def reference_derive(
    person: rules.Person, history: Iterable[rules.Fact], s: rules.RuleSettings
) -> Projection:
    h = rules.ordered(history)
    callback = rules.latest_callback(h)
    projection = Projection(
        facts={
            "is_customer": rules.is_customer(h),
            "retention_anchor": rules.retention_anchor(person, h),
            "expires_at": rules.retention_expiry(person, h, s),
            "undeliverable_email": rules.is_undeliverable(h),
            "generic_email": rules.is_generic_address(person.email, s),
            "repermission_asked": rules.repermission_asked(h),
            "callback_until": callback.at + s.callback_validity if callback else None,
            "last_seq": max((e.seq for e in h), default=0),
            "rules_fingerprint": s.fingerprint(),
        }
    )
    for channel in CHANNELS:
        wildcard_opt_out = rules.opted_out_event(h, None, channel, s)
        state = {
            "channel": channel,
            "opted_out": wildcard_opt_out is not None,
            "callback_lifts": channel == "phone" and rules.callback_lifts(h, wildcard_opt_out),
            "pause_until": rules.pause_until(h, channel),
            "repermission_opted_out": rules.repermission_opted_out(h, channel, s),
            "has_valid_consent": rules.has_valid_consent_on(h, channel, s),
        }
        if any(v for k, v in state.items() if k != "channel"):
            projection.channel_states.append(state)

    frequencies: dict[str, str] = {}
    for e in h:
        if e.type == EventType.OPT_IN and e.topic and e.frequency:
            frequencies[e.topic] = e.frequency
    for topic, channels in sorted(_topic_channels(h).items()):
        for channel in sorted(channels):
            projection.consent_states.append(
                {
                    "topic": topic,
                    "channel": channel,
                    **_consent_state(h, topic, channel, s),
                    "frequency": frequencies.get(topic, ""),
                }
            )

    purchases: set[tuple[str, str]] = set()
    for e in h:
        if e.type == EventType.PURCHASE:
            purchases.add((e.category or "", e.product or ""))
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
    active = {id(e) for e in rules.active_contracts(h)}
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


# --- Random and hand-picked histories ---------------------------------------------------------

START = datetime(2022, 1, 1, tzinfo=UTC)
TOPICS = ["promotions", "newsletter", "new-products", ANY, ""]
CHANNEL_VALUES = [*CHANNELS, ANY, "", "fax"]


def _weighted(rng: random.Random, common: list[str], rare: list[str]) -> str:
    return rng.choice(common) if rng.random() < 0.85 else rng.choice(rare)


def random_fact(rng: random.Random, seq: int, at: datetime) -> rules.Fact:
    kind = rng.choice(
        [
            EventType.OPT_IN,
            EventType.OPT_IN,
            EventType.OPT_IN,
            EventType.DOI_CONFIRMED,
            EventType.DOI_CONFIRMED,
            EventType.OPT_OUT,
            EventType.OPT_OUT,
            EventType.COMPLAINT,
            EventType.PAUSE,
            EventType.PURCHASE,
            EventType.CONTRACT_START,
            EventType.CONTRACT_END,
            EventType.INTERACTION,
            EventType.BOUNCE,
            EventType.ADDRESS_CHANGED,
            EventType.CALLBACK_REQUEST,
            EventType.REPERMISSION_SENT,
        ]
    )
    topic = _weighted(rng, TOPICS[:3], TOPICS[3:])
    channel = _weighted(rng, list(CHANNELS), [ANY, "", "fax"])
    if kind == EventType.OPT_OUT and rng.random() < 0.4:
        topic = ANY
    if kind in (EventType.OPT_OUT, EventType.PAUSE) and rng.random() < 0.3:
        channel = ANY
    if kind == EventType.CALLBACK_REQUEST and rng.random() < 0.7:
        channel = "phone"
    data: dict = {}
    if kind == EventType.OPT_IN:
        data = {
            "doi": rng.choice([Doi.NONE, Doi.NONE, Doi.PENDING]),
            "prechecked": rng.random() < 0.1,
            "bundled": rng.random() < 0.1,
        }
        if rng.random() < 0.3:
            data["frequency"] = rng.choice(["weekly", "monthly"])
        if rng.random() < 0.3:
            data["automated"] = True
    elif kind == EventType.PAUSE:
        data = {"until": (at + timedelta(days=rng.randint(1, 90))).isoformat()}
    elif kind == EventType.PURCHASE:
        data = {
            "category": rng.choice(["books", "sofa", "laptop"]),
            "product": rng.choice(["", "p1", "p2"]),
        }
        if rng.random() < 0.3:
            data["warranty_until"] = (at + timedelta(days=rng.randint(30, 1500))).isoformat()
    elif kind == EventType.CONTRACT_START:
        data = {"contract": rng.choice(["c1", "c2"]), "category": rng.choice(["fibre", "mobile"])}
    elif kind == EventType.CONTRACT_END:
        data = {"contract": rng.choice(["c1", "c2", "c3"])}
    elif kind == EventType.INTERACTION:
        data = {"kind": rng.choice(list(InteractionKind.values))}
    elif kind == EventType.BOUNCE:
        data = {"hard": rng.random() < 0.5}
    method = ""
    if kind in (EventType.OPT_IN, EventType.OPT_OUT):
        method = rng.choice(list(Method.values))
    proof = "ref" if method and rng.random() < 0.5 else ""
    return projections.fact_from_row(
        type=kind,
        occurred_at=at,
        seq=seq,
        topic=topic
        if kind in (EventType.OPT_IN, EventType.DOI_CONFIRMED, EventType.OPT_OUT)
        else "",
        channel=channel if kind not in (EventType.PURCHASE, EventType.INTERACTION) else "",
        method=method,
        proof=proof,
        data=data,
    )


def random_history(rng: random.Random) -> list[rules.Fact]:
    n = rng.choice([0, 1, 2, 3, 5, 8, 12, 20])
    at, facts = START, []
    for seq in range(1, n + 1):
        # Often the same instant (recorded order decides), sometimes minutes or weeks apart,
        # sometimes recorded later than a later fact (a back-dated import).
        step = rng.choice([0, 0, 60, 3600, 86400 * 3, 86400 * 40, -86400 * 2])
        at = at + timedelta(seconds=step)
        facts.append(random_fact(rng, seq, at))
    rng.shuffle(facts)  # derive orders them itself
    return facts


def random_person(rng: random.Random) -> rules.Person:
    return rules.Person(
        kind=rng.choice([ContactKind.CONSUMER, ContactKind.PROFESSIONAL]),
        collected_at=START - timedelta(days=rng.randint(0, 3000)),
        informed_at_collection=rng.random() < 0.8,
        email=rng.choice([None, "marie@example.com", "info@example.com", "Sales+x@example.com"]),
        phone=rng.choice([None, "+33600000000"]),
        profession=rng.choice([None, "it"]),
    )


@pytest.mark.parametrize("seed", range(8))
def test_derive_equals_the_reference_on_random_histories(seed: int) -> None:
    rng = random.Random(seed)
    settings = rules.RuleSettings(doi_ttl=timedelta(days=rng.choice([1, 7])))
    for _ in range(600):
        person, history = random_person(rng), random_history(rng)
        expected = reference_derive(person, history, settings)
        actual = projections.derive(person, history, settings)
        assert actual == expected, (person, sorted(history, key=lambda e: (e.at, e.seq)))


def test_derive_equals_the_reference_on_hand_picked_histories() -> None:
    s = rules.RuleSettings()
    person = random_person(random.Random(1))
    day = timedelta(days=1)

    def fact(seq: int, days: float, **fields) -> rules.Fact:
        return rules.Fact(at=START + days * day, seq=seq, **fields)

    web, email = "web_form", "email"

    histories = [
        [],
        # A double opt-in confirmed in time, then a wildcard opt-out, then an opt-in again.
        [
            fact(1, 0, type="opt_in", topic="promotions", channel=email, method=web, doi="pending"),
            fact(2, 1, type="doi_confirmed", topic="promotions", channel="email"),
            fact(3, 2, type="opt_out", topic=ANY, channel=ANY, method="web_form"),
            fact(4, 3, type="opt_in", topic="promotions", channel="sms", method="web_form"),
        ],
        # Confirmed on another channel, and too late.
        [
            fact(1, 0, type="opt_in", topic="promotions", channel=email, method=web, doi="pending"),
            fact(2, 1, type="doi_confirmed", topic="promotions", channel="sms"),
            fact(3, 30, type="doi_confirmed", topic="promotions", channel="email"),
        ],
        # A callback on the email channel still ends a phone opt-out.
        [
            fact(1, 0, type="opt_out", topic=ANY, channel="phone", method="phone_call"),
            fact(2, 1, type="callback_request", channel="email"),
            fact(3, 1, type="complaint", channel="phone"),
            fact(4, 1, type="callback_request", channel="phone"),
        ],
        # Same instant, recorded order decides; a pause on every channel; contracts.
        [
            fact(2, 0, type="opt_out", topic="promotions", channel="email", method="web_form"),
            fact(1, 0, type="opt_in", topic="promotions", channel="email", method="web_form"),
            fact(3, 0, type="pause", channel=ANY, until=START + 9 * day),
            fact(4, 2, type="contract_start", contract="c1", category="fibre"),
            fact(5, 3, type="contract_end", contract="c1"),
            fact(6, 4, type="contract_start", contract="c2", category="fibre"),
            fact(7, 5, type="purchase", category="books", warranty_until=START + 900 * day),
        ],
        # What the services refuse: an opt-in on every channel or topic, an unknown channel.
        [
            fact(1, 0, type="opt_in", topic="promotions", channel=ANY, method="web_form"),
            fact(2, 1, type="opt_in", topic=ANY, channel="email", method="web_form"),
            fact(3, 2, type="opt_in", topic="newsletter", channel="fax", method="web_form"),
            fact(4, 3, type="opt_out", topic="newsletter", channel="fax", method="web_form"),
            fact(5, 4, type="complaint", channel=ANY),
        ],
    ]  # fmt: skip
    for history in histories:
        assert projections.derive(person, history, s) == reference_derive(person, history, s)
