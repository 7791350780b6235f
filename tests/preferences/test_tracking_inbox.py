"""Email-service tracking events: the webhook stores them, the drain moves them into the ledger.

The webhook answers once the event is in the inbox; the drain takes the inbox in batches (one
transaction each), in the order received, chained and projected, once per service event id; a
drain killed mid-batch (a real process, ``kill -9``, on PostgreSQL) loses nothing. Opens are
counted per message and day unless the sender records them per person.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from consents import clock, ledger, projections
from consents.models import Contact, ContactFacts, Event, WebhookDelivery, WebhookEndpoint
from preferences import tracking
from preferences.models import OpenCount, TrackingInbox
from tests.conftest import at
from tests.preferences.test_webhooks import AUTH, mailgun_payload
from tests.workers import BASE_DIR, database_url

CLICK = at("2026-11-28T09:30")


@pytest.fixture(autouse=True)
def webhook_settings(settings: Any) -> None:
    settings.ANYMAIL = {
        **settings.ANYMAIL,
        "WEBHOOK_SECRET": "assent-esp:0F3x9-webhook-secret",
        "MAILGUN_WEBHOOK_SIGNING_KEY": "test-mailgun-webhook-signing-key",
    }


def post(client: Client, payload: dict) -> Any:
    import json

    return client.post(
        "/webhooks/anymail/mailgun/tracking/",
        data=json.dumps(payload),
        content_type="application/json",
        **AUTH,
    )


def click(recipient: str, n: int, event_id: str | None = None) -> dict:
    return dict(
        esp="Mailgun", event_type="clicked", fact="interaction", recipient=recipient,
        reference=f"event:{event_id or n}", occurred_at=CLICK + timedelta(seconds=n),
        hard=False, message="", raw={"n": n},
    )  # fmt: skip


@pytest.mark.django_db
def test_the_webhook_stores_the_event_and_the_drain_records_it(
    client: Client, make_contact: Callable[..., Contact]
) -> None:
    alice = make_contact(email="alice@example.fr")
    payload = mailgun_payload("clicked", "alice@example.fr")
    assert post(client, payload).status_code == 200
    [row] = TrackingInbox.objects.all()
    assert (row.fact, row.recipient, row.raw["event-data"]["event"]) == (
        "interaction",
        "alice@example.fr",
        "clicked",
    )
    assert not Event.objects.filter(contact=alice).exists()
    assert tracking.drain() == 1
    [event] = Event.objects.filter(contact=alice)
    assert (event.type, event.data, event.actor) == (
        "interaction",
        {"kind": "click"},
        "esp:Mailgun",
    )
    assert not TrackingInbox.objects.exists()
    # The service delivers it again after the drain: recorded once.
    assert post(client, payload).status_code == 200
    assert tracking.drain() == 1
    assert Event.objects.filter(contact=alice).count() == 1


@pytest.mark.django_db
def test_opens_are_counted_per_message_and_day_not_per_person(
    client: Client, make_contact: Callable[..., Contact]
) -> None:
    alice = make_contact(email="alice@example.fr")
    for _ in range(3):
        payload = mailgun_payload("opened", "alice@example.fr", **{"tags": ["november-sale"]})
        assert post(client, payload).status_code == 200
    # Nobody's open is stored, not even in the inbox.
    assert set(TrackingInbox.objects.values_list("recipient", "raw")) == {("", None)}
    tracking.drain_all()
    assert not Event.objects.filter(contact=alice).exists()
    [count] = OpenCount.objects.all()
    assert (count.day, count.message, count.opens) == (CLICK.date(), "november-sale", 3)


@pytest.mark.django_db
def test_opens_per_person_with_the_setting(
    client: Client, make_contact: Callable[..., Contact], settings: Any
) -> None:
    settings.TRACKING_OPENS_PER_PERSON = True
    alice = make_contact(email="alice@example.fr")
    assert post(client, mailgun_payload("opened", "alice@example.fr")).status_code == 200
    tracking.drain_all()
    [event] = Event.objects.filter(contact=alice)
    assert event.data == {"kind": "open"}
    assert not OpenCount.objects.exists()


@pytest.mark.django_db
def test_a_batch_is_chained_in_order_projected_and_told_in_a_few_queries(
    make_contact: Callable[..., Contact],
) -> None:
    WebhookEndpoint.objects.create(
        url="https://crm.example.com/hooks", secret="whsec_x", created_at=clock.now()
    )
    people = [make_contact(email=f"p{i}@example.fr") for i in range(20)]
    # Some without the state an append starts from (as the bulk loader leaves them): recomputed
    # from their whole history, together.
    ContactFacts.objects.filter(contact__in=people[:5]).update(fold=None)
    for n in range(100):
        row = click(f"p{n % 20}@example.fr", n)
        if n % 10 == 0:  # some hard bounces, which other systems are told of
            row.update(event_type="bounced", fact="bounce", hard=True)
        tracking.received(**row)
    with CaptureQueriesContext(connection) as ctx:
        assert tracking.drain(batch_size=100) == 100
    # A few statements for the whole batch (elsewhere than on PostgreSQL, the facts are then
    # updated one contact at a time).
    per_contact = 0 if connection.vendor == "postgresql" else len(people)
    assert len(ctx.captured_queries) <= 30 + per_contact, len(ctx.captured_queries)
    assert Event.objects.filter(actor="esp:Mailgun").count() == 100
    assert WebhookDelivery.objects.count() == 10
    for person in people:
        chain = list(Event.objects.filter(contact=person).order_by("seq"))
        # The order received is the order chained.
        assert [e.proof for e in chain] == sorted(
            (e.proof for e in chain), key=lambda p: int(p[6:])
        )
        stored = ContactFacts.objects.filter(contact=person).values().get()
        projections.projection_refresh(person)
        assert ContactFacts.objects.filter(contact=person).values().get() == stored
    assert ledger.verify_chains(0, 10**9).problems == []


@pytest.mark.django_db
def test_a_batch_is_built_with_the_cycle_collector_relaxed_and_restored_after(
    make_contact: Callable[..., Contact], monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc

    from consents import services
    from consents.collector import COLLECT_EVERY

    make_contact(email="alice@example.fr")
    tracking.received(**click("alice@example.fr", 1))
    seen: list[int] = []
    append_batch = services.append_batch

    def watched(items: list[services.BatchItem]) -> list[Event]:
        seen.append(gc.get_threshold()[0])
        return append_batch(items)

    monkeypatch.setattr(services, "append_batch", watched)
    before = gc.get_threshold()
    assert tracking.drain() == 1
    assert seen == [COLLECT_EVERY]
    assert gc.get_threshold() == before
    assert Event.objects.filter(actor="esp:Mailgun").count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_drain_killed_mid_batch_loses_nothing(make_contact: Callable[..., Contact]) -> None:
    people = [make_contact(email=f"k{i}@example.fr") for i in range(5)]
    total = 300
    for n in range(total):
        tracking.received(**click(f"k{n % 5}@example.fr", n))
    assert tracking.drain(batch_size=100) == 100  # a first batch, committed
    env = {
        **os.environ,
        "DATABASE_URL": database_url(connection.settings_dict),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "PYTHONUNBUFFERED": "1",
    }
    process = subprocess.Popen(  # noqa: S603 - our own command line
        [sys.executable, "manage.py", "drain_tracking", "--batch-size", "100",
         "--stall-after", "60"],
        cwd=BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        line = process.stdout.readline().decode()
        assert "stalled mid-batch" in line, line + process.stdout.read().decode()
        # Mid-batch: its 100 rows are locked, 60 of its facts built, nothing committed.
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL
    assert Event.objects.filter(actor="esp:Mailgun").count() == 100
    assert TrackingInbox.objects.count() == total - 100
    # The next drain takes the killed batch again: every event once, chains intact.
    assert tracking.drain_all() == total - 100
    assert not TrackingInbox.objects.exists()
    recorded = list(Event.objects.filter(actor="esp:Mailgun").values_list("proof", flat=True))
    assert sorted(recorded) == sorted(f"event:{n}" for n in range(total))
    assert ledger.verify_chains(0, 10**9).problems == []
    for person in people:
        assert Event.objects.filter(contact=person).count() == total // 5
