"""The preference page asks "covered by another basis?" once per kind of box (``center._Bases``):
each answer is the one the box gets when asked on its own, on random histories."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from consents import projections, rules
from consents.models import Topic
from consents.vocab import CHANNELS
from preferences import center
from tests.consents.test_projections_incremental import PERSON, START, _facts, raw_events
from tests.consents.test_rules_decider import PROFESSIONAL

# The topics the random events name (test_projections_incremental.TOPICS), and one they never do.
TOPICS = [
    Topic(slug=slug, purpose=purpose, channels=list(CHANNELS))
    for slug in ("promotions", "newsletter", "never-named")
    for purpose in ("promotion", "newsletter", "cart_abandonment")
]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(raw_events(), max_size=30),
    st.sampled_from([PERSON, PROFESSIONAL]),
    st.integers(0, 120),
    st.randoms(use_true_random=False),
)
def test_each_box_gets_the_answer_it_gets_alone(raw, person, days, rnd) -> None:
    now = START + timedelta(days=days)
    s = rules.RuleSettings(doi_ttl=timedelta(days=7))
    h = [f for f in rules.ordered(_facts(raw)) if f.at <= now]
    shared = center._Bases(person, h, now, s)
    boxes = [(topic, channel) for topic in TOPICS for channel in CHANNELS]
    rnd.shuffle(boxes)  # whichever box of a kind is asked first
    for topic, channel in boxes:
        alone = center._Bases(person, h, now, s)._ask(topic, channel)
        assert shared.covered_by(topic, channel) == alone, (topic.slug, topic.purpose, channel)


# The people the answers differ for: informed or not, consumer or professional (with a generic
# address or not), with or without a postal address and a phone.
PEOPLE = [
    PERSON,
    dataclasses.replace(PERSON, informed_at_collection=False),
    dataclasses.replace(PERSON, postal_address="2 rue du Bac, Paris", phone=None),
    PROFESSIONAL,
    dataclasses.replace(PROFESSIONAL, email="info@example.com"),
    dataclasses.replace(PROFESSIONAL, informed_at_collection=False),
]


def _stored_fold(facts: list[rules.Fact], s: rules.RuleSettings) -> projections.Fold:
    """The fold state as the ledger leaves it: one event at a time, stored as JSON between."""
    state = None
    for fact in rules.ordered(facts):
        fold = projections.Fold.load(state, s) if state is not None else projections.Fold(s)
        assert fold is not None
        fold.apply(fact)
        state = json.loads(json.dumps(fold.dump()))
    loaded = projections.Fold.load(state, s) if state is not None else projections.Fold(s)
    assert loaded is not None
    return loaded


@settings(max_examples=500, deadline=None)
@given(
    st.lists(raw_events(), max_size=30),
    st.sampled_from(PEOPLE),
    st.sampled_from([0, 1, 6, 20, 29, 31, 45, 400, 1090, 1100, 1200]),
    st.sampled_from([-3, 0]),
    st.sampled_from([1, 7]),
)
def test_the_fold_state_gives_the_answers_of_the_history(raw, person, days, before, ttl) -> None:
    """``center._FoldBases`` (the stored state) against ``center._Bases`` (the history): the same
    answer for every box, whenever the state may be used; and it may not be used with events
    after ``now`` (``before``: the page asked before the last events took effect)."""
    s = rules.RuleSettings(doi_ttl=timedelta(days=ttl))
    facts = _facts(raw)
    last = max((f.at for f in facts), default=START)
    now = last + timedelta(days=days + before)
    fold = _stored_fold(facts, s)
    last_seq = max((f.seq for f in facts), default=0)
    usable = center._FoldBases.usable(fold, last_seq, now)
    assert usable == all(f.at <= now for f in facts)
    assert not center._FoldBases.usable(fold, last_seq + 1, now)  # an event it has not folded
    if not usable:
        return
    h = rules.ordered(facts)
    from_history = center._Bases(person, h, now, s)
    from_fold = center._FoldBases(person, fold, now, s)
    for topic in TOPICS:
        for channel in CHANNELS:
            expected = from_history._ask(topic, channel)
            found = from_fold.covered_by(topic, channel)
            assert found == expected, (topic.slug, topic.purpose, channel, [f.type for f in h])


def test_the_fold_state_gives_some_of_each_answer() -> None:
    """The comparison above reaches the bases: a customer's soft opt-in, a callback asked for
    after an opt-out, a contract in progress, a generic address, the post."""
    s = rules.RuleSettings()
    at = START

    def fact(seq: int, type: str, **data: object) -> rules.Fact:
        return projections.fact_from_row(
            type=type,
            occurred_at=at + timedelta(hours=seq),
            seq=seq,
            topic=str(data.pop("topic", "")),
            channel=str(data.pop("channel", "")),
            method="",
            proof="",
            data=data,
        )

    facts = [
        fact(1, "purchase", category="books"),
        fact(2, "opt_out", topic="promotions", channel="phone"),
        fact(3, "callback_request", channel="phone"),
        fact(4, "contract_start", contract="c1", category="fibre"),
    ]
    now = at + timedelta(days=1)
    fold = _stored_fold(facts, s)
    assert center._FoldBases.usable(fold, 4, now)
    h = rules.ordered(facts)
    for person, topic, channel, reason in [
        (PERSON, TOPICS[0], "email", "SOFT_OPT_IN"),
        (PERSON, TOPICS[0], "phone", "CALLBACK_REQUESTED"),
        (PERSON, TOPICS[6], "phone", "CALLBACK_REQUESTED"),  # a topic never named
        (dataclasses.replace(PERSON, informed_at_collection=False), TOPICS[0], "email", None),
        (PROFESSIONAL, TOPICS[0], "postal", "LEGITIMATE_INTEREST"),
        (dataclasses.replace(PROFESSIONAL, email="info@example.com"), TOPICS[1], "email",
         "GENERIC_ADDRESS"),
    ]:  # fmt: skip
        answers = (
            center._FoldBases(person, fold, now, s).covered_by(topic, channel),
            center._Bases(person, h, now, s)._ask(topic, channel),
        )
        assert answers == (reason, reason), (topic.slug, channel, answers)
    # The latest opt-in, pre-checked or waiting for its confirmation, stops the soft opt-in.
    for data in ({"prechecked": True}, {"doi": "pending"}):
        opt_in = fact(5, "opt_in", topic="promotions", channel="email", **data)
        stopped = _stored_fold([*facts, opt_in], s)
        h = rules.ordered([*facts, opt_in])
        answers = (
            center._FoldBases(PERSON, stopped, now, s).covered_by(TOPICS[0], "email"),
            center._Bases(PERSON, h, now, s)._ask(TOPICS[0], "email"),
        )
        assert answers == (None, None), data
    without_callback = _stored_fold(facts[:2] + facts[3:], s)
    answer = center._FoldBases(PERSON, without_callback, now, s).covered_by(TOPICS[3], "phone")
    assert answer == "CONTRACT_IN_PROGRESS"


def test_a_pause_keeps_the_persons_data_as_any_act_of_theirs() -> None:
    """The boxes are asked about outside the pause (the page shows it on its own), but the pause
    is the person's own act (RULES.md): it renews the retention, and a customer who bought 3
    years and a half ago and paused since is still covered by the soft opt-in."""
    s = rules.RuleSettings()
    bought = START - timedelta(days=3 * 365 + 180)
    facts = [
        projections.fact_from_row(
            type="purchase", occurred_at=bought, seq=1, topic="", channel="", method="",
            proof="", data={"category": "books"},
        ),
        projections.fact_from_row(
            type="pause", occurred_at=START - timedelta(days=30), seq=2, topic="", channel="*",
            method="", proof="", data={"until": (START + timedelta(days=60)).isoformat()},
        ),
    ]  # fmt: skip
    person = dataclasses.replace(PERSON, collected_at=bought)
    h = rules.ordered(facts)
    fold = _stored_fold(facts, s)
    assert center._Bases(person, h, START, s)._ask(TOPICS[0], "email") == "SOFT_OPT_IN"
    assert center._FoldBases(person, fold, START, s).covered_by(TOPICS[0], "email") == "SOFT_OPT_IN"
    # Without the pause, the data has expired: nothing covers the box.
    alone = [facts[0]]
    assert center._Bases(person, alone, START, s)._ask(TOPICS[0], "email") is None
    # And outside the page, the pause itself stops the message until it ends.
    decision = rules.decide(
        person, h, rules.Message(channel="email", purpose="promotion", topic="promotions"), START
    )
    assert not decision.allowed and decision.reason == "PAUSED"
