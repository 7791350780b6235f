"""The bulk import path (``consents.bulk``) leaves the ledger exactly as the services would.

Same chain hashes as ``services._append`` for the same facts; chains that ``verify_range``
accepts; projections that ``projection_refresh`` recomputes unchanged; and, for every contact and
several messages, the audience query agrees with ``rules.decide``.
"""

from __future__ import annotations

import functools
import itertools
import json
import random
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from django.db.models import Max, Min

from consents import anchors, bulk, clock, ledger, projections, rules, services
from consents.audience import audience
from consents.models import (
    CatalogFact,
    Category,
    ChainHead,
    ChannelState,
    ConsentState,
    Contact,
    ContactFacts,
    Event,
    Evidence,
    Suppression,
)
from consents.selectors import proof
from consents.vocab import Reason

# Every fact of the population happens before NOW; the loads run with the clock frozen just after.
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
LOADED_AT = NOW + timedelta(hours=1)
CATALOG = {"books": "culture", "dvd": "culture", "sofa": "home", "fibre": "telecom"}
WEB = {"actor": "person", "collection_point": "https://shop.example/subscribe/"}

MESSAGES = [
    rules.Message(channel="email", purpose="promotion", topic="promotions"),
    rules.Message(channel="email", purpose="promotion", topic="promotions", category="dvd"),
    rules.Message(channel="sms", purpose="promotion", topic="new-products", category="books"),
    rules.Message(channel="email", purpose="newsletter", topic="newsletter"),
    rules.Message(channel="phone", purpose="promotion", topic="promotions", category="fibre"),
    rules.Message(channel="postal", purpose="promotion", topic="promotions"),
    rules.Message(
        channel="email", purpose="promotion", topic="promotions", professions=("procurement",)
    ),
    rules.Message(channel="email", purpose="repermission"),
    rules.Message(channel="email", purpose="service"),
]


@pytest.fixture
def catalog(make_topic):
    make_topic("promotions")
    make_topic("newsletter", purpose="newsletter", channels=["email", "postal"])
    make_topic("new-products", channels=["email", "sms", "push"])
    for slug, family in CATALOG.items():
        services.category_set(slug=slug, family=family)


def days(n: float) -> timedelta:
    return timedelta(days=n)


