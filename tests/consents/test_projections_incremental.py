"""Incremental projections: an append updates them from the stored state and the new event.

The oracle is ``projections.derive`` over the whole history (what ``rebuild_projections``
writes): on random histories, the state folded one event at a time (and stored as JSON between
events) gives the same projection after every event; through the ledger writer, the rows an
append leaves are those a recomputation from the whole history writes, back-dated events
included; and an append runs the same queries whatever the length of the history.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consents import projections, rules, services
from consents.models import CatalogFact, ChannelState, ConsentState, ContactFacts, Event
from consents.services import writing
from consents.vocab import ANY, CHANNELS, Doi, EventType, InteractionKind, Method

START = datetime(2026, 1, 11, tzinfo=UTC)
TOPICS = ["promotions", "newsletter", ANY, ""]
CHANNEL_VALUES = [*CHANNELS, ANY, ""]

KINDS = [
    EventType.OPT_IN,
    EventType.DOI_CONFIRMED,
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


@st.composite
def raw_events(draw: st.DrawFn) -> dict:
    """One event as the ledger stores it: type, topic, channel, data, method, proof."""
    kind = draw(st.sampled_from(KINDS))
    topic = draw(st.sampled_from(TOPICS))
    channel = draw(st.sampled_from(CHANNEL_VALUES))
    data: dict = {}
    if kind == EventType.OPT_IN:
        data = {
            "doi": draw(st.sampled_from([Doi.NONE, Doi.PENDING])),
            "prechecked": draw(st.booleans()),
            "bundled": draw(st.booleans()),
        }
        if draw(st.booleans()):
            data["frequency"] = draw(st.sampled_from(["weekly", "monthly"]))
        if draw(st.booleans()):
            data["automated"] = True
    elif kind == EventType.PAUSE:
        data = {"until": (START + timedelta(days=draw(st.integers(1, 90)))).isoformat()}
    elif kind == EventType.PURCHASE:
        data = {
            "category": draw(st.sampled_from(["books", "sofa"])),
            "product": draw(st.sampled_from(["", "p1"])),
        }
        if draw(st.booleans()):
            data["warranty_until"] = (
                START + timedelta(days=draw(st.integers(30, 900)))
            ).isoformat()
    elif kind == EventType.CONTRACT_START:
        data = {
            "contract": draw(st.sampled_from(["c1", "c2"])),
            "category": draw(st.sampled_from(["fibre", "mobile"])),
        }
    elif kind == EventType.CONTRACT_END:
        data = {"contract": draw(st.sampled_from(["c1", "c2", "c3"]))}
    elif kind == EventType.INTERACTION:
        data = {"kind": draw(st.sampled_from(list(InteractionKind.values)))}
    elif kind == EventType.BOUNCE:
        data = {"hard": draw(st.booleans())}
    method = ""
    if kind in (EventType.OPT_IN, EventType.OPT_OUT):
        method = draw(st.sampled_from([Method.WEB_FORM, Method.IMPORT, Method.API]))
    topical = kind in (EventType.OPT_IN, EventType.DOI_CONFIRMED, EventType.OPT_OUT)
    return {
        "type": kind,
        "topic": topic if topical else "",
        "channel": channel if kind not in (EventType.PURCHASE, EventType.INTERACTION) else "",
        "method": method,
        "proof": "ref" if method and draw(st.booleans()) else "",
        "data": data,
        # Minutes to weeks after the previous event, the same instant, or back-dated.
        "step": draw(st.sampled_from([0, 0, 60, 3600, 86400 * 3, 86400 * 10, -86400 * 2])),
    }


def _facts(raw: list[dict]) -> list[rules.Fact]:
    at, facts = START, []
    for seq, event in enumerate(raw, start=1):
        at = at + timedelta(seconds=event["step"])
        facts.append(
            projections.fact_from_row(
                type=event["type"],
                occurred_at=at,
                seq=seq,
                topic=event["topic"],
                channel=event["channel"],
                method=event["method"],
                proof=event["proof"],
                data=event["data"],
            )
        )
    return facts


PERSON = rules.Person(
    kind="consumer",
    collected_at=START - timedelta(days=30),
    informed_at_collection=True,
    email="info@example.com",
    phone="+33600000000",
)


@settings(max_examples=400, deadline=None)
@given(st.lists(raw_events(), max_size=25), st.sampled_from([1, 7]))
def test_folding_one_event_at_a_time_equals_derive(raw: list[dict], ttl_days: int) -> None:
    """In the rules' order, through a JSON round trip after each event, as an append stores it."""
    s = rules.RuleSettings(doi_ttl=timedelta(days=ttl_days))
    history = rules.ordered(_facts(raw))
    state = None
    for n, fact in enumerate(history, start=1):
        fold = projections.Fold.load(state, s) if state is not None else projections.Fold(s)
        assert fold is not None and fold.in_order(fact)
        fold.apply(fact)
        state = json.loads(json.dumps(fold.dump()))
        assert projections.Fold.load(state, s).projection(PERSON) == projections.derive(
            PERSON, history[:n], s
        ), history[:n]


@settings(max_examples=400, deadline=None)
@given(st.lists(raw_events(), max_size=25), st.sampled_from([1, 7]))
def test_only_the_row_types_change_the_rows(raw: list[dict], ttl_days: int) -> None:
    """What ``append_batch`` relies on to skip the rows of a batch without those types."""
    s = rules.RuleSettings(doi_ttl=timedelta(days=ttl_days))
    fold = projections.Fold(s)
    for fact in rules.ordered(_facts(raw)):
        before = fold.projection(PERSON)
        fold.apply(fact)
        after = fold.projection(PERSON)
        assert after.facts == fold.facts(PERSON)
        if fact.type not in projections.ROW_TYPES:
            rows = ("channel_states", "consent_states", "catalog_facts")
            assert [getattr(after, n) for n in rows] == [getattr(before, n) for n in rows], fact


