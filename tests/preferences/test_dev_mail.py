"""/dev/mail/: the mail the embedded default wrote to files, readable in a browser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core import mail
from django.test import Client

from tests.preferences.pages import signup_data

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pages", "topics")]

FILE_BACKEND = "django.core.mail.backends.filebased.EmailBackend"


@pytest.fixture
def file_mail(settings: Any, tmp_path: Path) -> Path:
    settings.DEBUG = True
    settings.EMAIL_BACKEND = FILE_BACKEND
    settings.EMAIL_FILE_PATH = tmp_path
    return tmp_path


def test_404_when_debug_is_off(client: Client, settings: Any, tmp_path: Path) -> None:
    settings.DEBUG = False
    settings.EMAIL_BACKEND = FILE_BACKEND
    settings.EMAIL_FILE_PATH = tmp_path
    assert client.get("/dev/mail/").status_code == 404


def test_404_with_another_email_backend(client: Client, settings: Any) -> None:
    settings.DEBUG = True  # EMAIL_BACKEND is locmem here
    assert client.get("/dev/mail/").status_code == 404


def test_lists_mail_newest_first_and_shows_one_with_clickable_links(
    client: Client, file_mail: Path, django_capture_on_commit_callbacks: Any
) -> None:
    assert "Aucun e-mail" in client.get("/dev/mail/").content.decode()
    for address, language in (("first@example.fr", "fr"), ("second@example.fr", "en")):
        with django_capture_on_commit_callbacks(execute=True):
            client.post("/subscribe/", signup_data(email=address, language=language))
    assert mail.outbox == [] and len(list(file_mail.iterdir())) == 2

    listing = client.get("/dev/mail/")
    assert listing.status_code == 200
    page = listing.content.decode()
    assert page.index("second@example.fr") < page.index("first@example.fr")
    assert "Confirm your subscription to Assent" in page
    assert "Confirmez votre abonnement à Assent" in page

    name = next(p.name for p in file_mail.iterdir() if b"first@example.fr" in p.read_bytes())
    shown = client.get(f"/dev/mail/{name}/")
    assert shown.status_code == 200
    html = shown.content.decode()
    assert "<h1>Confirmez votre abonnement à Assent</h1>" in html
    assert '<a href="http://127.0.0.1:8000/confirm/' in html  # the text part, linkified
    assert "List-Unsubscribe-Post" in html
    assert 'sandbox="allow-popups' in html and "srcdoc=" in html
    assert "default-src 'none'" in shown["Content-Security-Policy"]


def test_reads_several_messages_from_one_file(client: Client, file_mail: Path) -> None:
    from django.core.mail import EmailMultiAlternatives, get_connection

    with get_connection() as connection:
        for n in (1, 2):
            message = EmailMultiAlternatives(f"Message {n}", f"Body {n}", to=["x@example.fr"])
            message.attach_alternative(f"<p>Body {n}</p>", "text/html")
            connection.send_messages([message])
    assert len(list(file_mail.iterdir())) == 1
    page = client.get("/dev/mail/").content.decode()
    assert page.index("Message 2") < page.index("Message 1")
    name = next(file_mail.iterdir()).name
    shown = client.get(f"/dev/mail/{name}/").content.decode()
    assert "Body 1" in shown and "Body 2" in shown


@pytest.mark.parametrize("name", ["..", "...log", "%2e%2e", "..%2Fsettings.py", "passwd"])
def test_no_path_traversal(client: Client, file_mail: Path, name: str) -> None:
    (file_mail.parent / "secret.log").write_text("Subject: secret\n\nsecret")
    assert client.get(f"/dev/mail/{name}/").status_code == 404
    assert client.get("/dev/mail/../secret.log/").status_code == 404


def _one_mail(file_mail: Path) -> str:
    from django.core.mail import send_mail

    send_mail("A link", "http://127.0.0.1:8000/preferences/secret/", None, ["x@example.fr"])
    return next(file_mail.iterdir()).name


@pytest.mark.parametrize("address", ["192.168.1.20", "203.0.113.7", "::ffff:192.168.1.20"])
def test_only_a_browser_on_this_machine_reads_the_mail(
    client: Client, file_mail: Path, address: str
) -> None:
    name = _one_mail(file_mail)
    assert client.get("/dev/mail/", REMOTE_ADDR=address).status_code == 404
    assert client.get(f"/dev/mail/{name}/", REMOTE_ADDR=address).status_code == 404
    for loopback in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        assert client.get("/dev/mail/", REMOTE_ADDR=loopback).status_code == 200
        assert client.get(f"/dev/mail/{name}/", REMOTE_ADDR=loopback).status_code == 200


def test_behind_a_proxy_the_client_it_saw_must_be_this_machine(
    client: Client, file_mail: Path, settings: Any
) -> None:
    settings.NUM_PROXIES = 1
    name = _one_mail(file_mail)
    # The proxy runs here (REMOTE_ADDR is loopback); the browser it forwards is not.
    remote = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "192.168.1.20"}
    assert client.get("/dev/mail/", **remote).status_code == 404
    assert client.get(f"/dev/mail/{name}/", **remote).status_code == 404
    local = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "127.0.0.1"}
    assert client.get("/dev/mail/", **local).status_code == 200
