"""A purchase made today: recorded by staff on their own screen, never on the customer's."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from consents import services
from consents.models import Category, Contact, Event, Evidence, Store
from preferences.models import Capture, Device
from tests.preferences.store_fixtures import *  # noqa: F403  (the store fixtures)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pages", "topics")]


def page(response: Any) -> str:
    return response.content.decode()


@pytest.fixture
def books(db: Any) -> Category:
    return services.category_set(slug="books", family="culture", name="Livres", name_en="Books")


def buy(client: Client, **overrides: Any) -> Any:
    data = {
        "key": "p" * 32,
        "email": "claire@example.fr",
        "phone": "",
        "purchase_category": "books",
    }
    data.update(overrides)
    return client.post("/store/purchase/", data)


def test_staff_record_a_purchase_on_their_screen_with_its_proof(
    staff_client: Client, books: Category, shop: Store, tablet: Device, make_contact: Any
) -> None:
    claire = make_contact(email="claire@example.fr")
    response = buy(staff_client)
    assert response.status_code == 302 and response["Location"] == "/store/purchase/"
    event = Event.objects.get(type="purchase")
    assert event.contact == claire
    assert event.data["category"] == "books"
    assert event.store == shop and event.actor == "staff:alice"
    assert event.collection_point == f"store:paris-01 device:{tablet.pk}"
    assert Evidence.objects.get(event=event).details["source"] == "store"
    assert Capture.objects.get().kind == "purchase"
    done = page(staff_client.get("/store/purchase/"))
    assert "The purchase was recorded." in done or "L’achat est enregistré." in done


def test_a_retry_records_the_purchase_once(
    staff_client: Client, books: Category, make_contact: Any
) -> None:
    make_contact(email="claire@example.fr")
    buy(staff_client)
    buy(staff_client)
    assert Event.objects.filter(type="purchase").count() == 1


def test_an_unknown_address_gets_a_contact_not_informed_at_collection(
    staff_client: Client, books: Category
) -> None:
    """Staff typed the address; the customer was shown no information statement: the purchase
    alone can never open the soft opt-in."""
    buy(staff_client, email="", phone="06 12 34 56 78")
    contact = Contact.objects.get()
    assert contact.phone == "+33612345678"
    assert not contact.informed_at_collection
    assert contact.facts.is_customer


def test_categories_are_shown_in_the_page_language(staff_client: Client, books: Category) -> None:
    french = page(staff_client.get("/store/purchase/", HTTP_ACCEPT_LANGUAGE="fr"))
    assert '<option value="books">Livres</option>' in french
    english = page(staff_client.get("/store/purchase/", HTTP_ACCEPT_LANGUAGE="en"))
    assert '<option value="books">Books</option>' in english


@pytest.mark.parametrize(
    ("overrides", "field_id"),
    [
        ({"email": "", "phone": ""}, "id_email_error"),
        ({"email": "not-an-email"}, "id_email_error"),
        ({"purchase_category": ""}, "id_purchase_category_error"),
        ({"purchase_category": "nosuchcategory"}, "id_purchase_category_error"),
    ],
)
def test_bad_input_names_the_field_and_records_nothing(
    staff_client: Client, books: Category, overrides: dict[str, Any], field_id: str
) -> None:
    response = buy(staff_client, **overrides)
    assert response.status_code == 400
    assert f'id="{field_id}"' in page(response) and 'id="error-summary"' in page(response)
    assert not Event.objects.exists() and not Capture.objects.exists()


def test_the_staff_home_links_the_purchase_screen(staff_client: Client) -> None:
    assert 'href="/store/purchase/"' in page(staff_client.get("/store/"))


def test_logged_out_nobody_records_a_purchase(client: Client, books: Category) -> None:
    response = buy(client)
    assert response.status_code == 401
    assert not Event.objects.exists()
