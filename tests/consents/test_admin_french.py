"""The compliance officer's admin in French: every page, every name of the project translated.

Each admin page (the index, each model's list, add and change pages, the officer's own pages) is
drawn in French from the demo data; the test fails on any text of the project (a message, a
model or field name, a choice) that is still in English on it.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.contrib import admin
from django.core.management import call_command
from django.test import Client
from django.urls import NoReverseMatch, reverse
from django.utils import translation
from django.utils.functional import Promise

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent.parent
PROJECT = ("consents", "preferences", "config", "templates")
# Words written the same in both languages.
SAME_IN_FRENCH = {
    "Date",
    "Français",
    "Interaction",
    "Pause",
    "format",
    "professions",
    "ID",
    "SMS",
    "API",
    "URL",
    "Push",
    "code",
    "contact",
    "contacts",
    "source",
    "signature",
    "type",
    "version",
    "nonce",
    "secret",
    "action",
    "description",
    "profession",
    "Assent",
    "Import",
    "Admin",
    "Email",
    "message",
    "email",
    "Newsletter",
    "Promotion",
    "webhooks",
    "JSON",
    "CSV",
    "Service",
    "Notification",
    "notification",
    "Contact",
    "Contacts",
    "Source",
    "Type",
    "Version",
    "Signature",
    "Description",
    "Profession",
    "Action",
    "Code",
    "DVD",
}
PATTERNS = [
    re.compile(
        r"""\b(?:_|_l|gettext|gettext_lazy|pgettext_lazy\("[^"]+",\s*)\(\s*"([^"\\]{3,})"\s*\)"""
    ),
    re.compile(r"""\{%\s*translate\s+"([^"]{3,})"\s*%\}"""),
    re.compile(r"""\{%\s*translate\s+'([^']{3,})'\s*%\}"""),
]


def project_strings() -> set[str]:
    """The English texts of the project: its messages, and the names of its models, fields and
    choices."""
    found: set[str] = set()
    for folder in PROJECT:
        for path in (ROOT / folder).rglob("*"):
            if path.suffix not in (".py", ".html", ".txt") or "migrations" in path.parts:
                continue
            text = path.read_text(encoding="utf-8")
            for pattern in PATTERNS:
                found.update(m for m in pattern.findall(text) if "{{" not in m)
    with translation.override("en"):
        for app in ("consents", "preferences"):
            for model in apps.get_app_config(app).get_models():
                meta = model._meta
                found |= {str(meta.verbose_name), str(meta.verbose_name_plural)}
                for field in meta.get_fields():
                    if getattr(field, "verbose_name", None):
                        found.add(str(field.verbose_name))
                    for _value, label in getattr(field, "flatchoices", None) or []:
                        if isinstance(label, str | Promise):
                            found.add(str(label))
    return {s for s in found if re.search("[a-zA-Z]{3}", s)}


def untranslated() -> set[str]:
    with translation.override("fr"):
        return {
            s for s in project_strings() if translation.gettext(s) == s and s not in SAME_IN_FRENCH
        }


def visible_text(page: str) -> str:
    page = re.sub(r"(?s)<(script|style|svg)\b.*?</\1>", " ", page)
    page = re.sub(r"(?s)<[^>]+>", " ", page)
    return " ".join(html.unescape(page).split())


def _reverse_or_none(name: str) -> str | None:
    try:
        return reverse(name)
    except NoReverseMatch:
        return None


def admin_pages(client: Client) -> Iterator[str]:
    yield reverse("admin:index")
    for name in ("admin:dashboard", "admin:retention", "admin:consents_import"):
        yield reverse(name)
    for model in admin.site._registry:
        if model._meta.app_label not in ("consents", "preferences"):
            continue
        info = (model._meta.app_label, model._meta.model_name)
        yield reverse("admin:{}_{}_changelist".format(*info))
        add = _reverse_or_none("admin:{}_{}_add".format(*info))
        if add:
            yield add
        first = model._default_manager.order_by("pk").first()
        if first is not None:
            yield reverse("admin:{}_{}_change".format(*info), args=[first.pk])


@pytest.fixture
def demo(settings: Any) -> None:
    settings.DEBUG = True
    with open("/dev/null", "w") as quiet:
        call_command("demo_data", stdout=quiet)


@pytest.mark.usefixtures("demo")
def test_every_admin_page_is_in_french(admin_client: Client) -> None:
    english = untranslated()
    problems = []
    for url in admin_pages(admin_client):
        response = admin_client.get(url, HTTP_ACCEPT_LANGUAGE="fr")
        if response.status_code in (302, 403, 405):
            continue
        assert response.status_code == 200, url
        text = visible_text(response.content.decode())
        for s in english:
            if re.search(rf"(?<![\w-]){re.escape(s)}(?![\w-])", text, re.IGNORECASE):
                problems.append((url, s))
    assert sorted({s for _url, s in problems}) == []


def test_the_names_the_admin_shows_are_translated() -> None:
    """Model, field and choice names: each has its French (or is the same word in French)."""
    with translation.override("en"):
        names = set()
        for app in ("consents", "preferences"):
            for model in apps.get_app_config(app).get_models():
                names |= {str(model._meta.verbose_name), str(model._meta.verbose_name_plural)}
                names |= {
                    str(f.verbose_name)
                    for f in model._meta.get_fields()
                    if hasattr(f, "verbose_name")
                }
    with translation.override("fr"):
        missing = {n for n in names if translation.gettext(n) == n and n not in SAME_IN_FRENCH}
    assert missing == set()
