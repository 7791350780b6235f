"""The store tablet: what a capture records in the ledger, and every bad input it refuses."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.db import connection
from django.test import Client

from consents.models import Contact, Event, Evidence, Store, Topic
from consents.vocab import Method
from preferences import store
from preferences.models import Capture, Device, PendingSignup
from preferences.services import notice_for
from tests.preferences.pages import CONFIRM_LINK, PREFERENCES_LINK, path_in
from tests.preferences.store_fixtures import *  # noqa: F403  (the store fixtures)
from tests.preferences.store_fixtures import capture_data, log_in

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pages", "topics")]


def post(client: Client, capture: Any, **overrides: Any) -> Any:
    with capture(execute=True):
        return client.post(
            "/store/capture/", capture_data(**overrides), HTTP_USER_AGENT="Tablet/1.0"
        )


def page(response: Any) -> str:
    return response.content.decode()


# --- Confirm here ---------------------------------------------------------------------------------


def test_confirm_here_records_a_full_proof(
    staff_client: Client, django_capture_on_commit_callbacks: Any, shop: Store, tablet: Device
) -> None:
    response = post(
        staff_client,
        django_capture_on_commit_callbacks,
        choice=["newsletter:email", "promotions:email"],
    )
    assert response.status_code == 302
    assert response["Location"] == "/store/thanks/"
    contact = Contact.objects.get(email="claire@example.fr")
    events = list(Event.objects.filter(contact=contact).order_by("seq"))
    assert [(e.type, e.topic, e.channel) for e in events] == [
        ("opt_in", "newsletter", "email"),
        ("opt_in", "promotions", "email"),
    ]
    for event in events:
        # How, by whom, where, on which device, when, with which wording:
        assert event.method == Method.STORE_TABLET
        assert event.data["doi"] == "none"
        assert event.actor == "staff:alice"
        assert event.store == shop
        assert event.collection_point == f"store:paris-01 device:{tablet.pk}"
        assert event.notice == notice_for(Topic.objects.get(slug=event.topic), "fr")
        assert event.notice is not None and event.notice.language == "fr"
        assert event.occurred_at is not None
        evidence = Evidence.objects.get(event=event)
        assert evidence.details["collected_by"] == "alice"
        assert evidence.details["device"] == tablet.pk
        assert evidence.details["device_name"] == "Till 1"
        assert evidence.user_agent == "Tablet/1.0"
    assert contact.informed_at_collection
    assert contact.first_name == "Claire"
    # A receipt of the choices (a service message): no confirmation to click, a preference link.
    (receipt,) = mail.outbox
    assert receipt.to == ["claire@example.fr"]
    assert "List-Unsubscribe" not in receipt.extra_headers
    body = receipt.body
    assert "La lettre d'information par e-mail" in body and "Bons plans par e-mail" in body
    assert path_in(PREFERENCES_LINK, receipt)


def test_confirm_here_in_english_records_the_english_wording(
    staff_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    post(staff_client, django_capture_on_commit_callbacks, language="en")
    event = Event.objects.get()
    assert event.notice.language == "en"
    assert Contact.objects.get().locale == "en"


def test_phone_only_capture_creates_a_contact_by_phone(
    staff_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    response = post(
        staff_client,
        django_capture_on_commit_callbacks,
        email="",
        phone="06 12 34 56 78",
        choice=["promotions:sms"],
    )
    assert response.status_code == 302
    contact = Contact.objects.get()
    assert contact.email is None and contact.phone == "+33612345678"
    assert Event.objects.get().channel == "sms"


def test_existing_contact_gets_events_appended_and_nothing_shown(
    staff_client: Client, django_capture_on_commit_callbacks: Any, make_contact: Any
) -> None:
    existing = make_contact(email="claire@example.fr", first_name="Secret-Name")
    response = post(staff_client, django_capture_on_commit_callbacks, first_name="")
    assert response.status_code == 302
    assert Contact.objects.count() == 1
    assert Event.objects.filter(contact=existing, type="opt_in").count() == 1
    thanks = staff_client.get("/store/thanks/")
    assert "Secret-Name" not in page(thanks) and "claire@" not in page(thanks)


def test_the_customer_screen_has_no_purchase_and_a_posted_one_records_nothing(
    staff_client: Client, django_capture_on_commit_callbacks: Any, sofas: Any
) -> None:
    """The tablet is in the customer's hands: a purchase (which can open the soft opt-in for
    promotions) is a fact staff attest on their own screen, never one the customer ticks."""
    blank = page(staff_client.get("/store/capture/"))
    assert 'name="purchase' not in blank and "staff-only" not in blank
    response = post(
        staff_client, django_capture_on_commit_callbacks, purchase="on", purchase_category="sofas"
    )
    assert response.status_code == 302
    assert not Event.objects.filter(type="purchase").exists()
    assert [e.type for e in Event.objects.all()] == ["opt_in"]
    assert not Contact.objects.get().facts.is_customer


# --- Confirm by email -----------------------------------------------------------------------------


def test_confirm_by_email_goes_through_double_opt_in(
    staff_client: Client, django_capture_on_commit_callbacks: Any, shop: Store, tablet: Device
) -> None:
    response = post(staff_client, django_capture_on_commit_callbacks, confirm="email")
    assert response.status_code == 302
    event = Event.objects.get()
    assert event.data["doi"] == "pending"
    assert event.method == Method.STORE_TABLET
    assert event.actor == "staff:alice"
    assert event.store == shop
    assert event.collection_point == f"store:paris-01 device:{tablet.pk}"
    assert Evidence.objects.get(event=event).details["device"] == tablet.pk
    assert PendingSignup.objects.get().source == "store:paris-01"
    assert len(mail.outbox) == 1

    # The customer confirms at home, from the email.
    anonymous = Client()
    link = path_in(CONFIRM_LINK, mail.outbox[0])
    anonymous.post(link)
    confirmed = Event.objects.get(type="doi_confirmed")
    assert (confirmed.topic, confirmed.channel) == ("newsletter", "email")


def test_confirm_by_email_needs_an_email(
    staff_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    response = post(
        staff_client,
        django_capture_on_commit_callbacks,
        confirm="email",
        email="",
        phone="0612345678",
    )
    assert response.status_code == 400
    assert 'id="id_email_error"' in page(response)
    assert not Event.objects.exists()


def test_confirm_by_email_refused_by_the_address_limit_says_so_and_records_nothing(
    staff_client: Client, django_capture_on_commit_callbacks: Any, settings: Any, sofas: Any
) -> None:
    settings.SIGNUP_MAX_EMAILS_PER_ADDRESS = 1
    first = post(staff_client, django_capture_on_commit_callbacks, confirm="email", key="first")
    assert first.status_code == 302 and len(mail.outbox) == 1
    before = (Event.objects.count(), Capture.objects.count(), PendingSignup.objects.count())

    response = post(
        staff_client,
        django_capture_on_commit_callbacks,
        confirm="email",
        key="second",
        language="en",
        phone="06 12 34 56 78",
        choice=["promotions:email", "promotions:sms"],
    )
    html = page(response)
    assert response.status_code == 429
    assert "no-store" in response["Cache-Control"]
    assert "We could not send a confirmation email to this address right now." in html
    assert "error-summary" in html and "Thank you" not in html
    # What was typed is still there, nothing of it was written, no email went out.
    assert 'value="claire@example.fr"' in html and 'value="06 12 34 56 78"' in html
    assert 'value="promotions:sms" id="choice-promotions-sms" checked' in html
    assert 'name="key" value="second"' in html
    assert (Event.objects.count(), Capture.objects.count(), PendingSignup.objects.count()) == before
    assert not Event.objects.filter(type="purchase").exists()
    assert Contact.objects.get().phone == ""
    assert len(mail.outbox) == 1

    # The customer chooses "confirm here" instead: the same capture goes through, once.
    done = post(
        staff_client,
        django_capture_on_commit_callbacks,
        key="second",
        phone="06 12 34 56 78",
        choice=["promotions:email", "promotions:sms"],
    )
    assert done.status_code == 302 and done["Location"] == "/store/thanks/"
    assert Event.objects.filter(type="opt_in", data__doi="none").count() == 2


def test_the_address_limit_message_is_in_french_too(
    staff_client: Client, django_capture_on_commit_callbacks: Any, settings: Any
) -> None:
    settings.SIGNUP_MAX_EMAILS_PER_ADDRESS = 0
    response = post(staff_client, django_capture_on_commit_callbacks, confirm="email")
    assert response.status_code == 429
    assert "Nous n’avons pas pu envoyer d’e-mail de confirmation" in page(response)
    assert not Event.objects.exists() and not Contact.objects.exists()


# --- An email and a phone of two different contacts -----------------------------------------------


@pytest.fixture
def two_people(make_contact: Any) -> tuple[Contact, Contact]:
    by_email = make_contact(email="claire@example.fr", first_name="Claire")
    by_phone = make_contact(email=None, phone="+33612345678", first_name="Paul")
    return by_email, by_phone


def facts(contact: Contact) -> set[tuple[str, str, str]]:
    return {(e.type, e.topic, e.channel) for e in Event.objects.filter(contact=contact)}


def test_confirm_here_sends_each_choice_to_the_owner_of_its_address(
    staff_client: Client,
    django_capture_on_commit_callbacks: Any,
    two_people: tuple[Contact, Contact],
) -> None:
    by_email, by_phone = two_people
    response = post(
        staff_client,
        django_capture_on_commit_callbacks,
        phone="06 12 34 56 78",
        choice=["newsletter:email", "promotions:sms"],
    )
    assert response.status_code == 302 and response["Location"] == "/store/thanks/"
    assert facts(by_email) == {("opt_in", "newsletter", "email")}
    assert facts(by_phone) == {("opt_in", "promotions", "sms")}
    by_email.refresh_from_db()
    by_phone.refresh_from_db()
    assert by_email.phone == "" and by_phone.email is None  # nothing moved, nothing copied
    assert Contact.objects.count() == 2


def test_confirm_by_email_keeps_the_phone_choices_with_the_phone_owner(
    staff_client: Client,
    django_capture_on_commit_callbacks: Any,
    two_people: tuple[Contact, Contact],
) -> None:
    by_email, by_phone = two_people
    response = post(
        staff_client,
        django_capture_on_commit_callbacks,
        confirm="email",
        phone="06 12 34 56 78",
        choice=["promotions:email", "promotions:sms"],
    )
    assert response.status_code == 302 and response["Location"] == "/store/thanks/"
    assert facts(by_email) == {("opt_in", "promotions", "email")}
    assert facts(by_phone) == {("opt_in", "promotions", "sms")}
    sms = Event.objects.get(contact=by_phone)
    assert sms.data["doi"] == "pending"
    signup = PendingSignup.objects.get()
    assert signup.contact == by_email and signup.phone == ""
    # The email lists both choices; the SMS one names the contact it was recorded on.
    assert [(c["channel"], c.get("contact")) for c in signup.choices] == [
        ("email", None),
        ("sms", by_phone.pk),
    ]
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["claire@example.fr"]
    assert "SMS" in mail.outbox[0].body

    # Confirming the email confirms each choice on its own contact, and moves no number.
    Client().post(path_in(CONFIRM_LINK, mail.outbox[0]))
    by_email.refresh_from_db()
    assert by_email.phone == ""
    confirmed = {(e.contact_id, e.channel) for e in Event.objects.filter(type="doi_confirmed")}
    assert confirmed == {(by_email.pk, "email"), (by_phone.pk, "sms")}
    assert by_phone.consent_states.get(topic="promotions", channel="sms").status == "opted_in"
    assert by_email.consent_states.get(topic="promotions", channel="email").status == "opted_in"


def test_confirm_by_email_with_only_phone_choices_still_sends_the_email(
    staff_client: Client,
    django_capture_on_commit_callbacks: Any,
    two_people: tuple[Contact, Contact],
) -> None:
    by_email, by_phone = two_people
    post(
        staff_client,
        django_capture_on_commit_callbacks,
        confirm="email",
        phone="06 12 34 56 78",
        choice=["promotions:sms"],
    )
    assert facts(by_email) == set()
    assert facts(by_phone) == {("opt_in", "promotions", "sms")}
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["claire@example.fr"]
    Client().post(path_in(CONFIRM_LINK, mail.outbox[0]))
    assert by_phone.consent_states.get(topic="promotions", channel="sms").status == "opted_in"


def test_a_new_number_never_replaces_the_one_on_file(
    staff_client: Client, django_capture_on_commit_callbacks: Any, make_contact: Any
) -> None:
    existing = make_contact(email="claire@example.fr", phone="+33798765432")
    post(
        staff_client,
        django_capture_on_commit_callbacks,
        phone="06 12 34 56 78",
        choice=["newsletter:email", "promotions:sms"],
    )
    existing.refresh_from_db()
    assert existing.phone == "+33798765432"
    assert facts(existing) == {("opt_in", "newsletter", "email")}
    newcomer = Contact.objects.get(phone="+33612345678")
    assert newcomer.email is None
    assert facts(newcomer) == {("opt_in", "promotions", "sms")}


def test_a_known_number_with_a_new_email_is_not_copied(
    staff_client: Client, django_capture_on_commit_callbacks: Any, make_contact: Any
) -> None:
    by_phone = make_contact(email=None, phone="+33612345678")
    post(
        staff_client,
        django_capture_on_commit_callbacks,
        phone="06 12 34 56 78",
        choice=["newsletter:email", "promotions:sms"],
    )
    by_email = Contact.objects.get(email="claire@example.fr")
    assert by_email.phone == ""
    assert facts(by_email) == {("opt_in", "newsletter", "email")}
    assert facts(by_phone) == {("opt_in", "promotions", "sms")}
    assert Contact.objects.filter(phone="+33612345678").count() == 1


def test_a_number_joins_the_email_contact_that_has_none(
    staff_client: Client, django_capture_on_commit_callbacks: Any, make_contact: Any
) -> None:
    existing = make_contact(email="claire@example.fr")
    post(
        staff_client,
        django_capture_on_commit_callbacks,
        phone="06 12 34 56 78",
        choice=["promotions:sms"],
    )
    existing.refresh_from_db()
    assert existing.phone == "+33612345678"
    assert facts(existing) == {("opt_in", "promotions", "sms")}
    assert Contact.objects.count() == 1


def test_the_screens_are_the_same_whether_the_addresses_were_known(
    staff_client: Client,
    django_capture_on_commit_callbacks: Any,
    two_people: tuple[Contact, Contact],
) -> None:
    known = post(staff_client, django_capture_on_commit_callbacks, phone="0612345678", key="a")
    new = post(
        staff_client,
        django_capture_on_commit_callbacks,
        email="nobody@example.fr",
        phone="0698765432",
        key="b",
    )
    assert known.status_code == new.status_code == 302
    assert known["Location"] == new["Location"]
    thanks = page(staff_client.get("/store/thanks/"))
    assert "Paul" not in thanks and "Claire" not in thanks


# --- Idempotency, rate limit ----------------------------------------------------------------------


def test_a_retry_with_the_same_key_never_records_twice(
    staff_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    first = post(staff_client, django_capture_on_commit_callbacks)
    second = post(staff_client, django_capture_on_commit_callbacks)
    assert first["Location"] == second["Location"] == "/store/thanks/"
    assert Event.objects.count() == 1
    assert Capture.objects.count() == 1


def test_service_retry_reports_already_done(staff: Any, shop: Store, tablet: Device) -> None:
    kwargs: dict[str, Any] = {
        "key": "same-key",
        "user": staff,
        "store": shop,
        "device": tablet,
        "email": "x@example.fr",
        "phone": "",
        "choices": [("newsletter", "email")],
        "confirm": "here",
    }
    assert store.store_capture(**kwargs).outcome is store.CaptureOutcome.RECORDED
    assert store.store_capture(**kwargs).outcome is store.CaptureOutcome.ALREADY_DONE
    assert Event.objects.count() == 1


def test_captures_are_rate_limited_per_device(
    staff_client: Client, django_capture_on_commit_callbacks: Any, settings: Any
) -> None:
    settings.CAPTURE_RATE_PER_DEVICE = 2
    for i in range(2):
        assert (
            post(staff_client, django_capture_on_commit_callbacks, key=f"key-{i}").status_code
            == 302
        )
    response = post(staff_client, django_capture_on_commit_callbacks, key="key-3")
    assert response.status_code == 429
    assert Event.objects.count() == 2


# --- Bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field_id"),
    [
        ({"email": "", "phone": ""}, "id_email_error"),
        ({"email": "not-an-email"}, "id_email_error"),
        ({"phone": "12"}, "id_phone_error"),
        ({"choice": []}, "choices-error"),
        ({"choice": ["promotions:sms"]}, "id_phone_error"),  # SMS without a phone number
        ({"choice": ["nosuchtopic:email"]}, "choices-error"),
        ({"choice": ["newsletter:pigeon"]}, "choices-error"),
    ],
)
def test_bad_input_names_the_field_and_records_nothing(
    staff_client: Client,
    django_capture_on_commit_callbacks: Any,
    overrides: dict[str, Any],
    field_id: str,
) -> None:
    response = post(staff_client, django_capture_on_commit_callbacks, **overrides)
    assert response.status_code == 400
    assert f'id="{field_id}"' in page(response)
    assert 'id="error-summary"' in page(response)
    assert not Event.objects.exists() and not Contact.objects.exists()
    assert not Capture.objects.exists()


def test_error_page_keeps_what_was_typed_without_autofill(
    staff_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    response = post(staff_client, django_capture_on_commit_callbacks, phone="12")
    html = page(response)
    assert 'value="claire@example.fr"' in html
    assert 'autocomplete="off"' in html
    assert "no-store" in response["Cache-Control"]


def test_language_switch_keeps_the_capture_and_records_nothing(
    staff_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            "/store/capture/", capture_data(switch_language="en", confirm="")
        )
    html = page(response)
    assert response.status_code == 200
    assert '<html lang="en">' in html
    assert "I agree to receive Deals." in html
    assert 'value="claire@example.fr"' in html
    assert 'value="newsletter:email" id="choice-newsletter-email" checked' in html
    assert "error-summary" not in html
    assert not Event.objects.exists()


def test_unenrolled_device_is_refused(
    client: Client, staff: Any, django_capture_on_commit_callbacks: Any
) -> None:
    log_in(client, staff)
    assert client.get("/store/capture/").status_code == 403
    response = post(client, django_capture_on_commit_callbacks)
    assert response.status_code == 403
    assert not Event.objects.exists()


def test_revoked_or_forged_device_cookie_is_refused(
    staff_client: Client, tablet: Device, django_capture_on_commit_callbacks: Any
) -> None:
    store.device_revoke(device=tablet)
    assert post(staff_client, django_capture_on_commit_callbacks).status_code == 403
    staff_client.cookies[store.DEVICE_COOKIE] = "forged:value"
    assert post(staff_client, django_capture_on_commit_callbacks).status_code == 403
    assert not Event.objects.exists()


def test_device_of_another_store_is_refused(
    staff_client: Client,
    other_shop: Store,
    manager: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from preferences.models import StoreMembership

    StoreMembership.objects.create(user=manager, store=other_shop)
    elsewhere = store.device_enrol(store=other_shop, name="Lyon till", enrolled_by=manager)
    staff_client.cookies[store.DEVICE_COOKIE] = store.device_cookie_value(elsewhere)
    assert post(staff_client, django_capture_on_commit_callbacks).status_code == 403
    assert not Event.objects.exists()


def test_choosing_a_store_one_does_not_belong_to_is_refused(
    staff_client: Client, other_shop: Store
) -> None:
    response = staff_client.post("/store/", {"store": other_shop.pk})
    assert response.status_code == 403
    assert staff_client.session.get("store_pk") is None


def test_service_refuses_a_store_the_staff_member_does_not_belong_to(
    make_user: Any, shop: Store, tablet: Device
) -> None:
    outsider = make_user("olivier", stores=())
    with pytest.raises(Exception) as info:
        store.store_capture(
            key="k1",
            user=outsider,
            store=shop,
            device=tablet,
            email="x@example.fr",
            phone="",
            choices=[("newsletter", "email")],
            confirm="here",
        )
    assert "store" in info.value.message_dict  # type: ignore[attr-defined]
    assert not Event.objects.exists()


def test_staff_with_several_stores_chooses_one(
    client: Client, make_user: Any, shop: Store, other_shop: Store
) -> None:
    both = make_user("bea", stores=(shop, other_shop))
    log_in(client, both)
    assert "Choose your store" in page(client.get("/store/", HTTP_ACCEPT_LANGUAGE="en"))
    assert client.get("/store/capture/").status_code == 302  # no store chosen yet
    client.post("/store/", {"store": other_shop.pk})
    assert "Lyon Part-Dieu" in page(client.get("/store/"))


def test_expired_staff_session_mid_capture_is_refused_clearly(
    staff_client: Client, django_capture_on_commit_callbacks: Any, settings: Any
) -> None:
    session = staff_client.session
    session["store_last_seen"] = time.time() - 16 * 60
    session.save()
    response = post(staff_client, django_capture_on_commit_callbacks)
    assert response.status_code == 401
    html = page(response)
    assert "Nothing was recorded" in html or "Rien n" in html
    assert "claire@example.fr" not in html and "Claire" not in html
    assert not Event.objects.exists()
    # Logged out: the next request goes to the login page.
    response = staff_client.get("/store/capture/")
    assert response.status_code == 302 and response["Location"].startswith("/store/login/")


def test_automatic_idle_reset_does_not_keep_the_staff_session_alive(
    staff_client: Client,
) -> None:
    session = staff_client.session
    before = time.time() - 60
    session["store_last_seen"] = before
    session.save()
    assert staff_client.get("/store/capture/?auto=1").status_code == 200
    assert staff_client.session["store_last_seen"] == before
    staff_client.get("/store/capture/")
    assert staff_client.session["store_last_seen"] > before


# --- Customer mode pages --------------------------------------------------------------------------


def test_customer_screen_is_blank_uncached_and_has_no_staff_navigation(
    staff_client: Client,
) -> None:
    response = staff_client.get("/store/capture/")
    html = page(response)
    assert "no-store" in response["Cache-Control"]
    assert 'autocomplete="off"' in html
    assert "staff-nav" not in html and "/store/logout/" not in html
    assert " checked" not in html
    assert (
        "J&#x27;accepte de recevoir La lettre d&#x27;information." in html
    )  # the notice beside it
    thanks = staff_client.get("/store/thanks/")
    assert "no-store" in thanks["Cache-Control"]


def test_each_blank_screen_has_a_new_idempotency_key(staff_client: Client) -> None:
    def key(html: str) -> str:
        marker = 'name="key" value="'
        return html.split(marker, 1)[1].split('"', 1)[0]

    assert key(page(staff_client.get("/store/capture/"))) != key(
        page(staff_client.get("/store/capture/"))
    )


def test_an_idle_staff_session_ends_after_the_timeout(staff_client: Client, settings: Any) -> None:
    settings.STAFF_SESSION_IDLE_TIMEOUT = timedelta(minutes=5)
    session = staff_client.session
    session["store_last_seen"] = time.time() - 4 * 60
    session.save()
    assert staff_client.get("/store/").status_code == 200  # still active, and refreshed
    session = staff_client.session
    session["store_last_seen"] = time.time() - 6 * 60
    session.save()
    response = staff_client.get("/store/")
    assert response.status_code == 302 and response["Location"].startswith("/store/login/")
    assert "_auth_user_id" not in staff_client.session


def test_field_errors_are_tied_to_their_inputs(
    staff_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    html = page(post(staff_client, django_capture_on_commit_callbacks, phone="12"))
    assert 'aria-describedby="id_phone_error" aria-invalid="true" id="id_phone"' in html
    assert 'aria-describedby="address-hint" id="id_email"' in html  # no error, no aria-invalid


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_simultaneous_submissions_of_one_capture_record_once(
    staff: Any, shop: Store, tablet: Device
) -> None:
    """A double tap, or a retry racing the first request: the key's unique row decides."""
    barrier = threading.Barrier(2)
    outcomes: list[Any] = []

    def submit() -> None:
        try:
            barrier.wait()
            result = store.store_capture(
                key="raced-key",
                user=staff,
                store=shop,
                device=tablet,
                email="race@example.fr",
                phone="",
                choices=[("newsletter", "email")],
                confirm="here",
            )
            outcomes.append(result.outcome)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(o.value for o in outcomes) == ["already_done", "recorded"]
    assert Event.objects.filter(type="opt_in").count() == 1
