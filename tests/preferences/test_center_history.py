"""The preference page reads a person's history from where this process last read it: the ledger
only grows, and the last kept event's hash says whether what is kept is still the ledger's."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from consents import rules, services, statements
from consents.models import Contact
from preferences import center

pytestmark = pytest.mark.django_db

PROOF = services.Proof(method="web_form", actor="person")


def _state(contact: Contact) -> tuple[Any, ...]:
    state = center.center_state(contact=contact, language="fr")
    return (
        [(e.seq, e.type, e.topic, e.channel, e.occurred_at) for e in state.history],
        [(c.topic.slug, c.channel, c.status, c.covered_by) for v in state.topics for c in v.cells],
        state.confirmed_email_topics,
        state.unsubscribed_all,
    )


def _fresh(contact: Contact) -> tuple[Any, ...]:
    center.HISTORIES.clear()
    try:
        return _state(contact)
    finally:
        center.HISTORIES.clear()


def test_the_history_is_read_from_the_last_event_kept(make_topic: Any, make_contact: Any) -> None:
    for slug in ("lettre", "offres"):
        make_topic(slug, channels=["email", "sms"])
    contact = make_contact(phone="+33612345678")
    services.consent_grant(contact=contact, topic="lettre", channel="email", proof=PROOF)
    first = _state(contact)
    kept = center.HISTORIES.get(contact.pk)
    assert kept is not None and kept.seq == contact.events.order_by("-seq").first().seq
    services.consent_withdraw(contact=contact, topic="lettre", channel="email", proof=PROOF)
    services.consent_grant(contact=contact, topic="offres", channel="sms", proof=PROOF)
    with CaptureQueriesContext(connection) as captured:
        again = _state(contact)
    spelt = [statements.spelt_out(q["sql"]) for q in captured]
    history = [sql for sql in spelt if "consents_event" in sql]
    assert len(history) == 1 and f"{kept.seq}" in history[0]  # from the kept event on
    assert center.HISTORIES.get(contact.pk).seq == kept.seq + 2
    assert again != first
    assert again == _fresh(contact)


def test_the_facts_kept_stay_in_time_order(make_topic: Any, make_contact: Any) -> None:
    """New facts are added after the kept ones when they are the latest, and put in their place
    when one is dated earlier (a fact recorded late, a capture dated when it was given)."""
    make_topic("lettre", channels=["email", "sms"])
    contact = make_contact(phone="+33612345678")
    services.consent_grant(contact=contact, topic="lettre", channel="email", proof=PROOF)
    _state(contact)
    services.consent_withdraw(contact=contact, topic="lettre", channel="email", proof=PROOF)
    earlier = contact.events.order_by("seq").first().occurred_at - timedelta(days=3)
    services.consent_grant(
        contact=contact, topic="lettre", channel="sms", proof=PROOF, occurred_at=earlier
    )
    state = _state(contact)
    kept = center.HISTORIES.get(contact.pk)
    assert [f.seq for f in kept.ordered] == [f.seq for f in rules.ordered(kept.facts)]
    assert kept.ordered[0].at == earlier  # the late fact first, in time order
    services.consent_withdraw(contact=contact, topic="lettre", channel="sms", proof=PROOF)
    _state(contact)
    kept = center.HISTORIES.get(contact.pk)
    assert [f.seq for f in kept.ordered] == [f.seq for f in rules.ordered(kept.facts)]
    assert state != _state(contact)
    assert _state(contact) == _fresh(contact)


def test_a_kept_event_that_was_rolled_back_is_read_again(
    make_topic: Any, make_contact: Any
) -> None:
    make_topic("lettre", channels=["email"])
    contact = make_contact()
    services.consent_grant(contact=contact, topic="lettre", channel="email", proof=PROOF)
    with pytest.raises(RuntimeError), transaction.atomic():
        services.consent_withdraw(contact=contact, topic="lettre", channel="email", proof=PROOF)
        _state(contact)  # keeps the withdrawal, which is then undone
        raise RuntimeError("undone")
    assert center.HISTORIES.get(contact.pk).seq == 2  # what this process read
    # Another event takes its number: the kept one is not the ledger's, all is read again.
    services.consent_grant(
        contact=contact, topic="lettre", channel="email", proof=PROOF, frequency=""
    )
    state = _state(contact)
    assert state == _fresh(contact)
    assert [t for _, t, *_ in state[0]] == ["opt_in", "opt_in"]


def test_the_histories_kept_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    histories = center._Histories()
    monkeypatch.setattr(histories, "MAX_EVENTS", 5)
    for contact_id in range(4):
        kept = center._Kept(2, "h", [object()] * 2, [], [])  # type: ignore[list-item]
        histories.put(contact_id, kept)
    assert [i for i in range(4) if histories.get(i) is not None] == [2, 3]


def test_the_states_dates_are_those_the_database_holds(make_topic: Any, make_contact: Any) -> None:
    """The page reads each state's date as text (``center._SinceText``): the same instants as
    the ORM reads, to the microsecond, in UTC."""
    from datetime import UTC, datetime

    from consents.models import ConsentState

    instants = [
        datetime(2026, 1, 15, 9, 30, tzinfo=UTC),
        datetime(2026, 3, 29, 0, 59, 59, 999999, tzinfo=UTC),  # a change of time in Paris
        datetime(2026, 7, 1, 22, 0, 0, 123456, tzinfo=UTC),
        datetime(2026, 10, 25, 1, 30, 0, 1, tzinfo=UTC),
    ]
    for i in range(len(instants)):
        make_topic(f"theme{i}", channels=["email"])
    contact = make_contact()
    for i, when in enumerate(instants):
        services.consent_grant(
            contact=contact, topic=f"theme{i}", channel="email", proof=PROOF, occurred_at=when
        )
    held = {s.topic: s.since for s in ConsentState.objects.filter(contact=contact)}
    state = center.center_state(contact=contact, language="fr")
    read = {c.topic.slug: c.since for v in state.topics for c in v.cells if c.since}
    assert read == held and len(read) == len(instants)
    assert all(since.utcoffset() == timedelta(0) for since in read.values())
