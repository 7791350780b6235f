"""Store managers manage the staff accounts of their own stores, and nothing else (issue 6)."""

from __future__ import annotations

import re
import secrets
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from consents.models import AccessLog, Store
from preferences.models import StoreMembership
from preferences.store import staff as store
from tests.consents.conftest import verified_login
from tests.preferences.store_fixtures import *  # noqa: F403  (the store fixtures)
from tests.preferences.store_fixtures import PASSWORD, log_in

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pages")]

NEW_PASSWORD = "correct-horse-battery-9"
OTHER_PASSWORD = "staple-lantern-orbit-7"


@pytest.fixture(autouse=True)
def fresh_password_attempts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Counters outlive a test (primary keys come round again): each test counts on its own."""
    monkeypatch.setattr(store, "PASSWORD_RATE_SCOPE", f"test-password-{secrets.token_hex(8)}")


@pytest.fixture
def lea(make_user: Any, other_shop: Store) -> User:
    """Staff of the Lyon store only: out of the Paris manager's reach."""
    return make_user("lea", stores=(other_shop,))


@pytest.fixture
def bea(make_user: Any, shop: Store, other_shop: Store) -> User:
    """Staff of both stores."""
    return make_user("bea", stores=(shop, other_shop))


@pytest.fixture
def boss(client: Client, manager: User) -> Client:
    log_in(client, manager)
    return client


def post_only_urls(user: User) -> list[str]:
    return [
        f"/store/staff/{user.pk}/add-store/",
        f"/store/staff/{user.pk}/remove-store/",
        f"/store/staff/{user.pk}/deactivate/",
        f"/store/staff/{user.pk}/reactivate/",
    ]


def password_url(user: User) -> str:
    return f"/store/staff/{user.pk}/password/"


def action_urls(user: User) -> list[str]:
    return [*post_only_urls(user), password_url(user)]


def posted(store_pk: int) -> dict[str, Any]:
    """What an action form posts: a store, and a new password that would be set if allowed."""
    return {"store": store_pk, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}


def new_account(**overrides: Any) -> dict[str, Any]:
    data = {
        "username": "nina",
        "first_name": "Nina",
        "last_name": "Martin",
        "email": "nina@shop.example",
        "password1": NEW_PASSWORD,
        "password2": NEW_PASSWORD,
    }
    data.update(overrides)
    return data


def own_change(**overrides: Any) -> dict[str, Any]:
    return {
        "old_password": PASSWORD,
        "password1": NEW_PASSWORD,
        "password2": NEW_PASSWORD,
        **overrides,
    }


def state(user: User) -> tuple[bool, set[str]]:
    user.refresh_from_db()
    return user.is_active, set(user.store_memberships.values_list("store__code", flat=True))


def assert_field_error(html: str, field: str) -> None:
    """The field's message is shown, summed up at the top, and tied to its input."""
    assert f'id="id_{field}_error"' in html
    assert 'id="error-summary"' in html
    tag = re.search(rf'<(?:input|select)[^>]*id="id_{field}"[^>]*>', html)
    assert tag is not None
    assert 'aria-invalid="true"' in tag.group(0)
    assert f"id_{field}_error" in tag.group(0)  # aria-describedby names the message


def snapshot(user: User) -> tuple[bool, set[str], str]:
    """Everything an action could change, the password hash included."""
    return (*state(user), user.password)


# --- Who may open the page ------------------------------------------------------------------------


def test_anonymous_is_sent_to_the_store_login_and_changes_nothing(
    client: Client, staff: User, shop: Store
) -> None:
    response = client.get("/store/staff/")
    assert response.status_code == 302
    assert response["Location"] == "/store/login/?next=/store/staff/"
    before = snapshot(staff)
    for url in action_urls(staff):
        assert client.post(url, posted(shop.pk)).status_code == 401, url
    assert client.get(password_url(staff))["Location"].startswith("/store/login/")
    assert client.post("/store/staff/", new_account(store=shop.pk)).status_code == 401
    assert client.get("/store/password/")["Location"].startswith("/store/login/")
    assert client.post("/store/password/", own_change()).status_code == 401
    assert snapshot(staff) == before
    assert not User.objects.filter(username="nina").exists()


