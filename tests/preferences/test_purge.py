from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from consents import clock
from consents.models import Event, Evidence
from preferences.models import PendingSignup
from preferences.services import signups_purge
from preferences.tasks import signups_purge as signups_purge_task
from tests.preferences.pages import signup_data

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pages", "topics")]


def _sign_up(sign_up: Any, email: str) -> PendingSignup:
    sign_up(**{**signup_data(), "email": email})
    return PendingSignup.objects.get(contact__email=email)


def test_expired_pending_signups_are_purged_with_their_personal_evidence(sign_up: Any) -> None:
    old = _sign_up(sign_up, "old@example.fr")
    fresh = _sign_up(sign_up, "fresh@example.fr")
    events_before = Event.objects.count()
    later = old.expires_at + timedelta(seconds=1)
    PendingSignup.objects.filter(pk=fresh.pk).update(expires_at=later + timedelta(days=1))

    with clock.frozen(later):
        assert signups_purge() == 1

    assert not PendingSignup.objects.filter(pk=old.pk).exists()
    assert PendingSignup.objects.filter(pk=fresh.pk).exists()
    # The ledger keeps that a sign-up happened; only the personal evidence is wiped.
    assert Event.objects.count() == events_before
    old_evidence = Evidence.objects.get(event_id=old.choices[0]["event"])
    assert old_evidence.ip_address is None and old_evidence.user_agent == ""
    # The key of the chained evidence digest goes too: the address cannot be guessed back.
    assert old_evidence.salt == ""
    assert old_evidence.erased_at == later
    fresh_evidence = Evidence.objects.get(event_id=fresh.choices[0]["event"])
    assert fresh_evidence.ip_address == "203.0.113.7" and fresh_evidence.salt


def test_purge_leaves_valid_signups_and_runs_as_a_periodic_task(sign_up: Any) -> None:
    _sign_up(sign_up, "marie@example.fr")
    assert signups_purge_task.apply().get() == 0
    assert PendingSignup.objects.count() == 1
    with clock.frozen(clock.now() + timedelta(days=8)):
        assert signups_purge_task.apply().get() == 1
