"""``rules.Decider``: one person's answers to many messages, sharing what does not depend on the
message, are the answers ``decide`` gives one message at a time; and a pair's state read from the
events of its channel alone is its state read from the whole history. Random histories."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from consents import rules
from consents.vocab import ANY, CHANNELS, PURPOSES
from tests.consents.test_projections_incremental import PERSON, START, _facts, raw_events

PROFESSIONAL = rules.Person(
    kind="professional",
    collected_at=START - timedelta(days=30),
    informed_at_collection=True,
    email="contact@example.com",
    phone="+33600000000",
    postal_address="1 rue de la Paix, Paris",
    profession="architect",
)

messages = st.builds(
    rules.Message,
    channel=st.sampled_from(list(CHANNELS)),
    purpose=st.sampled_from(list(PURPOSES)),
    topic=st.sampled_from(["promotions", "newsletter", "other"]),
    category=st.sampled_from([None, "books", "sofa", "fibre"]),
    product=st.sampled_from([None, "p1"]),
    professions=st.sampled_from([(), ("architect",)]),
    contains_promotion=st.booleans(),
    automated=st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(raw_events(), max_size=30),
    st.lists(messages, min_size=1, max_size=12),
    st.sampled_from([PERSON, PROFESSIONAL]),
    st.integers(0, 120),
)
def test_one_decider_answers_as_decide_does(raw, batch, person, days) -> None:
    now = START + timedelta(days=days)
    s = rules.RuleSettings(doi_ttl=timedelta(days=7))
    history = _facts(raw)
    decider = rules.Decider(person, history, now, settings=s)
    for message in batch:
        assert _answer(decider.decide, message) == _answer(
            lambda m: rules.decide(person, history, m, now, settings=s), message
        )


def _answer(decide, message):
    try:
        return decide(message)
    except rules.MalformedMessage as exc:  # both refuse what is not a message
        return str(exc)


@settings(max_examples=400, deadline=None)
@given(st.lists(raw_events(), max_size=30), st.sampled_from([1, 7]))
def test_a_pair_reads_the_same_from_the_events_of_its_channel_and_topic(raw, ttl_days) -> None:
    s = rules.RuleSettings(doi_ttl=timedelta(days=ttl_days))
    decider = rules.Decider(PERSON, _facts(raw), START + timedelta(days=500), settings=s)
    for channel in CHANNELS:
        on_channel = decider.on(channel)
        assert all(e.channel in (channel, ANY) for e in on_channel)
        for topic in ("promotions", "newsletter", "other", None):
            whole = rules.pair_state(decider.h, topic, channel, s)
            assert rules.pair_state(on_channel, topic, channel, s) == whole
            # Only the events of that topic, of every topic, and the complaints.
            events = decider.pair_events(topic, channel)
            assert all(e.topic in (topic, ANY) or e.type == "complaint" for e in events)
            assert events == [e for e in on_channel if e in events]  # in order
            assert rules.pair_state(events, topic, channel, s) == whole