def test_staff_get_403_everywhere(client: Client, staff: User, bea: User, shop: Store) -> None:
    log_in(client, staff)
    assert client.get("/store/staff/").status_code == 403
    assert client.post("/store/staff/", new_account(store=shop.pk)).status_code == 403
    before = snapshot(bea)
    assert client.get(password_url(bea)).status_code == 403
    for url in action_urls(bea):
        assert client.post(url, posted(shop.pk)).status_code == 403, url
    assert snapshot(bea) == before
    assert not User.objects.filter(username="nina").exists()
    assert "/store/staff/" not in client.get("/store/").content.decode()


def test_a_compliance_officer_gets_403(
    client: Client, make_user: Any, shop: Store, staff: User
) -> None:
    officer = make_user("carla", group=None, stores=(shop,))
    officer.groups.add(Group.objects.get(name="Compliance officer"))
    officer.is_staff = True
    officer.save()
    log_in(client, officer)
    assert client.get("/store/staff/").status_code == 403
    assert client.get("/store/password/").status_code == 403  # not a store account
    before = snapshot(staff)
    assert client.get(password_url(staff)).status_code == 403
    for url in action_urls(staff):
        assert client.post(url, posted(shop.pk)).status_code == 403, url
    assert snapshot(staff) == before


def test_the_page_is_never_cached_and_linked_from_the_home_for_managers(boss: Client) -> None:
    response = boss.get("/store/staff/")
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    home = boss.get("/store/").content.decode()
    assert 'href="/store/staff/" id="manage-staff"' in home


def test_actions_are_post_only_and_need_the_csrf_token(
    manager: User, staff: User, shop: Store
) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(manager)
    for url in post_only_urls(staff):
        assert client.get(url).status_code == 405, url
    for url in action_urls(staff):
        assert client.post(url, posted(shop.pk)).status_code == 403, url
    assert client.post("/store/staff/", new_account(store=shop.pk)).status_code == 403
    assert state(staff) == (True, {"paris-01"})
    assert staff.check_password(PASSWORD)


@pytest.mark.parametrize(("language", "title"), [("en", "Staff accounts"), ("fr", "Comptes")])
def test_the_page_speaks_french_and_english(boss: Client, language: str, title: str) -> None:
    html = boss.get("/store/staff/", HTTP_ACCEPT_LANGUAGE=language).content.decode()
    assert f'<html lang="{language}">' in html
    assert f"<h1>{title}" in html


# --- What a manager sees --------------------------------------------------------------------------


