"""The 500 and 503 pages: branded, in French and English, and unable to fail in turn."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.db import OperationalError, connection
from django.test import Client

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.config.error_urls")]

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture
def browser_client() -> Client:
    # A real server answers a failing view with the error page, not with the exception.
    return Client(raise_request_exception=False, HTTP_ACCEPT_LANGUAGE="en")


def assert_branded(html: str, french: str, english: str) -> None:
    assert '<html lang="fr">' in html and '<section class="statement" lang="en"' in html
    assert french in html and english in html
    assert '<p class="brand">Assent</p>' in html
    assert '<link rel="stylesheet" href="/static/css/assent.css">' in html
    assert "{{" not in html  # every placeholder was filled
    assert "<script" not in html and "style=" not in html


def test_a_failing_view_answers_the_branded_500_page(browser_client: Client, settings: Any) -> None:
    assert not settings.DEBUG
    response = browser_client.get("/test/fails/")
    assert response.status_code == 500
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert_branded(
        response.content.decode(), "Une erreur s’est produite", "Something went wrong on our side"
    )
    assert "Server Error (500)" not in response.content.decode()  # not Django's bare page
    assert "default-src 'self'" in response["Content-Security-Policy"]


def test_the_500_page_needs_no_template_engine(browser_client: Client, settings: Any) -> None:
    # Whatever broke may be the templates themselves: the page is still served.
    settings.TEMPLATES = [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "DIRS": [],
            "APP_DIRS": False,
            "OPTIONS": {"context_processors": ["not.a.real.context_processor"]},
        }
    ]
    response = browser_client.get("/test/fails/")
    assert response.status_code == 500
    assert "Something went wrong on our side" in response.content.decode()


def test_an_unreachable_database_answers_the_503_page(
    browser_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr(connection, "cursor", refused)
    response = browser_client.get("/test/reads-the-database/")
    assert response.status_code == 503
    assert response["Retry-After"] == "120"
    assert_branded(
        response.content.decode(),
        "Service momentanément indisponible",
        "This service is under maintenance or cannot reach its database right now.",
    )


def test_with_the_database_down_a_real_page_answers_503_not_a_traceback(tmp_path: Path) -> None:
    code = (
        "import django; django.setup()\n"
        "from django.test import Client\n"
        "response = Client(raise_request_exception=False).get('/subscribe/')\n"
        "print(response.status_code, response['Retry-After'])\n"
        "print('Service temporarily unavailable' in response.content.decode())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={
            "PATH": "/usr/bin:/bin",
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "VAR_DIR": str(tmp_path),
            "DEBUG": "False",
            "SECRET_KEY": "k" * 50,
            "ANYMAIL_WEBHOOK_SECRET": "esp:s3cret",
            "ALLOWED_HOSTS": "testserver",
            # Nothing listens on port 1: every connection is refused.
            "DATABASE_URL": "postgres://assent@127.0.0.1:1/assent",
        },
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["503", "120", "True"]
    assert "OperationalError" in result.stderr  # logged for the operator, shown to nobody
