"""The way into the preference center: the emailed link moves into the session."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.test import Client

from consents import links, services
from consents.models import Contact

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pages", "topics")]


@pytest.fixture
def marie(make_contact: Any, web_proof: services.Proof) -> Contact:
    contact = make_contact(email="marie@example.fr")
    services.consent_grant(contact=contact, topic="newsletter", channel="email", proof=web_proof)
    services.consent_withdraw(contact=contact, topic="promotions", channel="sms", proof=web_proof)
    return contact


def open_path(contact: Contact) -> str:
    return f"/preferences/{links.make('preferences', contact)}/"


def test_opening_the_link_moves_it_into_the_session_and_redirects(
    client: Client, marie: Contact
) -> None:
    client.get("/subscribe/")  # a session may already exist: its key must change
    response = client.get(open_path(marie))
    assert response.status_code == 302 and response["Location"] == "/preferences/"
    session_key = client.session.session_key
    page = client.get("/preferences/").content.decode()
    assert "La lettre d&#x27;information" in page and "Abonné(e)" in page
    assert "Bons plans" in page and "Désabonné(e)" in page
    assert 'name="action" value="unsubscribe_all"' in page
    assert client.session.session_key == session_key
    assert "no-store" in client.get("/preferences/")["Cache-Control"]


def test_session_key_changes_when_the_link_is_opened(client: Client, marie: Contact) -> None:
    client.get(open_path(marie))
    first = client.session.session_key
    client.get(open_path(marie))
    assert client.session.session_key != first


def test_without_a_session_the_page_explains_how_to_get_in(client: Client) -> None:
    response = client.get("/preferences/")
    assert response.status_code == 200
    assert "ouvrez le lien en bas" in response.content.decode()


def test_signing_out_of_all_links_closes_open_sessions_too(client: Client, marie: Contact) -> None:
    client.get(open_path(marie))
    services.contact_revoke_links(contact=marie)
    assert "ouvrez le lien en bas" in client.get("/preferences/").content.decode()


def test_revoked_link_explains_and_leads_home(client: Client, marie: Contact) -> None:
    old = open_path(marie)
    services.contact_revoke_links(contact=marie)
    response = client.get(old)
    assert response.status_code == 200
    page = response.content.decode()
    # It explains, and offers the form that emails a new link.
    assert "Ce lien ne fonctionne plus" in page and 'action="/"' in page
    assert "preferences_contact" not in client.session


def test_expired_link_explains_and_leads_home(
    client: Client, marie: Contact, monkeypatch: pytest.MonkeyPatch
) -> None:
    signed_at = time.time() - 61 * 24 * 3600
    with monkeypatch.context() as m:
        m.setattr("django.core.signing.time.time", lambda: signed_at)
        old = open_path(marie)
    response = client.get(old)
    assert response.status_code == 200
    assert "durée limitée" in response.content.decode()
    assert "preferences_contact" not in client.session


@pytest.mark.parametrize("purpose", ["confirm", "unsubscribe"])
def test_foreign_and_tampered_links_are_400(client: Client, marie: Contact, purpose: str) -> None:
    foreign = f"/preferences/{links.make(purpose, marie)}/"
    tampered = open_path(marie)[:-5] + "/"
    for path in (foreign, tampered):
        response = client.get(path)
        assert response.status_code == 400
        assert "Ce lien ne fonctionne pas" in response.content.decode()
    assert "preferences_contact" not in client.session
