"""The store tablet in a real browser (Debian's Chromium) at tablet sizes: staff login, customer
captures confirmed here and by email, the thank-you screen and the reset, the back button, the
network lost mid-capture, the idle reset; axe-core on the staff and customer screens, FR and EN."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from consents.models import Event
from preferences import store
from preferences.models import Capture
from tests.conftest import SCREENSHOTS, accessible, browser_context, close_checking_csp
from tests.preferences.store_fixtures import *  # noqa: F403  (the store fixtures)
from tests.preferences.store_fixtures import PASSWORD

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("pages", "topics"),
]

LANDSCAPE = {"width": 1024, "height": 768}
PORTRAIT = {"width": 768, "height": 1024}


@pytest.fixture
def site(site: None, settings: Any) -> None:
    """The browser tests' site (tests/preferences/conftest.py), with a short thank-you screen."""
    settings.STORE_THANKS_SECONDS = 1


@pytest.fixture
def tablet_page(browser: Any, live_server: Any, tablet: Any, request: Any) -> Iterator[Any]:
    """A browser at a tablet size, enrolled as the store's tablet (its signed cookie set)."""
    viewport = getattr(request, "param", LANDSCAPE)
    context = browser_context(browser, base_url=live_server.url, viewport=viewport)
    context.add_cookies(
        [
            {
                "name": store.DEVICE_COOKIE,
                "value": store.device_cookie_value(tablet),
                "url": live_server.url,
            }
        ]
    )
    page = context.new_page()
    page.viewport = viewport
    yield page
    close_checking_csp(context)


def staff_login(page: Any) -> None:
    page.goto("/store/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url("**/store/")


def blank(page: Any) -> None:
    assert page.input_value("#id_email") == ""
    assert page.input_value("#id_phone") == ""
    assert page.input_value("#id_first_name") == ""
    assert page.locator("input[name=choice]:checked").count() == 0


@pytest.mark.usefixtures("site", "staff")
@pytest.mark.parametrize(
    "tablet_page", [LANDSCAPE, PORTRAIT], indirect=True, ids=["1024x768", "768x1024"]
)
def test_two_customers_confirm_here_then_by_email(tablet_page: Any, settings: Any) -> None:
    page = tablet_page
    size = f"{page.viewport['width']}x{page.viewport['height']}"
    staff_login(page)
    page.click("#new-customer")
    page.wait_for_url("**/store/capture/")
    blank(page)
    assert page.locator(".staff-nav").count() == 0
    # Touch targets of at least 48 px in customer mode.
    for selector in ("#confirm-here", "#confirm-email", "#id_email", ".check"):
        assert page.locator(selector).first.bounding_box()["height"] >= 48, selector
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport["width"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"store-capture-{size}.png"), full_page=True)

    # First customer: confirms here.
    page.fill("#id_email", "first.customer@example.fr")
    page.fill("#id_first_name", "Firstcustomer")
    page.check("#choice-newsletter-email")
    page.click("#confirm-here")
    page.wait_for_url("**/store/thanks/")
    assert "first.customer" not in page.content() and "Firstcustomer" not in page.content()
    page.wait_for_url("**/store/capture/?auto=1")  # the thank-you screen advances by itself
    blank(page)
    opt_in = Event.objects.get(type="opt_in")
    assert opt_in.data["doi"] == "none" and opt_in.method == "store_tablet"

    # Second customer: confirms by email, then taps "next customer" (no auto-advance race).
    settings.STORE_THANKS_SECONDS = 600
    page.fill("#id_email", "second.customer@example.fr")
    page.check("#choice-promotions-email")
    page.click("#confirm-email")
    page.wait_for_url("**/store/thanks/")
    # What was recorded, read back once (the screen was not fetched a second time).
    expect(page.locator("#recorded li")).to_have_count(1)
    page.click("#next-customer")
    page.wait_for_url(re.compile(r"/store/capture/$"))
    blank(page)

    # The back button shows nothing of either customer.
    for _ in range(3):
        page.go_back()
        page.wait_for_load_state()
        html = page.content()
        assert "first.customer" not in html and "second.customer" not in html
        assert "Firstcustomer" not in html
        if page.locator("#id_email").count():
            blank(page)

    # The second customer confirms from the email.
    page.goto("/dev/mail/")
    page.click("main table a")
    page.click("pre.mail-text a[href*='/confirm/']")
    page.click("main button[type=submit]")
    confirmed = Event.objects.get(type="doi_confirmed")
    assert (confirmed.topic, confirmed.channel) == ("promotions", "email")
    assert Event.objects.filter(type="opt_in").count() == 2


