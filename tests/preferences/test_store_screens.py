"""What the store screens say to the customer, the shop assistant and the manager: the thank-you
screen's read-back and receipt, "Start again", an unenrolled tablet, the phone script and its
read-back."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail
from django.test import Client

from preferences.store import devices as store
from tests.preferences.pages import PREFERENCES_LINK, path_in
from tests.preferences.store_fixtures import *  # noqa: F403  (the store fixtures)
from tests.preferences.store_fixtures import capture_data, log_in

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pages", "topics")]


def page(response: Any) -> str:
    return response.content.decode()


def capture(client: Client, capture_callbacks: Any, **overrides: Any) -> Any:
    with capture_callbacks(execute=True):
        return client.post("/store/capture/", capture_data(**overrides))


# --- The thank-you screen -------------------------------------------------------------------------


def test_thanks_says_what_was_recorded_in_the_customer_language_once(
    staff_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    capture(
        staff_client,
        django_capture_on_commit_callbacks,
        language="en",
        phone="06 12 34 56 78",
        choice=["newsletter:email", "promotions:email", "promotions:sms"],
    )
    # The staff's browser is in French; the customer chose English on the tablet.
    html = page(staff_client.get("/store/thanks/", HTTP_ACCEPT_LANGUAGE="fr"))
    assert '<html lang="en">' in html
    assert "Your choices are recorded. You will receive:" in html
    assert "<li>The newsletter by email</li>" in html
    assert "<li>Deals by email or by text message</li>" in html
    assert "A receipt of your choices" in html
    assert "claire@" not in html and "Claire" not in html
    # Read back once: a reload (or the back button) shows nothing of this customer.
    again = page(staff_client.get("/store/thanks/"))
    assert "The newsletter" not in again and "La lettre" not in again


def test_thanks_after_confirm_by_email_says_nothing_is_sent_until_the_link(
    staff_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    capture(staff_client, django_capture_on_commit_callbacks, confirm="email")
    html = page(staff_client.get("/store/thanks/"))
    assert "Ouvrez l’e-mail que nous vous avons envoyé" in html
    assert "<li>La lettre d&#x27;information par e-mail</li>" in html
    assert "récapitulatif" not in html  # the confirmation email, no receipt


def test_confirm_here_sends_a_receipt_in_the_customer_language(
    staff_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    capture(staff_client, django_capture_on_commit_callbacks, language="en")
    (receipt,) = mail.outbox
    assert receipt.subject == "Your choices at Assent"
    assert "The newsletter by email" in receipt.body
    assert "Paris Rivoli" in receipt.body
    assert "List-Unsubscribe" not in receipt.extra_headers  # a service message
    # Its link opens the person's preferences.
    response = Client().get(path_in(PREFERENCES_LINK, receipt))
    assert response.status_code in (200, 302)


def test_a_phone_only_capture_sends_no_receipt(
    staff_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    capture(
        staff_client,
        django_capture_on_commit_callbacks,
        email="",
        phone="06 12 34 56 78",
        choice=["promotions:sms"],
    )
    assert mail.outbox == []


# --- Customer mode --------------------------------------------------------------------------------


def test_customer_mode_has_a_visible_start_again(staff_client: Client) -> None:
    html = page(staff_client.get("/store/capture/"))
    assert '<a class="button button-secondary" href="/store/capture/" id="start-again"' in html
    assert "Recommencer" in html


# --- An unenrolled tablet -------------------------------------------------------------------------


def test_an_unenrolled_tablet_shows_the_manager_the_enrol_button(
    client: Client, manager: Any
) -> None:
    log_in(client, manager)
    home = page(client.get("/store/"))
    assert 'id="enrol-tablet"' in home and 'href="/store/devices/"' in home
    capture_page = client.get("/store/capture/")
    assert capture_page.status_code == 403
    assert 'id="enrol-tablet"' in page(capture_page)


def test_an_unenrolled_tablet_tells_staff_whom_to_ask(client: Client, staff: Any) -> None:
    log_in(client, staff)
    home = page(client.get("/store/"))
    assert 'id="enrol-tablet"' not in home
    assert "Demandez à un responsable de magasin" in home


def test_after_enrolment_the_tablets_page_shows_a_state(client: Client, manager: Any) -> None:
    log_in(client, manager)
    before = page(client.get("/store/devices/"))
    assert 'id="browser-not-enrolled"' in before
    shop_id = str(manager.store_memberships.get().store_id)
    response = client.post("/store/devices/", {"store": shop_id, "name": "Till 2"})
    assert response.status_code == 302
    after = page(client.get("/store/devices/"))
    assert "est désormais la tablette « Till 2 »" in after
    assert "Enregistrée : elle peut recueillir des consentements" in after
    assert "(ce navigateur)" in after
    device = store.Device.objects.get(name="Till 2")
    store.device_revoke(device=device)
    revoked = page(client.get("/store/devices/"))
    assert "Révoquée le" in revoked


# --- On the phone ---------------------------------------------------------------------------------


def test_the_phone_script_is_what_staff_say_and_ask(client: Client, staff: Any) -> None:
    log_in(client, staff)
    html = page(client.get("/store/phone/", HTTP_ACCEPT_LANGUAGE="en"))
    assert "Assent would like to send you “Deals”." in html
    assert "Do you agree to receive “Deals” by text message?" in html
    # The notice recorded as proof stays available, but is not the script.
    assert '<details class="notice-recorded">' in html


def test_the_phone_done_page_reads_the_answers_back_once(client: Client, staff: Any) -> None:
    log_in(client, staff)
    data = {
        "key": "c" * 32,
        "language": "en",
        "call_reference": "CALL-7",
        "email": "",
        "phone": "06 12 34 56 78",
        "first_name": "",
        "answer:newsletter:email": "",
        "answer:promotions:email": "no",
        "answer:promotions:sms": "yes",
        "callback": "on",
    }
    response = client.post("/store/phone/", data)
    assert response.status_code == 302
    html = page(client.get(response["Location"]))
    assert "You agreed to receive:" in html and "<li>Deals by text message</li>" in html
    assert "You do not want to receive:" in html and "<li>Deals by email</li>" in html
    assert "We will call you back." in html
    assert "06 12" not in html
    assert "You agreed" not in page(client.get(response["Location"]))
