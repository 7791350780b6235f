"""Retention, erasure and the suppression list."""

from __future__ import annotations

import re
from collections.abc import Callable
from io import StringIO
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.test import Client

from consents import clock, ledger, retention, rules, services
from consents.models import (
    Contact,
    ContactFacts,
    Event,
    Evidence,
    Outbox,
    Suppression,
    Topic,
)
from consents.outbox import render_email
from consents.selectors import proof
from consents.vocab import Reason
from tests.conftest import at

NOW = at("2028-12-20T12:00")


def web(method: str = "web_form") -> services.Proof:
    return services.Proof(method=method, actor="person", ip_address="203.0.113.9", user_agent="UA")


@pytest.fixture
def topic(make_topic: Callable[..., Topic]) -> Topic:
    return make_topic("promotions")


@pytest.fixture
def frozen() -> Any:
    with clock.frozen(NOW) as now:
        yield now


@pytest.fixture
def population(
    topic: Topic, make_contact: Callable[..., Contact], frozen: Any
) -> dict[str, Contact]:
    """People at every stage of the three-year rule, as of NOW (2028-12-20)."""

    def person(name: str, collected: str, **kwargs: Any) -> Contact:
        return make_contact(email=f"{name}@example.fr", collected_at=at(collected), **kwargs)

    def opt_in(contact: Contact, when: str) -> None:
        services.consent_grant(
            contact=contact, topic="promotions", channel="email", proof=web(), occurred_at=at(when)
        )

    people = {}
    # Consent given three years ago, expiring on 2029-01-10: in the last 30 days, not asked yet.
    people["due"] = c = person("due", "2026-01-10T10:00")
    opt_in(c, "2026-01-10T10:00")
    # The same, already asked.
    people["asked"] = c = person("asked", "2026-01-10T10:00")
    opt_in(c, "2026-01-10T10:00")
    services.repermission_record(
        contact=c,
        channel="email",
        proof=services.Proof(actor="system"),
        occurred_at=at("2028-12-15T08:00"),
    )
    # The same, but left everything.
    people["left"] = c = person("left", "2026-01-10T10:00")
    opt_in(c, "2026-01-10T10:00")
    services.consent_withdraw(
        contact=c,
        topic="*",
        channel="*",
        proof=web(method="unsubscribe_link"),
        occurred_at=at("2026-05-01T10:00"),
    )
    # Not due yet: consent in 2027.
    people["young"] = c = person("young", "2027-06-01T10:00")
    opt_in(c, "2027-06-01T10:00")
    # Expired on 2028-12-01: erased.
    people["expired"] = c = person("expired", "2025-12-01T10:00")
    opt_in(c, "2025-12-01T10:00")
    # A customer with no consent but a soft opt-in basis; expiry 2029-01-05 from the purchase.
    people["customer"] = c = person("customer", "2026-01-05T10:00")
    services.purchase_record(
        contact=c,
        category="sofa",
        product="Oslo",
        proof=services.Proof(actor="api:till"),
        occurred_at=at("2026-01-05T10:00"),
    )
    # No basis to write: never consented, not informed.
    people["nobasis"] = person("nobasis", "2026-01-12T10:00", informed_at_collection=False)
    # Undeliverable.
    people["bounced"] = c = person("bounced", "2026-01-10T10:00")
    opt_in(c, "2026-01-10T10:00")
    services.bounce_record(
        contact=c,
        hard=True,
        proof=services.Proof(actor="system"),
        occurred_at=at("2026-02-01T10:00"),
    )
    # An active contract: never expires.
    people["contract"] = c = person("contract", "2025-01-10T10:00")
    opt_in(c, "2025-01-10T10:00")
    services.contract_start(
        contact=c,
        contract="box-1",
        category="sofa",
        proof=services.Proof(actor="api"),
        occurred_at=at("2025-01-10T10:00"),
    )
    return people


