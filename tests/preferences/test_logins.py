"""Password logins on /admin/ and /store/login/: counted per account and per client address."""

from __future__ import annotations

import logging
import re
import time
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from consents.models import AccessLog

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-test-password-42"
LOGIN_PAGES = ["/admin/login/", "/store/login/"]


@pytest.fixture
def account(settings: Any, django_user_model: Any) -> User:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Admin access, so that the password alone logs in to both pages (the second factor is
    # asked afterwards, on another page).
    return django_user_model.objects.create_user(username="alice", password=PASSWORD, is_staff=True)


def attempt(client: Client, page: str, username: str, password: str, **extra: Any) -> Any:
    return client.post(
        page, {"username": username, "password": password}, HTTP_ACCEPT_LANGUAGE="en", **extra
    )


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


@pytest.mark.parametrize("page", LOGIN_PAGES)
def test_forty_wrong_passwords_then_the_right_one_does_not_log_in(
    client: Client, account: User, page: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="preferences.logins"):
        for _ in range(40):
            attempt(client, page, "alice", "wrong-password-123")
        response = attempt(client, page, "alice", PASSWORD)
    assert not logged_in(client)
    assert response.status_code == 429
    assert response["Retry-After"] == "900"
    assert "Too many login attempts. Wait 15 minutes, then try again." in response.content.decode()
    # The lockout (the account's, after 5 failures; refused attempts count no more) logged once,
    # and in the compliance access log with the account it targets.
    locked = [r.getMessage() for r in caplog.records if "login locked" in r.getMessage()]
    assert len(locked) == 1 and all("'alice'" in m for m in locked)
    entries = AccessLog.objects.filter(action="login_locked").order_by("id")
    assert [e.detail.split(";")[0] for e in entries] == [
        "too many login attempts on the account name",
    ]
    assert all(e.user == account and e.username == "alice" for e in entries)
    assert all(page in e.detail and "127.0.0.1" in e.detail for e in entries)


@pytest.mark.parametrize("page", LOGIN_PAGES)
def test_up_to_the_limit_a_mistyped_password_still_lets_the_right_one_in(
    client: Client, account: User, page: str
) -> None:
    for _ in range(4):
        assert attempt(client, page, "alice", "wrong-password-123").status_code == 200
    response = attempt(client, page, "alice", PASSWORD)
    assert response.status_code == 302 and logged_in(client)
    assert not AccessLog.objects.filter(action="login_locked").exists()


@pytest.mark.parametrize("page", LOGIN_PAGES)
def test_the_refusal_does_not_say_whether_the_account_exists(
    client: Client, account: User, page: str
) -> None:
    answers = []
    for username in ("alice", "nobody-by-this-name"):
        for _ in range(6):
            response = attempt(client, page, username, "wrong-password-123")
        html = response.content.decode().replace(username, "X")
        # The CSRF token in each form differs; nothing else may.
        html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", html)
        answers.append((response.status_code, html))
    assert answers[0][0] == 429
    assert answers[0] == answers[1]


def test_one_address_trying_many_accounts_is_stopped_and_another_address_is_not(
    client: Client, account: User, settings: Any
) -> None:
    settings.LOGIN_ATTEMPTS_PER_IP = 10
    for n in range(10):  # a different name each time: the per-account limit never trips
        attempt(client, "/admin/login/", f"guess-{n}", "wrong-password-123")
    assert attempt(client, "/admin/login/", "alice", PASSWORD).status_code == 429
    assert not logged_in(client)
    assert AccessLog.objects.get(action="login_locked").detail.startswith(
        "too many login attempts on the client address"
    )
    elsewhere = Client()
    response = attempt(elsewhere, "/admin/login/", "alice", PASSWORD, REMOTE_ADDR="198.51.100.9")
    assert response.status_code == 302 and logged_in(elsewhere)


def test_behind_a_proxy_the_address_the_proxy_saw_is_counted(
    client: Client, account: User, settings: Any
) -> None:
    settings.NUM_PROXIES, settings.LOGIN_ATTEMPTS_PER_IP = 1, 3
    seen_by_proxy = {"HTTP_X_FORWARDED_FOR": "203.0.113.5"}
    for n in range(3):
        attempt(client, "/store/login/", f"guess-{n}", "x", **seen_by_proxy)
    assert attempt(client, "/store/login/", "alice", PASSWORD, **seen_by_proxy).status_code == 429
    another = {"HTTP_X_FORWARDED_FOR": "203.0.113.6"}
    assert attempt(client, "/store/login/", "alice", PASSWORD, **another).status_code == 302


def test_french_speakers_read_the_refusal_in_french(client: Client, account: User) -> None:
    for _ in range(6):
        response = client.post(
            "/store/login/", {"username": "alice", "password": "x"}, HTTP_ACCEPT_LANGUAGE="fr"
        )
    assert "Trop de tentatives de connexion. Attendez 15 minutes" in response.content.decode()


@pytest.mark.parametrize("page", LOGIN_PAGES)
def test_once_the_lock_expires_the_right_password_logs_in(
    client: Client, account: User, settings: Any, page: str
) -> None:
    settings.LOGIN_THROTTLE_WINDOW = timedelta(seconds=2)
    settings.LOGIN_ATTEMPTS_PER_ACCOUNT = 2
    started = time.monotonic()
    for _ in range(2):
        attempt(client, page, "alice", "wrong-password-123")
    assert attempt(client, page, "alice", PASSWORD).status_code == 429
    assert time.monotonic() - started < 2, "too slow to test the lock within its window"
    time.sleep(2.5)
    response = attempt(client, page, "alice", PASSWORD)
    assert response.status_code == 302 and logged_in(client)


@pytest.mark.parametrize("page", LOGIN_PAGES)
def test_successful_logins_count_for_nothing(client: Client, account: User, page: str) -> None:
    # Staff of one shop share an address and log in many times a day: only failures count.
    for _ in range(30):
        assert attempt(client, page, "alice", PASSWORD).status_code == 302
        client.logout()
    assert attempt(client, page, "alice", PASSWORD).status_code == 302 and logged_in(client)
