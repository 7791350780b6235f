"""What every customer page says about who holds the data, the error summary's wording, and the
consent wording under each topic."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

from consents.models import Topic
from preferences.forms import topic_groups
from tests.preferences.store_fixtures import *  # noqa: F403  (the store fixtures)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pages")]


def page(response: Any) -> str:
    return response.content.decode()


@pytest.fixture
def controller(settings: Any) -> None:
    settings.CONTROLLER_NAME = "Maison Exemple SAS"
    settings.CONTROLLER_ADDRESS = "1 rue de la Paix, 75002 Paris"
    settings.PRIVACY_NOTICE_URL = "https://maison.example/confidentialite"


@pytest.mark.usefixtures("controller", "topics")
@pytest.mark.parametrize("path", ["/", "/subscribe/", "/subscribe/done/"])
def test_customer_pages_name_the_controller_and_link_the_privacy_notice(
    client: Client, path: str
) -> None:
    html = page(client.get(path))
    assert "Responsable du traitement : Maison Exemple SAS, 1 rue de la Paix, 75002 Paris." in html
    assert 'href="https://maison.example/confidentialite"' in html


@pytest.mark.usefixtures("controller", "topics")
def test_the_embedded_sign_up_form_says_it_at_collection(client: Client) -> None:
    html = page(client.get("/subscribe/?embed=1", HTTP_ACCEPT_LANGUAGE="en"))
    assert "Data controller: Maison Exemple SAS" in html
    assert 'href="https://maison.example/confidentialite"' in html


@pytest.mark.usefixtures("controller", "topics")
def test_the_tablet_says_it_at_collection_without_a_link_away(staff_client: Client) -> None:
    html = page(staff_client.get("/store/capture/"))
    assert "Responsable du traitement : Maison Exemple SAS" in html
    assert "https://maison.example/confidentialite" in html
    assert 'href="https://maison.example/confidentialite"' not in html


@pytest.mark.usefixtures("topics")
def test_the_error_summary_names_the_field(client: Client) -> None:
    response = client.post(
        "/subscribe/", {"email": "", "language": "en"}, HTTP_ACCEPT_LANGUAGE="en"
    )
    html = page(response)
    assert '<a href="#id_email">Email address: ' in html


def test_each_demo_notice_names_only_the_channels_its_forms_offer(settings: Any) -> None:
    settings.DEBUG = True
    call_command("demo_data", stdout=open("/dev/null", "w"))  # noqa: SIM115
    for topic in Topic.objects.all():
        for language in ("fr", "en"):
            for group in topic_groups([topic], language):
                text = group.notice.text
                offered = {o.channel for o in group.options}
                words = {
                    "fr": {"postal": "courrier", "push": "notification", "sms": "SMS"},
                    "en": {"postal": "post", "push": "notification", "sms": "text message"},
                }[language]
                for channel, word in words.items():
                    assert (word in text) == (channel in offered), (topic.slug, language, text)
                assert "'" not in text  # curly apostrophes