@pytest.mark.usefixtures("site", "staff")
def test_lost_network_keeps_the_form_and_a_retry_records_once(tablet_page: Any) -> None:
    page = tablet_page
    staff_login(page)
    page.goto("/store/capture/")
    page.fill("#id_email", "offline@example.fr")
    page.check("#choice-newsletter-email")
    page.context.set_offline(True)
    page.click("#confirm-here")
    status = page.locator("#capture-status")
    status.wait_for(state="visible")
    assert status.inner_text()
    assert page.input_value("#id_email") == "offline@example.fr"
    assert page.is_checked("#choice-newsletter-email")
    page.context.set_offline(False)
    page.click("#confirm-here")
    page.wait_for_url("**/store/thanks/")
    assert Event.objects.filter(type="opt_in").count() == 1
    assert Capture.objects.count() == 1


@pytest.mark.usefixtures("site", "staff")
def test_idle_customer_screen_resets_itself(tablet_page: Any, settings: Any) -> None:
    settings.STORE_CUSTOMER_IDLE_SECONDS = 2
    page = tablet_page
    staff_login(page)
    page.goto("/store/capture/")
    page.fill("#id_email", "walked.away@example.fr")
    page.wait_for_url("**/store/capture/?auto=1", timeout=10_000)
    blank(page)
    assert not Event.objects.exists()


@pytest.mark.usefixtures("site", "staff")
@pytest.mark.parametrize("language", ["fr", "en"])
def test_start_again_clears_the_screen_at_once(tablet_page: Any, language: str) -> None:
    page = tablet_page
    page.set_extra_http_headers({"Accept-Language": language})
    staff_login(page)
    page.click("#new-customer")
    page.wait_for_url("**/store/capture/")
    page.fill("#id_email", "changed.my.mind@example.fr")
    page.fill("#id_first_name", "Zoé")
    page.check("#choice-newsletter-email")
    page.keyboard.press("Shift+Tab")  # the keyboard reaches it like any other control
    page.focus("#start-again")
    page.keyboard.press("Enter")
    page.wait_for_load_state()
    blank(page)
    accessible(page)
    assert not Event.objects.exists()


