"""Who may enrol an admin second factor, the one-time enrolment links, and idle admin sessions."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from consents import clock
from consents.admin import twofactor
from consents.admin.site import SESSION_LAST_SEEN
from consents.models import AccessLog, EnrolmentLink
from tests.consents.conftest import verified_login

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]

PASSWORD = "a-long-password-1"


@pytest.fixture
def make_user(django_user_model: Any) -> Callable[..., Any]:
    def make(username: str, **extra: Any) -> Any:
        extra.setdefault("is_staff", True)
        user = django_user_model.objects.create_user(username=username, password=PASSWORD, **extra)
        user.groups.add(Group.objects.get(name="Compliance officer"))
        return user

    return make


def url(name: str, *args: Any) -> str:
    return reverse(f"admin:{name}", args=args)


def password_login(client: Client, username: str) -> None:
    response = client.post(url("login"), {"username": username, "password": PASSWORD})
    assert response.status_code == 302, response.content


def code(device: TOTPDevice) -> str:
    device.refresh_from_db()
    device.throttle_reset()
    value = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift).token()
    return f"{value:06d}"


def enrol_with_the_code(client: Client, user: Any) -> Any:
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    return client.post(url("otp_enrol"), {"token": code(device)})


# --- The password alone enrols nothing --------------------------------------------------------


def test_a_new_account_with_only_its_password_cannot_enrol(
    client: Client, make_user: Callable[..., Any]
) -> None:
    user = make_user("newcomer")
    password_login(client, "newcomer")
    page = client.get(url("otp_enrol"), HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 403
    assert "ask an administrator for an enrolment link" in page.content.decode()
    assert "otp-qr" not in page.content.decode()
    response = client.post(url("otp_enrol"), {"token": "123456"})
    assert response.status_code == 403
    assert not TOTPDevice.objects.filter(user=user).exists()
    assert client.get(url("index")).status_code == 302  # still not in


def test_an_account_left_with_recovery_codes_enrols_only_after_typing_one(
    client: Client, make_user: Callable[..., Any]
) -> None:
    user = make_user("officer")
    recovery = StaticDevice.objects.create(user=user, name="recovery codes")
    StaticToken.objects.create(device=recovery, token="abcd1234")
    password_login(client, "officer")
    # The password alone: sent to type a code, and no authenticator key is shown or created.
    assert client.get(url("otp_enrol"))["Location"] == url("otp_verify")
    assert client.post(url("otp_enrol"), {"token": "123456"})["Location"] == url("otp_verify")
    assert not TOTPDevice.objects.filter(user=user).exists()
    # A recovery code verifies the session; then a new phone can be set up.
    verify = client.get(url("otp_verify"))
    assert verify.status_code == 200 and 'name="token"' in verify.content.decode()
    assert client.post(url("otp_verify"), {"token": "abcd1234"}).status_code == 302
    assert client.get(url("otp_enrol")).status_code == 200
    response = enrol_with_the_code(client, user)
    assert len(response.context["codes"]) == 10
    assert TOTPDevice.objects.get(user=user).confirmed


def test_an_account_with_an_authenticator_replaces_it_only_from_a_verified_session(
    client: Client, make_user: Callable[..., Any]
) -> None:
    user = make_user("officer")
    old = TOTPDevice.objects.create(user=user, name="old phone", confirmed=True)
    password_login(client, "officer")
    assert client.get(url("otp_enrol"))["Location"] == url("otp_verify")
    assert list(TOTPDevice.objects.filter(user=user)) == [old]

    verified_login(client, user)
    assert client.get(url("otp_enrol")).status_code == 200
    enrol_with_the_code(client, user)
    new = TOTPDevice.objects.get(user=user)
    assert new.pk != old.pk and new.confirmed  # the old phone's codes no longer work
    entry = AccessLog.objects.get(action="second_factor_enrol")
    assert entry.user == user and entry.detail == "from a session verified with a code"


# --- One-time enrolment links -----------------------------------------------------------------


def test_a_new_account_enrols_through_its_link_once(
    client: Client, make_user: Callable[..., Any]
) -> None:
    user = make_user("newcomer")
    token = twofactor.enrolment_link_create(user=user, created_by=None)
    link = twofactor.enrolment_link_path(token)
    assert EnrolmentLink.objects.get().token_sha256 != token  # only its digest is kept

    # Opened before logging in: the token moves into the session, the URL loses it.
    response = client.get(link)
    assert response.status_code == 302 and response["Location"] == url("otp_enrol")
    assert token not in str(dict(client.session))
    assert client.get(url("otp_enrol"))["Location"].startswith(url("login"))
    password_login(client, "newcomer")
    page = client.get(url("otp_enrol"))
    assert page.status_code == 200 and 'class="otp-qr"' in page.content.decode()
    response = enrol_with_the_code(client, user)
    assert len(response.context["codes"]) == 10
    assert client.get(url("index")).status_code == 200
    assert EnrolmentLink.objects.get().used_at is not None
    entry = AccessLog.objects.get(action="second_factor_enrol")
    assert entry.detail == "with an enrolment link"

    # Used: it no longer opens anything, for anyone.
    assert client.get(link).status_code == 404
    other = Client()
    assert other.get(link, HTTP_ACCEPT_LANGUAGE="en").status_code == 404


def test_a_link_works_only_for_its_own_account(
    client: Client, make_user: Callable[..., Any]
) -> None:
    make_user("newcomer")
    intruder = make_user("intruder")
    newcomer = make_user("other")
    token = twofactor.enrolment_link_create(user=newcomer, created_by=None)
    password_login(client, "intruder")
    client.get(twofactor.enrolment_link_path(token))
    assert client.get(url("otp_enrol")).status_code == 403
    assert not TOTPDevice.objects.filter(user=intruder).exists()


def test_an_expired_link_and_a_replaced_link_do_not_work(
    client: Client, make_user: Callable[..., Any], settings: Any
) -> None:
    user = make_user("newcomer")
    first = twofactor.enrolment_link_create(user=user, created_by=None)
    second = twofactor.enrolment_link_create(user=user, created_by=None)
    assert client.get(twofactor.enrolment_link_path(first)).status_code == 404  # replaced
    later = clock.now() + settings.ADMIN_ENROL_LINK_TTL + timedelta(seconds=1)
    with clock.frozen(later):
        assert client.get(twofactor.enrolment_link_path(second)).status_code == 404
    assert client.get(twofactor.enrolment_link_path("not-a-token")).status_code == 404
    # Opened in time, then left to expire before the code is typed: refused too.
    assert client.get(twofactor.enrolment_link_path(second)).status_code == 302
    password_login(client, "newcomer")
    with clock.frozen(later):
        assert client.get(url("otp_enrol")).status_code == 403


def test_no_link_for_an_account_that_has_a_device_or_no_admin_access(
    make_user: Callable[..., Any],
) -> None:
    from django.core.exceptions import ValidationError

    enrolled = make_user("enrolled")
    TOTPDevice.objects.create(user=enrolled, name="phone", confirmed=True)
    for user in (enrolled, make_user("store-only", is_staff=False)):
        with pytest.raises(ValidationError):
            twofactor.enrolment_link_create(user=user, created_by=None)
    assert not EnrolmentLink.objects.exists()


def test_an_administrator_makes_links_from_the_users_list(
    admin_client: Client, admin_user: Any, make_user: Callable[..., Any]
) -> None:
    newcomer = make_user("newcomer")
    enrolled = make_user("enrolled")
    TOTPDevice.objects.create(user=enrolled, name="phone", confirmed=True)
    response = admin_client.post(
        url("auth_user_changelist"),
        {"action": "enrolment_links", "_selected_action": [newcomer.pk, enrolled.pk]},
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    [shown] = response.context["links"]
    assert shown["username"] == "newcomer"
    assert shown["url"].startswith("http://testserver/admin/otp/enrol/")
    assert [name for name, _reason in response.context["refused"]] == ["enrolled"]
    entry = AccessLog.objects.get(action="enrolment_link_create")
    assert entry.user == admin_user and "newcomer" in entry.detail

    # The link shown is the one that works.
    fresh = Client()
    path = shown["url"].removeprefix("http://testserver")
    assert fresh.get(path)["Location"] == url("otp_enrol")


def test_the_command_prints_a_link(make_user: Callable[..., Any], settings: Any) -> None:
    make_user("first-admin", is_superuser=True)
    out = StringIO()
    call_command("otp_enrol_link", "first-admin", stdout=out, stderr=StringIO())
    link = out.getvalue().strip()
    assert link.startswith(f"{settings.SITE_URL}/admin/otp/enrol/")
    assert Client().get(link.removeprefix(settings.SITE_URL)).status_code == 302
    with pytest.raises(CommandError, match="No account"):
        call_command("otp_enrol_link", "nobody", stdout=StringIO())


def test_the_demo_prints_enrolment_links_when_the_second_factor_is_on(
    settings: Any, db: Any
) -> None:
    settings.DEBUG, settings.ADMIN_REQUIRE_2FA = True, True
    out = StringIO()
    call_command("demo_data", stdout=out)
    text = out.getvalue()
    assert "Admin second factor: on" in text
    links = [line.split() for line in text.splitlines() if "/admin/otp/enrol/" in line]
    assert [username for username, _link in links] == ["admin", "compliance"]
    assert EnrolmentLink.objects.count() == 2  # the store account has no admin access


# --- Idle admin sessions ----------------------------------------------------------------------


def test_an_admin_session_idle_for_longer_than_the_timeout_is_logged_out(
    client: Client, make_user: Callable[..., Any], settings: Any
) -> None:
    assert timedelta(minutes=30) == settings.ADMIN_SESSION_IDLE_TIMEOUT
    verified_login(client, make_user("officer"))
    assert client.get(url("index")).status_code == 200
    session = client.session
    session[SESSION_LAST_SEEN] = time.time() - 29 * 60
    session.save()
    assert client.get(url("index")).status_code == 200  # active again: the clock restarts

    session = client.session
    session[SESSION_LAST_SEEN] = time.time() - 31 * 60
    session.save()
    response = client.get(url("consents_contact_changelist"))
    assert response.status_code == 302 and response["Location"].startswith(url("login"))
    assert "_auth_user_id" not in client.session


def test_the_admin_idle_timeout_follows_the_setting_and_covers_the_second_factor_pages(
    client: Client, make_user: Callable[..., Any], settings: Any
) -> None:
    settings.ADMIN_SESSION_IDLE_TIMEOUT = timedelta(minutes=5)
    user = make_user("officer")
    TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    password_login(client, "officer")
    assert client.get(url("otp_verify")).status_code == 200
    session = client.session
    session[SESSION_LAST_SEEN] = time.time() - 6 * 60
    session.save()
    assert client.get(url("otp_verify"))["Location"].startswith(url("login"))
    assert "_auth_user_id" not in client.session


def test_store_staff_who_stray_into_the_admin_keep_their_store_session(
    client: Client, make_user: Callable[..., Any]
) -> None:
    clerk = make_user("clerk", is_staff=False)
    client.force_login(clerk)
    session = client.session
    session[SESSION_LAST_SEEN] = time.time() - 60 * 60
    session.save()
    assert client.get(url("index")).status_code == 403  # no admin access, nothing to time out
    assert "_auth_user_id" in client.session
