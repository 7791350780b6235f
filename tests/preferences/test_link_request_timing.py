""" "Manage my preferences" on "/" answers in the same time whether or not the address is known:
both do the same database work, and the lookup and the email happen after the response."""

from __future__ import annotations

import statistics
import time
from typing import Any

import pytest
from django.core import mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from consents.models import Contact, Outbox
from preferences.access import link_requests_due
from preferences.models import LinkRequest
from preferences.tasks import link_request_send, link_requests_sweep
from tests.workers import UNREACHABLE_BROKER, celery_publishing

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pages", "topics")]

PAIRS = 60
# The paired differences' median may be this share of the slower median, or this many seconds
# (a loaded 2-core machine). Looking the address up and writing its email in the request made
# a known address about 40% slower on SQLite, the slowest part left out (the broker here
# refuses at once).
RELATIVE_MARGIN = 0.25
ABSOLUTE_MARGIN = 0.0003


@pytest.fixture
def marie(make_contact: Any) -> Contact:
    return make_contact(email="marie@example.fr")


def ask(client: Client, email: str, capture: Any) -> tuple[float, int]:
    """One request as production serves it: committed, its tasks published to a broker."""
    with CaptureQueriesContext(connection) as queries, capture(execute=True):
        started = time.perf_counter()
        response = client.post("/", {"email": email}, REMOTE_ADDR="203.0.113.9")
        elapsed = time.perf_counter() - started
    assert response.status_code == 302 and response["Location"] == "/?sent=1"
    return elapsed, len(queries)


def test_known_and_unknown_addresses_take_the_same_work_and_time(
    client: Client, marie: Contact, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.SIGNUP_MAX_PER_IP_PER_HOUR = 10_000
    times: dict[str, list[float]] = {"known": [], "unknown": []}
    queries: dict[str, set[int]] = {"known": set(), "unknown": set()}
    # Published to a broker, as in production (tasks never run in the web process there); this
    # one refuses connections at once, which costs both kinds of request the same.
    with celery_publishing(UNREACHABLE_BROKER, eager=False):
        for i in range(4):  # warm up both paths
            ask(
                client,
                marie.email if i % 2 else f"warm{i}@example.fr",
                django_capture_on_commit_callbacks,
            )
        for i in range(PAIRS):
            pair = [("known", "marie@example.fr"), ("unknown", f"nobody{i}@example.fr")]
            for kind, email in pair if i % 2 else reversed(pair):
                elapsed, count = ask(client, email, django_capture_on_commit_callbacks)
                times[kind].append(elapsed)
                queries[kind].add(count)

    # The same statements, whatever the address.
    assert queries["known"] == queries["unknown"]
    known, unknown = statistics.median(times["known"]), statistics.median(times["unknown"])
    # Each pair ran back to back: their difference cancels the machine's drift.
    paired = statistics.median(k - u for k, u in zip(times["known"], times["unknown"], strict=True))
    margin = max(ABSOLUTE_MARGIN, RELATIVE_MARGIN * max(known, unknown))
    assert abs(paired) <= margin, (
        f"a known address took {paired * 1000:+.2f} ms more (medians {known * 1000:.2f} ms and "
        f"{unknown * 1000:.2f} ms)"
    )
    # Nothing was looked up or sent during the requests: every request waits for its task.
    assert Outbox.objects.count() == 0
    assert LinkRequest.objects.count() == 4 + 2 * PAIRS


def test_the_task_sends_the_link_to_a_known_address_only(
    client: Client, marie: Contact, django_capture_on_commit_callbacks: Any
) -> None:
    with celery_publishing(UNREACHABLE_BROKER, eager=False):
        for email in ("marie@example.fr", "nobody@example.fr"):
            ask(client, email, django_capture_on_commit_callbacks)
    assert mail.outbox == [] and LinkRequest.objects.count() == 2
    assert link_requests_due() == []  # not yet: the broker may only be slow

    with django_capture_on_commit_callbacks(execute=True):
        for row in LinkRequest.objects.all():
            link_request_send(row.pk)
            assert link_request_send(row.pk) == "handled"  # a second run does nothing
    assert [m.to for m in mail.outbox] == [["marie@example.fr"]]
    assert LinkRequest.objects.count() == 0


def test_the_sweep_hands_requests_that_never_left_to_the_broker_again(
    client: Client, marie: Contact, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with celery_publishing(UNREACHABLE_BROKER, eager=False):
        ask(client, "marie@example.fr", django_capture_on_commit_callbacks)
    settings.OUTBOX_SWEEP_AFTER = settings.OUTBOX_SWEEP_AFTER * 0
    with django_capture_on_commit_callbacks(execute=True):
        assert link_requests_sweep() == 1  # tasks run in-process here (the pages fixture)
    assert [m.to for m in mail.outbox] == [["marie@example.fr"]]
    assert link_requests_sweep() == 0
