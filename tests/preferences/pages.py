"""Helpers for the public pages' tests."""

from __future__ import annotations

import re
from typing import Any

from django.core import mail


def _link(path: str) -> re.Pattern[str]:
    return re.compile(r"https?://[^/\s\"'<>]+(/" + path + r"/[^\s\"'<>/]+/)")


CONFIRM_LINK = _link("confirm")
PREFERENCES_LINK = _link("preferences")
UNSUBSCRIBE_LINK = _link("unsubscribe")


def signup_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "email": "marie@example.fr",
        "first_name": "Marie",
        "phone": "",
        "language": "fr",
        "choice": ["newsletter:email"],
        "website": "",
    }
    data.update(overrides)
    return data


def path_in(pattern: re.Pattern[str], message: mail.EmailMessage) -> str:
    """The path of the first link of that kind in the text part of an email."""
    match = pattern.search(message.body)
    assert match, message.body
    return match.group(1)
