"""Leaving: the unsubscribe page, its form, and RFC 8058 one-click from a mail client."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from django.core import mail
from django.test import Client

from consents import links, services
from consents.models import AccessLog, ConsentState, Contact, Event, Evidence
from tests.preferences.pages import CONFIRM_LINK, path_in

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pages", "topics")]

FOREIGN_PARAMS: dict[str, dict[str, str]] = {"preferences": {}, "confirm": {"s": "nonce"}}


@pytest.fixture
def subscriber(sign_up: Any, client: Client) -> Contact:
    """Marie, signed up to two topics and confirmed."""
    sign_up(choice=["newsletter:email", "promotions:email"])
    client.post(path_in(CONFIRM_LINK, mail.outbox[0]))
    return Contact.objects.get()


@pytest.fixture
def unsubscribe(subscriber: Contact) -> str:
    return f"/unsubscribe/{links.make('unsubscribe', subscriber)}/"


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
    # The lighter choices first (each topic, a break, less often), "everything" last.
    assert main.count('type="submit"') == 2 + 2 + 2 + 1
    assert main.rindex('name="action" value="all"') > main.rindex('name="action" value="pause"')
    assert "Pour m•••e@example.fr" in page
    assert Event.objects.count() == before
    assert statuses(subscriber) == {"opted_in"}


def test_post_unsubscribes_from_everything_and_offers_undo_and_nothing_else(
    client: Client, unsubscribe: str, subscriber: Contact
) -> None:
    response = client.post(unsubscribe, REMOTE_ADDR="198.51.100.4", HTTP_USER_AGENT="Mail/2")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Vous êtes désabonné(e)" in page
    # An unsubscribe link grants unsubscribing: no way into the preferences from here (it used
    # to hand out a fresh preference link), only the form that emails one to the mailbox.
    assert 'href="/preferences/' not in page
    assert 'href="/"' in page
    assert 'name="action" value="undo"' in page
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


def test_signing_out_of_all_links_switches_unsubscribe_links_off_too(
    client: Client, unsubscribe: str, subscriber: Contact
) -> None:
    services.contact_revoke_links(contact=subscriber)
    page = client.get(unsubscribe)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Ce lien ne fonctionne plus" in html and 'action="/"' in html
    response = client.post(unsubscribe)
    assert response.status_code == 200 and "Ce lien ne fonctionne plus" in response.content.decode()
    one_click = Client(enforce_csrf_checks=True).post(
        unsubscribe,
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert one_click.status_code == 400
    assert opt_outs() == []
    # ...and it does not become a way back into the preference center.
    assert "/preferences/" not in response.content.decode()


@pytest.mark.parametrize("purpose", ["preferences", "confirm"])
def test_foreign_or_tampered_tokens_are_400_and_write_nothing(
    client: Client, subscriber: Contact, unsubscribe: str, purpose: str
) -> None:
    foreign = f"/unsubscribe/{links.make(purpose, subscriber, **FOREIGN_PARAMS[purpose])}/"
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
    assert "<h1>Unsubscribe</h1>" in page
    assert "Unsubscribe from all our marketing</h2>" in page
    assert "messages about your orders and your account continue" in page


# --- A link grants exactly its scope --------------------------------------------------------------


def test_a_forwarded_unsubscribe_link_opens_nothing_but_unsubscribing(
    unsubscribe: str, subscriber: Contact, django_capture_on_commit_callbacks: Any
) -> None:
    """A stranger holding a forwarded newsletter used to get, after one POST, a fresh preference
    link, and from it a JSON file with the person's phone, address and IP addresses."""
    stranger = Client()
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        page = stranger.post(unsubscribe).content.decode()
    assert "Vous êtes désabonné(e)" in page
    assert not re.search(r"/preferences/[^\"/]+/", page)
    assert "marie@example.fr" not in page
    # No session for the preference center, no data, no email sent on their behalf.
    closed = stranger.get("/preferences/")
    assert "ouvrez le lien en bas" in closed.content.decode()
    assert stranger.post("/preferences/", {"action": "download_data"}).status_code == 403
    assert not AccessLog.objects.exists()
    assert mail.outbox == []


def test_an_unsubscribe_link_opens_no_preference_or_download_page(
    client: Client, unsubscribe: str
) -> None:
    token = unsubscribe.split("/")[2]
    for path in (f"/preferences/{token}/", f"/my-data/{token}/"):
        assert client.get(path).status_code == 400
    assert "preferences_contact" not in client.session


# --- Lifetime -------------------------------------------------------------------------------------


def _signed_ago(contact: Contact, seconds: float, monkeypatch: pytest.MonkeyPatch) -> str:
    now = time.time()
    with monkeypatch.context() as m:
        m.setattr("django.core.signing.time.time", lambda: now - seconds)
        return f"/unsubscribe/{links.make('unsubscribe', contact)}/"


