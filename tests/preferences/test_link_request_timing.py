""" "Manage my preferences" on "/" answers in the same time whether or not the address is known:
both do the same work (statements, publishing), and the lookup and the email happen after the
response, in a task."""

from __future__ import annotations

import re
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
from tests.workers import UNREACHABLE_BROKER, UNREACHABLE_PORT, celery_publishing, waits_counted

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pages", "topics")]

# A literal value in a statement, or a savepoint's name: what differs between two requests of the
# same shape.
LITERAL = re.compile(r"'(?:[^']|'')*'|\"s\d+_x\d+\"|\b\d+\b")


@pytest.fixture
def marie(make_contact: Any) -> Contact:
    return make_contact(email="marie@example.fr")


def ask(client: Client, email: str, capture: Any) -> tuple[list[str], int]:
    """One request as production serves it, committed, its tasks published to a broker: the
    statements it ran (their values masked) and its attempts to reach the broker."""
    with (
        CaptureQueriesContext(connection) as queries,
        waits_counted(UNREACHABLE_PORT) as waits,
        capture(execute=True),
    ):
        response = client.post("/", {"email": email}, REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 302 and response["Location"] == "/?sent=1"
    return [LITERAL.sub("?", q["sql"]) for q in queries.captured_queries], len(waits.connects)


def test_known_and_unknown_addresses_do_the_same_work(
    client: Client, marie: Contact, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """What a request does, not how long it took (a test never asserts a wall-clock time): the
    same statements in the same order and the same publishing, whatever the address; the
    lookup and the email happen in the task, after the response."""
    settings.SIGNUP_MAX_PER_IP_PER_HOUR = 10_000
    # Published to a broker, as in production (tasks never run in the web process there).
    with celery_publishing(UNREACHABLE_BROKER, eager=False):
        for i in range(2):  # the process's first requests read what it keeps (the catalogue)
            ask(
                client,
                marie.email if i % 2 else f"warm{i}@example.fr",
                django_capture_on_commit_callbacks,
            )
        known = [ask(client, "marie@example.fr", django_capture_on_commit_callbacks)]
        unknown = [ask(client, "nobody@example.fr", django_capture_on_commit_callbacks)]
        known.append(ask(client, "Marie@Example.fr", django_capture_on_commit_callbacks))
        unknown.append(ask(client, "nobody2@example.fr", django_capture_on_commit_callbacks))

    assert known[0][0], "the request records the ask"
    assert known[0] == unknown[0] == known[1] == unknown[1]
    assert known[0][1] == 1  # one task published per request
    # No statement reads the contacts: nothing that depends on the address is looked up.
    assert not any("consents_contact" in sql for sql, _ in known + unknown)
    # Nothing was looked up or sent during the requests: every request waits for its task.
    assert Outbox.objects.count() == 0
    assert LinkRequest.objects.count() == 6


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