def scenario(i: int, rng: random.Random) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Contact ``i``: one of the situations RULES.md distinguishes, with a little noise."""
    collected = NOW - days(rng.randrange(30, 700))
    fields: dict[str, Any] = {
        "email": f"person{i}@example.fr",
        "phone": f"+3361234{i:04d}",
        "postal_address": f"{i} rue de la Paix, Paris" if i % 3 else "",
        "collected_at": collected,
        "informed_at_collection": i % 5 != 4,
        "first_name": "Zoé",
    }
    t = collected + days(1)
    events: list[dict[str, Any]] = []
    add = events.append
    case = i % 24
    if case == 0:
        add(bulk.opt_in("promotions", "email", t, method="web_form", **WEB))
    elif case == 1:
        add(bulk.opt_in("promotions", "email", t, method="web_form", doi="pending", **WEB))
        add(bulk.doi_confirmed("promotions", "email", t + days(2), actor="person"))
    elif case == 2:
        add(bulk.opt_in("promotions", "email", t, method="web_form", doi="pending", **WEB))
    elif case == 3:
        add(bulk.opt_in("promotions", "email", t, method="web_form", doi="pending", **WEB))
        add(bulk.doi_confirmed("promotions", "email", t + days(10), actor="person"))
    elif case == 4:
        add(bulk.opt_in("promotions", "email", t, method="store_tablet", frequency="weekly"))
        add(bulk.opt_out("promotions", "email", t + days(5), method="one_click_unsubscribe"))
    elif case == 5:
        add(bulk.opt_in("promotions", "email", t, method="web_form", **WEB))
        add(bulk.opt_out("*", "*", t + days(3), method="admin", actor="staff:1"))
    elif case == 6:
        add(bulk.opt_out("promotions", "*", t, method="preference_center"))
        add(bulk.opt_in("promotions", "email", t + days(4), method="preference_center"))
    elif case == 7:
        add(bulk.purchase("books", "book-1", t, actor="system"))
        add(bulk.purchase("sofa", "sofa-9", t + days(20), warranty_until=t + days(750)))
    elif case == 8:
        add(bulk.purchase("dvd", "dvd-3", t))
        add(bulk.opt_in("promotions", "email", t + days(1), method="web_form", **WEB))
        add(bulk.pause("email", NOW + days(30), t + days(2), actor="person"))
    elif case == 9:
        add(bulk.opt_in("promotions", "email", t, method="web_form", **WEB))
        add(bulk.pause("*", t + days(10), t + days(1)))
    elif case == 10:
        add(bulk.opt_in("promotions", "email", t, method="web_form", **WEB))
        add(bulk.bounce(True, t + days(3)))
    elif case == 11:
        add(bulk.opt_in("promotions", "email", t, method="web_form", **WEB))
        add(bulk.bounce(True, t + days(3)))
        add(bulk.address_changed("email", t + days(6), actor="person"))
    elif case == 12:
        add(bulk.opt_in("promotions", "email", t, method="web_form", **WEB))
        add(bulk.complaint(t + days(8)))
    elif case == 13:
        fields.update(kind="professional", email=f"info@company{i}.example", profession="it")
    elif case == 14:
        fields.update(kind="professional", profession="procurement")
    elif case == 15:
        add(bulk.opt_in("promotions", "email", t, method="web_form", prechecked=True, **WEB))
    elif case == 16:
        add(bulk.opt_in("promotions", "email", t, method="import", proof="crm:form-2024-03"))
        add(bulk.opt_in("new-products", "sms", t, method="import"))  # no proof
    elif case == 17:
        add(bulk.contract_start(f"C{i}", "fibre", t, actor="system"))
        add(bulk.callback_request(NOW - days(3), actor="person"))
    elif case == 18:
        add(bulk.contract_start(f"C{i}", "fibre", t))
        add(bulk.contract_end(f"C{i}", t + days(15)))
    elif case == 19:
        fields["collected_at"] = collected = NOW - days(3 * 365 - 10)
        add(bulk.opt_in("promotions", "email", collected, method="web_form", **WEB))
        if i >= 24:  # asked already: not due again
            add(bulk.repermission_sent("email", NOW - days(2)))
    elif case == 20:
        fields["collected_at"] = NOW - days(4 * 365)
        add(bulk.interaction("open", NOW - days(4 * 365 - 5)))
    elif case == 21:
        fields["email"] = None
        add(bulk.opt_in("new-products", "sms", t, method="phone_call", actor="staff:2"))
    elif case == 22:
        add(bulk.opt_in("newsletter", "email", t, method="web_form", frequency="monthly", **WEB))
    else:
        add(bulk.interaction("click", t, actor="person"))
        add(bulk.interaction("open", t + days(1)))
    # Noise: a few more facts, in time order after the scenario's own.
    last = max((e["occurred_at"] for e in events), default=t)
    for _ in range(rng.randrange(3) if case not in (19, 20) else 0):
        last = last + days(rng.random() * 3)
        if last >= NOW:
            break
        add(
            rng.choice(
                [
                    bulk.interaction("open", last),
                    bulk.interaction("click", last, actor="person"),
                    bulk.purchase(rng.choice(list(CATALOG)[:3]), "p-1", last),
                    bulk.bounce(False, last),
                ]
            )
        )
    if i % 7 == 0 and events:  # personal evidence on the first event
        events[0] = {**events[0], "ip_address": "203.0.113.9", "user_agent": "Mozilla/5.0 (test)"}
    return fields, events


def population(start: int = 0, stop: int = 48) -> list[tuple[dict[str, Any], list[dict]]]:
    return [scenario(i, random.Random(i)) for i in range(start, stop)]


def snapshot(contact: Contact) -> dict[str, Any]:
    """A contact's projection rows, without their surrogate ids, nor the state an append starts
    from (the loader leaves it to the contact's first append, which recomputes it)."""

    def rows(model: Any) -> list[tuple]:
        values = model.objects.filter(contact=contact).values()
        return sorted(
            tuple(sorted((k, v) for k, v in row.items() if k not in ("id", "fold")))
            for row in values
        )

    return {
        "facts": rows(ContactFacts),
        "channel_states": rows(ChannelState),
        "consent_states": rows(ConsentState),
        "catalog_facts": rows(CatalogFact),
    }


def load(items: list[tuple[dict[str, Any], list[dict]]], **options: Any) -> bulk.LoadStats:
    with clock.frozen(LOADED_AT):
        return bulk.load(items, keep_ids=True, **options)


# --- On PostgreSQL: load, verify, refresh, decide --------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db
def test_bulk_chains_verify_and_projections_match_a_refresh(catalog):
    items = population()
    stats = load(items, batch_size=10)  # five batches
    assert stats.contacts == len(items) == len(stats.contact_ids)
    assert stats.batches == 5
    assert stats.events == sum(len(events) for _, events in items) == Event.objects.count()

    checked, broken = ledger.verify_range(min(stats.contact_ids), max(stats.contact_ids) + 1)
    assert broken is None
    assert checked == stats.events

    with_evidence = [e for _, events in items for e in events if e.get("ip_address")]
    assert Evidence.objects.count() == stats.evidence == len(with_evidence)
    salts = set()
    for evidence in Evidence.objects.select_related("event"):
        # Keyed, as services._append keys it: with a salt of its own, kept in the evidence row.
        assert len(evidence.salt) == 32 and evidence.salt not in salts
        salts.add(evidence.salt)
        digest = ledger.evidence_digest(
            evidence.ip_address, evidence.user_agent, evidence.details, salt=evidence.salt
        )
        assert evidence.event.evidence_digest == digest
    # Each chain's head recorded in the same transaction, as services._append records it.
    heads = ChainHead.objects.filter(contact_id__in=stats.contact_ids)
    assert heads.count() == len({e.contact_id for e in Event.objects.all()})
    for head in heads:
        last = Event.objects.filter(contact_id=head.contact_id).order_by("-seq").first()
        assert (head.seq, head.hash, head.recorded_at) == (last.seq, last.hash, last.recorded_at)

    contacts = Contact.objects.filter(pk__in=stats.contact_ids).order_by("pk")
    assert [c.email for c in contacts] == [f["email"] for f, _ in items]
    settings = rules.RuleSettings.from_django()
    for contact in contacts:
        loaded = snapshot(contact)
        assert loaded["facts"], f"contact {contact.pk} has no ContactFacts row"
        projections.projection_refresh(contact, settings)
        assert snapshot(contact) == loaded, f"contact {contact.pk} ({contact.email})"


@pytest.mark.postgres
@pytest.mark.django_db
def test_audience_agrees_with_decide_on_every_bulk_loaded_contact(catalog):
    stats = load(population(), batch_size=20)
    settings = rules.RuleSettings.from_django()
    known = dict(Category.objects.values_list("slug", "family"))
    contacts = list(Contact.objects.filter(pk__in=stats.contact_ids).prefetch_related("events"))
    reasons: set[str] = set()
    for message in MESSAGES:
        rows = {
            row.contact_id: row.reason
            for row in audience(message, NOW, settings=settings, contact_ids=stats.contact_ids)
        }
        for contact in contacts:
            history = [projections.fact_from_event(e) for e in contact.events.all()]
            decision = rules.decide(
                projections.person_from_contact(contact),
                history,
                message,
                NOW,
                catalog=known,
                settings=settings,
            )
            reasons.add(decision.reason)
            where = f"{message} / contact {contact.pk} ({contact.email}): {decision.reason}"
            assert (contact.pk in rows) == decision.allowed, where
            if decision.allowed:
                assert rows[contact.pk] == decision.reason, where
    # The population is varied enough for the agreement to mean something.
    assert {
        Reason.OPT_IN,
        Reason.SOFT_OPT_IN,
        Reason.GENERIC_ADDRESS,
        Reason.B2B_PROFESSIONAL,
        Reason.LEGITIMATE_INTEREST,
        Reason.CONTRACT_IN_PROGRESS,
        Reason.REPERMISSION,
        Reason.OPTED_OUT,
        Reason.PAUSED,
        Reason.UNDELIVERABLE,
        Reason.CONSENT_PENDING,
        Reason.INVALID_CONSENT,
        Reason.RETENTION_EXPIRED,
        Reason.NO_ADDRESS,
    } <= reasons


@pytest.mark.postgres
@pytest.mark.django_db
def test_bulk_stores_the_state_the_next_append_starts_from(catalog, monkeypatch):
    """Each contact's fold state is the one a recomputation stores: the contact's next append
    updates its projections from it (not from its whole history) and lands where a recomputation
    of the whole history does."""
    stats = load(population(0, 24), batch_size=10)
    settings = rules.RuleSettings.from_django()
    contacts = list(Contact.objects.filter(pk__in=stats.contact_ids).order_by("pk"))
    for contact in contacts:
        loaded = ContactFacts.objects.get(contact=contact).fold
        assert loaded is not None, f"contact {contact.pk} has no state"
        projections.projection_refresh(contact, settings)
        assert ContactFacts.objects.get(contact=contact).fold == loaded, f"contact {contact.pk}"

    def recomputed(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the append recomputed the whole history")

    for contact in contacts[:6]:
        with monkeypatch.context() as patch, clock.frozen(LOADED_AT + timedelta(minutes=1)):
            patch.setattr(projections, "projection_refresh", recomputed)
            services.interaction_record(
                contact=contact, kind="click", proof=services.Proof(actor="person"),
                occurred_at=LOADED_AT,
            )  # fmt: skip
        appended = snapshot(contact)
        projections.projection_refresh(contact, settings)
        assert snapshot(contact) == appended, f"contact {contact.pk}"


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_bad_batch_is_refused_whole(catalog):
    good = population(0, 3)
    bad = population(3, 6)
    bad[1][1].append(bulk.opt_in("unknown-topic", "email", NOW, method="web_form"))
    with pytest.raises(bulk.BulkError, match=r"contact #5 event #\d+, topic"):
        load(good + bad, batch_size=3)
    # The first batch was committed (here: its savepoint released), the second not at all.
    assert list(Contact.objects.values_list("email", flat=True).order_by("pk")) == [
        f["email"] for f, _ in good
    ]
    assert Event.objects.count() == sum(len(events) for _, events in good)

    duplicate = population(10, 11)
    duplicate[0][0]["email"] = good[0][0]["email"]
    with pytest.raises(bulk.BulkError, match="unique|duplicate"):
        load(duplicate)
    assert Contact.objects.count() == 3


@pytest.mark.postgres
@pytest.mark.django_db
def test_future_facts_are_refused(catalog):
    fields, _ = scenario(0, random.Random(0))
    events = [bulk.interaction("click", LOADED_AT + days(1))]
    with pytest.raises(bulk.BulkError, match="in the future"):
        load([(fields, events)])
    assert not Contact.objects.exists()


def _automated_opt_in() -> dict[str, Any]:
    event = bulk.opt_in("promotions", "email", NOW, method="phone_call", actor="agent-7")
    event["data"]["automated"] = True
    return event


def _pause_ending_at_once(**data: Any) -> dict[str, Any]:
    return {**bulk.pause("email", NOW, NOW), "data": {"until": ledger.iso(NOW), **data}}


# The loader is the import path: what a service call refuses, it refuses too (consents.validation).
@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("event", "field"),
    [
        (bulk.callback_request(NOW, channel="email"), "channel"),
        (_automated_opt_in(), "automated"),
        (_pause_ending_at_once(), "until"),
    ],
    ids=["callback-by-email", "automated-email", "pause-ending-at-once"],
)
def test_the_loader_refuses_what_the_services_refuse(catalog, event, field):
    fields, _ = scenario(0, random.Random(0))
    with pytest.raises(bulk.BulkError, match=rf"contact #1 event #1, {field}:"):
        load([(fields, [event])])
    assert not Contact.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_loader_takes_a_resume_and_dates_a_clock_a_little_ahead_now(catalog):
    fields, _ = scenario(0, random.Random(0))
    ahead = bulk.interaction("click", LOADED_AT + timedelta(minutes=2))
    load([(fields, [_pause_ending_at_once(resume=True), ahead])])
    resume, click = Event.objects.order_by("seq")
    assert resume.data["resume"] is True
    # As services._append: an event is never dated after the moment it is recorded.
    assert click.occurred_at == click.recorded_at == LOADED_AT
    assert ledger.verify_range(click.contact_id, click.contact_id + 1)[1] is None


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_suppressed_address_is_not_imported_as_consenting(catalog):
    fields, _ = scenario(0, random.Random(0))
    Suppression.objects.create(
        digest=services.suppression_digest("email", fields["email"]),
        kind="email",
        created_at=NOW,
    )
    imported = [bulk.opt_in("promotions", "email", NOW, method="import", proof="crm:1")]
    with pytest.raises(bulk.BulkError, match="suppression list"):
        load([(fields, imported)])
    assert not Contact.objects.exists()
    # The person saying yes again on our own form is another matter, as in the services.
    own_form = [bulk.opt_in("promotions", "email", NOW, method="web_form", **WEB)]
    assert load([(fields, own_form)]).contacts == 1


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_suppressed_address_is_imported_opted_out_before_its_history(catalog):
    """An erased person's address, imported again with a purchase: not SOFT_OPT_IN."""
    fields = {"email": "lea@example.fr", "phone": "06 11 11 11 11", "collected_at": NOW - days(9),
              "informed_at_collection": True}  # fmt: skip
    for kind, address in (("email", fields["email"]), ("phone", fields["phone"])):
        Suppression.objects.create(
            digest=services.suppression_digest(kind, address), kind=kind, created_at=NOW - days(5)
        )
    history = [bulk.purchase("books", "Dune", NOW - days(1), actor="api:shop")]
    (contact_id,) = load([(fields, history)]).contact_ids
    events = list(Event.objects.filter(contact_id=contact_id).order_by("seq"))
    assert [(e.type, e.topic, e.channel, e.method, e.actor) for e in events] == [
        ("opt_out", "*", "email", "suppression", "system"),
        ("opt_out", "*", "sms", "suppression", "system"),
        ("opt_out", "*", "phone", "suppression", "system"),
        ("purchase", "", "", "", "api:shop"),
    ]
    contact = Contact.objects.get(pk=contact_id)
    _, facts = proof.history(contact)
    for channel in ("email", "sms"):
        message = rules.Message(channel=channel, purpose="promotion", topic="promotions",
                                category="dvd")  # fmt: skip
        assert proof.decide_for(contact, facts, message, NOW).reason == Reason.OPTED_OUT
        assert contact_id not in {row.contact_id for row in audience(message, NOW)}
    assert ledger.verify_range(contact_id, contact_id + 1)[1] is None


@pytest.mark.postgres
@pytest.mark.django_db
def test_an_import_is_never_recorded_at_or_before_the_latest_anchor(catalog):
    """The anchor signed the heads of what was recorded until its instant: an import with an
    earlier ``recorded_at`` would make it no longer match the ledger."""
    with clock.frozen(LOADED_AT):
        anchor = anchors.anchor_create(at=LOADED_AT - timedelta(minutes=10))
    fields, _ = scenario(0, random.Random(0))
    backdated = {**bulk.interaction("click", NOW), "recorded_at": anchor.at}
    with pytest.raises(bulk.BulkError, match="contact #1 event #1, recorded_at: at or before"):
        load([(fields, [backdated])])
    assert not Contact.objects.exists()
    stats = load([(fields, [bulk.interaction("click", NOW)])])
    assert stats.contacts == 1
    check = anchors.latest_check()
    assert check is not None and check.ok, check.problems


def _part(start: int, stop: int) -> list[tuple[dict[str, Any], list[dict]]]:
    return population(start, stop)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_parallel_load_verifies(catalog):
    parts = [functools.partial(_part, 0, 12), functools.partial(_part, 12, 24)]
    with clock.frozen(LOADED_AT):
        stats = bulk.load_parallel(parts, batch_size=5)
    assert stats.contacts == Contact.objects.count() == 24
    assert stats.events == Event.objects.count()
    bounds = Event.objects.aggregate(lo=Min("contact_id"), hi=Max("contact_id"))
    checked, broken = ledger.verify_range(bounds["lo"], bounds["hi"] + 1)
    assert (checked, broken) == (stats.events, None)
    assert ContactFacts.objects.count() == 24


# --- On any database: the bulk chain is the service chain -----------------------------------------


@pytest.mark.django_db
def test_bulk_and_services_chain_the_same_facts_to_the_same_hashes(catalog, monkeypatch):
    # Evidence digests are keyed with a random salt per event: the same salts, in the same
    # order, on both paths.
    salts = itertools.count()
    monkeypatch.setattr(ledger, "evidence_salt", lambda: f"salt-{next(salts)}")
    proof = services.Proof(
        method="web_form",
        actor="person",
        collection_point="https://shop.example/subscribe/?src=«mail»",
        ip_address="203.0.113.7",
        user_agent="Mozilla/5.0 (test)",
        details={"form": "v2"},
    )
    system = services.Proof(actor="system")
    fields = {
        "email": "marie.dupont@example.fr",
        "phone": "+33612345678",
        "collected_at": NOW - days(400),
        "informed_at_collection": True,
    }
    t = NOW - days(300)
    with clock.frozen(LOADED_AT):
        contact = services.contact_create(**fields)
        services.consent_grant(
            contact=contact,
            topic="promotions",
            channel="email",
            proof=proof,
            doi="pending",
            frequency="weekly",
            occurred_at=t,
        )
        services.consent_confirm(
            contact=contact, topic="promotions", channel="email", proof=system,
            occurred_at=t + days(1),
        )  # fmt: skip
        services.purchase_record(
            contact=contact, category="books", product="book-1", proof=system,
            warranty_until=t + days(800), occurred_at=t + days(2),
        )  # fmt: skip
        services.marketing_pause(
            contact=contact, channel="*", until=NOW + days(10), proof=system,
            occurred_at=t + days(3),
        )  # fmt: skip
        services.contract_start(
            contact=contact, contract="C1", category="fibre", proof=system,
            occurred_at=t + days(4),
        )  # fmt: skip
        services.contract_end(contact=contact, contract="C1", proof=system, occurred_at=t + days(5))
        services.interaction_record(
            contact=contact, kind="click", proof=system, occurred_at=t + days(6)
        )
        services.bounce_record(contact=contact, hard=True, proof=system, occurred_at=t + days(7))
        services.address_change_record(
            contact=contact, channel="email", proof=system, occurred_at=t + days(8)
        )
        services.callback_request(contact=contact, proof=system, occurred_at=t + days(9))
        services.repermission_record(
            contact=contact, channel="sms", proof=system, occurred_at=t + days(10)
        )
        services.complaint_record(contact=contact, proof=system, occurred_at=t + days(11))
        services.consent_withdraw(
            contact=contact, topic="*", channel="*", proof=proof, occurred_at=t + days(12)
        )
    stored = list(Event.objects.filter(contact=contact).order_by("seq"))

    web = {
        "actor": "person",
        "collection_point": proof.collection_point,
        "ip_address": proof.ip_address,
        "user_agent": proof.user_agent,
        "details": proof.details,
    }
    by_system = {"actor": "system"}
    events = [
        bulk.opt_in(
            "promotions", "email", t, method="web_form", doi="pending", frequency="weekly", **web
        ),
        bulk.doi_confirmed("promotions", "email", t + days(1), **by_system),
        bulk.purchase("books", "book-1", t + days(2), warranty_until=t + days(800), **by_system),
        bulk.pause("*", NOW + days(10), t + days(3), **by_system),
        bulk.contract_start("C1", "fibre", t + days(4), **by_system),
        bulk.contract_end("C1", t + days(5), **by_system),
        bulk.interaction("click", t + days(6), **by_system),
        bulk.bounce(True, t + days(7), **by_system),
        bulk.address_changed("email", t + days(8), **by_system),
        bulk.callback_request(t + days(9), **by_system),
        bulk.repermission_sent("sms", t + days(10), **by_system),
        bulk.complaint(t + days(11), **by_system),
        bulk.opt_out("*", "*", t + days(12), method="web_form", **web),
    ]
    row = bulk.contact_row(fields, now=LOADED_AT, checks=None)
    settings = rules.RuleSettings.from_django()
    salts = itertools.count()
    prepared = bulk.prepare(
        contact.pk, row, events, recorded_at=LOADED_AT, settings=settings, check_template=True
    )

    assert [e.hash for e in prepared.events] == [e.hash for e in stored]
    assert [e.prev_hash for e in prepared.events] == [e.prev_hash for e in stored]
    assert [e.evidence_digest for e in prepared.events] == [e.evidence_digest for e in stored]
    # Both keep the page, not its query string (``?src=…``), in the chain.
    assert [e.collection_point for e in prepared.events] == [e.collection_point for e in stored]
    assert stored[0].collection_point == "https://shop.example/subscribe/"
    assert [salt for *_, salt in prepared.evidence] == [
        Evidence.objects.get(event=stored[0]).salt,
        Evidence.objects.get(event=stored[12]).salt,
    ]
    assert [e.data for e in prepared.events] == [ledger.canonical_json(e.data) for e in stored]
    assert [index for index, *_ in prepared.evidence] == [0, 12]

    # The projections the bulk path would write are the ones the services wrote.
    facts = ContactFacts.objects.filter(contact=contact).values().get()
    assert {k: facts[k] for k in prepared.projection.facts} == prepared.projection.facts

    for model, expected in (
        (ChannelState, prepared.projection.channel_states),
        (ConsentState, prepared.projection.consent_states),
        (CatalogFact, prepared.projection.catalog_facts),
    ):
        assert _same(model, contact, expected), model.__name__


def _same(model: Any, contact: Contact, expected: list[dict[str, Any]]) -> bool:
    """The stored rows of ``model`` for ``contact`` are the ``expected`` projection rows."""
    stored = [
        {k: v for k, v in r.items() if k not in ("id", "contact_id")}
        for r in model.objects.filter(contact=contact).values()
    ]

    def plain(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.astimezone(UTC)
        return str(value) if isinstance(value, str) else value  # choices -> their value

    def key(row: dict[str, Any]) -> str:
        return repr(sorted((k, plain(v)) for k, v in row.items()))

    return sorted(map(key, stored)) == sorted(map(key, expected))


def test_the_canonical_template_agrees_with_the_ledger():
    assert bulk.CANONICAL_TEMPLATE, "the fast canonical form no longer matches the ledger's"


def test_bulk_spells_the_canonical_text_with_the_ledgers_own_template():
    """One fast spelling of the canonical form, shared with ``verify_ledger``: not a second one."""
    assert bulk._template is ledger.canonical_text
    assert bulk._json is ledger.canonical_data
    assert bulk._iso is ledger.fast_iso
    assert bulk.CANONICAL_TEMPLATE is ledger.CANONICAL_TEMPLATE


def test_bulk_projections_equal_the_reference_projections():
    """What ``prepare`` computes for every contact of the population is what the former
    ``projections.derive`` (the one that asked every question of the whole history) computed."""
    from tests.consents.test_projections_equivalence import reference_derive

    settings = rules.RuleSettings.from_django()
    for i, (fields, events) in enumerate(population(0, 200), 1):
        row = bulk.contact_row(fields, now=LOADED_AT, checks=None)
        prepared = bulk.prepare(i, row, events, recorded_at=LOADED_AT, settings=settings)
        history = [
            projections.fact_from_row(
                type=e.type, occurred_at=e.occurred_at, seq=e.seq, topic=e.topic,
                channel=e.channel, method=e.method, proof=e.proof, data=json.loads(e.data),
            )
            for e in prepared.events
        ]  # fmt: skip
        person = projections.person_from_contact(SimpleNamespace(**row))
        assert prepared.projection == reference_derive(person, history, settings), i


@pytest.mark.postgres
@pytest.mark.django_db
def test_ids_are_reserved_from_the_table_sequence_in_order_and_once() -> None:
    from django.db import connection

    from consents import copying

    with connection.cursor() as cursor:
        first = copying.reserve_ids(cursor, "consents_event", 5)
        second = copying.reserve_ids(cursor, "consents_event", 3)
        assert copying.reserve_ids(cursor, "consents_event", 0) == []
        cursor.execute("SELECT nextval(pg_get_serial_sequence('consents_event', 'id'))")
        (after,) = cursor.fetchone()
    assert first == sorted(first) and len(set(first)) == 5
    assert second == sorted(second) and len(second) == 3
    assert first[-1] < second[0] and second[-1] < after
