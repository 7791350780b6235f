"""Bad input on the public pages gets a clear 4xx and writes nothing: each case here was once
a 500 (on PostgreSQL at least)."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from consents import services
from consents.models import Contact, Event, Outbox
from preferences.models import PendingSignup
from preferences.services import signup_submit
from tests.preferences.center_fixtures import form_state, post
from tests.preferences.pages import signup_data

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pages", "topics")]

# Fits the form's 254 characters as typed; its ASCII (IDNA) form is 301 characters long.
LONG_IDN = "a@" + ".".join(["é" * 20] * 11) + ".fr"


def counts() -> tuple[int, int, int, int]:
    return (
        Contact.objects.count(),
        Event.objects.count(),
        Outbox.objects.count(),
        PendingSignup.objects.count(),
    )


def test_an_idn_address_too_long_once_encoded_is_a_field_error(client: Client) -> None:
    assert len(LONG_IDN) <= 254
    response = client.post("/subscribe/", signup_data(email=LONG_IDN))
    assert response.status_code == 200  # the form again, with its error
    assert 'id="id_email_error"' in response.content.decode()
    assert counts() == (0, 0, 0, 0)
    with pytest.raises(ValidationError):
        services.normalize_email(LONG_IDN)
    before = counts()
    link = client.post("/", {"email": LONG_IDN}, REMOTE_ADDR="203.0.113.50")
    assert link.status_code == 200 and counts() == before


# --- First names ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "Votre colis est bloqué, appelez le 08 99 12 34 56",
        "Colis bloqué appelez vite maintenant",  # five words
        "Marie 0899123456",
        "x" * 36,
        "Marie: rappelez",
        "-Marie",
    ],
)
def test_a_first_name_that_is_not_a_name_is_refused(sign_up: Any, name: str) -> None:
    response = sign_up(first_name=name)
    html = response.content.decode()
    assert response.status_code == 200 and 'id="id_first_name_error"' in html
    assert "Saisissez seulement votre prénom, en lettres" in html or "au plus 35" in html
    assert counts() == (0, 0, 0, 0)


@pytest.mark.parametrize(
    "name", ["Marie-Hélène", "O’Neill", "J.-P.", "María de los Ángeles", "Zoë", "Ngọc", "Анна"]
)
def test_first_names_of_every_kind_are_accepted(sign_up: Any, name: str) -> None:
    assert sign_up(first_name=name).status_code == 302
    assert PendingSignup.objects.get().first_name == name


def test_the_service_refuses_a_message_as_a_first_name() -> None:
    with pytest.raises(ValidationError) as caught:
        signup_submit(
            email="marie@example.fr",
            choices=[("newsletter", "email")],
            first_name="Appelez le 08 99 12 34 56",
        )
    assert "first_name" in caught.value.message_dict
    assert counts() == (0, 0, 0, 0)


# --- The preference center ------------------------------------------------------------------------


@pytest.mark.parametrize("months", ["²", "١", "٣", "3 ", "03", "-1", "9" * 50])
def test_a_pause_of_unknown_months_is_refused(opened: Client, months: str) -> None:
    before = Event.objects.count()
    response = post(opened, {"action": "pause", "months": months})
    assert response.status_code == 400
    assert "Cette pause n’est pas proposée." in response.content.decode()
    assert Event.objects.count() == before


def test_a_non_ascii_digit_as_notice_is_a_page_changed_error(opened: Client) -> None:
    data = form_state(opened.get("/preferences/").content.decode())
    # The field of the pages drawn before the notice was signed into the form: ignored now.
    assert post(opened, {**data, "notice-newsletter": "²"}).status_code == 302
    before = Event.objects.count()
    for value in ("²", "١", "12", "abc"):
        data = {**data, "on": [], "notices": value}
        response = post(opened, data)
        assert response.status_code == 400, value
        assert "Cette page a changé depuis son affichage" in response.content.decode()
    assert Event.objects.count() == before
