"""Bad input in the admin gets a clear 400, never a 500: list filters with a NUL character,
dashboard windows off the calendar, a decision panel question the rules cannot answer."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from consents import services
from consents.models import Contact

pytestmark = pytest.mark.django_db


@pytest.fixture
def person(make_topic: Any, make_contact: Any) -> Contact:
    make_topic("promotions")
    return make_contact(email="marie@example.fr")


@pytest.mark.parametrize(
    "url",
    [
        "/admin/consents/contact/?q=%00",
        "/admin/consents/contact/?q=marie%00%40example.fr",
        "/admin/consents/event/?type=%00",
        "/admin/consents/event/?type__exact=opt_in%00",
        "/admin/consents/outbox/?status=%00",
        "/admin/consents/accesslog/?action=%00",
        "/admin/dashboard/?until=%00",
    ],
)
def test_a_nul_in_a_list_filter_is_a_clear_400(
    admin_client: Client, person: Contact, url: str
) -> None:
    response = admin_client.get(url, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 400
    assert "We could not read what was sent" in response.content.decode()


@pytest.mark.parametrize("until", ["0001-01-01", "9999-12-31", "1969-12-31", "2101-01-01"])
def test_a_dashboard_window_off_the_calendar_is_a_clear_400(
    admin_client: Client, until: str
) -> None:
    response = admin_client.get(f"/admin/dashboard/?until={until}", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 400
    html = response.content.decode()
    assert "Choose a date between 1970-01-01 and 2100-12-31." in html
    assert 'aria-describedby="window-errors"' in html
    csv = admin_client.get(f"/admin/dashboard/promotions-weekly.csv?until={until}")
    assert csv.status_code == 400


@pytest.mark.parametrize("query", ["weeks=0", "weeks=105", "weeks=²", "until=yesterday"])
def test_a_dashboard_window_that_is_no_window_is_a_400(admin_client: Client, query: str) -> None:
    assert admin_client.get(f"/admin/dashboard/?{query}").status_code == 400


def test_the_edges_of_the_dashboard_window_are_drawn(admin_client: Client) -> None:
    for until in ("1970-01-01", "2100-12-31"):
        response = admin_client.get(f"/admin/dashboard/?until={until}&weeks=104")
        assert response.status_code == 200, until


def test_a_marketing_question_without_a_topic_is_asked_for_one(
    admin_client: Client, person: Contact
) -> None:
    base = f"/admin/consents/contact/{person.pk}/change/"
    for purpose in ("promotion", "newsletter", "partner_offer"):
        response = admin_client.get(
            f"{base}?decide-channel=email&decide-purpose={purpose}", HTTP_ACCEPT_LANGUAGE="fr"
        )
        assert response.status_code == 400, purpose
        assert "Choisissez le sujet de ce message marketing." in response.content.decode()
    promotion_in_service = admin_client.get(
        f"{base}?decide-channel=email&decide-purpose=service&decide-contains_promotion=on"
    )
    assert promotion_in_service.status_code == 400
    # Those that need none are answered.
    for purpose in ("service", "repermission"):
        response = admin_client.get(f"{base}?decide-channel=email&decide-purpose={purpose}")
        assert response.status_code == 200 and 'id="decision-reason"' in response.content.decode()
    services.contact_revoke_links(contact=person)  # unrelated writes leave the panel alone
    answered = admin_client.get(
        f"{base}?decide-channel=email&decide-purpose=promotion&decide-topic=promotions"
    )
    assert answered.status_code == 200 and 'id="decision-reason"' in answered.content.decode()


@pytest.mark.parametrize("at", ["0001-01-01T00:00", "9999-12-31T23:59"])
def test_a_decision_instant_off_the_calendar_is_refused(
    admin_client: Client, person: Contact, at: str
) -> None:
    response = admin_client.get(
        f"/admin/consents/contact/{person.pk}/change/?decide-channel=email"
        f"&decide-purpose=promotion&decide-topic=promotions&decide-at={at}"
    )
    assert response.status_code == 400


def test_an_automated_call_is_only_asked_about_on_the_phone(
    admin_client: Client, person: Contact
) -> None:
    # RULES.md v2: `automated` off the phone is malformed; the panel says so, never a 500.
    base = f"/admin/consents/contact/{person.pk}/change/"
    response = admin_client.get(
        f"{base}?decide-channel=email&decide-purpose=promotion&decide-topic=promotions"
        "&decide-automated=on",
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert response.status_code == 400
    assert "Only a phone call can be automated." in response.content.decode()
    by_phone = admin_client.get(
        f"{base}?decide-channel=phone&decide-purpose=promotion&decide-topic=promotions"
        "&decide-automated=on"
    )
    assert by_phone.status_code == 200
