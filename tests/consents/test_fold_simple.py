"""The direct fold of a mailing list's histories (``projections.fold_simple``) is the generic one.

On generated histories near the shape it handles (an opt-in to one topic on one channel, then
confirmations, opt-outs and bounces, at instants around the double opt-in's time limit, with
other settings, generic addresses and out-of-order instants), whenever it answers, it answers
what ``Fold.of(...).projection(person)`` and ``.dump()`` give; it answers for every history an
import's presets make; and the bulk loader refuses to write a direct fold that disagrees.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consents import bulk, ledger, projections, rules
from consents.vocab import ANY, CHANNELS, Doi, EventType, Method

START = datetime(2024, 2, 29, 12, 0, tzinfo=UTC)
TTL = timedelta(days=7)
OFFSETS = [
    timedelta(0),
    timedelta(microseconds=1),
    timedelta(minutes=5),
    TTL - timedelta(microseconds=1),
    TTL,
    TTL + timedelta(microseconds=1),
    timedelta(days=30),
    -timedelta(seconds=1),  # before the event before it: the generic fold sorts it
]
SETTINGS = [
    rules.RuleSettings(),
    rules.RuleSettings(doi_ttl=timedelta(days=2), retention_years=1),
    rules.RuleSettings(generic_local_parts=frozenset({"news"})),
]
Folded = tuple[str, datetime, int, str, str, str, str, dict[str, Any]]


@st.composite
def opt_ins(draw: st.DrawFn) -> tuple[str, str, str, str, dict[str, Any]]:
    topic = draw(st.sampled_from(["newsletter", "newsletter", "promotions", ANY, ""]))
    channel = draw(st.sampled_from([*CHANNELS, *CHANNELS, "email", ANY, "", "fax"]))
    method = draw(st.sampled_from([Method.IMPORT, Method.WEB_FORM, Method.API, "", "other"]))
    proof = draw(st.sampled_from(["", "import mailchimp sha256:ab row:2"]))
    data: dict[str, Any] = {"doi": draw(st.sampled_from([Doi.NONE, Doi.PENDING] * 3 + ["other"]))}
    for name in ("prechecked", "bundled", "automated"):
        if draw(st.booleans()):
            data[name] = draw(st.booleans())
    if draw(st.booleans()):
        data["frequency"] = draw(st.sampled_from(["", "weekly"]))
    if draw(st.integers(0, 19)) == 0:
        data[draw(st.sampled_from(["until", "warranty_until", "hard"]))] = "2025-01-01T00:00:00Z"
    if draw(st.integers(0, 19)) == 0:
        data = {}
    return topic, channel, method, proof, data


@st.composite
def histories(draw: st.DrawFn) -> list[Folded]:
    topic, channel, method, proof, data = draw(opt_ins())
    at = START + draw(st.sampled_from(OFFSETS[:-1]))
    events: list[Folded] = [(EventType.OPT_IN, at, 1, topic, channel, method, proof, data)]
    kinds = [EventType.DOI_CONFIRMED, EventType.OPT_OUT, EventType.BOUNCE] * 4 + [
        EventType.OPT_IN,
        EventType.INTERACTION,
    ]
    for seq in range(2, draw(st.integers(1, 4)) + 1):
        kind = draw(st.sampled_from(kinds))
        at = at + draw(st.sampled_from(OFFSETS[:-1] * 3 + OFFSETS[-1:]))
        same = draw(st.integers(0, 9)) > 0  # mostly the opt-in's own pair
        e_topic = topic if same else draw(st.sampled_from(["promotions", ANY, ""]))
        e_channel = channel if same else draw(st.sampled_from([*CHANNELS, ANY]))
        e_data: dict[str, Any] = {}
        if kind == EventType.BOUNCE:
            e_topic = ""
            e_channel = draw(st.sampled_from(["email", "sms"]))
            e_data = {"hard": draw(st.booleans())}
        elif kind == EventType.DOI_CONFIRMED and draw(st.booleans()):
            e_data = {"token_digest": "ab" * 32}
        elif kind == EventType.OPT_IN:
            e_data = {"doi": Doi.NONE}
        elif kind == EventType.INTERACTION:
            e_data = {"kind": "click"}
        events.append((kind, at, seq, e_topic, e_channel, Method.IMPORT, proof, e_data))
    return events


def generic(
    events: list[Folded], collected_at: datetime, email: str | None, s: rules.RuleSettings
) -> tuple[projections.Projection, str]:
    facts = [
        projections.fact_from_row(
            type=kind, occurred_at=at, seq=seq, topic=topic, channel=channel, method=method,
            proof=proof, data=data,
        )
        for kind, at, seq, topic, channel, method, proof, data in events
    ]  # fmt: skip
    person = projections.person_from_contact(
        SimpleNamespace(
            kind="consumer", collected_at=collected_at, informed_at_collection=True, email=email,
            phone="", postal_address="", push_token="", profession="",
        )
    )  # fmt: skip
    fold = projections.Fold.of(facts, s)
    return fold.projection(person), ledger.canonical_json(fold.dump())


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=histories(),
    collected=st.sampled_from([-timedelta(days=400), timedelta(0), timedelta(days=3)]),
    email=st.sampled_from(["marie@example.fr", "info@shop.fr", "news+x@shop.fr", None, ""]),
    s=st.sampled_from(SETTINGS),
)
def test_the_direct_fold_is_the_generic_fold(events, collected, email, s):
    quick = projections.fold_simple(events, START + collected, email, s)
    if quick is None:
        return
    projection, state, _outcome = quick
    expected_projection, expected_state = generic(events, START + collected, email, s)
    assert projection == expected_projection
    assert state == expected_state
    assert json.loads(state) == json.loads(expected_state)


def _mapped(preset: str, row: dict[str, str], topic: str = "newsletter") -> Any:
    from consents.imports.presets import MAPPERS, Context

    ctx = Context(
        preset=preset, topic=topic, sha256="ab" * 32, locale="fr",
        now=datetime(2026, 6, 1, tzinfo=UTC), topics={"newsletter": ["email", "sms"]},
    )  # fmt: skip
    return MAPPERS[preset](row, 2, ctx)


PRESET_ROWS = [
    ("mailchimp", {"Email Address": "a@example.fr", "OPTIN_TIME": "2024-01-02 03:04:05",
                   "OPTIN_IP": "203.0.113.9", "CONFIRM_TIME": "2024-01-02 03:10:00",
                   "CONFIRM_IP": "203.0.113.9", "LAST_CHANGED": "2024-01-02 03:10:00"}),
    ("mailchimp", {"Email Address": "a@example.fr", "OPTIN_TIME": "2024-01-02 03:04:05",
                   "OPTIN_IP": "203.0.113.9", "LAST_CHANGED": "2024-01-02 03:04:05"}),
    ("mailchimp", {"Email Address": "a@example.fr", "CONFIRM_TIME": "2024-01-02 03:04:05",
                   "LAST_CHANGED": "2024-01-02 03:04:05"}),
    ("mailchimp", {"Email Address": "a@example.fr", "OPTIN_TIME": "2024-01-02 03:04:05",
                   "OPTIN_IP": "203.0.113.9", "CONFIRM_TIME": "2024-01-02 03:10:00",
                   "CONFIRM_IP": "203.0.113.9", "UNSUB_TIME": "2024-05-01 00:00:00"}),
    ("mailchimp", {"Email Address": "a@example.fr", "OPTIN_TIME": "2024-01-02 03:04:05",
                   "CLEAN_TIME": "2024-05-01 00:00:00"}),
    ("brevo", {"EMAIL": "a@example.fr", "ADDED_TIME": "2024-01-02 03:04:05",
               "DOUBLE_OPT-IN": "yes", "EMAIL_BLACKLISTED": "yes"}),
    ("brevo", {"EMAIL": "a@example.fr", "ADDED_TIME": "2024-01-02 03:04:05"}),
    ("assent", {"email": "a@example.fr", "status": "pending", "occurred_at": "2024-01-02",
                "proof": "form-1"}),
    ("assent", {"email": "a@example.fr", "status": "opted_in", "occurred_at": "2024-01-02",
                "doi_confirmed_at": "2024-01-03"}),
    ("assent", {"email": "a@example.fr", "status": "opted_out", "occurred_at": "2024-01-02"}),
]  # fmt: skip


@pytest.mark.parametrize(("preset", "row"), PRESET_ROWS)
def test_every_history_a_preset_makes_is_folded_directly(preset, row):
    mapped = _mapped(preset, row)
    loaded = datetime(2026, 6, 1, tzinfo=UTC)
    contact = bulk.contact_row(mapped.contact, now=loaded, checks=None)
    s = rules.RuleSettings()
    # prepare compares the direct fold with the generic one (``checked`` None: every time).
    prepared = bulk.prepare(1, contact, mapped.events, recorded_at=loaded, settings=s)
    folded = [
        (e.type, e.occurred_at, e.seq, e.topic, e.channel, e.method, e.proof,
         mapped.events[e.seq - 1].get("data") or {})
        for e in prepared.events
    ]  # fmt: skip
    # An Assent row's opt-out alone (no opt-in before it) is folded the generic way.
    if mapped.events[0]["type"] == EventType.OPT_IN:
        assert projections.fold_simple(folded, contact["collected_at"], contact["email"], s)


def test_the_loader_refuses_a_direct_fold_that_disagrees(monkeypatch):
    mapped = _mapped("mailchimp", PRESET_ROWS[0][1])
    loaded = datetime(2026, 6, 1, tzinfo=UTC)
    contact = bulk.contact_row(mapped.contact, now=loaded, checks=None)
    simple = projections.fold_simple

    def wrong(*args: Any) -> Any:
        projection, state, outcome = simple(*args)
        return projection, state.replace('"last_seq":', '"last_seq":9'), outcome

    monkeypatch.setattr(projections, "fold_simple", wrong)
    with pytest.raises(bulk.BulkError, match="differs from projections.Fold"):
        bulk.prepare(1, contact, mapped.events, recorded_at=loaded, settings=rules.RuleSettings())
    # Compared once per outcome in a batch: a second contact of the same outcome is not.
    checked: set[tuple] = {wrong(*_args(mapped, contact))[2]}
    bulk.prepare(
        2, contact, mapped.events, recorded_at=loaded, settings=rules.RuleSettings(),
        checked=checked,
    )  # fmt: skip


def _args(mapped: Any, contact: dict[str, Any]) -> tuple:
    folded = [
        (e["type"], e["occurred_at"], seq, e.get("topic", ""), e.get("channel", ""),
         e.get("method", ""), e.get("proof", ""), e.get("data") or {})
        for seq, e in enumerate(mapped.events, 1)
    ]  # fmt: skip
    return folded, contact["collected_at"], contact["email"], rules.RuleSettings()