def _decide(contact: Contact, message: rules.Message) -> rules.Decision:
    contact.refresh_from_db()
    _, facts = proof.history(contact)
    return proof.decide_for(contact, facts, message, NOW)


def test_the_dry_run_matches_decide(population: dict[str, Contact]) -> None:
    plan = retention.plan(NOW)
    asked = {public_id for _, public_id, _ in plan.repermission}
    erased = {public_id for _, public_id, _ in plan.erase}
    repermission = rules.Message(channel="email", purpose="repermission")
    service = rules.Message(channel="email", purpose="service")
    expected_asked = {c.public_id for c in population.values() if _decide(c, repermission).allowed}
    expected_erased = {
        c.public_id
        for c in population.values()
        if _decide(c, service).reason == Reason.RETENTION_EXPIRED
    }
    assert asked == expected_asked
    assert erased == expected_erased
    names = {c.public_id: name for name, c in population.items()}
    assert {names[p] for p in asked} == {"due", "customer"}
    assert {names[p] for p in erased} == {"expired"}
    assert all(reason == Reason.REPERMISSION for _, _, reason in plan.repermission)


def test_the_dry_run_command_changes_nothing(population: dict[str, Contact]) -> None:
    before = Event.objects.count()
    out = StringIO()
    call_command("retention", "--dry-run", stdout=out)
    text = out.getvalue()
    assert population["due"].public_id in text and population["expired"].public_id in text
    assert "RETENTION_EXPIRED" in text and "REPERMISSION" in text
    assert Event.objects.count() == before
    assert not Outbox.objects.exists()
    population["expired"].refresh_from_db()
    assert population["expired"].email == "expired@example.fr"


