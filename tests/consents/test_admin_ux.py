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
