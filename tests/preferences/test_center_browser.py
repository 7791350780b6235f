"""The preference center in a real browser (Debian's Chromium), in French and English: a link
asked for on "/" and read at /dev/mail/, choices saved and kept, pause and resume, leaving,
the history, the keyboard; axe-core on every page; screenshots at 360 and 1280 px."""

from __future__ import annotations

import re
from typing import Any

import pytest

from consents import clock, links, services
from consents.models import ConsentState, Contact, Event
from tests.conftest import SCREENSHOTS, accessible, browser_context, close_checking_csp

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("pages", "topics"),
]

TEXTS = {
    "fr": {
        "title": "Vos préférences",
        "sent": "Si nous connaissons cette adresse",
        "saved": "Vous recevez désormais « Bons plans » par SMS.",
        "paused": "suspendus jusqu’au",
        "resumed": "Vos messages reprennent",
        "left": "Vous êtes désabonné(e) de tous nos messages commerciaux",
        "history": "Oui à « Bons plans » par SMS",
        "unsubscribe": "Vous êtes déjà désabonné(e)",
    },
    "en": {
        "title": "Your preferences",
        "sent": "If we know this address",
        "saved": "You now receive “Deals” by text message.",
        "paused": "paused until",
        "resumed": "Your messages have resumed",
        "left": "You are unsubscribed from all our marketing",
        "history": "Yes to “Deals” by text message",
        "unsubscribe": "You are already unsubscribed",
    },
}


def person(language: str = "fr") -> Contact:
    contact = services.contact_create(
        email=f"browser-{language}@example.fr",
        phone="+33612345678",
        locale=language,
        collected_at=clock.now(),
        informed_at_collection=True,
    )
    proof = services.Proof(method="web_form", actor="person")
    services.consent_grant(contact=contact, topic="newsletter", channel="email", proof=proof)
    return contact


def settle(page: Any) -> None:
    """Wait for a form the page posts itself (static/js/preferences.js) to be answered."""
    page.wait_for_selector("main:not([aria-busy])")


def state(contact: Contact, topic: str, channel: str) -> str | None:
    row = ConsentState.objects.filter(contact=contact, topic=topic, channel=channel).first()
    return row.status if row else None


@pytest.mark.usefixtures("site")
@pytest.mark.parametrize("language", ["fr", "en"])
def test_ask_for_a_link_change_choices_pause_resume_and_leave(page: Any, language: str) -> None:
    text = TEXTS[language]
    contact = person(language)
    page.set_extra_http_headers({"Accept-Language": language})

    page.goto("/")
    accessible(page)
    page.fill("#id_email", contact.email)
    page.click("main form.link-form button[type=submit]")
    assert text["sent"] in page.inner_text("main .statement")
    accessible(page)

    page.goto("/dev/mail/")
    page.click("main table a")
    page.click("pre.mail-text a[href*='/preferences/']")
    page.wait_for_url("**/preferences/")
    assert page.inner_text("h1") == text["title"]
    assert page.get_attribute("html", "lang") == language
    accessible(page)

    # Topics, channels and frequency: change them, save, reload, see them kept.
    page.uncheck("#cell-newsletter-email")
    page.check("#cell-promotions-sms")
    page.check("#frequency-promotions-monthly")
    page.click("form.preferences button[type=submit]")
    settle(page)
    assert text["saved"] in page.inner_text("#saved")
    accessible(page)
    page.reload()
    assert not page.is_checked("#cell-newsletter-email")
    assert page.is_checked("#cell-promotions-sms")
    assert page.is_checked("#frequency-promotions-monthly")
    assert page.is_disabled("#cell-promotions-push")  # no app: explained, not offered
    assert state(contact, "newsletter", "email") == "opted_out"
    assert state(contact, "promotions", "sms") == "opted_in"

    # Pause for a month, see the end date, resume.
    page.click("#pause button[name=months][value='1']")
    settle(page)
    assert text["paused"] in page.inner_text("#pause")
    accessible(page)
    page.click("#pause button[type=submit]")
    settle(page)
    assert text["resumed"] in page.inner_text("#saved")
    assert Event.objects.filter(contact=contact, type="pause").count() == 2

    # The history, newest first, with the wording shown.
    history = page.inner_text("#history")
    assert text["history"] in history
    page.click("#history details summary")
    assert "Bons plans" in page.inner_text("#history details") or "Deals" in page.inner_text(
        "#history details"
    )

    # Everything, in one button; service messages continue.
    page.click("#leave button[type=submit]")
    settle(page)
    assert text["left"] in page.inner_text("#saved")
    accessible(page)
    assert Event.objects.filter(contact=contact, topic="*", channel="*").count() == 1

    # The unsubscribe link of the email, and its result page.
    page.goto("/dev/mail/")
    page.click("main table a")
    unsubscribe = page.get_attribute("pre.mail-text a[href*='/unsubscribe/']", "href")
    page.goto(unsubscribe)
    # Already unsubscribed from the page: said so, with nothing more to press.
    assert page.inner_text("h1") == text["unsubscribe"]
    assert page.locator("main button[type=submit]").count() == 0
    accessible(page)

    # Old and bad links.
    old = f"/preferences/{links.make('preferences', contact)}/"
    services.contact_revoke_links(contact=contact)
    page.goto(old)
    assert page.input_value("#id_email") == contact.email
    accessible(page)
    page.goto("/preferences/not-a-token/")
    accessible(page)
    page.goto("/preferences/")
    accessible(page)


