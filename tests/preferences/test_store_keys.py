"""A capture's idempotency key is scoped to its tablet and staff member: a retry records nothing
twice, another tablet or colleague records its own customer, and the same key sent again with
another customer's details is refused in words the staff member understands."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from consents.models import Contact, Event
from preferences import store
from preferences.models import Capture, Device
from tests.preferences.store_fixtures import *  # noqa: F403  (the store fixtures)
from tests.preferences.store_fixtures import capture_data, log_in

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pages", "topics")]

KEY = "k" * 32
REFUSED = {
    "fr": "Ce formulaire a déjà été envoyé pour un autre client.",
    "en": "This form was already sent for another customer.",
}


def post(client: Client, capture: Any, **overrides: Any) -> Any:
    with capture(execute=True):
        return client.post("/store/capture/", capture_data(**overrides))


def test_the_same_key_from_another_staff_member_records_their_customer(
    staff_client: Client,
    make_user: Any,
    shop: Any,
    tablet: Device,
    django_capture_on_commit_callbacks: Any,
) -> None:
    assert post(staff_client, django_capture_on_commit_callbacks, key=KEY).status_code == 302
    colleague = Client()
    colleague.cookies[store.DEVICE_COOKIE] = store.device_cookie_value(tablet)
    log_in(colleague, make_user("bruno", stores=(shop,)))
    response = post(
        colleague, django_capture_on_commit_callbacks, key=KEY, email="denise@example.fr"
    )
    assert response.status_code == 302
    assert set(Contact.objects.values_list("email", flat=True)) == {
        "claire@example.fr",
        "denise@example.fr",
    }
    assert Capture.objects.count() == 2


def test_the_same_key_from_another_tablet_records_its_customer(
    staff_client: Client, shop: Any, manager: Any, django_capture_on_commit_callbacks: Any
) -> None:
    assert post(staff_client, django_capture_on_commit_callbacks, key=KEY).status_code == 302
    other = store.device_enrol(store=shop, name="Till 2", enrolled_by=manager)
    staff_client.cookies[store.DEVICE_COOKIE] = store.device_cookie_value(other)
    response = post(
        staff_client, django_capture_on_commit_callbacks, key=KEY, email="denise@example.fr"
    )
    assert response.status_code == 302
    assert Contact.objects.filter(email="denise@example.fr").exists()


@pytest.mark.parametrize("language", ["fr", "en"])
def test_the_same_key_with_another_customer_is_refused_clearly(
    staff_client: Client, django_capture_on_commit_callbacks: Any, language: str
) -> None:
    post(staff_client, django_capture_on_commit_callbacks, key=KEY)
    events = Event.objects.count()
    response = post(
        staff_client,
        django_capture_on_commit_callbacks,
        key=KEY,
        email="denise@example.fr",
        language=language,
    )
    assert response.status_code == 409
    html = response.content.decode()
    assert REFUSED[language] in html
    assert Event.objects.count() == events
    assert not Contact.objects.filter(email="denise@example.fr").exists()
    # What was typed is still there, under a new key: sending it again records it.
    assert 'value="denise@example.fr"' in html
    new_key = re.search(r'name="key" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    assert new_key != KEY
    again = post(
        staff_client,
        django_capture_on_commit_callbacks,
        key=new_key,
        email="denise@example.fr",
        language=language,
    )
    assert again.status_code == 302
    assert Contact.objects.filter(email="denise@example.fr").exists()


def test_a_retry_with_the_same_details_is_still_a_retry(
    staff_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    first = post(staff_client, django_capture_on_commit_callbacks, key=KEY, first_name="Claire")
    # The same customer, typed with other spaces: the same capture once cleaned.
    second = post(staff_client, django_capture_on_commit_callbacks, key=KEY, first_name="  Claire ")
    assert first.status_code == second.status_code == 302
    assert Event.objects.count() == 1 and Capture.objects.count() == 1


def test_the_phone_form_scopes_its_key_to_the_staff_member(
    staff: Any, make_user: Any, shop: Any
) -> None:
    answers = {
        "call_reference": "CALL-1",
        "email": "",
        "answers": [("promotions", "sms")],
        "key": KEY,
    }
    done = store.phone_capture(user=staff, phone="0612345678", **answers)
    assert done.outcome is store.CaptureOutcome.RECORDED
    colleague = make_user("bruno", stores=(shop,))
    theirs = store.phone_capture(user=colleague, phone="0699999999", **answers)
    assert theirs.outcome is store.CaptureOutcome.RECORDED
    with pytest.raises(store.CaptureKeyReused):
        store.phone_capture(user=staff, phone="0798765432", **answers)
    retry = store.phone_capture(user=staff, phone="0612345678", **answers)
    assert retry.outcome is store.CaptureOutcome.ALREADY_DONE
    assert Event.objects.filter(type="opt_in").count() == 2


def test_a_capture_digest_is_forgotten_after_a_day_and_its_key_then_refused(
    staff_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    from datetime import timedelta

    from consents import clock
    from preferences.store.keys import DIGEST_FORGOTTEN, captures_forget

    assert post(staff_client, django_capture_on_commit_callbacks, key=KEY).status_code == 302
    row = Capture.objects.get()
    assert row.digest and row.digest != DIGEST_FORGOTTEN
    assert captures_forget() == 0  # a retry may still come
    with clock.frozen(row.created_at + timedelta(days=1, seconds=1)):
        assert captures_forget() == 1
    row.refresh_from_db()
    assert row.digest == DIGEST_FORGOTTEN
    # The same key again, a day later: refused, not taken as a retry of what was forgotten.
    assert post(staff_client, django_capture_on_commit_callbacks, key=KEY).status_code == 409
