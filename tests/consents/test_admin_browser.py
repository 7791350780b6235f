"""A compliance officer in a real browser (Debian's Chromium): password, TOTP code, a person,
the decision panel, the proof export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from consents import services
from consents.models import AccessLog, Contact
from tests.conftest import SCREENSHOTS, at

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def officer(django_user_model: Any, settings: Any) -> TOTPDevice:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    user = django_user_model.objects.create_user(
        username="dpo", password="a-long-password-1", is_staff=True
    )
    user.groups.add(Group.objects.get(name="Compliance officer"))
    return TOTPDevice.objects.create(user=user, name="phone", confirmed=True)


@pytest.fixture
def marie(db: Any) -> Contact:
    services.topic_create(
        slug="promotions",
        purpose="promotion",
        channels=["email", "sms"],
        name_fr="Promos",
        name_en="Deals",
    )
    contact = services.contact_create(
        email="marie@example.fr", collected_at=at("2026-01-10T10:00"), informed_at_collection=True
    )
    services.consent_grant(
        contact=contact,
        topic="promotions",
        channel="email",
        proof=services.Proof(method="web_form", actor="person", ip_address="203.0.113.7"),
        occurred_at=at("2026-02-01T10:00"),
    )
    return contact


def test_officer_logs_in_with_totp_reads_a_decision_and_exports_the_proof(
    page: Any, officer: TOTPDevice, marie: Contact
) -> None:
    page.goto("/admin/")
    page.fill("#id_username", "dpo")
    page.fill("#id_password", "a-long-password-1")
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/otp/**")
    code = TOTP(officer.bin_key, officer.step, officer.t0, officer.digits, officer.drift).token()
    page.fill("#id_token", f"{code:06d}")
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")

    page.goto("/admin/consents/contact/")
    page.fill("#searchbar", "MARIE@example.fr")
    page.press("#searchbar", "Enter")
    page.click("#result_list a:has-text('marie@example.fr')")
    page.wait_for_selector("#decision-panel")

    page.select_option("#id_decide-channel", "email")
    page.select_option("#id_decide-purpose", "promotion")
    page.select_option("#id_decide-topic", "promotions")
    page.click("#decide")
    assert page.text_content("#decision-reason") == "OPT_IN"
    assert "Allowed" in page.inner_text("#decision-result")
    page.select_option("#id_decide-channel", "sms")
    page.click("#decide")
    assert page.text_content("#decision-reason") == "NO_ADDRESS"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "admin-decision-panel.png"), full_page=True)
    # The contact page fits 1280 px: no sideways scrolling, no button broken across lines.
    assert page.viewport_size["width"] == 1280
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    for button in page.locator("#contact-tools .button, #contact-tools button").all():
        box = button.bounding_box()
        assert box is not None and box["height"] < 40, button.inner_text()
    assert page.locator("#today li").count() >= 1

    with page.expect_download() as download:
        page.click("#export-proof")
    data = json.loads(Path(download.value.path()).read_text())
    assert data["contact"]["email"] == "marie@example.fr"
    assert data["events"][0]["hash"] == marie.events.get().hash
    assert data["chain"]["intact"]
    actions = list(AccessLog.objects.order_by("id").values_list("username", "action"))
    assert ("dpo", "export_proof") in actions and ("dpo", "view_contact") in actions
