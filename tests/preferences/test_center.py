"""The preference center: what it shows, what saving records, pause, leave, history, language."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.test import Client
from django.utils import formats, timezone

from consents import clock, links, services
from consents.ledger import verify_range
from consents.models import ConsentState, Contact, Event, Evidence, Outbox, Topic
from preferences.models import PendingSignup
from tests.preferences.center_fixtures import form_state, open_session, post
from tests.preferences.pages import CONFIRM_LINK, path_in

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pages", "topics")]


def page(client: Client) -> str:
    response = client.get("/preferences/")
    assert response.status_code == 200
    return response.content.decode()


def status(contact: Contact, topic: str, channel: str) -> str | None:
    row = ConsentState.objects.filter(contact=contact, topic=topic, channel=channel).first()
    return row.status if row else None


def events(contact: Contact) -> list[Event]:
    return list(Event.objects.filter(contact=contact).order_by("seq"))


def chain_ok(contact: Contact) -> bool:
    count, broken = verify_range(contact.pk, contact.pk + 1)
    return count == len(events(contact)) and broken is None


# --- What the page shows --------------------------------------------------------------------------


def test_page_shows_each_topic_its_channels_and_the_state_in_words(opened: Client) -> None:
    html = page(opened)
    assert "La lettre d&#x27;information" in html and "Bons plans" in html
    # Only the channels each topic offers: the newsletter is email only.
    assert 'value="newsletter:email"' in html and 'value="newsletter:sms"' not in html
    assert 'id="cell-newsletter-email" checked' in html
    assert "Abonné(e)" in html
    # No phone: SMS is shown, disabled, with its reason, and not part of the form.
    assert 'id="cell-promotions-sms" disabled' in html
    assert "Nous n’avons pas de numéro de mobile pour vous : ajoutez-en un" in html
    shown = re.search(r'name="shown" value="([^"]*)"', html).group(1).split()
    assert "promotions:sms" not in shown and "promotions:email" in shown
    # The frequency choices of the topic, and the wording shown.
    assert 'name="frequency-promotions" value="monthly"' in html
    assert "J&#x27;accepte de recevoir Bons plans." in html


def test_preference_pages_are_never_cached(opened: Client) -> None:
    assert "no-store" in opened.get("/preferences/")["Cache-Control"]
    assert "no-store" in post(opened, {"action": "resume"})["Cache-Control"]


def test_another_legal_basis_is_shown_ticked_and_explained(
    client: Client, make_contact: Any, web_proof: services.Proof
) -> None:
    customer = make_contact(email="client@example.fr")
    services.purchase_record(contact=customer, category="books", product="b1", proof=web_proof)
    open_session(client, customer)
    html = page(client)
    assert 'id="cell-promotions-email" checked' in html
    assert "Envoyé sans abonnement" in html and "produits similaires" in html
    # The editorial newsletter needs consent, even for a customer.
    assert 'id="cell-newsletter-email" checked' not in html
    # Unticking it records an opt-out: the only way to stop a soft opt-in.
    data = form_state(html)
    data["on"].remove("promotions:email")
    post(client, data)
    assert status(customer, "promotions", "email") == "opted_out"


def test_pending_and_opted_out_states_are_shown(
    client: Client, make_contact: Any, web_proof: services.Proof
) -> None:
    contact = make_contact(email="p@example.fr")
    services.consent_grant(
        contact=contact, topic="newsletter", channel="email", proof=web_proof, doi="pending"
    )
    services.consent_withdraw(contact=contact, topic="promotions", channel="email", proof=web_proof)
    open_session(client, contact)
    html = page(client)
    assert "En attente de votre confirmation" in html
    assert "Désabonné(e)" in html


# --- Saving ---------------------------------------------------------------------------------------


def test_saving_unchanged_form_records_nothing_and_says_so(opened: Client, marie: Contact) -> None:
    before = len(events(marie))
    response = post(opened, form_state(page(opened)))
    assert response.status_code == 302 and response["Location"] == "/preferences/"
    assert len(events(marie)) == before
    assert "Rien n’a changé" in page(opened)


def test_saving_records_only_what_changed_with_proof(
    opened: Client, marie: Contact, django_capture_on_commit_callbacks: Any
) -> None:
    services.contact_update_details(contact=marie, phone="0612345678")
    data = form_state(page(opened))
    data["on"] = ["promotions:sms"]  # newsletter unticked, SMS deals ticked
    data["frequency-promotions"] = "monthly"
    before = len(events(marie))
    with django_capture_on_commit_callbacks(execute=True):
        post(opened, data)
    new = events(marie)[before:]
    assert [(e.type, e.topic, e.channel) for e in new] == [
        ("opt_out", "newsletter", "email"),
        ("opt_in", "promotions", "sms"),
    ]
    for event in new:
        assert event.method == "preference_center" and event.actor == "person"
        assert event.evidence.ip_address == "198.51.100.4"
        assert event.evidence.user_agent == "Mozilla/5.0 (center test)"
        assert event.collection_point.endswith("/preferences/")
    # SMS needs no email confirmation: the signed link authenticated the person.
    assert new[1].data == {
        "doi": "none",
        "prechecked": False,
        "bundled": False,
        "frequency": "monthly",
    }
    assert new[1].notice is not None and new[1].notice.text == "J'accepte de recevoir Bons plans."
    assert status(marie, "promotions", "sms") == "opted_in"
    assert mail.outbox == []
    html = page(opened)
    assert "Vous ne recevez plus « La lettre d&#x27;information » par e-mail." in html, html
    assert "Vous recevez désormais « Bons plans » par SMS." in html
    assert chain_ok(marie)


def test_email_opt_in_to_a_new_topic_applies_at_once_with_the_link_as_evidence(
    client: Client, marie: Contact, django_capture_on_commit_callbacks: Any
) -> None:
    """The page was opened with a link delivered to Marie's mailbox: that proves control of the
    address, so the yes needs no confirmation email; the link's digest is its evidence."""
    token = links.make("preferences", marie)
    client.get(f"/preferences/{token}/")
    data = form_state(page(client))
    data["on"].append("promotions:email")
    with django_capture_on_commit_callbacks(execute=True):
        post(client, data)
    opt_in = events(marie)[-1]
    assert (opt_in.type, opt_in.topic, opt_in.data["doi"]) == ("opt_in", "promotions", "none")
    assert status(marie, "promotions", "email") == "opted_in"
    evidence = Evidence.objects.get(event=opt_in)
    assert evidence.details == {
        "address_proven_by": "preferences_link",
        "link_sha256": links.token_digest(token),
    }
    assert mail.outbox == [] and not PendingSignup.objects.exists()
    assert "Vous recevez désormais « Bons plans » par e-mail." in page(client)


