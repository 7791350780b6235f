"""``decide`` and the audience query agree on every contact, whatever the history.

Property-based (Hypothesis): histories are recorded through the services into the database (so the
projections are the ones a real append writes), with the values that break agreement most easily:
ties at one instant, instants exactly at the end of a link lifetime, a callback validity, the
repermission window or the retention period, 29 February, wildcard topics and channels, back-dated
events, pauses and resumes, professionals with generic mailboxes, uncatalogued categories. Then,
for messages of every channel and purpose, ``decide`` as of now and the audience of that message
must give the same answer, with the same reason when allowed.

The run is deterministic (a fixed seed) and bounded; ``ASSENT_AGREEMENT_EXAMPLES`` asks for a
longer one (e.g. 2000), and ``ASSENT_AGREEMENT_RANDOM=1`` for a new seed each run. CI runs it on
SQLite and on PostgreSQL.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consents import clock, rules, services
from consents.audience import audience
from consents.models import Category, Event
from consents.projections import fact_from_event, person_from_contact
from consents.vocab import ANY, CHANNELS, METHODS, Channel, InteractionKind, Purpose

EXAMPLES = int(os.environ.get("ASSENT_AGREEMENT_EXAMPLES", "150"))
DERANDOMIZE = os.environ.get("ASSENT_AGREEMENT_RANDOM") != "1"

TOPICS = {
    "promotions": Purpose.PROMOTION,
    "new-products": Purpose.PROMOTION,
    "newsletter": Purpose.NEWSLETTER,
    "cart": Purpose.CART_ABANDONMENT,
    "loyalty": Purpose.LOYALTY_ENROLMENT,
    "winback": Purpose.REACTIVATION,
    "partners": Purpose.PARTNER_OFFER,
}
CATALOG = {"books": "culture", "dvd": "culture", "sofa": "home", "fibre": "telecom"}
CATEGORIES = [*CATALOG, "telescope"]  # a category missing from the catalog is its own family
NOWS = [
    datetime(2026, 11, 29, 12, 0, tzinfo=UTC),
    datetime(2027, 2, 28, 12, 0, tzinfo=UTC),
    datetime(2028, 2, 29, 12, 0, tzinfo=UTC),
]
SECOND, DAY = timedelta(seconds=1), timedelta(days=1)
# Offsets back from now: the boundaries of the link lifetime (7 days), the callback validity and
# the repermission window (30 days), and the same instant (ties).
OFFSETS = [
    timedelta(0),
    SECOND,
    timedelta(hours=1),
    DAY,
    7 * DAY - SECOND,
    7 * DAY,
    7 * DAY + SECOND,
    30 * DAY - SECOND,
    30 * DAY,
    30 * DAY + SECOND,
    60 * DAY,
    400 * DAY,
]


def years_back(now: datetime, years: int) -> datetime:
    try:
        return now.replace(year=now.year - years)
    except ValueError:  # 29 February
        return now.replace(year=now.year - years, day=28)


@st.composite
def instants(draw: Any, now: datetime) -> datetime:
    """An instant at or before now: near a boundary, exactly N years back, or 29 February."""
    kind = draw(st.sampled_from(["offset", "offset", "offset", "years", "leap"]))
    if kind == "offset":
        return now - draw(st.sampled_from(OFFSETS))
    if kind == "years":
        base = years_back(now, draw(st.sampled_from([1, 3])))
        # Exactly at the expiry of a 3-year retention, or a second either side, or inside the
        # repermission window.
        return base + draw(st.sampled_from([timedelta(0), SECOND, -SECOND, 20 * DAY, -20 * DAY]))
    return datetime(2024, 2, 29, 12, 0, tzinfo=UTC)


@dataclass
class Recorded:
    type: str
    fields: dict[str, Any]


@st.composite
def events(draw: Any, now: datetime) -> Recorded:
    at = draw(instants(now))
    if at > now:  # "years" plus a second can pass now
        at = now
    kind = draw(
        st.sampled_from(
            [
                "opt_in",
                "opt_in",
                "opt_in",
                "doi_confirmed",
                "opt_out",
                "opt_out",
                "complaint",
                "pause",
                "purchase",
                "contract_start",
                "contract_end",
                "interaction",
                "bounce",
                "address_changed",
                "callback_request",
                "repermission_sent",
            ]
        )
    )
    fields: dict[str, Any] = {"occurred_at": at}
    # Weighted so that the facts of one history often meet on one topic and channel.
    topic = draw(st.sampled_from(["promotions", "promotions", "promotions", *TOPICS]))
    channel = draw(st.sampled_from(["email", "email", "phone", "phone", *CHANNELS]))
    if kind == "opt_in":
        method = draw(st.sampled_from(METHODS))
        fields.update(
            topic=topic,
            channel=channel,
            method=method,
            doi=draw(st.sampled_from(["none", "none", "pending"])),
            prechecked=draw(st.sampled_from([False, False, False, True])),
            bundled=draw(st.sampled_from([False, False, False, True])),
            proof=draw(st.sampled_from(["", "crm export 2024-03"])),
            automated=channel == Channel.PHONE and draw(st.booleans()),
        )
    elif kind == "doi_confirmed":
        fields.update(topic=topic, channel=channel)
    elif kind == "opt_out":
        fields.update(
            topic=draw(st.sampled_from([topic, ANY])),
            channel=draw(st.sampled_from([channel, ANY])),
            method=draw(st.sampled_from(METHODS)),
        )
    elif kind == "complaint":
        fields.update(channel=Channel.EMAIL)
    elif kind == "pause":
        until = draw(
            st.sampled_from(
                [at, at + SECOND, at + 30 * DAY, now, now + SECOND, now - SECOND, now + 90 * DAY]
            )
        )
        fields.update(channel=draw(st.sampled_from([channel, ANY])), until=max(until, at))
    elif kind == "purchase":
        warranty = draw(st.sampled_from([None, None, at + 365 * DAY, now - SECOND, now]))
        fields.update(
            category=draw(st.sampled_from(CATEGORIES)),
            product=draw(st.sampled_from(["", "p1", "p2"])),
            warranty_until=warranty,
        )
    elif kind == "contract_start":
        fields.update(
            contract=draw(st.sampled_from(["c1", "c2"])),
            category=draw(st.sampled_from(CATEGORIES)),
        )
    elif kind == "contract_end":
        fields.update(contract=draw(st.sampled_from(["c1", "c2"])))
    elif kind == "interaction":
        fields.update(kind=draw(st.sampled_from(list(InteractionKind.values))))
    elif kind == "bounce":
        fields.update(channel=Channel.EMAIL, hard=draw(st.booleans()))
    elif kind in ("address_changed", "repermission_sent"):
        fields.update(channel=channel)
    return Recorded(kind, fields)


@st.composite
def people(draw: Any, now: datetime) -> dict[str, Any]:
    kind = draw(st.sampled_from(["consumer", "professional"]))
    collected = draw(instants(now))
    return {
        "kind": kind,
        "email": draw(
            st.sampled_from(
                [None, "marie.dupont@example.fr", "Info+events@acme.fr", "contact@acme.fr"]
            )
        ),
        "phone": draw(st.sampled_from([None, "+33612345678", "+33612345678"])),
        "postal_address": draw(st.sampled_from(["", "1 rue de la Paix, 75002 Paris"])),
        "push_token": draw(st.sampled_from(["", "push-token-1"])),
        "collected_at": min(collected, now),
        "informed_at_collection": draw(st.booleans()),
        "profession": draw(st.sampled_from(["", "procurement", "it"])),
    }


def messages() -> list[rules.Message]:
    """Questions of every channel and purpose, with and without what each path looks at."""
    found: list[rules.Message] = []
    for channel in CHANNELS:
        found.append(rules.Message(channel, Purpose.SERVICE))
        found.append(rules.Message(channel, Purpose.REPERMISSION))
        for topic, purpose in TOPICS.items():
            found.append(rules.Message(channel, purpose, topic))
        found.append(rules.Message(channel, Purpose.PROMOTION, "promotions", category="dvd"))
        found.append(
            rules.Message(channel, Purpose.PROMOTION, "new-products", category="telescope")
        )
        found.append(
            rules.Message(
                channel, Purpose.SERVICE, "promotions", category="fibre", contains_promotion=True
            )
        )
        found.append(rules.Message(channel, Purpose.CART_ABANDONMENT, "cart", product="p1"))
        found.append(
            rules.Message(
                channel, Purpose.PROMOTION, "promotions", category="sofa", professions=("it",)
            )
        )
    for automated in (False, True):
        found.append(
            rules.Message(
                Channel.PHONE,
                Purpose.PROMOTION,
                "promotions",
                category="fibre",
                professions=("procurement",),
                automated=automated,
            )
        )
    return found


MESSAGES = messages()


def _record(contact: Any, recorded: Recorded) -> None:
    fields = dict(recorded.fields)
    proof = services.Proof(
        method=fields.pop("method", ""), actor="test", reference=fields.pop("proof", "")
    )
    if recorded.type == "opt_in":
        services.consent_grant(contact=contact, proof=proof, **fields)
    elif recorded.type == "doi_confirmed":
        services.consent_confirm(contact=contact, proof=proof, **fields)
    elif recorded.type == "opt_out":
        services.consent_withdraw(contact=contact, proof=proof, **fields)
    else:
        services.RECORDERS[recorded.type](contact=contact, proof=proof, **fields)


@pytest.fixture
def catalogue(db: Any) -> None:
    for slug, purpose in TOPICS.items():
        services.topic_create(
            slug=slug, purpose=purpose, channels=list(CHANNELS), name_fr=slug, name_en=slug
        )
    for category, family in CATALOG.items():
        services.category_set(slug=category, family=family)


@st.composite
def scenarios(draw: Any) -> tuple[datetime, dict[str, Any], list[Recorded]]:
    now = draw(st.sampled_from(NOWS))
    return now, draw(people(now)), draw(st.lists(events(now), max_size=10))


@pytest.mark.django_db
@settings(
    max_examples=EXAMPLES,
    derandomize=DERANDOMIZE,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios())
def test_decide_and_the_audience_agree_on_every_contact(catalogue: None, scenario: Any) -> None:
    now, person, history = scenario
    s = rules.RuleSettings.from_django()
    catalog = dict(Category.objects.values_list("slug", "family"))
    disagreements = []
    with clock.frozen(now), transaction.atomic():
        try:
            contact = services.contact_create(**person)
            for recorded in history:
                _record(contact, recorded)
            facts = [fact_from_event(e) for e in Event.objects.filter(contact=contact)]
            who = person_from_contact(contact)
            for message in MESSAGES:
                decision = rules.decide(who, facts, message, now, catalog=catalog, settings=s)
                rows = list(audience(message, now, settings=s, contact_ids=[contact.id]))
                seen = (bool(rows), rows[0].reason if rows else None)
                expected = (decision.allowed, decision.reason if decision.allowed else None)
                if seen != expected:
                    disagreements.append((message, decision, seen))
        finally:
            transaction.set_rollback(True)
    assert not disagreements, disagreements[:3]
