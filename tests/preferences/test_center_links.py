"""Getting into the preference center: the "/" form, emailed links, bad and old links."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.core import mail
from django.test import Client

from consents import links, services
from consents.models import Contact, Outbox
from tests.preferences.pages import PREFERENCES_LINK, UNSUBSCRIBE_LINK, path_in

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pages", "topics")]

SAME_ANSWER = "Si nous connaissons cette adresse, un lien vers vos préférences vient de partir."


@pytest.fixture
def marie(make_contact: Any) -> Contact:
    return make_contact(email="marie@example.fr")


def ask(client: Client, email: str, capture: Any, **extra: Any) -> Any:
    with capture(execute=True):
        return client.post("/", {"email": email}, follow=True, REMOTE_ADDR="203.0.113.9", **extra)


def test_known_address_gets_a_working_link_by_email(
    client: Client, marie: Contact, django_capture_on_commit_callbacks: Any
) -> None:
    response = ask(client, "Marie@Example.FR", django_capture_on_commit_callbacks)
    assert SAME_ANSWER in response.content.decode()
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["marie@example.fr"]
    assert "préférences" in message.subject
    # Like every email that is not a pure service message: a one-click unsubscribe.
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert path_in(UNSUBSCRIBE_LINK, message)
    opened = Client().get(path_in(PREFERENCES_LINK, message), follow=True)
    assert "Vos préférences" in opened.content.decode()
    assert 'name="action" value="save"' in opened.content.decode()


def test_link_email_speaks_the_page_language(
    client: Client, marie: Contact, django_capture_on_commit_callbacks: Any
) -> None:
    ask(client, "marie@example.fr", django_capture_on_commit_callbacks, HTTP_ACCEPT_LANGUAGE="en")
    assert mail.outbox[0].subject.startswith("Your link to your preferences")


def test_unknown_address_gets_the_same_answer_and_no_email(
    client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    response = ask(client, "nobody@example.fr", django_capture_on_commit_callbacks)
    assert SAME_ANSWER in response.content.decode()
    assert mail.outbox == [] and Outbox.objects.count() == 0


def test_an_invalid_address_is_explained(client: Client) -> None:
    response = client.post("/", {"email": "not an address"})
    assert response.status_code == 200
    assert "Saisissez une adresse e-mail valide." in response.content.decode()


def test_link_requests_are_limited_per_address(
    client: Client, marie: Contact, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    for _ in range(settings.SIGNUP_MAX_EMAILS_PER_ADDRESS + 2):
        response = ask(client, "marie@example.fr", django_capture_on_commit_callbacks)
        assert SAME_ANSWER in response.content.decode()  # never a different answer
    assert len(mail.outbox) == settings.SIGNUP_MAX_EMAILS_PER_ADDRESS


def test_link_requests_are_limited_per_ip(client: Client, settings: Any) -> None:
    settings.SIGNUP_MAX_PER_IP_PER_HOUR = 2
    codes = [client.post("/", {"email": f"x{i}@example.fr"}).status_code for i in range(3)]
    assert codes == [302, 302, 429]


def test_the_form_needs_its_csrf_token(marie: Contact) -> None:
    response = Client(enforce_csrf_checks=True).post("/", {"email": "marie@example.fr"})
    assert response.status_code == 403 and Outbox.objects.count() == 0


def _expired_link(contact: Contact, monkeypatch: pytest.MonkeyPatch, settings: Any) -> str:
    signed_at = time.time() - settings.PREFERENCE_LINK_TTL.total_seconds() - 60
    with monkeypatch.context() as m:
        m.setattr("django.core.signing.time.time", lambda: signed_at)
        return f"/preferences/{links.make('preferences', contact)}/"


def test_expired_link_offers_the_form_prefilled(
    client: Client, marie: Contact, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    response = client.get(_expired_link(marie, monkeypatch, settings))
    html = response.content.decode()
    assert response.status_code == 200 and "durée limitée" in html
    assert 'value="marie@example.fr"' in html and 'action="/"' in html
    assert "preferences_contact" not in client.session


def test_revoked_link_offers_the_form_prefilled(client: Client, marie: Contact) -> None:
    old = f"/preferences/{links.make('preferences', marie)}/"
    services.contact_revoke_links(contact=marie)
    html = client.get(old).content.decode()
    assert "Ce lien ne fonctionne plus" in html and 'value="marie@example.fr"' in html
    assert "preferences_contact" not in client.session


@pytest.mark.parametrize("purpose", ["confirm", "unsubscribe"])
def test_wrong_purpose_token_is_refused(client: Client, marie: Contact, purpose: str) -> None:
    response = client.get(f"/preferences/{links.make(purpose, marie)}/")
    assert response.status_code == 400
    assert "preferences_contact" not in client.session


def test_tampered_token_is_refused(client: Client, marie: Contact) -> None:
    token = links.make("preferences", marie)
    tampered = token[:-3] + ("aaa" if not token.endswith("aaa") else "bbb")
    assert client.get(f"/preferences/{tampered}/").status_code == 400
    assert "preferences_contact" not in client.session


def test_token_for_a_contact_that_does_not_exist_is_404(client: Client) -> None:
    # Contacts are never deleted (the ledger protects them): a public id nobody has stands in.
    ghost = Contact(public_id="no-such-person-0000000", link_version=1)
    response = client.get(f"/preferences/{links.make('preferences', ghost)}/")
    assert response.status_code == 404
    assert "preferences_contact" not in client.session


def test_closed_page_offers_the_link_form(client: Client) -> None:
    html = client.get("/preferences/").content.decode()
    assert 'action="/"' in html and 'name="email"' in html