def test_one_click_works_for_the_life_of_the_message(
    subscriber: Contact, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = _signed_ago(subscriber, settings.UNSUBSCRIBE_LINK_TTL.total_seconds() - 3600, monkeypatch)
    response = Client(enforce_csrf_checks=True).post(
        old, data="List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 200
    assert opt_outs() == [("*", "*", "one_click_unsubscribe")]


def test_an_unsubscribe_link_older_than_a_year_explains_and_offers_a_new_link(
    client: Client, subscriber: Contact, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = _signed_ago(subscriber, settings.UNSUBSCRIBE_LINK_TTL.total_seconds() + 60, monkeypatch)
    for response in (client.get(old), client.post(old)):
        assert response.status_code == 200
        html = response.content.decode()
        assert "un an après l’envoi" in html
        # Sent to this address: the form may name it.
        assert 'action="/"' in html and 'value="marie@example.fr"' in html
    one_click = Client(enforce_csrf_checks=True).post(
        old, data="List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
    )
    assert one_click.status_code == 400
    assert opt_outs() == []


def test_an_unsubscribe_link_dies_with_a_change_of_address(
    client: Client, unsubscribe: str, subscriber: Contact
) -> None:
    services.contact_email_change(
        contact=subscriber, new_email="marie@new.example", proof=services.Proof(actor="person")
    )
    html = client.post(unsubscribe).content.decode()
    assert "Ce lien ne fonctionne plus" in html and "marie@new.example" not in html
    assert opt_outs() == []


# --- Undo, on the spot ----------------------------------------------------------------------------


def test_undo_in_the_same_visit_restores_what_was_subscribed(
    client: Client, unsubscribe: str, subscriber: Contact
) -> None:
    before = {
        (e.topic, e.channel): e.notice_id
        for e in Event.objects.filter(contact=subscriber, type="opt_in")
    }
    client.post(unsubscribe)
    assert statuses(subscriber) == {"opted_out"}
    response = client.post(unsubscribe, {"action": "undo"}, REMOTE_ADDR="198.51.100.4")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Vous êtes de nouveau abonné(e)" in html
    assert not re.search(r"/preferences/[^\"/]+/", html)
    assert statuses(subscriber) == {"opted_in"}
    # The ledger keeps both: the opt-out, then a yes per subscription, under its wording.
    after = list(Event.objects.filter(contact=subscriber).order_by("seq"))[-3:]
    assert [(e.type, e.topic, e.method) for e in after] == [
        ("opt_out", "*", "unsubscribe_link"),
        ("opt_in", "newsletter", "unsubscribe_link"),
        ("opt_in", "promotions", "unsubscribe_link"),
    ]
    assert {(e.topic, e.channel): e.notice_id for e in after[1:]} == before
    assert Evidence.objects.get(event=after[1]).ip_address == "198.51.100.4"
    # Once.
    again = client.post(unsubscribe, {"action": "undo"}).content.decode()
    assert "Il n’est plus possible d’annuler" in again
    assert Event.objects.filter(contact=subscriber).count() == after[-1].seq


def test_undo_works_only_in_the_browser_that_unsubscribed(
    client: Client, unsubscribe: str, subscriber: Contact
) -> None:
    client.post(unsubscribe)
    other = Client()
    html = other.post(unsubscribe, {"action": "undo"}).content.decode()
    assert "Il n’est plus possible d’annuler" in html
    assert statuses(subscriber) == {"opted_out"}


def test_undo_is_refused_once_something_else_happened(
    client: Client, unsubscribe: str, subscriber: Contact, web_proof: services.Proof
) -> None:
    client.post(unsubscribe)
    services.consent_grant(contact=subscriber, topic="newsletter", channel="email", proof=web_proof)
    count = Event.objects.count()
    html = client.post(unsubscribe, {"action": "undo"}).content.decode()
    assert "Il n’est plus possible d’annuler" in html
    assert Event.objects.count() == count


def test_the_undo_page_in_english(client: Client, unsubscribe: str) -> None:
    done = client.post(unsubscribe, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Undo: subscribe me again" in done
    undone = client.post(unsubscribe, {"action": "undo"}, HTTP_ACCEPT_LANGUAGE="en")
    assert "You are subscribed again" in undone.content.decode()


# --- The lighter choices, a second visit, a broken link -------------------------------------------


def test_stop_one_topic_only(client: Client, unsubscribe: str, subscriber: Contact) -> None:
    response = client.post(unsubscribe, {"action": "topic", "topic": "promotions"})
    assert response.status_code == 200
    assert "Vous ne recevrez plus « Bons plans » par e-mail" in response.content.decode()
    assert opt_outs() == [("promotions", "email", "unsubscribe_link")]
    states = dict(ConsentState.objects.filter(contact=subscriber).values_list("topic", "status"))
    assert states == {"newsletter": "opted_in", "promotions": "opted_out"}
    # Not received any more: nothing more to stop.
    again = client.post(unsubscribe, {"action": "topic", "topic": "promotions"})
    assert again.status_code == 400 and len(opt_outs()) == 1


def test_take_a_break_from_the_unsubscribe_page(
    client: Client, unsubscribe: str, subscriber: Contact
) -> None:
    response = client.post(unsubscribe, {"action": "pause", "months": "3"})
    assert response.status_code == 200
    pause = Event.objects.get(type="pause")
    assert pause.method == "unsubscribe_link" and pause.channel == "*"
    assert opt_outs() == []
    assert client.post(unsubscribe, {"action": "pause", "months": "12"}).status_code == 400


def test_receive_less_often(client: Client, unsubscribe: str, subscriber: Contact) -> None:
    response = client.post(unsubscribe, {"action": "less_often", "topic": "newsletter"})
    assert response.status_code == 200
    assert "Une fois par mois" in response.content.decode()
    state = ConsentState.objects.get(contact=subscriber, topic="newsletter", channel="email")
    assert (state.status, state.frequency) == ("opted_in", "monthly")
    assert Event.objects.filter(type="opt_in").last().method == "unsubscribe_link"


def test_a_second_visit_says_already_unsubscribed(client: Client, unsubscribe: str) -> None:
    client.post(unsubscribe, {"action": "all"})
    page = Client().get(unsubscribe).content.decode()
    assert "Vous êtes déjà désabonné(e)" in page
    assert 'name="action" value="all"' not in page


def test_a_broken_unsubscribe_link_offers_to_type_the_address(client: Client) -> None:
    response = client.get("/unsubscribe/not-a-real-token/")
    assert response.status_code == 400
    page = response.content.decode()
    assert "Se désabonner en saisissant votre adresse e-mail" in page
    assert 'name="email"' in page
