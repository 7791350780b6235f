"""The whole sign-up in a real browser (Debian's Chromium), in French and English: the form, the
mail read at /dev/mail/, the confirmation link, the thank-you page; axe-core on every page."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from consents.models import Event
from tests.conftest import SCREENSHOTS, accessible

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("pages", "topics"),
]

TEXTS = {
    "fr": {
        "done": "Consultez votre boîte de réception",
        "confirm": "Confirmez votre abonnement",
        "thanks": "Merci, votre abonnement est confirmé",
        "unsubscribed": "Vous êtes désabonné(e)",
    },
    "en": {
        "done": "Check your inbox",
        "confirm": "Confirm your subscription",
        "thanks": "Thank you, your subscription is confirmed",
        "unsubscribed": "You are unsubscribed",
    },
}


@pytest.mark.usefixtures("site")
@pytest.mark.parametrize("language", ["fr", "en"])
def test_sign_up_read_the_mail_confirm_and_leave(page: Any, language: str) -> None:
    text = TEXTS[language]
    page.set_extra_http_headers({"Accept-Language": language})
    page.goto("/subscribe/")
    assert page.get_attribute("html", "lang") == language
    accessible(page)

    # A mistake first: the summary takes the focus and leads to the field.
    page.check("#choice-promotions-sms")
    page.click("main button[type=submit]")
    # The summary takes the focus once the new page has loaded (wait: a click returns at once).
    expect(page.locator("#error-summary")).to_be_focused()
    accessible(page)

    page.fill("#id_email", f"browser-{language}@example.fr")
    page.fill("#id_phone", "06 12 34 56 78")
    page.check("#choice-newsletter-email")
    page.click("main button[type=submit]")
    page.wait_for_url("**/subscribe/done/")
    assert page.inner_text("h1") == text["done"]
    accessible(page)

    page.goto("/dev/mail/")
    page.click("main table a")
    page.click("pre.mail-text a[href*='/confirm/']")
    assert page.inner_text("h1") == text["confirm"]
    accessible(page)
    assert not Event.objects.filter(type="doi_confirmed").exists()

    page.click("main button[type=submit]")
    assert page.inner_text("h1") == text["thanks"]
    accessible(page)
    assert Event.objects.filter(type="doi_confirmed").count() == 2

    # The confirmation link grants the confirmation, not the preference center: the page
    # offers the form that emails a preference link to the mailbox.
    assert page.locator("main a[href^='/preferences/']").count() == 0
    page.click("main a[href='/']")
    page.fill("#id_email", f"browser-{language}@example.fr")
    page.click("main form.link-form button[type=submit]")
    page.goto("/dev/mail/")
    page.click("main table a")  # the newest: the preference link
    page.click("pre.mail-text a[href*='/preferences/']")
    page.wait_for_url("**/preferences/")
    accessible(page)
    # Leaving everything is one button on the preference page itself.
    page.click("#leave button[type=submit]")
    page.wait_for_url("**/preferences/")
    assert text["unsubscribed"] in page.inner_text("#saved")
    accessible(page)

    page.goto("/confirm/not-a-token/")
    accessible(page)


def test_sign_up_page_screenshots_at_360_and_1280(page: Any, live_server: Any) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width in (360, 1280):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto("/subscribe/")
        # Nothing wider than the screen: no sideways scrolling on a phone.
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.screenshot(path=str(SCREENSHOTS / f"subscribe-{width}.png"), full_page=True)


@pytest.mark.parametrize("language", ["fr", "en"])
def test_the_page_for_an_unreadable_request_is_accessible(page: Any, language: str) -> None:
    page.set_extra_http_headers({"Accept-Language": language})
    response = page.goto("/subscribe/?source=%00")
    assert response is not None and response.status == 400
    assert page.locator("html").get_attribute("lang") == language
    accessible(page)


@pytest.mark.parametrize("language", ["fr", "en"])
def test_the_embedded_form_for_one_topic_fits_600_px_and_is_accessible(
    page: Any, language: str, settings: Any
) -> None:
    settings.PRIVACY_NOTICE_URL = "https://brand.example/privacy"
    page.set_viewport_size({"width": 400, "height": 600})
    page.goto(f"/subscribe/?embed=1&topics=newsletter&lang={language}")
    assert page.get_attribute("html", "lang") == language
    assert page.locator("input[name=choice]").count() == 1
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"subscribe-embed-{language}.png"), full_page=True)
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height <= 600, height
    accessible(page)
    # Sent with an error, then right: the same compact form, then its thank-you page.
    page.click("main button[type=submit]")
    expect(page.locator("#error-summary")).to_be_focused()
    accessible(page)
    page.fill("#id_email", f"embed-{language}@example.fr")
    page.check("#choice-newsletter-email")
    page.click("main button[type=submit]")
    page.wait_for_url("**/subscribe/done/?embed=1")
    accessible(page)
    signup = Event.objects.get(type="opt_in")
    assert signup.notice.language == language and signup.topic == "newsletter"
