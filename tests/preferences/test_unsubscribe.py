"""Leaving: the unsubscribe page, its form, and RFC 8058 one-click from a mail client."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail
from django.test import Client

from consents import services
from consents.models import ConsentState, Contact, Event, Evidence
from preferences import links
from tests.preferences.pages import CONFIRM_LINK, path_in

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pages", "topics")]


@pytest.fixture
def subscriber(sign_up: Any, client: Client) -> Contact:
    """Marie, signed up to two topics and confirmed."""
    sign_up(choice=["newsletter:email", "promotions:email"])
    client.post(path_in(CONFIRM_LINK, mail.outbox[0]))
    return Contact.objects.get()


@pytest.fixture
def unsubscribe(subscriber: Contact) -> str:
    return f"/unsubscribe/{links.make_token('unsubscribe', subscriber)}/"


def opt_outs() -> list[tuple[str, str, str]]:
    return list(Event.objects.filter(type="opt_out").values_list("topic", "channel", "method"))


def statuses(contact: Contact) -> set[str]:
    return set(ConsentState.objects.filter(contact=contact).values_list("status", flat=True))


def test_get_explains_what_will_happen_and_writes_nothing(
    client: Client, unsubscribe: str, subscriber: Contact
) -> None:
    before = Event.objects.count()
    response = client.get(unsubscribe)
    assert response.status_code == 200
    page = response.content.decode()
    assert "sur tous les canaux" in page
    assert "commandes et votre compte continuent" in page
    main = page.split("<main", 1)[1]
    assert main.count('type="submit"') == 1
    assert Event.objects.count() == before
    assert statuses(subscriber) == {"opted_in"}


def test_post_unsubscribes_from_everything_and_links_back_to_the_preferences(
    client: Client, unsubscribe: str, subscriber: Contact
) -> None:
    response = client.post(unsubscribe, REMOTE_ADDR="198.51.100.4", HTTP_USER_AGENT="Mail/2")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Vous êtes désabonné(e)" in page
    assert 'href="/preferences/' in page
    assert opt_outs() == [("*", "*", "unsubscribe_link")]
    evidence = Evidence.objects.get(event__type="opt_out")
    assert (evidence.ip_address, evidence.user_agent) == ("198.51.100.4", "Mail/2")
    assert statuses(subscriber) == {"opted_out"}


def test_second_unsubscribe_writes_nothing_and_shows_the_same_page(
    client: Client, unsubscribe: str
) -> None:
    first = client.post(unsubscribe)
    count = Event.objects.count()
    second = client.post(unsubscribe)
    assert first.status_code == second.status_code == 200
    assert "Vous êtes désabonné(e)" in second.content.decode()
    assert Event.objects.count() == count
    assert opt_outs() == [("*", "*", "unsubscribe_link")]


def test_normal_form_without_csrf_token_is_refused(unsubscribe: str) -> None:
    response = Client(enforce_csrf_checks=True).post(unsubscribe, {"confirm": "1"})
    assert response.status_code == 403
    assert opt_outs() == []


def test_one_click_exactly_as_a_mail_provider_sends_it(
    unsubscribe: str, subscriber: Contact
) -> None:
    provider = Client(enforce_csrf_checks=True)  # no cookie, no CSRF token
    response = provider.post(
        unsubscribe,
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
        REMOTE_ADDR="209.85.220.41",
        HTTP_USER_AGENT="Google-One-Click-Unsubscribe",
    )
    assert response.status_code == 200
    assert "Location" not in response
    assert len(response.content) < 100
    assert not response.cookies
    assert opt_outs() == [("*", "*", "one_click_unsubscribe")]
    assert statuses(subscriber) == {"opted_out"}

    again = provider.post(
        unsubscribe,
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert again.status_code == 200
    assert opt_outs() == [("*", "*", "one_click_unsubscribe")]


def test_one_click_as_multipart_form_data_too(unsubscribe: str) -> None:
    # RFC 8058 3.1: the body SHOULD be multipart/form-data, MAY be form-urlencoded.
    response = Client(enforce_csrf_checks=True).post(unsubscribe, {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert opt_outs() == [("*", "*", "one_click_unsubscribe")]


def test_the_link_in_the_emails_headers_is_the_one_click_target(
    subscriber: Contact,
) -> None:
    header = mail.outbox[0].extra_headers["List-Unsubscribe"]
    path = header.strip("<>").split("://", 1)[1].split("/", 1)[1]
    response = Client(enforce_csrf_checks=True).post(
        "/" + path,
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert opt_outs() == [("*", "*", "one_click_unsubscribe")]


def test_unsubscribe_still_works_after_signing_out_of_all_links(
    client: Client, unsubscribe: str, subscriber: Contact
) -> None:
    services.contact_revoke_links(contact=subscriber)
    response = client.post(unsubscribe)
    assert response.status_code == 200
    assert opt_outs() == [("*", "*", "unsubscribe_link")]
    # ...but it does not become a way back into the preference center.
    assert "/preferences/" not in response.content.decode()


@pytest.mark.parametrize("purpose", ["preferences", "confirm"])
def test_foreign_or_tampered_tokens_are_400_and_write_nothing(
    client: Client, subscriber: Contact, unsubscribe: str, purpose: str
) -> None:
    foreign = f"/unsubscribe/{links.make_token(purpose, subscriber)}/"
    tampered = unsubscribe[:-8] + "/"
    for path in (foreign, tampered):
        assert client.get(path).status_code == 400
        assert client.post(path).status_code == 400
        one_click = Client(enforce_csrf_checks=True).post(
            path,
            data="List-Unsubscribe=One-Click",
            content_type="application/x-www-form-urlencoded",
        )
        assert one_click.status_code == 400
    assert opt_outs() == []


def test_unsubscribe_page_in_english(client: Client, unsubscribe: str) -> None:
    page = client.get(unsubscribe, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "<h1>Unsubscribe from all our marketing</h1>" in page
    assert "messages about your orders and your account continue" in page