def test_the_list_shows_the_accounts_of_the_managers_stores_only(
    boss: Client, staff: User, bea: User, lea: User, make_user: Any, other_shop: Store
) -> None:
    make_user("luc", group="Store manager", stores=(other_shop,))
    html = boss.get("/store/staff/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert ">alice<" in html and ">bea<" in html and ">marc<" in html
    assert ">lea<" not in html and ">luc<" not in html
    # Bea also works in Lyon: the page says so, never which store.
    assert "Also works in another store." in html
    assert "Lyon" not in html and "lyon-01" not in html


# --- Creating an account --------------------------------------------------------------------------


def test_manager_creates_a_staff_account_that_can_only_capture(
    boss: Client, shop: Store, client: Client
) -> None:
    response = boss.post(
        "/store/staff/",
        new_account(store=shop.pk, is_staff="on", is_superuser="on", groups="1"),
    )
    assert response.status_code == 302 and response["Location"] == "/store/staff/"
    nina = User.objects.get(username="nina")
    assert (nina.is_staff, nina.is_superuser, nina.is_active) == (False, False, True)
    assert list(nina.groups.values_list("name", flat=True)) == ["Staff"]
    assert not nina.user_permissions.exists()
    assert state(nina) == (True, {"paris-01"})
    assert (nina.first_name, nina.last_name, nina.email) == ("Nina", "Martin", "nina@shop.example")
    assert nina.check_password(NEW_PASSWORD)
    assert "nina" in boss.get("/store/staff/").content.decode()  # the confirmation, then listed

    other = Client()
    assert other.post("/store/login/", {"username": "nina", "password": NEW_PASSWORD})[
        "Location"
    ] == ("/store/")
    assert other.get("/store/").status_code == 200
    assert other.get("/store/staff/").status_code == 403
    assert other.get("/store/devices/").status_code == 403


def test_manager_cannot_create_an_account_in_a_store_they_do_not_belong_to(
    boss: Client, other_shop: Store
) -> None:
    response = boss.post("/store/staff/", new_account(store=other_shop.pk))
    assert response.status_code == 400
    assert 'id="id_store_error"' in response.content.decode()
    assert not User.objects.filter(username="nina").exists()


def test_the_service_refuses_a_store_of_someone_else(manager: User, other_shop: Store) -> None:
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        store.staff_create(
            manager=manager, store=other_shop, username="nina", password=NEW_PASSWORD
        )
    assert not User.objects.filter(username="nina").exists()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"username": ""}, "username"),
        ({"username": "ALICE"}, "username"),  # taken, whatever the case
        ({"username": "no spaces!"}, "username"),
        ({"password1": "", "password2": ""}, "password1"),
        ({"password2": "something-else-42"}, "password2"),
        ({"password1": "password", "password2": "password"}, "password1"),  # too common
        ({"password1": "12345678901", "password2": "12345678901"}, "password1"),
        ({"password1": "Kp7-zrw-Qx2", "password2": "Kp7-zrw-Qx2"}, "password1"),  # 11: short
        ({"password1": "nina@shop.example", "password2": "nina@shop.example"}, "password1"),
        ({"email": "not-an-email"}, "email"),
        ({"store": ""}, "store"),
    ],
)
def test_bad_input_names_the_field_and_creates_nothing(
    boss: Client, shop: Store, staff: User, overrides: dict[str, Any], field: str
) -> None:
    response = boss.post("/store/staff/", new_account(**{"store": shop.pk, **overrides}))
    html = response.content.decode()
    assert response.status_code == 400
    assert_field_error(html, field)
    assert User.objects.count() == 2  # marc and alice
    assert 'value="nina@shop.example"' in html or field == "email"  # what was typed stays
    assert NEW_PASSWORD not in html  # never a password


# --- Stores of an account -------------------------------------------------------------------------


def test_manager_adds_and_removes_staff_in_their_own_stores(
    boss: Client, manager: User, staff: User
) -> None:
    annex = Store.objects.create(code="paris-02", name="Paris Annexe")
    StoreMembership.objects.create(user=manager, store=annex)
    assert boss.post(f"/store/staff/{staff.pk}/add-store/", {"store": annex.pk}).status_code == 302
    assert state(staff) == (True, {"paris-01", "paris-02"})
    shop = Store.objects.get(code="paris-01")
    response = boss.post(f"/store/staff/{staff.pk}/remove-store/", {"store": shop.pk})
    assert response.status_code == 302
    assert state(staff) == (True, {"paris-02"})


def test_the_last_store_of_an_account_is_never_removed(
    boss: Client, staff: User, shop: Store
) -> None:
    response = boss.post(
        f"/store/staff/{staff.pk}/remove-store/", {"store": shop.pk}, HTTP_ACCEPT_LANGUAGE="en"
    )
    assert response.status_code == 400
    assert "deactivate the account instead" in response.content.decode()
    assert state(staff) == (True, {"paris-01"})


def test_manager_cannot_add_anyone_to_a_store_they_do_not_belong_to(
    boss: Client, staff: User, other_shop: Store
) -> None:
    response = boss.post(f"/store/staff/{staff.pk}/add-store/", {"store": other_shop.pk})
    assert response.status_code == 400
    assert state(staff) == (True, {"paris-01"})