def test_a_state_from_other_settings_is_not_used() -> None:
    fold = projections.Fold.of([], rules.RuleSettings()).dump()
    assert projections.Fold.load(fold, rules.RuleSettings(doi_ttl=timedelta(days=2))) is None
    assert projections.Fold.load({**fold, "v": 0}, rules.RuleSettings()) is None


def test_an_event_dated_before_the_latest_is_not_in_order() -> None:
    s = rules.RuleSettings()
    late = rules.Fact(type=EventType.PURCHASE, at=START, seq=1)
    fold = projections.Fold.of([late], s)
    assert not fold.in_order(rules.Fact(type=EventType.PURCHASE, at=START - timedelta(1), seq=2))
    assert fold.in_order(rules.Fact(type=EventType.PURCHASE, at=START, seq=2))


# --- Through the ledger writer ----------------------------------------------------------------


def _rows(contact) -> dict:
    facts = ContactFacts.objects.filter(contact=contact).values().get()
    del facts["fold"]
    return {
        "facts": facts,
        "channels": sorted(
            ChannelState.objects.filter(contact=contact).values_list(
                "channel", "opted_out", "callback_lifts", "pause_until",
                "repermission_opted_out", "has_valid_consent",
            )
        ),
        "consents": sorted(
            ConsentState.objects.filter(contact=contact).values_list(
                "topic", "channel", "status", "since", "automated", "callback_lifts", "frequency"
            )
        ),
        "catalog": sorted(
            CatalogFact.objects.filter(contact=contact).values_list(
                "kind", "category", "product", "contract", "active"
            )
        ),
    }  # fmt: skip


def _append(contact, event: dict, at: datetime) -> None:
    with transaction.atomic():
        writing._append(
            contact=contact,
            type=event["type"],
            occurred_at=at,
            proof=services.Proof(method=event["method"], actor="test", reference=event["proof"]),
            topic=event["topic"],
            channel=event["channel"],
            data=event["data"],
        )


@pytest.mark.django_db
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.lists(raw_events(), min_size=1, max_size=12))
def test_appends_leave_what_a_recomputation_writes(make_contact, raw: list[dict]) -> None:
    contact = make_contact(email=None, phone="+33600000001")
    at = START
    for event in raw:
        at = at + timedelta(seconds=event["step"])
        _append(contact, event, at)
        incremental = _rows(contact)
        projections.projection_refresh(contact)  # the oracle: the whole history
        assert _rows(contact) == incremental
    assert ContactFacts.objects.get(contact=contact).fold is not None


@pytest.mark.django_db
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    raw=st.lists(raw_events(), min_size=1, max_size=16),
    cuts=st.lists(st.integers(1, 5), min_size=16, max_size=16),
    owners=st.lists(st.booleans(), min_size=16, max_size=16),
)
def test_batches_leave_what_a_recomputation_writes(make_contact, raw, cuts, owners) -> None:
    """``append_batch``: two contacts' facts interleaved, in batches of 1 to 5 facts (which
    write only the facts' columns that changed, and the rows only for the types that can)."""
    contacts = [
        make_contact(email=None, phone="+33600000001"),
        make_contact(email=None, phone="+33600000002"),
    ]
    at, items = START, []
    for event, owner in zip(raw, owners, strict=False):
        at = at + timedelta(seconds=event["step"])
        items.append(
            services.BatchItem(
                contact_id=contacts[owner].pk,
                type=event["type"],
                occurred_at=at,
                proof=services.Proof(
                    method=event["method"], actor="test", reference=event["proof"]
                ),
                topic=event["topic"],
                channel=event["channel"],
                data=event["data"],
            )
        )
    start = 0
    for cut in cuts:
        batch, start = items[start : start + cut], start + cut
        if not batch:
            break
        with transaction.atomic():
            services.append_batch(batch)
        for contact in contacts:
            incremental = _rows(contact)
            projections.projection_refresh(contact)  # the oracle: the whole history
            assert _rows(contact) == incremental


@pytest.mark.django_db
def test_a_back_dated_event_is_recomputed_from_the_whole_history(make_contact, web_proof):
    contact = make_contact()
    services.consent_withdraw(contact=contact, topic="*", channel="email", proof=web_proof)
    withdrawn = Event.objects.get(contact=contact, type=EventType.OPT_OUT).occurred_at
    # A purchase recorded now but dated before the opt-out.
    services.purchase_record(
        contact=contact,
        category="books",
        product="b1",
        proof=web_proof,
        occurred_at=withdrawn - timedelta(1),
    )
    incremental = _rows(contact)
    projections.projection_refresh(contact)
    assert _rows(contact) == incremental
    assert incremental["facts"]["is_customer"]


@pytest.mark.django_db
def test_an_append_runs_the_same_queries_whatever_the_history(make_topic, make_contact, web_proof):
    make_topic()
    short, long = make_contact(), make_contact()
    for person, n in ((short, 10), (long, 300)):
        services.consent_grant(contact=person, topic="promotions", channel="email", proof=web_proof)
        for _ in range(n - 1):
            services.interaction_record(contact=person, kind="open", proof=web_proof)

    def queries(person) -> list[str]:
        with CaptureQueriesContext(connection) as ctx:
            services.interaction_record(contact=person, kind="click", proof=web_proof)
        return [q["sql"] for q in ctx.captured_queries]

    assert len(queries(long)) == len(queries(short))
    # No query reads the contact's events beyond the chain's last one.
    history_reads = [
        sql for sql in queries(long) if 'FROM "consents_event"' in sql and "LIMIT" not in sql
    ]
    assert history_reads == []