def test_email_opt_in_without_a_proven_address_waits_for_confirmation(
    marie: Contact, django_capture_on_commit_callbacks: Any
) -> None:
    """The service with no link behind the request (a session from before links were kept as
    evidence): the address is unproven, the double opt-in applies."""
    from preferences import center

    with django_capture_on_commit_callbacks(execute=True):
        center.preferences_save(
            contact=marie,
            shown=[("promotions", "email")],
            wanted=[("promotions", "email")],
            frequencies={},
            notices={},
            language="fr",
            request=center.Request(),
        )
    opt_in = events(marie)[-1]
    assert (opt_in.type, opt_in.topic, opt_in.data["doi"]) == ("opt_in", "promotions", "pending")
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["marie@example.fr"]
    confirm = path_in(CONFIRM_LINK, mail.outbox[0])
    Client().post(confirm)
    assert status(marie, "promotions", "email") == "opted_in"


def test_saying_yes_again_to_a_topic_once_confirmed_needs_no_new_email(
    opened: Client, marie: Contact, django_capture_on_commit_callbacks: Any
) -> None:
    data = form_state(page(opened))
    data["on"] = []
    post(opened, data)
    assert status(marie, "newsletter", "email") == "opted_out"
    data["on"] = ["newsletter:email"]
    with django_capture_on_commit_callbacks(execute=True):
        post(opened, data)
    assert status(marie, "newsletter", "email") == "opted_in"
    assert events(marie)[-1].data["doi"] == "none" and mail.outbox == []


