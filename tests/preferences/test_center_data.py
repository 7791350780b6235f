"""The person's own data from the preference page (through a one-time emailed link), and the
resume recorded as such."""

from __future__ import annotations

import base64
import json
import re
import time
from typing import Any

import pytest
from django.core import mail
from django.test import Client

from consents import services
from consents.ledger import iso
from consents.models import AccessLog, Contact, Event, Outbox
from tests.preferences.center_fixtures import open_session, post
from tests.preferences.pages import path_in

DATA_LINK = re.compile(r"https?://[^/\s\"'<>]+(/my-data/[^\s\"'<>/]+/)")

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pages", "topics")]


def test_the_page_offers_the_download(opened: Client) -> None:
    html = opened.get("/preferences/").content.decode()
    assert 'name="action" value="download_data"' in html
    assert 'href="#your-data"' in html and "Télécharger mes données" in html


def ask_for_data(client: Client, capture: Any) -> Any:
    """ "Download my data" on the page: the email with the link goes out on commit."""
    with capture(execute=True):
        return post(client, {"action": "download_data"})


def download_path(message: Any) -> str:
    return path_in(DATA_LINK, message)


def test_download_my_data_emails_a_link_and_the_link_gives_everything_once(
    opened: Client, marie: Contact, django_capture_on_commit_callbacks: Any
) -> None:
    response = ask_for_data(opened, django_capture_on_commit_callbacks)
    # The page hands out nothing: the data leaves only through the emailed link.
    assert response.status_code == 302 and response["Location"] == "/preferences/"
    assert "marie@example.fr" not in response.content.decode()
    assert not AccessLog.objects.exists()
    assert "envoyé un lien" in opened.get("/preferences/").content.decode()
    (message,) = mail.outbox
    assert message.to == ["marie@example.fr"]
    assert "List-Unsubscribe" not in message.extra_headers  # asked for by the person
    path = download_path(message)

    # Any browser: holding the mailbox is the proof. GET shows a button and writes nothing.
    mailbox = Client()
    page = mailbox.get(path)
    assert page.status_code == 200
    assert "Téléchargez vos données" in page.content.decode()
    assert "marie@example.fr" not in page.content.decode()
    assert not AccessLog.objects.exists()

    response = mailbox.post(path)
    assert response.status_code == 200
    # A page to read, in Marie's language, in plain words; the JSON file as its second download.
    assert response["Content-Type"].startswith("text/html")
    assert "no-store" in response["Cache-Control"]
    html = response.content.decode()
    assert "<h1>Vos données</h1>" in html
    assert "Ce que nous détenons sur vous" in html and "marie@example.fr" in html
    assert "Oui à « La lettre d&#x27;information » par e-mail" in html
    assert "La lettre d&#x27;information par e-mail : vous avez dit oui." in html
    assert f'download="my-data-{marie.public_id}.json"' in html
    href = re.search(r'href="data:application/json;charset=utf-8;base64,([^"]+)"', html)
    assert href is not None
    data = json.loads(base64.b64decode(href.group(1)))
    assert data["format"] == "assent.access.v1"
    assert data["contact"]["email"] == "marie@example.fr"
    assert [e["type"] for e in data["events"]] == ["opt_in"]
    assert any(d["topic"] == "newsletter" and d["allowed"] for d in data["decisions"])
    entry = AccessLog.objects.get(contact=marie)
    assert (entry.username, entry.action, entry.user) == ("person", "export_access_self", None)

    # Once.
    again = mailbox.post(path)
    assert again.status_code == 200 and again["Content-Type"].startswith("text/html")
    assert "déjà été utilisé" in again.content.decode()
    assert "déjà été utilisé" in mailbox.get(path).content.decode()
    assert AccessLog.objects.filter(contact=marie).count() == 1
    # The download link opens nothing else.
    assert "preferences_contact" not in mailbox.session


def test_the_download_link_lasts_an_hour(
    opened: Client,
    marie: Contact,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    sent_at = time.time() - settings.DATA_DOWNLOAD_LINK_TTL.total_seconds() - 5
    with monkeypatch.context() as m:
        m.setattr("django.core.signing.time.time", lambda: sent_at)
        ask_for_data(opened, django_capture_on_commit_callbacks)
    path = download_path(mail.outbox[0])
    for response in (Client().get(path), Client().post(path)):
        assert response.status_code == 200
        assert "ne fonctionne plus" in response.content.decode()
        assert response["Content-Type"].startswith("text/html")
    assert not AccessLog.objects.exists()


def test_the_download_link_dies_with_a_change_of_address(
    opened: Client, marie: Contact, django_capture_on_commit_callbacks: Any
) -> None:
    ask_for_data(opened, django_capture_on_commit_callbacks)
    path = download_path(mail.outbox[0])
    services.contact_email_change(
        contact=marie, new_email="marie@new.example", proof=services.Proof(actor="person")
    )
    response = Client().post(path)
    assert response["Content-Type"].startswith("text/html")
    assert not AccessLog.objects.exists()


def test_download_needs_the_session_and_csrf(marie: Contact) -> None:
    anonymous = Client()
    assert post(anonymous, {"action": "download_data"}).status_code == 403
    strict = Client(enforce_csrf_checks=True)
    open_session(strict, marie)
    assert post(strict, {"action": "download_data"}).status_code == 403
    assert not AccessLog.objects.exists()
    assert not Outbox.objects.exists()


def test_download_is_rate_limited_per_person(
    opened: Client, marie: Contact, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.ACCESS_EXPORT_MAX_PER_DAY = 2
    assert ask_for_data(opened, django_capture_on_commit_callbacks).status_code == 302
    assert ask_for_data(opened, django_capture_on_commit_callbacks).status_code == 302
    refused = ask_for_data(opened, django_capture_on_commit_callbacks)
    assert refused.status_code == 429
    assert "plusieurs fois aujourd’hui" in refused.content.decode()
    assert Outbox.objects.filter(contact=marie, template="data-download").count() == 2
    assert len(mail.outbox) == 2


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


def test_the_json_file_alone_for_a_program(
    opened: Client, marie: Contact, django_capture_on_commit_callbacks: Any
) -> None:
    ask_for_data(opened, django_capture_on_commit_callbacks)
    response = Client().post(download_path(mail.outbox[0]), {"format": "json"})
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == (
        f'attachment; filename="my-data-{marie.public_id}.json"'
    )
    assert json.loads(response.content)["contact"]["email"] == "marie@example.fr"
