"""Helpers for the preference-center tests: a person, a session opened by their link, the form."""

from __future__ import annotations

import re
from typing import Any

from django.test import Client

from consents import links
from consents.models import Contact


def open_session(client: Client, contact: Contact) -> None:
    response = client.get(f"/preferences/{links.make('preferences', contact)}/")
    assert response.status_code == 302 and response["Location"] == "/preferences/"


def form_state(html: str) -> dict[str, Any]:
    """What the page's save form would post untouched: boxes shown and ticked, frequencies."""
    form = html[html.index('name="action" value="save"') :]
    form = form[: form.index("</form>")]
    shown = [
        v for field in re.findall(r'name="shown" value="([^"]*)"', form) for v in field.split()
    ]
    boxes = re.findall(r'(<input type="checkbox" name="on" value="([^"]+)"[^>]*>)', form)
    on = [value for tag, value in boxes if " checked" in tag and " disabled" not in tag]
    data: dict[str, Any] = {"action": "save", "shown": shown, "on": on}
    radios = re.findall(r'(<input type="radio" name="([^"]+)" value="([^"]+)"[^>]*>)', form)
    for tag, name, value in radios:
        if " checked" in tag:
            data[name] = value
    # The wording the page showed, signed into it by the server.
    notices = re.findall(r'<input type="hidden" name="notices" value="([^"]+)">', form)
    if notices:
        data["notices"] = notices[0]
    return data


def post(client: Client, data: dict[str, Any], **extra: Any) -> Any:
    return client.post(
        "/preferences/",
        data,
        REMOTE_ADDR="198.51.100.4",
        HTTP_USER_AGENT="Mozilla/5.0 (center test)",
        **extra,
    )
