"""The "/" page speaks the visitor's language, French by default."""

from __future__ import annotations

import pytest
from django.test import Client


@pytest.mark.parametrize(
    ("accept_language", "title", "footer"),
    [
        ("fr-FR,fr;q=0.9", "Gérer mes préférences", "Vos choix sur les messages"),
        ("en-GB,en;q=0.9", "Manage my preferences", "Your choices about the messages"),
        ("", "Gérer mes préférences", "Vos choix sur les messages"),  # LANGUAGE_CODE is fr
    ],
)
def test_home_renders_in_french_and_english(
    client: Client, db: None, accept_language: str, title: str, footer: str
) -> None:
    response = client.get("/", HTTP_ACCEPT_LANGUAGE=accept_language)
    assert response.status_code == 200
    page = response.content.decode()
    assert f"<h1>{title}</h1>" in page
    assert footer in page
    assert f'<html lang="{"en" if accept_language.startswith("en") else "fr"}">' in page
