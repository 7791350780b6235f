"""Two tabs saving at the same instant, on PostgreSQL's real row locks: both land, in order."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connections
from django.test import Client

from consents import services
from consents.ledger import verify_range
from consents.models import ConsentState, Contact, Event
from tests.preferences.center_fixtures import form_state, open_session, post

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("pages", "topics"),
]


def status(contact: Contact, topic: str, channel: str) -> str | None:
    row = ConsentState.objects.filter(contact=contact, topic=topic, channel=channel).first()
    return row.status if row else None


def test_two_tabs_saving_at_once_both_land_and_the_later_wins(make_contact: Any) -> None:
    marie = make_contact(email="marie@example.fr", phone="+33612345678")
    proof = services.Proof(method="web_form", actor="person")
    services.consent_grant(contact=marie, topic="newsletter", channel="email", proof=proof)
    tabs = [Client(), Client()]
    for tab in tabs:
        open_session(tab, marie)
    shown = form_state(tabs[0].get("/preferences/").content.decode())
    forms = {
        "a": {**shown, "on": ["promotions:sms"]},  # newsletter off, SMS deals on
        "b": {**shown, "on": []},  # everything off
    }
    barrier = threading.Barrier(2)
    codes: dict[str, int] = {}

    def save(name: str, tab: Client) -> None:
        try:
            barrier.wait(timeout=10)
            codes[name] = post(tab, forms[name]).status_code
        finally:
            connections.close_all()

    threads = [threading.Thread(target=save, args=pair) for pair in zip("ab", tabs, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert codes == {"a": 302, "b": 302}

    kinds = [(e.type, e.topic, e.channel) for e in Event.objects.filter(contact=marie)]
    later = "b" if kinds[-1] == ("opt_out", "promotions", "sms") else "a"
    if later == "b":  # a, then b undoes a's SMS
        assert kinds[1:] == [
            ("opt_out", "newsletter", "email"),
            ("opt_in", "promotions", "sms"),
            ("opt_out", "promotions", "sms"),
        ]
    else:  # b, then a only adds the SMS: the newsletter was already off
        assert kinds[1:] == [("opt_out", "newsletter", "email"), ("opt_in", "promotions", "sms")]
    # The final state is the later tab's form.
    assert status(marie, "newsletter", "email") == "opted_out"
    assert status(marie, "promotions", "sms") == ("opted_out" if later == "b" else "opted_in")
    count, broken = verify_range(marie.pk, marie.pk + 1)
    assert broken is None and count == len(kinds)
