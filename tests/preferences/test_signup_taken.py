"""A sign-up whose address is created by another path between its read and its write (the API,
a store, an import: paths that do not take the address's lock) is recorded on that contact."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import IntegrityError, connection

from consents import ledger, services, statements
from consents.models import ConsentState, Contact, Event
from preferences.models import PendingSignup
from preferences.services import SignupOutcome, signup_submit

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pages", "topics")]


def _not_found_once(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The sign-up's read of the address answers "no contact" once, as it would have just
    before another transaction created it."""
    asked: list[str] = []
    real = services.contact_with_email

    def read(address: str, *, later: bool = False) -> Any:
        asked.append(address)
        if len(asked) == 1:
            return statements.Pending.done([])
        return real(address, later=later)

    monkeypatch.setattr(services, "contact_with_email", read)
    return asked


def test_an_address_created_meanwhile_gets_the_sign_up(monkeypatch: pytest.MonkeyPatch) -> None:
    other = services.contact_create(email="marie@example.fr")  # by a path without the lock
    asked = _not_found_once(monkeypatch)
    outcome = signup_submit(email="Marie@Example.fr", choices=[("newsletter", "email")])
    assert outcome == SignupOutcome.CONFIRMATION_SENT
    assert Contact.objects.count() == 1
    assert ConsentState.objects.get(topic="newsletter", channel="email").contact_id == other.pk
    assert list(Event.objects.values_list("contact_id", "seq", "type")) == [(other.pk, 1, "opt_in")]
    assert PendingSignup.objects.get().contact_id == other.pk
    if connection.vendor == "postgresql":
        # The new contact's row, queued under its reserved id, was refused by the unique index:
        # the transaction undone, and tried again.
        assert len(asked) == 2
    assert ledger.verify_range(other.pk, other.pk + 1)[1] is None  # its chain intact


@pytest.mark.postgres  # the ids are reserved on PostgreSQL only
def test_only_the_address_refused_is_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def refused(**kwargs: Any) -> Any:
        calls.append(1)
        raise IntegrityError("another constraint")

    monkeypatch.setattr("preferences.services._signup_submit", refused)
    with pytest.raises(IntegrityError):
        signup_submit(email="marie@example.fr", choices=[("newsletter", "email")])
    assert calls == [1]
