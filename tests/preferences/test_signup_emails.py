"""The sign-up emails, in French and English: a text part, a simple accessible HTML part, and a
footer saying why they arrive and how to leave."""

from __future__ import annotations

import re
from typing import Any

import pytest

from consents import links
from consents.models import Contact
from consents.outbox import email_enqueue, render_email
from preferences.services import ALREADY_TEMPLATE, CONFIRM_TEMPLATE

pytestmark = pytest.mark.django_db

CONTEXTS: dict[str, dict[str, Any]] = {
    CONFIRM_TEMPLATE: {
        "first_name": "Zoé <b>",
        "choices": [{"topic": "Bons plans", "channel": "sms"}],
        "expires_days": 7,
    },
    ALREADY_TEMPLATE: {},
}
LINKS = {
    CONFIRM_TEMPLATE: {"confirm_url": links.intent("confirm", s="nonce")},
    ALREADY_TEMPLATE: {"preferences_url": links.intent("preferences")},
}
TARGET = {
    CONFIRM_TEMPLATE: re.compile(r"http://127\.0\.0\.1:8000/confirm/[^/\s\"]+/"),
    ALREADY_TEMPLATE: re.compile(r"http://127\.0\.0\.1:8000/preferences/[^/\s\"]+/"),
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
        links=LINKS[template],
    )
    message = render_email(row)
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html"
    assert f'<html lang="{language}">' in html
    unsubscribe = message.extra_headers["List-Unsubscribe"].strip("<>")
    assert "/unsubscribe/" in unsubscribe
    for part in (message.body, html):
        assert WHY[language] in part
        assert unsubscribe in part
    assert "\n" not in message.subject and "Assent" in message.subject
    target = TARGET[template].search(message.body).group(0)
    assert f'<a href="{target}" style="display:inline-block' in html  # the button
    assert target in message.body
    if template == CONFIRM_TEMPLATE:
        # The name is the typed one: plain in the text part, escaped in the HTML part.
        assert "Zoé <b>," in message.body and "Zoé &lt;b&gt;," in html
        sms = {"fr": "SMS", "en": "Text message (SMS)"}[language]
        assert f"- Bons plans — {sms}\n" in message.body
        assert {"fr": "valable 7 jours", "en": "valid for 7 days"}[language] in message.body
