"""The webhook and import pages of the admin pass axe, in French and in English."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from consents import clock, imports, services
from consents.models import WebhookDelivery, WebhookEndpoint
from tests.consents.test_admin_a11y_browser import (  # noqa: F401 - fixtures
    Audit,
    context_for,
    officer,
    sign_in,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("fast_passwords"),
]
FILES = Path(__file__).resolve().parent / "imports"


@pytest.mark.parametrize("language", ["fr", "en"])
def test_the_webhook_and_import_pages_pass_axe(
    context_for: Any,  # noqa: F811
    officer: Any,  # noqa: F811
    language: str,
    settings: Any,
    tmp_path: Path,
) -> None:
    settings.VAR_DIR = tmp_path
    services.topic_create(
        slug="newsletter", purpose="newsletter", channels=["email"], name_fr="Lettre",
        name_en="Newsletter",
    )  # fmt: skip
    endpoint = WebhookEndpoint.objects.create(
        url="https://crm.example.com/hooks", secret="whsec_" + "A" * 44, created_at=clock.now(),
        failing_since=clock.now(),
    )  # fmt: skip
    WebhookDelivery.objects.create(
        endpoint=endpoint, message_id="msg_1", type="consent.withdrawn", payload={},
        created_at=clock.now(), give_up_at=clock.now(), status="delivered", attempts=1,
        response_status=204, latency_ms=42,
    )  # fmt: skip
    run = imports.run(
        FILES / "mailchimp_subscribed.csv", preset="mailchimp", topic="newsletter", actor="x"
    ).run
    audit = Audit(context_for(language), language)
    sign_in(audit, "dpo", officer)
    audit.check("admin index with a failing endpoint")
    audit.visit("endpoints", "/admin/consents/webhookendpoint/")
    audit.visit("new endpoint", "/admin/consents/webhookendpoint/add/")
    audit.page.fill("#id_url", "https://127.0.0.1/hook")
    audit.page.click("input[name=_save]")
    audit.check("new endpoint refused")
    audit.visit("endpoint", f"/admin/consents/webhookendpoint/{endpoint.pk}/change/")
    audit.visit("deliveries", "/admin/consents/webhookdelivery/")
    audit.visit("import", "/admin/import/")
    audit.page.set_input_files("#id_file", str(FILES / "mailchimp_subscribed.csv"))
    audit.page.select_option("#id_preset", "mailchimp")
    audit.page.select_option("#id_topic", "newsletter")
    audit.page.click("#content-main button[type=submit]")
    audit.page.wait_for_selector("#import-preview")
    audit.check("import preview")
    audit.visit("import runs", "/admin/consents/importrun/")
    assert run is not None
    audit.visit("import run", f"/admin/consents/importrun/{run.pk}/change/")
    audit.visit("dashboards with the proof tile", "/admin/dashboard/")
    assert audit.found == [], "\n".join(audit.found)