def test_a_new_frequency_is_recorded_with_the_topic(opened: Client, marie: Contact) -> None:
    services.consent_grant(
        contact=marie,
        topic="promotions",
        channel="email",
        frequency="weekly",
        proof=services.Proof(method="web_form", actor="person"),
    )
    data = form_state(page(opened))
    assert data["frequency-promotions"] == "weekly"
    data["frequency-promotions"] = "monthly"
    post(opened, data)
    last = events(marie)[-1]
    assert (last.type, last.topic, last.data["frequency"]) == ("opt_in", "promotions", "monthly")
    assert ConsentState.objects.get(
        contact=marie, topic="promotions", channel="email"
    ).frequency == ("monthly")
    html = page(opened)
    assert "une fois par mois désormais" in html
    assert 'value="monthly" id="frequency-promotions-monthly" checked' in html


@pytest.mark.parametrize(
    "change",
    [
        {"shown": ["nothing:email"], "on": ["nothing:email"]},  # no such topic
        {"shown": ["newsletter:fax"], "on": []},  # no such channel
        {"shown": ["newsletter:sms"], "on": ["newsletter:sms"]},  # not offered by the topic
        {"shown": ["newsletter:email"], "on": ["promotions:email"]},  # ticked, never shown
        {"frequency-promotions": "daily"},  # frequency not offered
        {"frequency-nothing": "weekly"},  # frequency of no topic
    ],
)
def test_a_form_naming_what_is_not_offered_is_refused_whole(
    opened: Client, marie: Contact, change: dict[str, Any]
) -> None:
    data = form_state(page(opened))
    data["on"] = []  # would unsubscribe from the newsletter, if the form were accepted
    data.update(change)
    before = len(events(marie))
    response = post(opened, data)
    assert response.status_code == 400
    assert "Rien n’a été enregistré" in response.content.decode()
    assert len(events(marie)) == before


def test_an_inactive_topic_cannot_be_chosen(opened: Client, marie: Contact) -> None:
    data = form_state(page(opened))
    Topic.objects.filter(slug="promotions").update(active=False)
    data["on"].append("promotions:email")
    assert post(opened, data).status_code == 400


def test_missing_csrf_token_is_refused(marie: Contact) -> None:
    client = Client(enforce_csrf_checks=True)
    open_session(client, marie)
    data = form_state(page(client))
    data["on"] = []
    response = post(client, data)
    assert response.status_code == 403
    assert status(marie, "newsletter", "email") == "opted_in"


def test_two_tabs_saving_one_after_the_other_both_land_and_the_later_wins(
    client: Client, marie: Contact
) -> None:
    services.contact_update_details(contact=marie, phone="0612345678")
    open_session(client, marie)
    shown = form_state(page(client))  # both tabs opened from the same state
    tab_a = {**shown, "on": ["promotions:sms"]}  # leaves the newsletter, takes SMS deals
    tab_b = {**shown, "on": ["newsletter:email"]}  # only ever wanted the newsletter
    post(client, tab_a)
    assert status(marie, "newsletter", "email") == "opted_out"
    post(client, tab_b)
    # The later tab's form is the final state; every step of both is in the ledger, in order.
    assert status(marie, "newsletter", "email") == "opted_in"
    assert status(marie, "promotions", "sms") == "opted_out"
    kinds = [(e.type, e.topic, e.channel) for e in events(marie)[1:]]
    assert kinds == [
        ("opt_out", "newsletter", "email"),
        ("opt_in", "promotions", "sms"),
        ("opt_in", "newsletter", "email"),
        ("opt_out", "promotions", "sms"),
    ]
    assert chain_ok(marie)


# --- Pause, leave, history, language, sign out ----------------------------------------------


def test_pause_for_a_month_then_resume(opened: Client, marie: Contact) -> None:
    post(opened, {"action": "pause", "months": "1"})
    pause = events(marie)[-1]
    assert (pause.type, pause.channel, pause.method) == ("pause", "*", "preference_center")
    until = marie.channel_states.get(channel="email").pause_until
    assert timedelta(days=28) <= until - pause.occurred_at <= timedelta(days=31)
    html = page(opened)
    assert "suspendus jusqu’au" in html and 'name="action" value="resume"' in html
    # Each subscribed box says it is paused, and until when, not "we send you these".
    end = formats.date_format(timezone.localtime(until), "DATE_FORMAT")
    newsletter = html[html.index('id="cell-newsletter-email-state"') :]
    newsletter = newsletter[: newsletter.index("</p>")]
    assert f"Abonné, en pause jusqu’au {end}" in newsletter
    assert "nous vous les envoyons" not in newsletter

    post(opened, {"action": "resume"})
    resumed = marie.channel_states.filter(channel="email").values_list("pause_until", flat=True)
    assert all(u is None or u <= clock.now() for u in resumed)
    html = page(opened)
    assert "Vos messages reprennent" in html and "Messages repris" in html
    assert 'name="months" value="3"' in html
    # A second resume has nothing to do.
    before = len(events(marie))
    post(opened, {"action": "resume"})
    assert len(events(marie)) == before


