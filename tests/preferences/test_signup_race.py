"""Parallel sign-ups of one address: the per-address cap on confirmation emails holds (the
decision is taken under a lock on the address), on PostgreSQL with real concurrent sessions."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection

from consents.models import Contact, Outbox
from preferences.access import LINK_TEMPLATE, preferences_link_send
from preferences.services import CONFIRM_TEMPLATE, SignupOutcome, signup_submit

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

WORKERS = 8
ATTEMPTS = 3  # per worker: 24 sign-ups of one address, all at once


def in_parallel(work: Any) -> list[Any]:
    barrier = threading.Barrier(WORKERS)
    results: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            for _ in range(ATTEMPTS):
                results.append(work())
        except BaseException as exc:  # reported below, with the thread's own traceback lost
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return results


def test_parallel_sign_ups_of_one_address_send_at_most_the_cap(
    make_topic: Any, settings: Any
) -> None:
    make_topic("newsletter", purpose="newsletter", channels=["email"])
    cap = settings.SIGNUP_MAX_EMAILS_PER_ADDRESS

    outcomes = in_parallel(
        lambda: signup_submit(email="Marie@Example.fr", choices=[("newsletter", "email")])
    )

    assert Contact.objects.count() == 1
    assert Outbox.objects.filter(template=CONFIRM_TEMPLATE).count() == cap
    assert outcomes.count(SignupOutcome.CONFIRMATION_SENT) == cap
    assert outcomes.count(SignupOutcome.RATE_LIMITED) == WORKERS * ATTEMPTS - cap


def test_parallel_link_requests_of_one_address_send_at_most_the_cap(
    make_contact: Any, settings: Any
) -> None:
    make_contact(email="marie@example.fr")
    in_parallel(lambda: preferences_link_send(email="marie@example.fr", language="fr"))
    assert Outbox.objects.filter(template=LINK_TEMPLATE).count() == (
        settings.SIGNUP_MAX_EMAILS_PER_ADDRESS
    )
