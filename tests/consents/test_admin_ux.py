"""The compliance officer's admin, read as a person would: who is erased and a confirmation
typed before it happens, the contact page's summary in words, the decision panel in words."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from consents import services
from consents.models import Contact, Erasure, Topic
from tests.conftest import at

pytestmark = pytest.mark.django_db


@pytest.fixture
def lea(make_topic: Callable[..., Topic], make_contact: Callable[..., Contact]) -> Contact:
    make_topic("promotions")
    contact = make_contact(email="lea@example.fr", phone="+33611111111", first_name="Léa")
    services.consent_grant(
        contact=contact,
        topic="promotions",
        channel="email",
        proof=services.Proof(method="web_form", actor="person"),
        occurred_at=at("2026-02-01T10:00"),
    )
    return contact


def page(response: Any) -> str:
    return response.content.decode()


# --- Erasure ----------------------------------------------------------------------------------


def test_the_erasure_page_shows_who_and_asks_to_type_the_address(
    lea: Contact, admin_client: Client
) -> None:
    url = f"/admin/consents/contact/{lea.pk}/erase/"
    html = page(admin_client.get(url, HTTP_ACCEPT_LANGUAGE="en"))
    assert "Léa" in html and "lea@example.fr" in html and "+33611111111" in html
    assert "Events in the ledger" in html
    assert 'id="erase-cancel"' in html
    assert f'href="/admin/consents/contact/{lea.pk}/change/"' in html
    assert "danger-zone" in html and "danger-button" in html
    # The wrong person's address: refused, nothing erased.
    wrong = admin_client.post(url, {"confirm": "someone@example.fr", "reason": "DSR 42"})
    assert wrong.status_code == 400
    assert not Erasure.objects.exists()
    # Their phone, as read out: erased.
    done = admin_client.post(url, {"confirm": "06 11 11 11 11", "reason": "DSR 42"})
    assert done.status_code == 302
    assert Erasure.objects.filter(contact=lea).exists()


def test_the_erasure_accepts_the_email_in_any_case(lea: Contact, admin_client: Client) -> None:
    url = f"/admin/consents/contact/{lea.pk}/erase/"
    admin_client.post(url, {"confirm": " LEA@example.fr ", "reason": "DSR 43"})
    assert Erasure.objects.filter(contact=lea).exists()


# --- The contact page in words ------------------------------------------------------------------


@pytest.fixture
def buyer(make_topic: Callable[..., Topic], make_contact: Callable[..., Contact]) -> Contact:
    """Someone who bought books in store, informed at collection, who never said yes."""
    from consents.models import Store

    make_topic("promotions", channels=["email", "sms"])
    services.category_set(slug="books", family="culture", name="Livres", name_en="Books")
    services.category_set(slug="dvd", family="culture", name="DVD", name_en="DVDs")
    shop = Store.objects.create(code="paris-01", name="Paris 01")
    contact = make_contact(email="paul@example.fr")
    services.purchase_record(
        contact=contact,
        category="books",
        product="",
        occurred_at=at("2026-03-12T10:00"),
        proof=services.Proof(actor="staff:alice", store=shop, collection_point="store:paris-01"),
    )
    return contact


def test_the_decision_panel_answers_in_words_with_the_facts_as_links(
    buyer: Contact, admin_client: Client
) -> None:
    from consents.models import Event

    params = {
        "decide-channel": "email",
        "decide-purpose": "promotion",
        "decide-topic": "promotions",
        "decide-category": "dvd",
    }
    response = admin_client.get(
        f"/admin/consents/contact/{buyer.pk}/change/", params, HTTP_ACCEPT_LANGUAGE="en"
    )
    html = page(response)
    purchase = Event.objects.get(contact=buyer, type="purchase")
    assert (
        "Allowed: a message about “Promotions” by email. This person bought Books on 12 March "
        "2026 (in store, Paris 01) and was told at collection that they could object; a "
        "promotion for DVDs is an analogous product (soft opt-in, L34-5 CPCE)."
    ) in html.replace("&#x27;", "'")
    assert f'href="/admin/consents/event/{purchase.pk}/change/"' in html
    # The code and the step stay available, as details; no file is named.
    assert 'id="decision-reason">SOFT_OPT_IN</code>' in html
    assert "RULES.md" not in html


def test_the_contact_page_opens_with_may_we_write_today(lea: Contact, admin_client: Client) -> None:
    html = page(
        admin_client.get(f"/admin/consents/contact/{lea.pk}/change/", HTTP_ACCEPT_LANGUAGE="en")
    )
    today = html[html.index('id="today"') : html.index('id="state-grid"')]
    assert "May we write to this person today?" in today
    assert "Email: yes</strong> — Promotions (this person said yes)" in today
    assert "SMS: no</strong>" in today
    # Before the tables.
    assert html.index('id="today"') < html.index('id="state-grid"')
    # Hashes shortened, the whole value on demand.
    assert '<details class="hash"><summary><code>' in html


def test_the_contact_page_in_french_says_it_in_french(lea: Contact, admin_client: Client) -> None:
    html = page(admin_client.get(f"/admin/consents/contact/{lea.pk}/change/"))
    assert "Pouvons-nous écrire à cette personne aujourd’hui ?" in html
    assert "E-mail : oui</strong> — Promotions (cette personne a dit oui)" in html
    assert "Intacte : 1 événement vérifié." in html
