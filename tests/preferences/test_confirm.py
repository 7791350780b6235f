"""The double opt-in link: GET shows, POST confirms once; bad and old links write nothing."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail, signing
from django.test import Client

from consents import clock, links, services
from consents.models import ConsentState, Contact, Event, Evidence
from preferences.models import PendingSignup
from tests.preferences.pages import CONFIRM_LINK, path_in

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pages", "topics")]

EIGHT_DAYS = 8 * 24 * 3600


@pytest.fixture
def confirm(sign_up: Any) -> str:
    """The path of the confirmation link emailed after a sign-up to two choices."""
    sign_up(choice=["newsletter:email", "promotions:sms"], phone="06 12 34 56 78")
    return path_in(CONFIRM_LINK, mail.outbox[0])


def token_of(path: str) -> str:
    return path.split("/")[2]


def html(response: Any) -> str:
    return response.content.decode()


def ledger() -> list[tuple[str, str, str]]:
    return list(Event.objects.order_by("id").values_list("type", "topic", "channel"))


def old_token(monkeypatch: pytest.MonkeyPatch, contact: Contact, nonce: str) -> str:
    """A confirmation token signed eight days ago (the link lives seven)."""
    signed_at = time.time() - EIGHT_DAYS
    with monkeypatch.context() as m:
        m.setattr("django.core.signing.time.time", lambda: signed_at)
        return links.make("confirm", contact, s=nonce)


def test_get_shows_the_choices_and_one_button_and_writes_nothing(
    client: Client, confirm: str
) -> None:
    before = ledger()
    response = client.get(confirm)
    assert response.status_code == 200
    page = html(response)
    assert "<h1>Confirmez votre abonnement</h1>" in page
    assert "La lettre d&#x27;information — E-mail" in page
    assert "Bons plans — SMS" in page
    main = page.split("<main", 1)[1]
    assert main.count('type="submit"') == 1
    assert f'<form method="post" action="{confirm}">' in main
    assert ledger() == before
    assert PendingSignup.objects.get().confirmed_at is None
    assert Contact.objects.get().phone == ""  # the typed phone waits for the confirmation


def test_post_records_doi_confirmed_with_the_token_digest_and_thanks(
    client: Client, confirm: str
) -> None:
    response = client.post(confirm, REMOTE_ADDR="198.51.100.9", HTTP_USER_AGENT="Phone/1.0")
    assert response.status_code == 200
    page = html(response)
    assert "Merci, votre abonnement est confirmé" in page
    # A confirmation link confirms, nothing more: it used to hand out a preference link.
    assert 'href="/preferences/' not in page
    assert 'href="/"' in page

    confirmed = Event.objects.filter(type="doi_confirmed").order_by("seq")
    assert [(e.topic, e.channel) for e in confirmed] == [
        ("newsletter", "email"),
        ("promotions", "sms"),
    ]
    for event in confirmed:
        assert event.data == {"token_digest": links.token_digest(token_of(confirm))}
        assert event.method == "double_opt_in"
        evidence = Evidence.objects.get(event=event)
        assert (evidence.ip_address, evidence.user_agent) == ("198.51.100.9", "Phone/1.0")
    contact = Contact.objects.get()
    assert (contact.phone, contact.first_name) == ("+33612345678", "Marie")
    assert PendingSignup.objects.get().confirmed_at is not None
    assert set(ConsentState.objects.filter(contact=contact).values_list("status", flat=True)) == {
        "opted_in"
    }


def test_double_submit_confirms_once_then_says_already_confirmed(
    client: Client, confirm: str
) -> None:
    client.post(confirm)
    after_first = ledger()
    again = client.post(confirm)
    assert again.status_code == 200
    assert "Votre abonnement est déjà confirmé" in html(again)
    assert ledger() == after_first
    opened = client.get(confirm)
    assert opened.status_code == 200 and "déjà confirmé" in html(opened)
    assert ledger() == after_first


def test_confirm_form_without_csrf_token_is_refused(confirm: str) -> None:
    before = ledger()
    response = Client(enforce_csrf_checks=True).post(confirm)
    assert response.status_code == 403
    assert ledger() == before


@pytest.mark.parametrize("purpose", ["preferences", "unsubscribe"])
def test_a_link_signed_for_another_purpose_is_not_a_confirmation(
    client: Client, confirm: str, purpose: str
) -> None:
    # The same payload as a confirmation (with the sign-up's nonce), signed for another scope.
    payload = signing.loads(token_of(confirm), salt=links.SCOPES["confirm"].salt)
    assert payload["s"] == PendingSignup.objects.get().nonce
    assert payload["c"] == Contact.objects.get().public_id
    foreign = signing.dumps(payload, salt=links.SCOPES[purpose].salt, compress=True)
    before = ledger()
    for response in (client.get(f"/confirm/{foreign}/"), client.post(f"/confirm/{foreign}/")):
        assert response.status_code == 400
        assert "Ce lien ne fonctionne pas" in html(response)
    assert ledger() == before


@pytest.mark.parametrize("damage", ["cut", "flip", "garbage"])
def test_tampered_link_is_400_and_writes_nothing(client: Client, confirm: str, damage: str) -> None:
    token = token_of(confirm)
    bad = {
        "cut": token[:-6],
        "flip": token[:-1] + ("A" if token[-1] != "A" else "B"),
        "garbage": "not-a-token",
    }[damage]
    before = ledger()
    for response in (client.get(f"/confirm/{bad}/"), client.post(f"/confirm/{bad}/")):
        assert response.status_code == 400
    assert ledger() == before
    assert PendingSignup.objects.get().confirmed_at is None


def test_link_to_a_forgotten_signup_is_404(client: Client, confirm: str) -> None:
    contact = Contact.objects.get()
    gone = links.make("confirm", contact, s="no-such-sign-up")
    before = ledger()
    assert client.get(f"/confirm/{gone}/").status_code == 404
    assert client.post(f"/confirm/{gone}/").status_code == 404
    assert ledger() == before


def test_expired_link_explains_and_offers_a_fresh_one(
    client: Client,
    confirm: str,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    contact = Contact.objects.get()
    signup = PendingSignup.objects.get()
    token = old_token(monkeypatch, contact, signup.nonce)
    before = ledger()

    for response in (client.get(f"/confirm/{token}/"), client.post(f"/confirm/{token}/")):
        assert response.status_code == 200
        page = html(response)
        assert "Ce lien de confirmation a expiré" in page
        assert f'action="/confirm/{token}/resend/"' in page
    assert ledger() == before

    with django_capture_on_commit_callbacks(execute=True):
        resent = client.post(f"/confirm/{token}/resend/", REMOTE_ADDR="203.0.113.7")
    assert resent.status_code == 302 and resent["Location"] == "/subscribe/done/"
    assert len(mail.outbox) == 2
    fresh = path_in(CONFIRM_LINK, mail.outbox[1])
    assert fresh != confirm
    new_events = Event.objects.filter(type="opt_in").order_by("seq")[2:]
    assert [(e.topic, e.channel, e.data["doi"]) for e in new_events] == [
        ("newsletter", "email", "pending"),
        ("promotions", "sms", "pending"),
    ]
    assert {e.collection_point for e in new_events} == {"http://testserver/subscribe/"}

    client.post(fresh)
    assert Event.objects.filter(type="doi_confirmed").count() == 2


def test_expired_link_of_a_purged_signup_leads_to_the_form_prefilled(
    client: Client, confirm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    contact = Contact.objects.get()
    signup = PendingSignup.objects.get()
    token = old_token(monkeypatch, contact, signup.nonce)
    signup.delete()
    before = ledger()
    for response in (client.get(f"/confirm/{token}/"), client.post(f"/confirm/{token}/resend/")):
        assert response.status_code == 200
        page = html(response)
        assert "Ce lien de confirmation a expiré" in page
        assert 'href="/subscribe/?email=marie%40example.fr"' in page
        assert "/resend/" not in page.split("<main", 1)[1]
    assert ledger() == before
    prefilled = client.get("/subscribe/?email=marie%40example.fr")
    assert 'value="marie@example.fr"' in html(prefilled)


def test_resend_link_opened_with_get_goes_back_to_the_confirmation_page(
    client: Client, confirm: str
) -> None:
    response = client.get(confirm + "resend/")
    assert response.status_code == 302 and response["Location"] == confirm
    assert len(mail.outbox) == 1


def test_signup_past_its_lifetime_is_expired_even_with_a_fresh_link(
    client: Client, confirm: str
) -> None:
    PendingSignup.objects.update(expires_at=clock.now() - timedelta(minutes=1))
    before = ledger()
    for response in (client.get(confirm), client.post(confirm)):
        assert response.status_code == 200
        assert "Ce lien de confirmation a expiré" in html(response)
    assert ledger() == before


def test_resending_is_rate_limited_per_address(
    client: Client, confirm: str, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    contact = Contact.objects.get()
    token = old_token(monkeypatch, contact, PendingSignup.objects.get().nonce)
    settings.SIGNUP_MAX_PER_IP_PER_HOUR = 0
    before = ledger()
    response = client.post(f"/confirm/{token}/resend/")
    assert response.status_code == 429
    assert ledger() == before and len(mail.outbox) == 1


def test_after_signing_out_of_all_links_confirming_hands_out_no_preference_link(
    client: Client, confirm: str
) -> None:
    services.contact_revoke_links(contact=Contact.objects.get())
    response = client.post(confirm)
    assert "Merci, votre abonnement est confirmé" in html(response)
    assert "/preferences/" not in html(response)
    assert Event.objects.filter(type="doi_confirmed").count() == 2


def test_confirm_page_in_english(client: Client, confirm: str) -> None:
    response = client.get(confirm, HTTP_ACCEPT_LANGUAGE="en")
    assert "<h1>Confirm your subscription</h1>" in html(response)
    assert "The newsletter — Email" in html(response)
