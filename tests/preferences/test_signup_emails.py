"""The sign-up emails, in French and English: a text part, a simple accessible HTML part, and a
footer saying why they arrive and how to leave."""

from __future__ import annotations

from typing import Any

import pytest

from consents.models import Contact
from consents.outbox import email_enqueue, render_email
from preferences.services import ALREADY_TEMPLATE, CONFIRM_TEMPLATE

pytestmark = pytest.mark.django_db

UNSUBSCRIBE = "https://assent.example/unsubscribe/tok/"
CONTEXTS: dict[str, dict[str, Any]] = {
    CONFIRM_TEMPLATE: {
        "confirm_url": "https://assent.example/confirm/abc/",
        "first_name": "Zoé <b>",
        "choices": [{"topic": "Bons plans", "channel": "sms"}],
        "expires_days": 7,
    },
    ALREADY_TEMPLATE: {"preferences_url": "https://assent.example/preferences/xyz/"},
}
WHY = {
    "fr": "Vous recevez cet e-mail parce que cette adresse a été saisie",
    "en": "You receive this email because this address was entered",
}


@pytest.mark.parametrize("template", [CONFIRM_TEMPLATE, ALREADY_TEMPLATE])
@pytest.mark.parametrize("language", ["fr", "en"])
def test_each_email_in_each_language(make_contact: Any, template: str, language: str) -> None:
    contact: Contact = make_contact()
    row = email_enqueue(
        to=contact.email,
        template=template,
        language=language,
        contact=contact,
        context=CONTEXTS[template],
        unsubscribe_url=UNSUBSCRIBE,
    )
    message = render_email(row)
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html"
    assert f'<html lang="{language}">' in html
    for part in (message.body, html):
        assert WHY[language] in part
        assert UNSUBSCRIBE in part
    assert message.extra_headers["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>"
    assert "\n" not in message.subject and "Assent" in message.subject
    target = CONTEXTS[template].get("confirm_url") or CONTEXTS[template]["preferences_url"]
    assert f'<a href="{target}" style="display:inline-block' in html  # the button
    assert target in message.body
    if template == CONFIRM_TEMPLATE:
        # The name is the typed one: plain in the text part, escaped in the HTML part.
        assert "Zoé <b>," in message.body and "Zoé &lt;b&gt;," in html
        sms = {"fr": "SMS", "en": "Text message (SMS)"}[language]
        assert f"- Bons plans — {sms}\n" in message.body
        assert {"fr": "valable 7 jours", "en": "valid for 7 days"}[language] in message.body
