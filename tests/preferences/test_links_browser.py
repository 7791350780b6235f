"""Links that grant one thing, in a real browser, in French and English, with axe-core on every
page: unsubscribe and undo, "download my data" through the emailed link, and links that no
longer work."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from consents import clock, links, services
from consents.models import AccessLog, ConsentState, Contact
from tests.conftest import accessible

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("pages", "topics"),
]

TEXTS = {
    "fr": {
        "left": "Vous êtes désabonné(e)",
        "undo": "Annuler : me réabonner",
        "back": "Vous êtes de nouveau abonné(e)",
        "sent": "envoyé un lien",
        "download": "Téléchargez vos données",
        "used": "déjà été utilisé",
        "gone": "Ce lien ne fonctionne plus",
        "expired": "ce lien a expiré",
    },
    "en": {
        "left": "You are unsubscribed",
        "undo": "Undo: subscribe me again",
        "back": "You are subscribed again",
        "sent": "emailed you a link",
        "download": "Download your data",
        "used": "already been used",
        "gone": "This link no longer works",
        "expired": "this link has expired",
    },
}


def person(language: str) -> Contact:
    contact = services.contact_create(
        email=f"links-{language}@example.fr",
        locale=language,
        collected_at=clock.now(),
        informed_at_collection=True,
    )
    proof = services.Proof(method="web_form", actor="person")
    services.consent_grant(contact=contact, topic="newsletter", channel="email", proof=proof)
    return contact


@pytest.mark.usefixtures("site")
@pytest.mark.parametrize("language", ["fr", "en"])
def test_unsubscribe_then_undo(page: Any, language: str) -> None:
    text = TEXTS[language]
    contact = person(language)
    page.set_extra_http_headers({"Accept-Language": language})
    page.goto(f"/unsubscribe/{links.make('unsubscribe', contact)}/")
    accessible(page)
    page.click("#everything button[type=submit]")
    assert page.inner_text("h1") == text["left"]
    assert page.locator("main a[href^='/preferences/']").count() == 0
    accessible(page)
    page.click(f"main button:has-text('{text['undo']}')")
    assert page.inner_text("h1") == text["back"]
    accessible(page)
    state = ConsentState.objects.get(contact=contact, topic="newsletter", channel="email")
    assert state.status == "opted_in"


@pytest.mark.usefixtures("site")
@pytest.mark.parametrize("language", ["fr", "en"])
def test_download_my_data_through_the_emailed_link(
    page: Any, language: str, tmp_path: Path
) -> None:
    text = TEXTS[language]
    contact = person(language)
    page.set_extra_http_headers({"Accept-Language": language})
    page.goto(f"/preferences/{links.make('preferences', contact)}/")
    page.click("#your-data button[type=submit]")
    assert text["sent"] in page.inner_text("#saved")
    accessible(page)

    page.goto("/dev/mail/")
    page.click("main table a")
    page.click("pre.mail-text a[href*='/my-data/']")
    assert page.inner_text("h1") == text["download"]
    accessible(page)
    link = page.url
    # A page to read, in the person's language; the JSON file as its second download.
    page.click("main button[type=submit]")
    page.locator("#download-json").wait_for()
    assert page.get_attribute("html", "lang") == language
    accessible(page)
    with page.expect_download() as download:
        page.click("#download-json")
    data = json.loads(Path(download.value.path()).read_text())
    assert data["contact"]["email"] == contact.email
    assert AccessLog.objects.filter(contact=contact, action="export_access_self").count() == 1
    page.goto(link)
    assert text["used"] in page.inner_text("main")
    accessible(page)


@pytest.mark.usefixtures("site")
@pytest.mark.parametrize("language", ["fr", "en"])
def test_links_that_no_longer_work_say_why(
    page: Any, language: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = TEXTS[language]
    contact = person(language)
    page.set_extra_http_headers({"Accept-Language": language})
    now = time.time()
    with monkeypatch.context() as m:
        age = settings.UNSUBSCRIBE_LINK_TTL.total_seconds() + 60
        m.setattr("django.core.signing.time.time", lambda: now - age)
        old_unsubscribe = links.make("unsubscribe", contact)
    page.goto(f"/unsubscribe/{old_unsubscribe}/")
    assert page.inner_text("h1") == text["gone"]
    assert page.input_value("#id_email") == contact.email
    accessible(page)

    keep = links.make("keep", contact)
    services.contact_revoke_links(contact=contact)
    page.goto(f"/keep/{keep}/")
    assert text["expired"] in page.inner_text("main")
    accessible(page)