def test_manager_can_take_a_shared_account_out_of_their_store_only(
    boss: Client, bea: User, shop: Store, other_shop: Store
) -> None:
    response = boss.post(f"/store/staff/{bea.pk}/remove-store/", {"store": other_shop.pk})
    assert response.status_code == 400
    assert state(bea) == (True, {"paris-01", "lyon-01"})
    assert boss.post(f"/store/staff/{bea.pk}/remove-store/", {"store": shop.pk}).status_code == 302
    assert state(bea) == (True, {"lyon-01"})
    # Out of the manager's stores now: out of their reach too.
    assert boss.post(f"/store/staff/{bea.pk}/add-store/", {"store": shop.pk}).status_code == 404


# --- Deactivating -------------------------------------------------------------------------------


def test_a_deactivated_account_is_logged_out_and_cannot_log_in_until_reactivated(
    boss: Client, staff: User
) -> None:
    alice = Client()
    log_in(alice, staff)
    assert boss.post(f"/store/staff/{staff.pk}/deactivate/").status_code == 302
    assert state(staff) == (False, {"paris-01"})
    response = alice.get("/store/")
    assert response.status_code == 302 and response["Location"].startswith("/store/login/")
    refused = alice.post("/store/login/", {"username": "alice", "password": PASSWORD})
    assert refused.status_code == 200  # the login form again, with its error
    assert "Deactivated" in boss.get("/store/staff/", HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert boss.post(f"/store/staff/{staff.pk}/reactivate/").status_code == 302
    assert state(staff) == (True, {"paris-01"})
    log_in(alice, staff)


def test_an_account_that_also_works_elsewhere_is_not_deactivated(boss: Client, bea: User) -> None:
    response = boss.post(f"/store/staff/{bea.pk}/deactivate/", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 400
    assert "also works in another store" in response.content.decode()
    assert state(bea)[0] is True


# --- Never outside their reach ----------------------------------------------------------------


def test_manager_of_one_store_cannot_touch_the_staff_of_another(
    boss: Client, lea: User, shop: Store, other_shop: Store
) -> None:
    before = snapshot(lea)
    assert boss.get(password_url(lea)).status_code == 404
    for url in action_urls(lea):
        for store_pk in (shop.pk, other_shop.pk):
            assert boss.post(url, posted(store_pk)).status_code == 404, url
    assert snapshot(lea) == before


@pytest.mark.parametrize("kind", ["manager", "superuser", "admin", "officer", "self", "perm"])
def test_manager_cannot_touch_managers_admins_or_themselves(
    boss: Client, manager: User, make_user: Any, shop: Store, kind: str
) -> None:
    from django.contrib.auth.models import Permission

    if kind == "self":
        target = manager
    elif kind == "manager":
        target = make_user("mia", group="Store manager", stores=(shop,))
    elif kind == "officer":
        target = make_user("carla", group=None, stores=(shop,))
        target.groups.add(Group.objects.get(name="Compliance officer"))
    else:
        target = make_user("sam", stores=(shop,))
        if kind == "superuser":
            target.is_superuser = True
        if kind == "admin":
            target.is_staff = True
        if kind == "perm":
            target.user_permissions.add(Permission.objects.get(codename="manage_devices"))
        target.save()
    annex = Store.objects.create(code="paris-02", name="Paris Annexe")
    StoreMembership.objects.create(user=manager, store=annex)
    before = snapshot(target)
    assert boss.get(password_url(target)).status_code == 404
    for url in action_urls(target):
        assert boss.post(url, posted(annex.pk)).status_code == 404, url
    assert snapshot(target) == before
    html = boss.get("/store/staff/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Managed by an administrator." in html
    assert f"/store/staff/{target.pk}/" not in html  # no action offered


def test_services_check_again_whatever_the_view(manager: User, lea: User, shop: Store) -> None:
    from django.core.exceptions import ValidationError

    for call in (
        lambda: store.staff_store_add(manager=manager, user=lea, store=shop),
        lambda: store.staff_store_remove(manager=manager, user=lea, store=shop),
        lambda: store.staff_set_active(manager=manager, user=lea, active=False),
        lambda: store.staff_password_set(manager=manager, user=lea, password=NEW_PASSWORD),
    ):
        with pytest.raises(ValidationError):
            call()
    assert state(lea) == (True, {"lyon-01"})
    assert lea.check_password(PASSWORD)
    assert not AccessLog.objects.exists()


# --- A new password, set by the manager ---------------------------------------------------------


def test_manager_sets_a_new_password_and_the_staff_member_is_logged_out_everywhere(
    boss: Client, staff: User
) -> None:
    alice = Client()
    log_in(alice, staff)
    listing = boss.get("/store/staff/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert f'href="{password_url(staff)}"' in listing
    page = boss.get(password_url(staff), HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200
    assert "no-store" in page["Cache-Control"]
    html = page.content.decode()
    assert "<h1>New password for alice</h1>" in html
    assert '<label for="id_password1">New password</label>' in html
    assert '<label for="id_password2">New password, again</label>' in html
    assert 'aria-describedby="id_password1_helptext"' in html  # the rules, read with the input

    response = boss.post(
        password_url(staff),
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert response.status_code == 302 and response["Location"] == "/store/staff/"
    staff.refresh_from_db()
    assert staff.check_password(NEW_PASSWORD)
    # Her session on the tablet has ended; the old password no longer opens one, the new one does.
    response = alice.get("/store/")
    assert response.status_code == 302 and response["Location"].startswith("/store/login/")
    old = Client().post("/store/login/", {"username": "alice", "password": PASSWORD})
    assert old.status_code == 200
    new = Client().post("/store/login/", {"username": "alice", "password": NEW_PASSWORD})
    assert new.status_code == 302
    # The manager is still logged in, and told.
    listing = boss.get("/store/staff/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "A new password was set for “alice”" in listing
    assert NEW_PASSWORD not in listing


BAD_PASSWORDS = [
    ({"password1": "", "password2": ""}, "password1"),
    ({"password2": "something-else-42"}, "password2"),
    ({"password1": "password", "password2": "password"}, "password1"),  # too common
    ({"password1": "short-1", "password2": "short-1"}, "password1"),  # too short
    ({"password1": "48213907561", "password2": "48213907561"}, "password1"),  # digits only
    ({"password1": "alice1234", "password2": "alice1234"}, "password1"),  # like the username
]


@pytest.mark.parametrize("who", ["manager", "themselves"])
@pytest.mark.parametrize(("overrides", "field"), BAD_PASSWORDS)
def test_a_new_password_passes_the_password_validators(
    boss: Client, staff: User, who: str, overrides: dict[str, Any], field: str
) -> None:
    if who == "manager":
        client, url, data = boss, password_url(staff), posted(0)
    else:
        client, url, data = Client(), "/store/password/", own_change()
        log_in(client, staff)
    response = client.post(url, {**data, **overrides})
    assert response.status_code == 400
    html = response.content.decode()
    assert_field_error(html, field)
    assert NEW_PASSWORD not in html
    # What was typed is never sent back.
    inputs = re.findall(r'<input type="password"[^>]*>', html)
    assert len(inputs) >= 2 and not [tag for tag in inputs if "value=" in tag]
    assert staff.check_password(PASSWORD)
    assert not AccessLog.objects.exists()


def test_a_shared_account_gets_a_new_password_from_an_administrator_only(
    boss: Client, bea: User
) -> None:
    listing = boss.get("/store/staff/").content.decode()
    assert password_url(bea) not in listing
    response = boss.post(password_url(bea), posted(0), HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 400
    assert "an administrator sets its password" in response.content.decode()
    assert bea.check_password(PASSWORD)
    assert not AccessLog.objects.exists()


@pytest.mark.parametrize(("language", "label"), [("en", "New password"), ("fr", "Nouveau")])
def test_the_password_pages_speak_french_and_english(
    boss: Client, staff: User, language: str, label: str
) -> None:
    for url in (password_url(staff), "/store/password/"):
        html = boss.get(url, HTTP_ACCEPT_LANGUAGE=language).content.decode()
        assert f'<html lang="{language}">' in html
        assert f'<label for="id_password1">{label}' in html


# --- Their own password -------------------------------------------------------------------------


def test_staff_change_their_own_password_and_stay_logged_in_on_this_device_only(
    client: Client, staff: User
) -> None:
    log_in(client, staff)
    elsewhere = Client()
    log_in(elsewhere, staff)
    home = client.get("/store/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'href="/store/password/"' in home
    page = client.get("/store/password/", HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200
    assert "no-store" in page["Cache-Control"]
    html = page.content.decode()
    assert '<label for="id_old_password">Current password</label>' in html
    assert 'autocomplete="current-password"' in html

    response = client.post("/store/password/", own_change(), HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 302 and response["Location"] == "/store/"
    staff.refresh_from_db()
    assert staff.check_password(NEW_PASSWORD)
    home = client.get("/store/", HTTP_ACCEPT_LANGUAGE="en")
    assert home.status_code == 200  # update_session_auth_hash: this session goes on
    assert "Your password was changed." in home.content.decode()
    response = elsewhere.get("/store/")
    assert response.status_code == 302 and response["Location"].startswith("/store/login/")


def test_a_manager_changes_their_own_password_too(boss: Client, manager: User) -> None:
    assert boss.post("/store/password/", own_change()).status_code == 302
    manager.refresh_from_db()
    assert manager.check_password(NEW_PASSWORD)
    assert boss.get("/store/staff/").status_code == 200


def test_a_wrong_current_password_changes_nothing(client: Client, staff: User) -> None:
    log_in(client, staff)
    response = client.post(
        "/store/password/", own_change(old_password="not-my-password-3"), HTTP_ACCEPT_LANGUAGE="en"
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert_field_error(html, "old_password")
    assert "This is not your current password." in html
    assert staff.check_password(PASSWORD)
    assert client.get("/store/").status_code == 200  # still logged in
    assert not AccessLog.objects.exists()


def test_guessing_the_current_password_is_cut_short(client: Client, staff: User) -> None:
    log_in(client, staff)
    for _attempt in range(store.PASSWORD_ATTEMPTS):
        wrong = own_change(old_password="a-guess-that-fails-1")
        assert client.post("/store/password/", wrong).status_code == 400
    response = client.post("/store/password/", own_change(), HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 429
    assert "Too many attempts" in response.content.decode()
    assert staff.check_password(PASSWORD)
    assert not AccessLog.objects.exists()


# --- The compliance access log --------------------------------------------------------------------


def test_every_staff_change_is_in_the_compliance_access_log(
    boss: Client, manager: User, shop: Store
) -> None:
    annex = Store.objects.create(code="paris-02", name="Paris Annexe")
    StoreMembership.objects.create(user=manager, store=annex)
    assert boss.post("/store/staff/", new_account(store=shop.pk)).status_code == 302
    nina = User.objects.get(username="nina")
    for url, data in [
        (f"/store/staff/{nina.pk}/add-store/", {"store": annex.pk}),
        (f"/store/staff/{nina.pk}/remove-store/", {"store": shop.pk}),
        (f"/store/staff/{nina.pk}/deactivate/", {}),
        (f"/store/staff/{nina.pk}/reactivate/", {}),
        (password_url(nina), {"password1": OTHER_PASSWORD, "password2": OTHER_PASSWORD}),
    ]:
        assert boss.post(url, data).status_code == 302, url

    rows = list(AccessLog.objects.order_by("id"))
    assert [(r.action, r.user, r.username, r.contact) for r in rows] == [
        (action, manager, "marc", None)
        for action in (
            "staff_create",
            "staff_store_add",
            "staff_store_remove",
            "staff_deactivate",
            "staff_reactivate",
            "staff_password_set",
        )
    ]
    account = f"account: nina (#{nina.pk})"
    assert all(r.detail.startswith(account) for r in rows)
    stores = [r.detail.removeprefix(account) for r in rows]
    assert stores == [
        "; store: Paris Rivoli (paris-01)",
        "; store: Paris Annexe (paris-02)",
        "; store: Paris Rivoli (paris-01)",
        "; store: Paris Annexe (paris-02)",
        "; store: Paris Annexe (paris-02)",
        "; store: Paris Annexe (paris-02)",
    ]
    assert not any(p in r.detail for r in rows for p in (NEW_PASSWORD, OTHER_PASSWORD))


@pytest.mark.parametrize("who", ["staff", "manager"])
def test_changing_ones_own_password_is_in_the_compliance_access_log(
    client: Client, who: str, request: pytest.FixtureRequest, shop: Store
) -> None:
    user = request.getfixturevalue(who)
    StoreMembership.objects.create(
        user=user, store=Store.objects.create(code="paris-02", name="Paris Annexe")
    )
    log_in(client, user)
    assert client.post("/store/password/", own_change()).status_code == 302
    row = AccessLog.objects.get()
    assert (row.action, row.user, row.username, row.contact) == (
        "staff_password_change",
        user,
        user.get_username(),
        None,
    )
    assert row.detail == (
        f"account: {user.get_username()} (#{user.pk}); "
        "store: Paris Annexe (paris-02), Paris Rivoli (paris-01)"
    )
    assert NEW_PASSWORD not in row.detail and PASSWORD not in row.detail


def test_the_service_logs_the_change_and_not_a_refused_one(staff: User) -> None:
    with pytest.raises(ValidationError):
        store.staff_password_change(
            user=staff, old_password="not-my-password-3", password=NEW_PASSWORD
        )
    with pytest.raises(ValidationError):
        store.staff_password_change(user=staff, old_password=PASSWORD, password="password")
    assert not AccessLog.objects.exists()
    store.staff_password_change(user=staff, old_password=PASSWORD, password=NEW_PASSWORD)
    row = AccessLog.objects.get()
    assert (row.action, row.user) == ("staff_password_change", staff)
    assert row.detail == f"account: alice (#{staff.pk}); store: Paris Rivoli (paris-01)"


def test_refused_changes_and_changes_that_change_nothing_are_not_logged(
    boss: Client, staff: User, bea: User, lea: User, shop: Store
) -> None:
    boss.post(f"/store/staff/{bea.pk}/deactivate/")  # also works in Lyon: refused
    boss.post(f"/store/staff/{lea.pk}/deactivate/")  # not in the manager's stores: a 404
    boss.post(f"/store/staff/{staff.pk}/remove-store/", {"store": shop.pk})  # her only store
    boss.post(f"/store/staff/{staff.pk}/add-store/", {"store": shop.pk})  # already there
    boss.post(f"/store/staff/{staff.pk}/reactivate/")  # already active
    boss.post("/store/staff/", new_account(store=shop.pk, password2="mismatch-123"))
    assert not AccessLog.objects.exists()


def test_a_compliance_officer_reads_the_staff_changes_in_the_admin(
    boss: Client, staff: User, make_user: Any
) -> None:
    assert boss.post(f"/store/staff/{staff.pk}/deactivate/").status_code == 302
    officer = make_user("carla", group=None)
    officer.groups.add(Group.objects.get(name="Compliance officer"))
    officer.is_staff = True
    officer.save()
    admin = Client()
    verified_login(admin, officer)
    response = admin.get(reverse("admin:consents_accesslog_changelist"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "staff_deactivate" in html
    assert f"account: alice (#{staff.pk}); store: Paris Rivoli (paris-01)" in html
    row = AccessLog.objects.get()
    assert (row.user, row.action) == (User.objects.get(username="marc"), "staff_deactivate")
