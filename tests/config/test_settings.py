"""Production mistakes that stop Assent from starting, and the framing setting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
PRODUCTION = {"DEBUG": "False", "SECRET_KEY": "k" * 50}


def start(tmp_path: Path, code: str = "", **env: str) -> subprocess.CompletedProcess:
    """``django.setup()`` in a fresh process with exactly this environment (and ``code`` after)."""
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={
            "PATH": "/usr/bin:/bin",
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "VAR_DIR": str(tmp_path),
            **env,
        },
        timeout=60,
    )


MOUNTED = (
    "from django.urls import resolve, Resolver404\n"
    "try:\n"
    "    resolve('/webhooks/anymail/brevo/tracking/'); print('mounted')\n"
    "except Resolver404:\n"
    "    print('not mounted')"
)


def test_debug_off_without_a_webhook_secret_refuses_to_start(tmp_path: Path) -> None:
    result = start(tmp_path, **PRODUCTION)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "ANYMAIL_WEBHOOK_SECRET" in result.stderr
    assert "EMAIL_TRACKING_WEBHOOKS=False" in result.stderr  # and says how else to start


def test_debug_off_with_a_webhook_secret_starts_with_the_webhooks(tmp_path: Path) -> None:
    result = start(tmp_path, MOUNTED, ANYMAIL_WEBHOOK_SECRET="esp:s3cret", **PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["mounted"]


def test_a_deployment_without_tracking_webhooks_starts_and_does_not_mount_them(
    tmp_path: Path,
) -> None:
    result = start(tmp_path, MOUNTED, EMAIL_TRACKING_WEBHOOKS="False", **PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["not", "mounted"]


def test_the_embedded_default_starts_without_a_webhook_secret(tmp_path: Path) -> None:
    result = start(tmp_path, MOUNTED)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["mounted"]


FRAMERS = "from django.conf import settings; print(settings.EMBED_FRAME_ANCESTORS)"


def test_nobody_may_frame_the_sign_up_form_unless_the_operator_names_sites(
    tmp_path: Path,
) -> None:
    assert start(tmp_path, FRAMERS).stdout.strip() == "'none'"
    named = start(tmp_path, FRAMERS, EMBED_FRAME_ANCESTORS="https://www.brand.fr, https://b.fr")
    assert named.stdout.strip() == "https://www.brand.fr https://b.fr"
    injected = start(tmp_path, FRAMERS, EMBED_FRAME_ANCESTORS="https://a.fr; script-src *")
    assert injected.returncode != 0 and "EMBED_FRAME_ANCESTORS" in injected.stderr


def test_staff_passwords_need_twelve_characters(db: object) -> None:
    import pytest
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError
    from django.utils import translation

    with translation.override("en"), pytest.raises(ValidationError, match="at least 12 char"):
        validate_password("Zx9#qLm2$Tw")  # 11
    validate_password("Zx9#qLm2$Twp")  # 12


SITE = "from django.conf import settings; print(settings.SITE_URL)"


def test_site_url_follows_the_port_the_server_runs_on(tmp_path: Path) -> None:
    """``make run PORT=8101``: emailed links and collection points use that port."""
    result = start(tmp_path, SITE, PORT="8101")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["http://127.0.0.1:8101"]
    result = start(tmp_path, SITE, HOST="0.0.0.0", PORT="8101", SITE_URL="https://prefs.example/")
    assert result.stdout.split() == ["https://prefs.example"]


def test_english_dates_are_not_in_us_format(tmp_path: Path) -> None:
    code = (
        "from datetime import date; from django.utils import formats, translation; "
        "translation.activate('en'); d = date(2026, 3, 12); "
        "print(formats.date_format(d), '|', formats.date_format(d, 'SHORT_DATE_FORMAT'))"
    )
    result = start(tmp_path, code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "12 March 2026 | 12/03/2026"
