"""The wording a person was shown is the one the server signed into the form they posted: never
an id the browser chose, and still the one they read when a new version came out meanwhile."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from consents import services
from consents.models import Contact, Event, Notice, Topic
from preferences.forms import shown_signed
from tests.preferences.center_fixtures import form_state, post
from tests.preferences.pages import signup_data
from tests.preferences.store_fixtures import *  # noqa: F403  (the store fixtures)
from tests.preferences.store_fixtures import capture_data

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pages", "topics")]


def signed_in(html: str) -> str:
    match = re.search(r'<input type="hidden" name="notices" value="([^"]+)">', html)
    assert match, "the form carries the signed wording"
    return match.group(1)


def current(slug: str, language: str = "fr") -> Notice:
    return Notice.objects.filter(topic__slug=slug, language=language).latest("version")


def republish(topics: dict[str, Topic], slug: str) -> Notice:
    return services.notice_publish(topic=topics[slug], language="fr", text="Nouvelle version.")


# --- Sign-up --------------------------------------------------------------------------------------


def test_signup_records_the_wording_the_page_showed_not_a_newer_one(
    client: Client, topics: dict[str, Topic], django_capture_on_commit_callbacks: Any
) -> None:
    shown = current("newsletter")
    signed = signed_in(client.get("/subscribe/").content.decode())
    newer = republish(topics, "newsletter")  # published while the page was open
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/subscribe/", signup_data(notices=signed))
    assert response.status_code == 302
    event = Event.objects.get(type="opt_in")
    assert event.notice == shown and event.notice != newer


def test_signup_with_a_forged_wording_is_refused_and_writes_nothing(
    client: Client, topics: dict[str, Topic]
) -> None:
    other = services.notice_publish(topic=topics["promotions"], language="fr", text="Autre.")
    forged = [
        "12",
        shown_signed({"newsletter": other}),  # signed, but another topic's notice
        shown_signed({"newsletter": current("newsletter")})[:-2] + "xx",
    ]
    for value in forged:
        response = client.post("/subscribe/", signup_data(notices=value))
        assert response.status_code == 200  # the form again, with the error
        assert "Cette page a changé depuis son affichage" in response.content.decode()
    assert not Contact.objects.exists() and not Event.objects.exists()


def test_a_form_without_the_signed_wording_records_what_the_page_shows_now(
    client: Client, topics: dict[str, Topic], django_capture_on_commit_callbacks: Any
) -> None:
    newer = republish(topics, "newsletter")
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/subscribe/", signup_data())
    assert Event.objects.get(type="opt_in").notice == newer


# --- The preference center ------------------------------------------------------------------------


def test_the_preference_page_records_the_signed_wording(
    opened: Client, topics: dict[str, Topic], django_capture_on_commit_callbacks: Any
) -> None:
    shown = current("promotions")
    data = form_state(opened.get("/preferences/").content.decode())
    republish(topics, "promotions")
    with django_capture_on_commit_callbacks(execute=True):
        response = post(opened, {**data, "on": [*data["on"], "promotions:email"]})
    assert response.status_code == 302
    assert Event.objects.get(type="opt_in", topic="promotions").notice == shown


def test_a_notice_id_posted_by_the_browser_is_not_what_is_recorded(
    opened: Client, topics: dict[str, Topic], django_capture_on_commit_callbacks: Any
) -> None:
    """The page once posted ``notice-<slug>`` ids, which the server took if they were published."""
    shown = current("promotions")
    older = shown
    republish(topics, "promotions")
    data = form_state(opened.get("/preferences/").content.decode())
    now = current("promotions")
    assert now != older
    with django_capture_on_commit_callbacks(execute=True):
        post(
            opened,
            {**data, "on": [*data["on"], "promotions:email"], "notice-promotions": str(older.pk)},
        )
    assert Event.objects.get(type="opt_in", topic="promotions").notice == now


# --- The store tablet -----------------------------------------------------------------------------


def test_the_tablet_records_the_wording_it_showed(
    staff_client: Client, topics: dict[str, Topic], django_capture_on_commit_callbacks: Any
) -> None:
    shown = current("newsletter")
    html = staff_client.get("/store/capture/").content.decode()
    key = re.search(r'name="key" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    republish(topics, "newsletter")
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            "/store/capture/", capture_data(key=key, notices=signed_in(html))
        )
    assert response.status_code == 302
    assert Event.objects.get(type="opt_in").notice == shown


def test_the_tablet_refuses_a_forged_wording(
    staff_client: Client, topics: dict[str, Topic]
) -> None:
    response = staff_client.post("/store/capture/", capture_data(notices="forged"))
    assert response.status_code == 400
    assert "Cette page a changé depuis son affichage" in response.content.decode()
    assert not Event.objects.exists()