@pytest.mark.usefixtures("site")
def test_the_page_works_with_the_keyboard_and_shows_focus(page: Any) -> None:
    contact = person()
    page.goto(f"/preferences/{links.make('preferences', contact)}/")
    reached: list[str] = []
    for _ in range(60):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            """() => {
              const e = document.activeElement;
              const s = getComputedStyle(e);
              return [e.id || e.name || e.tagName, s.outlineStyle, s.outlineWidth];
            }"""
        )
        name, outline, width = focused
        if name == "BODY":  # past the last control: the browser's own chrome
            break
        reached.append(name)
        assert outline != "none" and width != "0px", focused  # visible focus, every time
    assert "cell-newsletter-email" in reached
    assert "frequency-promotions-weekly" in reached
    assert "months" in reached  # the pause buttons
    # A box toggled with the space bar, the form sent with Enter on its button.
    page.focus("#cell-promotions-sms")
    page.keyboard.press("Space")
    page.focus("form.preferences button[type=submit]")
    page.keyboard.press("Enter")
    page.wait_for_selector("#saved")
    assert state(contact, "promotions", "sms") == "opted_in"


@pytest.mark.usefixtures("site")
def test_preference_page_screenshots_at_360_and_1280(page: Any) -> None:
    contact = person()
    services.contact_update_details(contact=contact, phone="")
    services.marketing_pause(
        contact=contact,
        channel="*",
        until=clock.now().replace(year=clock.now().year + 1),
        proof=services.Proof(method="preference_center", actor="person"),
    )
    page.goto(f"/preferences/{links.make('preferences', contact)}/")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width in (360, 375, 1280):
        page.set_viewport_size({"width": width, "height": 900})
        page.reload()
        # Nothing wider than the screen: no sideways scrolling on a phone.
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        # Every control is at least 44 px high (touch targets).
        small = page.evaluate(
            """() => [...document.querySelectorAll('main button, main .check, main summary')]
                .filter(e => e.getBoundingClientRect().height < 44)
                .map(e => e.outerHTML.slice(0, 80))"""
        )
        assert small == []
        page.screenshot(path=str(SCREENSHOTS / f"preferences-{width}.png"), full_page=True)
    assert re.search(r"\d", page.inner_text("main .statement"))  # the pause's end date


@pytest.mark.usefixtures("site")
def test_with_javascript_a_save_needs_no_reload_and_moves_the_focus(page: Any) -> None:
    contact = person()
    page.goto(f"/preferences/{links.make('preferences', contact)}/")
    page.evaluate("window.notReloaded = true")
    page.check("#cell-promotions-sms")
    page.click("form.preferences button[type=submit]")
    settle(page)
    assert page.evaluate("window.notReloaded === true")  # the same document: no reload
    assert TEXTS["fr"]["saved"] in page.inner_text("#saved")
    # Where a reload would put it: on the statement of what was saved, read out as a status.
    assert page.evaluate("document.activeElement.id") == "saved"
    assert page.get_attribute("#saved", "role") == "status"
    assert state(contact, "promotions", "sms") == "opted_in"
    # The new page is whole: the history has the new choice, the next save works too.
    assert TEXTS["fr"]["history"] in page.inner_text("#history")
    page.click("#pause button[name=months][value='3']")
    settle(page)
    assert page.evaluate("window.notReloaded === true")
    assert TEXTS["fr"]["paused"] in page.inner_text("#pause")
    assert Event.objects.filter(contact=contact, type="pause").count() == 1
    accessible(page)


@pytest.mark.usefixtures("site")
def test_without_javascript_the_forms_post_and_reload(browser: Any, live_server: Any) -> None:
    contact = person()
    context = browser_context(browser, base_url=live_server.url, java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(f"/preferences/{links.make('preferences', contact)}/")
        page.check("#cell-promotions-sms")
        page.click("form.preferences button[type=submit]")
        page.wait_for_url("**/preferences/")
        assert TEXTS["fr"]["saved"] in page.inner_text("#saved")
        page.click("#pause button[name=months][value='1']")
        assert TEXTS["fr"]["paused"] in page.inner_text("#pause")
        assert state(contact, "promotions", "sms") == "opted_in"
    finally:
        close_checking_csp(context)


@pytest.mark.parametrize("language", ["fr", "en"])
def test_the_unsubscribe_page_offers_lighter_choices_first_and_is_accessible(
    page: Any, language: str
) -> None:
    contact = person(language)
    page.set_extra_http_headers({"Accept-Language": language})
    url = f"/unsubscribe/{links.make('unsubscribe', contact)}/"
    page.goto(url)
    accessible(page)
    # The lighter choices come before "everything", each reachable with the keyboard.
    buttons = page.locator("main button[type=submit]")
    assert buttons.count() >= 3
    lighter, everything = page.locator("#lighter"), page.locator("#everything")
    assert lighter.bounding_box()["y"] < everything.bounding_box()["y"]
    page.locator("#lighter form:has(input[value=topic]) button").first.focus()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.locator("main h1").count() == 1
    accessible(page)
    page.goto(url)
    with page.expect_navigation():
        page.click("#everything button[type=submit]")
    accessible(page)
    page.goto(url)  # a second visit
    assert page.locator("#everything").count() == 0
    accessible(page)
    page.goto("/unsubscribe/cut-in-two/")
    accessible(page)
    assert page.locator("main input[name=email]").count() == 1