def test_a_pause_of_another_length_is_refused(opened: Client, marie: Contact) -> None:
    before = len(events(marie))
    assert post(opened, {"action": "pause", "months": "12"}).status_code == 400
    assert len(events(marie)) == before


def test_unsubscribe_from_everything_explains_that_service_messages_continue(
    opened: Client, marie: Contact
) -> None:
    assert "commandes et votre compte continuent" in page(opened)
    post(opened, {"action": "unsubscribe_all"})
    last = events(marie)[-1]
    assert (last.type, last.topic, last.channel, last.method) == (
        "opt_out",
        "*",
        "*",
        "preference_center",
    )
    html = page(opened)
    assert "Vous êtes désabonné(e) de tous nos messages commerciaux" in html
    before = len(events(marie))
    post(opened, {"action": "unsubscribe_all"})
    assert len(events(marie)) == before


def test_history_newest_first_with_how_and_wording(
    opened: Client, marie: Contact, make_contact: Any
) -> None:
    services.consent_withdraw(
        contact=marie,
        topic="newsletter",
        channel="email",
        proof=services.Proof(method="unsubscribe_link", actor="person"),
    )
    html = page(opened)
    history = html[html.index('id="history"') :]
    assert history.index("Non à « La lettre") < history.index("Oui à « La lettre")
    assert "Avec le lien de désinscription d’un e-mail" in history
    assert "Sur notre site" in history