@pytest.mark.usefixtures("site", "staff", "sofas")
@pytest.mark.parametrize("language", ["fr", "en"])
def test_staff_and_customer_screens_are_accessible(
    tablet_page: Any, language: str, manager: Any
) -> None:
    page = tablet_page
    page.set_extra_http_headers({"Accept-Language": language})
    page.goto("/store/login/")
    assert page.get_attribute("html", "lang") == language
    accessible(page)
    staff_login(page)
    accessible(page)  # staff home
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"store-home-{language}.png"), full_page=True)
    # A purchase, on the staff screen (never in customer mode): its errors, then recorded.
    page.click("#record-purchase-link")
    page.wait_for_url("**/store/purchase/")
    accessible(page)
    page.click("#record-purchase")
    page.locator("#error-summary").wait_for()
    accessible(page)
    page.fill("#id_email", "buyer@example.fr")
    page.select_option("#id_purchase_category", "sofas")
    page.click("#record-purchase")
    page.locator("[role=status] p").wait_for()
    accessible(page)
    assert Event.objects.filter(type="purchase").count() == 1
    page.goto("/store/phone/")
    accessible(page)
    page.screenshot(path=str(SCREENSHOTS / f"store-phone-{language}.png"), full_page=True)
    page.click("main form[data-phone] button[type=submit]:not([name])")
    page.locator("#error-summary").wait_for()
    accessible(page)
    # The answers, then read back to the caller.
    page.fill("#id_call_reference", f"CALL-{language}")
    page.fill("#id_phone", "06 12 34 56 78")
    page.check("#choice-promotions-sms-yes")
    page.click("main form[data-phone] button[type=submit]:not([name])")
    page.locator("#readback").wait_for()
    assert page.url.endswith("/store/phone/done/")
    accessible(page)

    page.goto("/store/capture/")
    assert page.get_attribute("html", "lang") == language
    accessible(page)
    # Errors shown in customer mode.
    page.click("#confirm-here")
    page.locator("#error-summary").wait_for()
    # The summary takes the focus once the new page has loaded (wait: a click returns at once).
    expect(page.locator("#error-summary")).to_be_focused()
    accessible(page)
    page.screenshot(path=str(SCREENSHOTS / f"store-capture-errors-{language}.png"), full_page=True)
    # The customer switches language on the spot; what was typed stays.
    other = "en" if language == "fr" else "fr"
    page.fill("#id_email", "switch@example.fr")
    page.click("button[name=switch_language]")
    expect(page.locator("html")).to_have_attribute("lang", other)
    assert page.input_value("#id_email") == "switch@example.fr"
    accessible(page)
    page.check("#choice-newsletter-email")
    page.click("#confirm-here")
    page.wait_for_url("**/store/thanks/")
    accessible(page)
    assert Event.objects.get(type="opt_in", method="store_tablet").notice.language == other
    page.wait_for_url("**/store/capture/?auto=1")  # let the thank-you screen advance first

    # The manager's tablet page.
    page.context.clear_cookies()
    page.goto("/store/login/")
    page.fill("#id_username", "marc")
    page.fill("#id_password", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url("**/store/")
    page.goto("/store/devices/")
    accessible(page)

    # The manager's staff accounts page: the list, a form with its errors, a change confirmed.
    page.goto("/store/")
    page.click("#manage-staff")
    page.wait_for_url("**/store/staff/")
    assert page.get_attribute("html", "lang") == language
    accessible(page)
    page.click("main form[action='/store/staff/'] button[type=submit]")
    page.locator("#error-summary").wait_for()
    assert page.locator("#id_username[aria-invalid=true]").count() == 1
    accessible(page)
    page.fill("#id_username", f"new-{language}")
    page.fill("#id_password1", "correct-horse-battery-9")
    page.fill("#id_password2", "correct-horse-battery-9")
    page.click("main form[action='/store/staff/'] button[type=submit]")
    page.locator("[role=status] p").wait_for()
    assert f"new-{language}" in page.inner_text("[role=status]")
    accessible(page)
    page.screenshot(path=str(SCREENSHOTS / f"store-staff-{language}.png"), full_page=True)

    # A new password for that account, set by the manager: the form, its errors, done.
    page.click(f"main tr:has(th:text-is('new-{language}')) a[href$='/password/']")
    page.wait_for_url("**/password/")
    accessible(page)
    password_errors(page, new="staple-lantern-orbit-7")
    page.wait_for_url("**/store/staff/")
    assert f"new-{language}" in page.inner_text("[role=status]")
    accessible(page)

    # The manager's own password, from the staff navigation.
    page.click(".staff-nav a[href='/store/password/']")
    page.wait_for_url("**/store/password/")
    accessible(page)
    password_errors(page, new="orbit-staple-lantern-5", old=PASSWORD)
    page.wait_for_url(re.compile(r"/store/$"))
    page.locator("[role=status] p").wait_for()
    accessible(page)


def password_errors(page: Any, *, new: str, old: str = "") -> None:
    """Two passwords that differ: the errors, checked by axe; then the same one twice."""
    for second in (new + "x", new):
        if old:
            page.fill("#id_old_password", old)
        page.fill("#id_password1", new)
        page.fill("#id_password2", second)
        page.click("main form button[type=submit]")
        if second != new:
            page.locator("#error-summary").wait_for()
            assert page.locator("#id_password2[aria-invalid=true]").count() == 1
            accessible(page)
