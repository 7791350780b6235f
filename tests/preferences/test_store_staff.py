"""Store managers manage the staff accounts of their own stores, and nothing else (issue 6)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from consents.models import Store
from preferences import store
from preferences.models import StoreMembership
from tests.preferences.store_fixtures import *  # noqa: F403  (the store fixtures)
from tests.preferences.store_fixtures import PASSWORD, log_in

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pages")]

NEW_PASSWORD = "correct-horse-battery-9"


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


def action_urls(user: User) -> list[str]:
    return [
        f"/store/staff/{user.pk}/add-store/",
        f"/store/staff/{user.pk}/remove-store/",
        f"/store/staff/{user.pk}/deactivate/",
        f"/store/staff/{user.pk}/reactivate/",
    ]


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


def state(user: User) -> tuple[bool, set[str]]:
    user.refresh_from_db()
    return user.is_active, set(user.store_memberships.values_list("store__code", flat=True))


# --- Who may open the page ------------------------------------------------------------------------


def test_anonymous_is_sent_to_the_store_login_and_changes_nothing(
    client: Client, staff: User, shop: Store
) -> None:
    response = client.get("/store/staff/")
    assert response.status_code == 302
    assert response["Location"] == "/store/login/?next=/store/staff/"
    before = state(staff)
    for url in action_urls(staff):
        assert client.post(url, {"store": shop.pk}).status_code == 401, url
    assert client.post("/store/staff/", new_account(store=shop.pk)).status_code == 401
    assert state(staff) == before
    assert not User.objects.filter(username="nina").exists()


def test_staff_get_403_everywhere(client: Client, staff: User, bea: User, shop: Store) -> None:
    log_in(client, staff)
    assert client.get("/store/staff/").status_code == 403
    assert client.post("/store/staff/", new_account(store=shop.pk)).status_code == 403
    before = state(bea)
    for url in action_urls(bea):
        assert client.post(url, {"store": shop.pk}).status_code == 403, url
    assert state(bea) == before
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
    before = state(staff)
    for url in action_urls(staff):
        assert client.post(url, {"store": shop.pk}).status_code == 403, url
    assert state(staff) == before


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
    for url in action_urls(staff):
        assert client.get(url).status_code == 405, url
        assert client.post(url, {"store": shop.pk}).status_code == 403, url
    assert client.post("/store/staff/", new_account(store=shop.pk)).status_code == 403
    assert state(staff) == (True, {"paris-01"})


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
    assert f'id="id_{field}_error"' in html
    assert 'id="error-summary"' in html
    tag = re.search(rf'<(?:input|select)[^>]*id="id_{field}"[^>]*>', html)
    assert tag is not None
    assert 'aria-invalid="true"' in tag.group(0)
    assert f"id_{field}_error" in tag.group(0)  # aria-describedby names the message
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
    before = state(lea)
    for url in action_urls(lea):
        for store_pk in (shop.pk, other_shop.pk):
            assert boss.post(url, {"store": store_pk}).status_code == 404, url
    assert state(lea) == before


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
    before = state(target)
    for url in action_urls(target):
        assert boss.post(url, {"store": annex.pk}).status_code == 404, url
    assert state(target) == before
    html = boss.get("/store/staff/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Managed by an administrator." in html
    assert f"/store/staff/{target.pk}/" not in html  # no action offered


def test_services_check_again_whatever_the_view(manager: User, lea: User, shop: Store) -> None:
    from django.core.exceptions import ValidationError

    for call in (
        lambda: store.staff_store_add(manager=manager, user=lea, store=shop),
        lambda: store.staff_store_remove(manager=manager, user=lea, store=shop),
        lambda: store.staff_set_active(manager=manager, user=lea, active=False),
    ):
        with pytest.raises(ValidationError):
            call()
    assert state(lea) == (True, {"lyon-01"})