def test_the_daily_run_asks_once_erases_and_keep_restarts_the_clock(
    population: dict[str, Contact], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        done = retention.run(NOW)
    assert done == {"asked": 2, "erased": 1}
    due = population["due"]
    assert due.events.filter(type="repermission_sent", channel="email").count() == 1
    rows = Outbox.objects.filter(template="repermission")
    assert {row.to for row in rows} == {"due@example.fr", "customer@example.fr"}
    message = render_email(rows.get(to="due@example.fr"))
    assert "List-Unsubscribe" in message.extra_headers
    assert "/keep/" in message.body and "/admin/" not in message.body
    population["expired"].refresh_from_db()
    assert population["expired"].email is None
    assert retention.run(NOW) == {"asked": 0, "erased": 0}  # idempotent

    # Minted when the email is rendered; the row holds only its intent.
    assert "keep_url" not in Outbox.objects.get(to="due@example.fr").context
    link = re.search(r"http://127\.0\.0\.1:8000(/keep/[^/\s]+/)", message.body).group(1)
    client = Client()
    assert client.get(link).status_code == 200
    assert not due.events.filter(type="interaction").exists()  # GET changes nothing
    assert client.post(link).status_code == 200
    answer = due.events.get(type="interaction")
    assert answer.data == {"kind": "contact"} and answer.actor == "person"
    facts = ContactFacts.objects.get(contact=due)
    assert facts.expires_at == rules.add_years(answer.occurred_at, 3)
    decision = _decide(due, rules.Message(channel="email", purpose="promotion", topic="promotions"))
    assert decision.reason == Reason.OPT_IN  # the old consent stands; nothing new was invented


def test_the_retention_page_is_a_dry_run_until_posted(
    population: dict[str, Contact], admin_client: Client
) -> None:
    response = admin_client.get("/admin/retention/")
    assert response.status_code == 200
    page = response.content.decode()
    assert population["due"].public_id in page and population["expired"].public_id in page
    assert not Outbox.objects.exists()
    response = admin_client.post("/admin/retention/")
    assert response.status_code == 302
    assert Outbox.objects.count() == 2


# --- Erasure ---------------------------------------------------------------------------------


@pytest.fixture
def leaver(topic: Topic, make_contact: Callable[..., Contact]) -> Contact:
    contact = make_contact(
        email="Leaver@Example.fr", phone="+33611111111", first_name="Lea", postal_address="1 rue"
    )
    services.consent_grant(contact=contact, topic="promotions", channel="email", proof=web())
    services.consent_withdraw(
        contact=contact, topic="promotions", channel="email", proof=web(method="unsubscribe_link")
    )
    Outbox.objects.create(
        contact=contact,
        template="x",
        to="Leaver@Example.fr",
        context={"a": 1},
        created_at=clock.now(),
    )
    return contact


def test_erasure_wipes_personal_data_and_keeps_the_chain_valid(leaver: Contact) -> None:
    from preferences.models import PendingSignup

    PendingSignup.objects.create(
        contact=leaver,
        choices=[],
        first_name="Lea",
        phone="+33611111111",
        created_at=clock.now(),
        expires_at=clock.now(),
    )
    hashes = list(leaver.events.values_list("hash", flat=True))
    services.contact_erase(contact=leaver, reason="DSR 42", actor="staff:dpo")
    leaver.refresh_from_db()
    assert (leaver.email, leaver.phone, leaver.first_name, leaver.postal_address) == (
        None,
        "",
        "",
        "",
    )
    assert list(leaver.events.values_list("hash", flat=True)) == hashes
    for evidence in Evidence.objects.filter(event__contact=leaver):
        assert evidence.ip_address is None and evidence.user_agent == "" and evidence.erased_at
    assert Outbox.objects.get(contact=leaver).to == ""
    assert not PendingSignup.objects.filter(contact=leaver).exists()
    checked, broken = ledger.verify_range(leaver.pk, leaver.pk + 1)
    assert broken is None and checked == 2
    out = StringIO()
    call_command("verify_ledger", workers=1, stdout=out)
    assert out.getvalue().startswith("OK")
    with pytest.raises(ValidationError):
        services.contact_erase(contact=leaver, reason="again", actor="staff:dpo")


def test_an_opted_out_address_is_kept_only_as_a_keyed_hash(leaver: Contact) -> None:
    services.contact_erase(contact=leaver, reason="DSR 42", actor="staff:dpo")
    digests = set(Suppression.objects.values_list("digest", flat=True))
    assert len(digests) == 2
    assert services.suppression_digest("email", "leaver@example.FR") in digests
    assert not any("leaver" in d.lower() for d in digests)
    assert services.address_is_suppressed(email="LEAVER@example.fr")


def test_suppression_blocks_a_reimport_as_consenting(
    leaver: Contact, make_contact: Callable[..., Contact]
) -> None:
    services.contact_erase(contact=leaver, reason="DSR 42", actor="staff:dpo")
    again = make_contact(email="leaver@example.fr")
    imported = services.Proof(method="import", actor="api:crm", reference="crm export 2027")
    with pytest.raises(ValidationError, match="suppression"):
        services.consent_grant(contact=again, topic="promotions", channel="email", proof=imported)
    # Nothing but the suppression itself, which the ledger records when the address arrives.
    assert list(again.events.values_list("type", "method")) == [("opt_out", "suppression")]
    # The person themselves may say yes again on our own form.
    services.consent_grant(contact=again, topic="promotions", channel="email", proof=web())
    assert again.events.count() == 2


def test_a_contact_who_never_opted_out_is_not_suppressed(
    topic: Topic, make_contact: Callable[..., Contact]
) -> None:
    contact = make_contact(email="quiet@example.fr")
    services.contact_erase(contact=contact, reason="retention", actor="system:retention")
    assert not Suppression.objects.exists()


def test_erasure_needs_a_reason(leaver: Contact) -> None:
    with pytest.raises(ValidationError):
        services.contact_erase(contact=leaver, reason=" ", actor="staff:dpo")


def test_an_erased_contact_is_no_longer_anyones_audience(leaver: Contact) -> None:
    services.contact_erase(contact=leaver, reason="DSR", actor="staff:dpo")
    decision = _decide(leaver, rules.Message(channel="email", purpose="service"))
    assert decision.reason == Reason.NO_ADDRESS