def test_language_switch_is_remembered_on_the_contact(client: Client, marie: Contact) -> None:
    open_session(client, marie)
    assert '<html lang="fr">' in page(client)
    post(client, {"action": "language", "language": "en"})
    marie.refresh_from_db()
    assert marie.locale == "en"
    html = page(client)
    assert '<html lang="en">' in html and "now in English" in html
    # Another browser, another Accept-Language: the contact's choice wins.
    other = Client()
    open_session(other, marie)
    assert (
        '<html lang="en">' in other.get("/preferences/", HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    )


def test_sign_out_of_all_links_revokes_links_and_closes_the_session(
    opened: Client, marie: Contact
) -> None:
    old_link = f"/preferences/{links.make('preferences', marie)}/"
    response = post(opened, {"action": "sign_out"})
    assert "Tous vos liens sont désactivés" in response.content.decode()
    marie.refresh_from_db()
    assert marie.link_version == 2
    assert "ouvrez le lien en bas" in page(opened)
    assert "Ce lien ne fonctionne plus" in Client().get(old_link).content.decode()


def test_session_authorisation_expires_with_the_link_lifetime(
    opened: Client, marie: Contact, settings: Any
) -> None:
    session = opened.session
    session["preferences_granted_at"] = (
        time.time() - settings.PREFERENCE_LINK_TTL.total_seconds() - 5
    )
    session.save()
    assert "ouvrez le lien en bas" in page(opened)
    data = {"action": "unsubscribe_all"}
    assert post(opened, data).status_code == 403
    assert not Event.objects.filter(contact=marie, topic="*").exists()


def test_post_without_a_session_writes_nothing(client: Client, marie: Contact) -> None:
    response = post(client, {"action": "unsubscribe_all"})
    assert response.status_code == 403
    assert not Event.objects.filter(contact=marie, topic="*").exists()


def test_unknown_action_is_refused(opened: Client) -> None:
    assert post(opened, {"action": "delete_everything"}).status_code == 400


def test_unsubscribe_page_leads_to_the_link_form_not_into_the_preference_center(
    marie: Contact,
) -> None:
    client = Client()
    path = f"/unsubscribe/{links.make('unsubscribe', marie)}/"
    html = client.post(path).content.decode()
    # It used to hand out a fresh preference link: an unsubscribe link only unsubscribes.
    assert 'href="/preferences/' not in html
    assert 'href="/"' in html
    assert "ouvrez le lien en bas" in page(client)  # no preference session either
    assert Outbox.objects.count() == 0


# --- Contact details from the page ----------------------------------------------------------------


def test_a_missing_number_says_where_to_add_it_and_adding_it_opens_the_boxes(
    opened: Client, marie: Contact
) -> None:
    html = page(opened)
    assert 'id="cell-promotions-sms" disabled' in html
    assert "ajoutez-en un sous « Vos coordonnées »" in html
    assert 'href="#details"' in html and 'name="action" value="phone"' in html
    response = post(opened, {"action": "phone", "phone": "06 12 34 56 78"})
    assert response.status_code == 302
    marie.refresh_from_db()
    assert marie.phone == "+33612345678"
    html = page(opened)
    assert "Votre numéro de mobile a été ajouté." in html
    assert 'id="cell-promotions-sms" disabled' not in html
    assert status(marie, "promotions", "sms") in (None, "opted_out")  # nothing until ticked


def test_a_changed_number_starts_with_no_consent(opened: Client, marie: Contact) -> None:
    post(opened, {"action": "phone", "phone": "06 12 34 56 78"})
    data = form_state(page(opened))
    data["on"].append("promotions:sms")
    post(opened, data)
    assert status(marie, "promotions", "sms") == "opted_in"
    post(opened, {"action": "phone", "phone": "06 98 76 54 32"})
    marie.refresh_from_db()
    assert marie.phone == "+33698765432"
    assert events(marie)[-1].type == "address_changed"
    html = page(opened)
    assert "Rien n’est envoyé au nouveau numéro" in html
    assert 'id="cell-promotions-sms" checked' not in html


def test_a_bad_number_is_refused_with_its_reason(opened: Client, marie: Contact) -> None:
    response = post(opened, {"action": "phone", "phone": "12"})
    assert response.status_code == 400
    assert "06 12 34 56 78" in response.content.decode()
    marie.refresh_from_db()
    assert marie.phone == ""


def test_a_postal_address_is_added_then_changed(opened: Client, marie: Contact) -> None:
    post(opened, {"action": "postal", "postal_address": "1 rue de la Paix\n75002 Paris"})
    marie.refresh_from_db()
    assert marie.postal_address == "1 rue de la Paix\n75002 Paris"
    assert "Votre adresse postale a été enregistrée." in page(opened)
    before = len(events(marie))
    post(opened, {"action": "postal", "postal_address": "2 rue de Rivoli\n75001 Paris"})
    assert [e.type for e in events(marie)[before:]] == ["address_changed"]
    assert post(opened, {"action": "postal", "postal_address": "x" * 600}).status_code == 400


def test_the_boxes_shown_come_in_one_field_or_one_field_each(topics: Any) -> None:
    """The page sends the boxes it shows in one field, separated by spaces; a page drawn before
    it did sent one field per box. Both read the same; a box not offered in either is refused."""
    from django.core.exceptions import ValidationError
    from django.http import QueryDict

    from consents import catalogue
    from preferences.forms import MAX_CELLS, preferences_choice

    offered = {t.slug: t for t in catalogue.snapshot().active}
    one = QueryDict(mutable=True)
    one.setlist("shown", ["newsletter:email promotions:email  promotions:sms"])
    one.setlist("on", ["promotions:email"])
    each = QueryDict(mutable=True)
    each.setlist("shown", ["newsletter:email", "promotions:email", "promotions:sms"])
    each.setlist("on", ["promotions:email"])
    read = preferences_choice(one, offered)
    assert read.shown == preferences_choice(each, offered).shown
    assert read.shown == [
        ("newsletter", "email"),
        ("promotions", "email"),
        ("promotions", "sms"),
    ]
    assert read.wanted == [("promotions", "email")]
    for shown in ("newsletter:email nothing:email", "newsletter:fax"):
        bad = QueryDict(mutable=True)
        bad.setlist("shown", [shown])
        with pytest.raises(ValidationError):
            preferences_choice(bad, offered)
    too_many = QueryDict(mutable=True)
    too_many.setlist("shown", [" ".join(["newsletter:email"] * (MAX_CELLS + 1))])
    with pytest.raises(ValidationError):
        preferences_choice(too_many, offered)
