"""The audience query and ``decide`` must agree, contact by contact, message by message."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from consents import clock, services
from consents.audience import audience
from consents.models import Category, Contact, Event
from consents.projections import fact_from_event, person_from_contact
from consents.rules import Message, RuleSettings, decide
from tests.conftest import at

NOW = at("2026-11-29T12:00")
TOPICS = {"promotions": "promotion", "newsletter": "newsletter", "cart": "cart_abandonment"}
CATALOG = {"books": "culture", "dvd": "culture", "sofa": "home", "fibre": "telecom"}
CHANNELS = ["email", "sms", "phone", "postal", "push"]

MESSAGES = (
    [
        Message(channel=ch, purpose="promotion", topic="promotions", category=cat)
        for ch in CHANNELS
        for cat in ("dvd", "sofa", "fibre", None)
    ]
    + [
        Message(channel="email", purpose="newsletter", topic="newsletter"),
        Message(channel="phone", purpose="newsletter", topic="newsletter"),
        Message(channel="sms", purpose="cart_abandonment", topic="cart", product="sku-1"),
        Message(channel="email", purpose="cart_abandonment", topic="cart", product="sku-2"),
        Message(channel="email", purpose="service"),
        Message(
            channel="email",
            purpose="service",
            topic="promotions",
            contains_promotion=True,
            category="books",
        ),
        Message(
            channel="phone",
            purpose="promotion",
            topic="promotions",
            category="fibre",
            automated=True,
        ),
        Message(channel="email", purpose="promotion", topic="promotions", professions=("buyer",)),
        Message(channel="postal", purpose="partner_offer", topic="promotions"),
    ]
    + [Message(channel=ch, purpose="repermission") for ch in CHANNELS]
)


def _random_person(rng: random.Random, n: int) -> Contact:
    professional = rng.random() < 0.3
    local = rng.choice(["info", "contact", f"person{n}", f"Sales+{n}", f"p{n}"])
    return services.contact_create(
        email=f"{local}.{n}@example.fr"
        if rng.random() < 0.2
        else (f"{local}@company{n}.fr" if rng.random() < 0.9 else None),
        phone=f"+3361234{n:04d}" if rng.random() < 0.7 else None,
        postal_address="1 rue de la Paix, Paris" if rng.random() < 0.6 else "",
        push_token=f"tok-{n}" if rng.random() < 0.3 else "",
        kind="professional" if professional else "consumer",
        profession=rng.choice(["buyer", "cto", ""]) if professional else "",
        informed_at_collection=rng.random() < 0.7,
        collected_at=NOW - timedelta(days=rng.randint(10, 1400)),
    )


def _random_history(rng: random.Random, contact: Contact) -> None:
    start = contact.collected_at
    times = sorted(
        start + timedelta(days=rng.randint(0, max(1, (NOW - start).days))) for _ in range(8)
    )
    proof = services.Proof(method="web_form", actor="person")
    for when in times[: rng.randint(0, 8)]:
        kind = rng.choice(
            [
                "opt_in",
                "opt_in",
                "opt_in",
                "doi",
                "opt_out",
                "opt_out_all",
                "purchase",
                "contract",
                "contract_end",
                "pause",
                "bounce",
                "click",
                "open",
                "callback",
                "complaint",
                "repermission",
                "address",
            ]
        )
        topic = rng.choice(list(TOPICS))
        channel = rng.choice(CHANNELS)
        common = {"contact": contact, "occurred_at": when}
        if kind == "opt_in":
            method = rng.choice(["web_form", "import", "api", "preference_center"])
            services.consent_grant(
                **common,
                topic=topic,
                channel=channel,
                doi=rng.choice(["none", "pending"]),
                prechecked=rng.random() < 0.1,
                bundled=rng.random() < 0.1,
                proof=services.Proof(
                    method=method,
                    actor="person",
                    reference="crm" if rng.random() < 0.5 else "",
                ),
            )
        elif kind == "doi":
            services.consent_confirm(**common, topic=topic, channel=channel, proof=proof)
        elif kind == "opt_out":
            services.consent_withdraw(
                **common,
                topic=rng.choice([topic, "*"]),
                channel=rng.choice([channel, "*"]),
                proof=proof,
            )
        elif kind == "opt_out_all":
            services.consent_withdraw(**common, topic="*", channel="*", proof=proof)
        elif kind == "purchase":
            services.purchase_record(
                **common,
                category=rng.choice(list(CATALOG) + ["shoes"]),
                product=rng.choice(["sku-1", "sku-2", "sku-3"]),
                warranty_until=when + timedelta(days=730) if rng.random() < 0.3 else None,
                proof=proof,
            )
        elif kind == "contract":
            services.contract_start(
                **common,
                contract=rng.choice(["c1", "c2"]),
                category=rng.choice(["fibre", "sofa"]),
                proof=proof,
            )
        elif kind == "contract_end":
            services.contract_end(**common, contract=rng.choice(["c1", "c2"]), proof=proof)
        elif kind == "pause":
            services.marketing_pause(
                **common,
                channel=rng.choice([channel, "*"]),
                until=when + timedelta(days=rng.choice([30, 90, 400])),
                proof=proof,
            )
        elif kind == "bounce":
            services.bounce_record(**common, hard=rng.random() < 0.7, proof=proof)
        elif kind in ("click", "open"):
            services.interaction_record(**common, kind=kind, proof=proof)
        elif kind == "callback":
            services.callback_request(**common, proof=proof)
        elif kind == "complaint":
            services.complaint_record(**common, proof=proof)
        elif kind == "repermission":
            services.repermission_record(**common, channel=channel, proof=proof)
        elif kind == "address":
            services.address_change_record(**common, channel="email", proof=proof)


def _population(size: int):
    rng = random.Random(20261129)
    with clock.frozen(NOW):
        for slug, purpose in TOPICS.items():
            services.topic_create(
                slug=slug, purpose=purpose, channels=CHANNELS, name_fr=slug, name_en=slug
            )
        for category, family in CATALOG.items():
            services.category_set(slug=category, family=family)
        for n in range(size):
            _random_history(rng, _random_person(rng, n))
    return Contact.objects.all()


@pytest.fixture
def population(db):
    return _population(120)


@pytest.fixture
def small_population(db):
    return _population(25)


def _decisions(contacts, message: Message) -> dict[int, str]:
    catalog = dict(Category.objects.values_list("slug", "family"))
    settings = RuleSettings.from_django()
    allowed = {}
    for contact in contacts:
        history = [fact_from_event(e) for e in Event.objects.filter(contact=contact)]
        d = decide(
            person_from_contact(contact), history, message, NOW, catalog=catalog, settings=settings
        )
        if d.allowed:
            allowed[contact.id] = d.reason
    return allowed


def test_audience_agrees_with_decide_for_every_contact_and_message(population):
    reasons_seen = set()
    for message in MESSAGES:
        expected = _decisions(population, message)
        got = {row.contact_id: row.reason for row in audience(message, NOW)}
        assert got == expected, message
        reasons_seen |= set(expected.values())
    # The population is varied enough to exercise most allowing paths.
    assert len(reasons_seen) >= 8, reasons_seen


def test_audience_yields_the_address_for_the_channel(small_population):
    rows = list(audience(Message(channel="sms", purpose="service"), NOW))
    assert rows
    phones = dict(Contact.objects.values_list("id", "phone"))
    assert all(
        row.address == phones[row.contact_id] and row.address.startswith("+") for row in rows
    )


def test_audience_is_a_single_query(small_population):
    message = Message(channel="email", purpose="promotion", topic="promotions", category="dvd")
    with CaptureQueriesContext(connection) as ctx:
        list(audience(message, NOW))
    # One for the category's family, one for the audience itself.
    assert len(ctx.captured_queries) == 2


def test_audience_as_of_a_later_date_drops_expired_contacts(small_population):
    message = Message(channel="email", purpose="service")
    now_count = len(list(audience(message, NOW)))
    later_count = len(list(audience(message, NOW + timedelta(days=3 * 366))))
    assert later_count < now_count
