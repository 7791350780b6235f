""" "Is this person unsubscribed from everything" reads the rules' order: instants first, then the
recorded order; only a valid "yes" after the unsubscribe counts against it."""

from __future__ import annotations

from typing import Any

import pytest

from consents import clock, services
from consents.models import Contact, Event
from preferences.services import unsubscribe_all
from tests.conftest import at

pytestmark = pytest.mark.django_db

NOW = at("2026-11-29T12:00")


@pytest.fixture
def marie(make_topic: Any, make_contact: Any) -> Contact:
    make_topic("promotions")
    return make_contact(email="marie@example.fr", phone="+33612345678")


def _leave(contact: Contact) -> bool:
    with clock.frozen(NOW):
        return unsubscribe_all(contact=contact, method="unsubscribe_link")


def _opt_outs(contact: Contact) -> int:
    return Event.objects.filter(contact=contact, type="opt_out", topic="*", channel="*").count()


def test_a_back_dated_opt_in_recorded_after_the_unsubscribe_does_not_undo_it(marie: Contact):
    with clock.frozen(NOW):
        services.consent_withdraw(
            contact=marie,
            topic="*",
            channel="*",
            proof=services.Proof(method="preference_center", actor="person"),
            occurred_at=at("2026-11-20T10:00"),
        )
        # Recorded later, but dated before the unsubscribe (an import of an older sign-up).
        services.consent_grant(
            contact=marie,
            topic="promotions",
            channel="email",
            proof=services.Proof(method="import", actor="system", reference="crm 2026-10"),
            occurred_at=at("2026-10-01T10:00"),
        )
    assert _leave(marie) is False  # already out: nothing written
    assert _opt_outs(marie) == 1


def test_a_callback_or_an_unconfirmed_sign_up_is_no_yes(marie: Contact):
    assert _leave(marie) is True
    with clock.frozen(NOW):
        services.callback_request(contact=marie, proof=services.Proof(actor="person"))
        services.consent_grant(
            contact=marie,
            topic="promotions",
            channel="email",
            doi="pending",
            proof=services.Proof(method="web_form", actor="person"),
        )
    assert _leave(marie) is False
    assert _opt_outs(marie) == 1


def test_a_valid_yes_after_the_unsubscribe_lets_the_person_leave_again(marie: Contact):
    assert _leave(marie) is True
    with clock.frozen(NOW):
        services.consent_grant(
            contact=marie,
            topic="promotions",
            channel="email",
            proof=services.Proof(method="preference_center", actor="person"),
        )
    assert _leave(marie) is True
    assert _opt_outs(marie) == 2
