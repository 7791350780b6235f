"""Requests no page can read get one clear 400 page, and the evidence of every page names the
client the same way (``consents.http``)."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import signing
from django.test import Client

from consents import links, services
from consents.http import client_ip, user_agent
from consents.models import Contact, Event, Evidence, Outbox
from preferences.models import PendingSignup
from tests.preferences.pages import signup_data

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("topics")]

UNREADABLE = {"fr": "Nous n’avons pas pu lire ce qui a été envoyé", "en": "We could not read"}


@pytest.fixture
def topics(make_topic: Any, settings: Any) -> None:
    # Nothing here should get as far as a rate limit; a fresh one all the same.
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    make_topic("newsletter", purpose="newsletter", channels=["email"])


def keep_token(contact: Contact) -> str:
    return links.url("keep", contact).rstrip("/").rsplit("/", 1)[-1]


def nothing_written() -> bool:
    return not (
        Contact.objects.exists()
        or Event.objects.exists()
        or Outbox.objects.exists()
        or PendingSignup.objects.exists()
    )


def form_urls(contact: Contact) -> list[str]:
    """Every URL that takes a form body, public and staff."""
    keep = keep_token(contact)
    email = signing.dumps({"c": contact.public_id, "v": 0, "e": "x@example.fr"}, salt="x")
    return [
        "/",
        "/subscribe/",
        "/subscribe/?embed=1",
        f"/confirm/{links.make('confirm', contact, s='nonce')}/",
        f"/confirm/{links.make('confirm', contact, s='nonce')}/resend/",
        f"/unsubscribe/{links.make('unsubscribe', contact)}/",
        "/preferences/",
        f"/keep/{keep}/",
        f"/confirm-email/{email}/",
        "/reconfirm/x/",
        "/i18n/setlang/",
        "/store/login/",
        "/store/capture/",
        "/store/phone/",
        "/admin/login/",
    ]


def test_a_form_body_in_utf16_gets_the_clear_page_on_every_form(
    client: Client, make_contact: Any
) -> None:
    contact = make_contact(email="someone@example.fr")
    for url in form_urls(contact):
        for charset in ("utf-16", "utf-16-le", "latin-1", "no-such-charset"):
            body = "email=marie@example.fr&language=fr".encode(
                "utf-16" if charset.startswith("utf-16") else "ascii"
            )
            response = client.generic(
                "POST",
                url,
                body,
                content_type=f"application/x-www-form-urlencoded; charset={charset}",
                HTTP_ACCEPT_LANGUAGE="en",
            )
            assert response.status_code == 400, (url, charset, response.status_code)
            assert UNREADABLE["en"] in response.content.decode(), (url, charset)
    assert Contact.objects.count() == 1 and not Event.objects.exists()


def test_a_utf8_form_body_is_read_as_before(client: Client) -> None:
    response = client.generic(
        "POST",
        "/",
        b"email=not-an-address",
        content_type="application/x-www-form-urlencoded; charset=UTF-8",
    )
    assert response.status_code == 200
    assert "Saisissez une adresse e-mail valide." in response.content.decode()


def test_the_page_speaks_the_browsers_language(client: Client) -> None:
    response = client.get("/subscribe/?source=%00", HTTP_ACCEPT_LANGUAGE="fr")
    assert response.status_code == 400
    html = response.content.decode()
    assert '<html lang="fr">' in html and UNREADABLE["fr"] in html
    assert "Rien n’a été modifié." in html


def test_a_nul_in_the_query_string_of_a_sign_up_is_refused_and_nothing_written(
    client: Client,
) -> None:
    response = client.post("/subscribe/?source=%00spam", signup_data(choice=["newsletter:email"]))
    assert response.status_code == 400
    assert nothing_written()


@pytest.mark.parametrize(
    "overrides",
    [{"email": "marie\x00@example.fr"}, {"first_name": "Ma\x00rie"}, {"choice": ["news\x00"]}],
)
def test_a_nul_in_a_form_value_is_refused(client: Client, overrides: dict[str, Any]) -> None:
    response = client.post("/subscribe/", signup_data(**overrides))
    assert response.status_code == 400
    assert UNREADABLE["fr"] in response.content.decode()
    assert nothing_written()


def test_a_nul_in_a_field_name_a_cookie_or_the_path_is_refused(client: Client) -> None:
    data = signup_data(choice=["newsletter:email"])
    assert client.post("/subscribe/", {**data, "x\x00": "1"}).status_code == 400
    assert client.get("/confirm/abc%00def/").status_code == 400
    # An escaped NUL in a quoted cookie, which Django's cookie parsing unquotes.
    cookie = 'sessionid="\\000abcdefghijkl"'
    assert client.get("/subscribe/", HTTP_COOKIE=cookie).status_code == 400
    assert nothing_written()


def test_multipart_bodies_are_checked_too(client: Client) -> None:
    # The test client encodes a dict as multipart/form-data.
    response = client.post("/subscribe/", signup_data(first_name="A\x00"))
    assert response.status_code == 400
    # No boundary: Django cannot parse it at all.
    broken = client.generic(
        "POST", "/subscribe/", b"--x\r\nbroken", content_type="multipart/form-data"
    )
    assert broken.status_code == 400 and UNREADABLE["fr"] in broken.content.decode()
    assert nothing_written()


# --- One client address, everywhere evidence is recorded ------------------------------------------


def test_the_client_address_honours_num_proxies(rf: Any, settings: Any) -> None:
    request = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.1, 192.0.2.44")
    settings.NUM_PROXIES = 0
    assert client_ip(request) == "10.0.0.2"
    settings.NUM_PROXIES = 1
    assert client_ip(request) == "192.0.2.44"
    settings.NUM_PROXIES = 2
    assert client_ip(request) == "198.51.100.1"
    settings.NUM_PROXIES = 3  # fewer entries than proxies: the peer itself
    assert client_ip(request) == "10.0.0.2"


def test_a_malformed_forwarded_address_is_not_evidence(rf: Any, settings: Any) -> None:
    settings.NUM_PROXIES = 1
    request = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="1.2.3.4, not-an-ip")
    assert client_ip(request) is None
    request = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="2001:DB8::1")
    assert client_ip(request) == "2001:db8::1"


def test_the_user_agent_loses_nul_and_is_cut(rf: Any) -> None:
    request = rf.get("/", HTTP_USER_AGENT="Mozilla\x00/5.0" + "x" * 2000)
    value = user_agent(request)
    assert "\x00" not in value and value.startswith("Mozilla/5.0") and len(value) == 1000


def test_the_keep_me_link_records_the_forwarded_address(
    client: Client, make_contact: Any, settings: Any, web_proof: services.Proof
) -> None:
    """The compliance-side links used REMOTE_ADDR whatever NUM_PROXIES said."""
    settings.NUM_PROXIES = 1
    contact = make_contact(email="lea@example.fr")
    services.consent_grant(contact=contact, topic="newsletter", channel="email", proof=web_proof)
    token = keep_token(contact)
    response = client.post(
        f"/keep/{token}/",
        REMOTE_ADDR="10.0.0.2",
        HTTP_X_FORWARDED_FOR="198.51.100.1, 192.0.2.44",
    )
    assert response.status_code == 200
    evidence = Evidence.objects.filter(event__contact=contact).order_by("-event__seq").first()
    assert evidence is not None and evidence.ip_address == "192.0.2.44"
