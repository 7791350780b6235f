"""Scheduled work done once: each contact re-checked under its lock, one run of a job at a time."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection

from consents import clock, locks, notices, retention, rules, services, tasks
from consents.models import (
    Contact,
    Event,
    Outbox,
    ReconfirmCampaign,
    ReconfirmRequest,
    Topic,
)
from consents.vocab import Method

WEB = services.Proof(method=Method.WEB_FORM, actor="person")


def due_contacts(make_contact: Callable[..., Contact], n: int) -> list[Contact]:
    """People whose three years end in ten days: due for the last ask, not yet asked."""
    start = rules.add_years(clock.now(), -3) + timedelta(days=10)
    people = []
    for i in range(n):
        contact = make_contact(email=f"due{i}@example.fr", collected_at=start)
        services.consent_grant(
            contact=contact, topic="promotions", channel="email", proof=WEB, occurred_at=start
        )
        people.append(contact)
    return people


def expired_contact(make_contact: Callable[..., Contact]) -> Contact:
    start = rules.add_years(clock.now(), -3) - timedelta(days=1)
    contact = make_contact(email="gone@example.fr", collected_at=start)
    services.consent_grant(
        contact=contact, topic="promotions", channel="email", proof=WEB, occurred_at=start
    )
    return contact


@pytest.fixture
def promotions(make_topic: Callable[..., Topic]) -> Topic:
    return make_topic("promotions")


# --- Re-checked under the contact's lock (both databases) ---------------------------------------


@pytest.mark.usefixtures("promotions")
def test_an_ask_from_a_stale_plan_is_not_sent_twice(make_contact: Callable[..., Contact]) -> None:
    (person,) = due_contacts(make_contact, 1)
    plan = retention.plan()
    assert [c for c, _, _ in plan.repermission] == [person.pk]
    assert retention.ask(person.pk, plan.now) is True
    # A second run that read the same plan before the first one wrote.
    assert retention.ask(person.pk, plan.now) is False
    assert person.events.filter(type="repermission_sent").count() == 1
    assert Outbox.objects.filter(template="repermission").count() == 1


@pytest.mark.usefixtures("promotions")
def test_a_keep_click_after_the_plan_saves_the_contact_from_erasure(
    make_contact: Callable[..., Contact], monkeypatch: Any
) -> None:
    person = expired_contact(make_contact)
    stale = retention.plan()
    assert [c for c, _, _ in stale.erase] == [person.pk]
    retention.keep(person, ip_address=None, user_agent="")
    # The run works from the plan it read before the click.
    monkeypatch.setattr(retention, "plan", lambda now=None: stale)
    assert retention.run() == {"asked": 0, "erased": 0}
    person.refresh_from_db()
    assert person.email == "gone@example.fr"


@pytest.mark.usefixtures("promotions")
def test_a_contact_erased_after_the_plan_is_neither_asked_nor_erased_again(
    make_contact: Callable[..., Contact],
) -> None:
    (due,) = due_contacts(make_contact, 1)
    gone = expired_contact(make_contact)
    plan = retention.plan()
    for contact in (due, gone):
        services.contact_erase(contact=contact, reason="DSR", actor="staff:dpo")
    assert retention.ask(due.pk, plan.now) is False
    assert retention.expire(gone.pk, plan.now) is False
    assert not Outbox.objects.filter(template="repermission").exists()


def test_a_lock_is_granted_again_in_the_same_process(db: Any) -> None:
    """The embedded default runs its tasks in-process: a nested run is never locked out (on
    PostgreSQL, advisory locks are re-entrant within one connection)."""
    with locks.run_lock("retention") as first, locks.run_lock("retention") as second:
        assert first and second


# --- Two runs at once (PostgreSQL, threads: one connection each) ---------------------------------


def in_threads(target: Callable[[], Any], n: int = 2) -> list[Any]:
    barrier = threading.Barrier(n)
    results: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            results.append(target())
        except BaseException as exc:  # noqa: BLE001  (reported below, in the test's thread)
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return results


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("promotions")
def test_two_retention_runs_at_once_ask_each_person_once(
    make_contact: Callable[..., Contact],
) -> None:
    people = due_contacts(make_contact, 6)
    results = in_threads(retention.run)
    assert sorted(r["asked"] for r in results) == [0, 6]
    for person in people:
        assert person.events.filter(type="repermission_sent").count() == 1
    assert Outbox.objects.filter(template="repermission").count() == 6


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("promotions")
def test_two_asks_from_one_plan_at_once_send_once(make_contact: Callable[..., Contact]) -> None:
    """Past the run lock (the command typed on another machine with another lock name, a retry):
    the contact's lock and the re-check are what keep the ask single."""
    people = due_contacts(make_contact, 6)
    plan = retention.plan()

    def ask_all() -> int:
        return sum(retention.ask(contact_id, plan.now) for contact_id, _, _ in plan.repermission)

    assert sum(in_threads(ask_all)) == 6
    for person in people:
        assert person.events.filter(type="repermission_sent").count() == 1
    assert Outbox.objects.filter(template="repermission").count() == 6


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_run_finds_the_lock_taken_and_does_nothing(make_contact: Callable[..., Contact]) -> None:
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with locks.run_lock("retention") as got:
                assert got
                held.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        assert retention.run() == {"asked": 0, "erased": 0, "skipped": 1}
        out = StringIO()
        call_command("retention", stdout=out)
        assert "Another retention run is under way" in out.getvalue()
        with locks.run_lock("outbox-sweep") as got:
            assert got  # one lock per job: the sweep is not held up by retention
    finally:
        release.set()
        holder.join()
    assert retention.run() == {"asked": 0, "erased": 0}  # released: the next run runs


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_every_scheduled_task_holds_its_own_lock(db: Any) -> None:
    names = {
        tasks.outbox_sweep: "outbox-sweep",
        tasks.ledger_verify: "ledger-verify",
        tasks.ledger_anchor: "ledger-anchor",
        tasks.reconfirm_campaigns: "reconfirm-campaigns",
        tasks.retention_daily: "retention",
    }
    from preferences import tasks as preference_tasks

    names[preference_tasks.signups_purge] = "signups-purge"
    for task, name in names.items():
        held, release = threading.Event(), threading.Event()

        def hold(
            name: str = name, held: threading.Event = held, release: threading.Event = release
        ) -> None:
            try:
                with locks.run_lock(name):
                    held.set()
                    release.wait(10)
            finally:
                connection.close()

        holder = threading.Thread(target=hold)
        holder.start()
        try:
            assert held.wait(10)
            result = task.apply().get()
            assert result in (0, None, {"asked": 0, "erased": 0, "skipped": 1}), (name, result)
        finally:
            release.set()
            holder.join()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_reconfirmation_batches_at_once_ask_each_person_once(
    promotions: Topic, make_contact: Callable[..., Contact]
) -> None:
    v1 = services.notice_publish(topic=promotions, language="fr", text="v1")
    people = []
    for i in range(8):
        contact = make_contact(email=f"p{i}@example.fr")
        services.consent_grant(
            contact=contact,
            topic="promotions",
            channel="email",
            proof=services.Proof(method=Method.WEB_FORM, actor="person", notice=v1),
        )
        people.append(contact)
    v2 = services.notice_publish(topic=promotions, language="fr", text="v2")
    campaign = ReconfirmCampaign.objects.create(
        notice=v2, started_at=clock.now(), started_by="staff:x"
    )
    # Straight to the batch, past the run lock: two workers on one campaign (no IntegrityError).
    results = in_threads(lambda: notices.campaign_batch(campaign, 100))
    assert sum(results) == 8
    assert ReconfirmRequest.objects.count() == 8
    assert Outbox.objects.filter(template="notice-reconfirm").count() == 8
    assert Event.objects.filter(type="opt_in").count() == 8
