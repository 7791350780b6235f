"""The person's own data from the preference page, and the resume recorded as such."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from consents.ledger import iso
from consents.models import AccessLog, Contact, Event
from tests.preferences.center_fixtures import open_session, post

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pages", "topics")]


def test_the_page_offers_the_download(opened: Client) -> None:
    html = opened.get("/preferences/").content.decode()
    assert 'name="action" value="download_data"' in html
    assert 'href="#your-data"' in html and "Télécharger mes données" in html


def test_download_my_data_gives_everything_and_is_logged(opened: Client, marie: Contact) -> None:
    response = post(opened, {"action": "download_data"})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == (
        f'attachment; filename="my-data-{marie.public_id}.json"'
    )
    assert "no-store" in response["Cache-Control"]
    data = json.loads(response.content)
    assert data["format"] == "assent.access.v1"
    assert data["contact"]["email"] == "marie@example.fr"
    assert [e["type"] for e in data["events"]] == ["opt_in"]
    assert any(d["topic"] == "newsletter" and d["allowed"] for d in data["decisions"])
    entry = AccessLog.objects.get(contact=marie)
    assert (entry.username, entry.action, entry.user) == ("person", "export_access_self", None)


def test_download_needs_the_session_and_csrf(marie: Contact) -> None:
    anonymous = Client()
    assert post(anonymous, {"action": "download_data"}).status_code == 403
    strict = Client(enforce_csrf_checks=True)
    open_session(strict, marie)
    assert post(strict, {"action": "download_data"}).status_code == 403
    assert not AccessLog.objects.exists()


def test_download_is_rate_limited_per_person(opened: Client, marie: Contact, settings: Any) -> None:
    settings.ACCESS_EXPORT_MAX_PER_DAY = 2
    assert post(opened, {"action": "download_data"}).status_code == 200
    assert post(opened, {"action": "download_data"}).status_code == 200
    refused = post(opened, {"action": "download_data"})
    assert refused.status_code == 429
    assert "plusieurs fois aujourd’hui" in refused.content.decode()
    assert AccessLog.objects.filter(contact=marie).count() == 2


def test_resume_is_recorded_as_a_pause_ending_when_it_starts(
    opened: Client, marie: Contact
) -> None:
    post(opened, {"action": "pause", "months": "3"})
    post(opened, {"action": "resume"})
    resume = Event.objects.filter(contact=marie).latest("seq")
    assert resume.type == "pause" and resume.channel == "*"
    assert resume.data["resume"] is True
    assert resume.data["until"] == iso(resume.occurred_at)
    state = marie.channel_states.get(channel="email")
    assert state.pause_until is None or state.pause_until <= resume.occurred_at
    assert "Messages repris" in opened.get("/preferences/").content.decode()
