"""Accessibility of the compliance officer's admin (WCAG 2.2 AA), in French and in English.

A compliance officer signs in (password, then TOTP code) in Debian's Chromium and axe-core checks
every page the officer works with, in both languages; the decision panel is also driven from the
keyboard alone (labels, visible focus, the answer reached without a mouse).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import Group
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from consents import anchors, clock, services
from consents.admin import twofactor
from consents.models import Contact, Notice, Topic
from tests.conftest import at, axe_violations, browser_context, close_checking_csp
from tests.consents.conftest import (
    publish_promotions_notice,
    unsubscribe_link_opt_out,
    web_form_opt_in,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("fast_passwords"),
]

PASSWORD = "a-long-password-1"


def make_staff(django_user_model: Any, username: str) -> Any:
    user = django_user_model.objects.create_user(
        username=username, password=PASSWORD, is_staff=True
    )
    # The role the migrations made, kept whole after each flush by consents.roles.
    user.groups.add(Group.objects.get(name="Compliance officer"))
    return user


@pytest.fixture
def officer(django_user_model: Any) -> TOTPDevice:
    return TOTPDevice.objects.create(
        user=make_staff(django_user_model, "dpo"), name="phone", confirmed=True
    )


@pytest.fixture
def ledger(db: Any) -> dict[str, Any]:
    """A person with a history (opt-in under a notice, an opt-out), a draft notice, a store."""
    topic = services.topic_create(
        slug="promotions",
        purpose="promotion",
        channels=["email", "sms"],
        name_fr="Promos",
        name_en="Deals",
        description_fr="Nos offres.",
        description_en="Our offers.",
    )
    published = publish_promotions_notice(topic)
    draft = services.notice_draft_create(
        topic=topic, language="en", text="I agree to receive deals."
    )
    marie = services.contact_create(
        email="marie@example.fr",
        phone="+33612345678",
        collected_at=at("2026-01-10T10:00"),
        informed_at_collection=True,
    )
    web_form_opt_in(marie, published)
    unsubscribe_link_opt_out(marie, "sms", "2026-02-10T10:00")
    anchor = anchors.anchor_create(at=clock.now())
    return {"topic": topic, "draft": draft, "contact": marie, "anchor": anchor}


@pytest.fixture
def context_for(browser: Any, live_server: Any) -> Iterator[Any]:
    """A browser context whose Accept-Language asks for ``language`` (LocaleMiddleware)."""
    contexts: list[Any] = []

    def make(language: str, scheme: str = "light") -> Any:
        context = browser_context(
            browser,
            base_url=live_server.url,
            locale={"fr": "fr-FR", "en": "en-GB"}[language],
            viewport={"width": 1280, "height": 900},
            color_scheme=scheme,  # the admin follows the system's theme (Django's dark mode)
        )
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        close_checking_csp(context)


def totp(device: TOTPDevice) -> str:
    code = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift).token()
    return f"{code:06d}"


class Audit:
    """Runs axe on page after page and keeps every violation, so one run lists them all."""

    def __init__(self, page: Any, language: str) -> None:
        self.page = page
        self.language = language
        self.found: list[str] = []

    def check(self, name: str, language: str | None = None) -> None:
        # After a click that posts a form, the page that comes back once loaded, not while it
        # is parsed (a summary without its text yet, on a busy machine).
        self.page.wait_for_load_state("load")
        expected = language or self.language
        lang = self.page.get_attribute("html", "lang")
        assert lang == expected, f"{name}: <html lang={lang!r}>, expected {expected}"
        for violation in axe_violations(self.page):
            targets = [", ".join(node["target"]) for node in violation["nodes"]][:5]
            self.found.append(
                f"[{self.language}] {name} ({self.page.url}): {violation['id']} "
                f"({violation['impact']}): {violation['help']} -> {targets}"
            )

    def visit(self, name: str, url: str, language: str | None = None, status: int = 200) -> None:
        response = self.page.goto(url)
        assert response is not None and response.status == status, f"{name}: {url}"
        landed = urlsplit(self.page.url)
        assert f"{landed.path}?{landed.query}".rstrip("?") == url, f"{name}: {self.page.url}"
        self.check(name, language)


def sign_in(audit: Audit, username: str, device: TOTPDevice | None) -> None:
    page = audit.page
    page.goto("/admin/login/?next=/admin/")
    audit.check("login")
    page.fill("#id_username", username)
    page.fill("#id_password", "not-the-password")
    page.click("input[type=submit]")
    audit.check("login with an error")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    if device is None:
        return
    page.wait_for_url("**/admin/otp/**")
    audit.check("OTP verify")
    page.fill("#id_token", "000000" if totp(device) != "000000" else "111111")
    page.click("input[type=submit]")
    audit.check("OTP verify with an error")
    # django-otp refuses any code for a second after a wrong one (its throttling).
    page.wait_for_timeout(1500)
    page.fill("#id_token", totp(device))
    page.click("input[type=submit]")
    page.wait_for_url(lambda url: urlsplit(url).path == "/admin/")


@pytest.mark.parametrize(("language", "scheme"), [("fr", "light"), ("en", "light"), ("fr", "dark")])
def test_every_admin_page_of_the_compliance_officer_passes_axe(
    context_for: Any, officer: TOTPDevice, ledger: dict[str, Any], language: str, scheme: str
) -> None:
    audit = Audit(context_for(language, scheme), language)
    sign_in(audit, "dpo", officer)
    contact: Contact = ledger["contact"]
    topic: Topic = ledger["topic"]
    draft: Notice = ledger["draft"]
    published = Notice.objects.exclude(pk=draft.pk).get()
    base = f"/admin/consents/contact/{contact.pk}"

    audit.check("admin index")
    audit.visit("contact list", "/admin/consents/contact/")
    audit.visit("contact search", "/admin/consents/contact/?q=MARIE%40example.fr")
    audit.visit(
        "contact page with a decision",
        f"{base}/change/?decide-channel=email&decide-purpose=promotion&decide-topic=promotions",
    )
    audit.visit(
        "contact page with an invalid decision form",
        f"{base}/change/?decide-channel=email&decide-purpose=promotion&decide-at=nonsense",
        status=400,  # the page, with the panel's errors: the question could not be asked
    )
    audit.page.click("#verify-chain")
    audit.check("contact page after verifying the chain")
    audit.visit("contact receipt", f"{base}/receipt/", language=contact.locale)
    audit.visit("event page", f"/admin/consents/event/{contact.events.first().pk}/change/")
    audit.visit("event list", "/admin/consents/event/")
    audit.visit("access log", "/admin/consents/accesslog/")
    audit.visit("ledger anchors", "/admin/consents/ledgeranchor/")
    audit.visit("ledger anchor", f"/admin/consents/ledgeranchor/{ledger['anchor'].pk}/change/")
    audit.visit("topics", "/admin/consents/topic/")
    audit.visit("topic form", f"/admin/consents/topic/{topic.pk}/change/")
    audit.visit("new topic form", "/admin/consents/topic/add/")
    audit.page.click("input[name=_save]")
    audit.check("new topic form with errors")
    audit.visit("notices", "/admin/consents/notice/")
    audit.visit("new notice form", "/admin/consents/notice/add/")
    audit.visit("draft notice", f"/admin/consents/notice/{draft.pk}/change/")
    audit.visit("published notice", f"/admin/consents/notice/{published.pk}/change/")
    audit.visit("dashboards, today", "/admin/dashboard/")
    audit.visit("dashboards with data", "/admin/dashboard/?until=2026-03-01&weeks=12")
    audit.visit("dashboards, a date out of range", "/admin/dashboard/?until=9999-12-31", status=400)
    audit.visit("retention report", "/admin/retention/")
    audit.visit("erasure form", f"{base}/erase/")
    audit.page.click("#content-main input[type=submit]")
    audit.check("erasure form with an error")
    audit.visit("rectification form", f"{base}/rectify/")
    audit.page.fill("#id_email", "not an address")
    audit.page.click("#content-main input[type=submit]")
    audit.check("rectification form with an error")

    assert not audit.found, "axe violations:\n" + "\n".join(audit.found)


@pytest.mark.parametrize("language", ["fr", "en"])
def test_first_login_enrolment_pages_pass_axe(
    context_for: Any, django_user_model: Any, language: str
) -> None:
    user = make_staff(django_user_model, "new-dpo")
    audit = Audit(context_for(language), language)
    # The password alone: the page that asks for an administrator's enrolment link.
    sign_in(audit, "new-dpo", None)
    audit.page.wait_for_url("**/admin/otp/enrol/")
    assert audit.page.locator("#otp-secret").count() == 0
    audit.check("OTP enrolment without a link")
    audit.page.goto("/admin/otp/enrol/not-a-valid-token/")
    audit.check("OTP enrolment link that does not work")
    # With the link: the QR code and the key.
    token = twofactor.enrolment_link_create(user=user, created_by=None)
    audit.page.goto(twofactor.enrolment_link_path(token))
    audit.page.wait_for_url("**/admin/otp/enrol/")
    audit.check("OTP enrolment")
    audit.page.fill("#id_token", "000000")
    audit.page.click("#content-main input[type=submit]")
    audit.check("OTP enrolment with an error")
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    audit.page.wait_for_timeout(1500)  # django-otp's throttling after the wrong code
    audit.page.fill("#id_token", totp(device))
    audit.page.click("#content-main input[type=submit]")
    audit.page.wait_for_selector("#recovery-codes")
    audit.check("recovery codes")

    assert not audit.found, "axe violations:\n" + "\n".join(audit.found)


def _focus_ring(page: Any) -> dict[str, str]:
    return page.evaluate(
        """() => {
            const el = document.activeElement;
            const style = getComputedStyle(el);
            return {id: el.id, tag: el.tagName, outline: style.outlineStyle,
                    width: style.outlineWidth, shadow: style.boxShadow};
        }"""
    )


@pytest.mark.parametrize("language", ["fr", "en"])
def test_decision_panel_works_from_the_keyboard(
    context_for: Any, officer: TOTPDevice, ledger: dict[str, Any], language: str
) -> None:
    page = context_for(language)
    audit = Audit(page, language)
    sign_in(audit, "dpo", officer)
    page.goto(f"/admin/consents/contact/{ledger['contact'].pk}/change/")

    # Every control of the panel has a visible label tied to it.
    controls = page.locator("#decision-panel form :is(input, select, textarea)")
    ids = controls.evaluate_all("els => els.map(e => e.id)")
    assert len(ids) == 9
    for control_id in ids:
        assert page.locator(f"#decision-panel label[for='{control_id}']").is_visible()

    # Tab through the panel: every control takes the focus in order, with a visible ring (the
    # date and time field takes several Tab presses, one per part of the date).
    page.focus("#id_decide-channel")
    page.keyboard.press("ArrowDown")  # email -> the next channel, from the keyboard
    page.keyboard.press("ArrowUp")
    reached: list[str] = []
    for _ in range(30):
        ring = _focus_ring(page)
        visible = ring["outline"] != "none" and ring["width"] != "0px"
        assert visible or ring["shadow"] != "none", ring
        if not reached or reached[-1] != ring["id"]:
            reached.append(ring["id"])
        if ring["id"] == "decide":
            break
        page.keyboard.press("Tab")
    assert reached == [*ids, "decide"]

    # Choose a message with the keyboard only, then press Enter on the button.
    page.focus("#id_decide-purpose")
    page.keyboard.type("prom")  # type-ahead on the select: "promotion"
    page.focus("#id_decide-topic")
    page.keyboard.type("promotions")
    page.focus("#decide")
    page.keyboard.press("Enter")
    page.wait_for_selector("#decision-result")
    assert page.input_value("#id_decide-purpose") == "promotion"
    assert page.text_content("#decision-reason") == "OPT_IN"
    # The answer is where the page lands, so a keyboard or screen reader user is taken to it.
    assert page.evaluate("location.hash") == "#decision-result"
    assert (
        page.evaluate("document.getElementById('decision-result').getBoundingClientRect().top")
        < 900
    )
