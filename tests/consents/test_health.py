from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from django.db import DatabaseError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_healthz_ok_when_the_database_answers(client, settings):
    settings.REDIS_URL = ""
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok"}}
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]


@pytest.mark.django_db
def test_healthz_503_naming_the_database_when_it_is_down(client, settings, monkeypatch):
    settings.REDIS_URL = ""

    def broken(*args, **kwargs):
        raise DatabaseError("connection refused")

    monkeypatch.setattr("django.db.backends.utils.CursorWrapper.execute", broken)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["down"] == ["database"]


@pytest.mark.django_db
def test_healthz_503_naming_the_broker_when_it_is_down(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["down"] == ["broker"]
    assert body["checks"] == {"database": "ok", "broker": "down"}


@pytest.mark.redis
@pytest.mark.django_db
def test_healthz_checks_the_real_broker(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["checks"]["broker"] == "ok"


@pytest.mark.django_db
def test_home_page_renders_in_both_languages(client):
    fr = client.get("/", HTTP_ACCEPT_LANGUAGE="fr")
    en = client.get("/", HTTP_ACCEPT_LANGUAGE="en")
    assert fr.status_code == en.status_code == 200
    assert 'lang="fr"' in fr.content.decode()
    assert 'lang="en"' in en.content.decode()


def _settings_process(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings;"
            " print(settings.DATABASES['default']['ENGINE'], settings.CELERY_TASK_ALWAYS_EAGER,"
            " settings.EMAIL_BACKEND)",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        timeout=60,
    )


def test_no_environment_runs_the_embedded_default(tmp_path):
    result = _settings_process({"VAR_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.db.backends.sqlite3",
        "True",
        "django.core.mail.backends.filebased.EmailBackend",
    ]


def test_database_and_redis_urls_switch_to_postgres_and_a_broker(tmp_path):
    result = _settings_process(
        {
            "VAR_DIR": str(tmp_path),
            "DATABASE_URL": "postgres://u@127.0.0.1:5432/x",
            "REDIS_URL": "redis://127.0.0.1:6379/0",
        }
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:2] == ["django.db.backends.postgresql", "False"]


def test_debug_off_without_a_secret_key_refuses_to_start(tmp_path):
    result = _settings_process({"VAR_DIR": str(tmp_path), "DEBUG": "False"})
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_debug_off_with_a_real_secret_key_starts(tmp_path):
    result = _settings_process(
        {
            "VAR_DIR": str(tmp_path),
            "DEBUG": "False",
            "SECRET_KEY": "k" * 50,
            "ANYMAIL_WEBHOOK_SECRET": "esp:s3cret",
        }
    )
    assert result.returncode == 0, result.stderr


def test_deploy_check_requires_a_webhook_secret(settings):
    from preferences.checks import webhook_secret_check

    settings.ANYMAIL = {}
    assert [e.id for e in webhook_secret_check(None)] == ["assent.E001"]
    settings.ANYMAIL = {"WEBHOOK_SECRET": "esp:s3cret"}
    assert webhook_secret_check(None) == []
    settings.ANYMAIL, settings.EMAIL_TRACKING_WEBHOOKS = {}, False  # not mounted: no secret needed
    assert webhook_secret_check(None) == []
