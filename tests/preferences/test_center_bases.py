"""The preference page asks "covered by another basis?" once per kind of box (``center._Bases``):
each answer is the one the box gets when asked on its own, on random histories."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from consents import rules
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
