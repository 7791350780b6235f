"""Who may do what on the store side, and what staff can never see (the permission matrix)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import NoReverseMatch, reverse

from consents import services
from consents.models import Event
from preferences import store
from preferences.models import Device
from tests.preferences.store_fixtures import *  # noqa: F403  (the store fixtures)
from tests.preferences.store_fixtures import log_in

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pages", "topics")]

STORE_PAGES = ["/store/", "/store/capture/", "/store/thanks/", "/store/phone/"]


def admin_pages() -> list[str]:
    """Every admin page that lists or shows data: the index and each model's list and add page."""
    pages = [reverse("admin:index")]
    for model in admin.site._registry:
        opts = model._meta
        for name in ("changelist", "add"):
            try:
                pages.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_{name}"))
            except NoReverseMatch:
                continue
    return pages


@pytest.fixture
def secret_contact(make_contact: Any) -> Any:
    contact = make_contact(email="secret.person@example.fr", first_name="Secretname")
    services.consent_grant(
        contact=contact,
        topic="newsletter",
        channel="email",
        proof=services.Proof(method="web_form", actor="person"),
    )
    return contact


def test_the_groups_exist_with_their_permissions() -> None:
    staff_perms = set(
        Group.objects.get(name="Staff").permissions.values_list("codename", flat=True)
    )
    manager_perms = set(
        Group.objects.get(name="Store manager").permissions.values_list("codename", flat=True)
    )
    assert "capture_consent" in staff_perms and "manage_devices" not in staff_perms
    assert "manage_staff" not in staff_perms
    assert {"capture_consent", "manage_devices", "manage_staff"} <= manager_perms


def test_store_pages_need_a_login(client: Client) -> None:
    for path in STORE_PAGES + ["/store/devices/", "/store/staff/"]:
        response = client.get(path)
        assert response.status_code == 302, path
        assert response["Location"].startswith("/store/login/"), path


def test_an_account_without_the_capture_permission_gets_403(
    client: Client, make_user: Any, shop: Any
) -> None:
    nobody = make_user("nora", group=None, stores=(shop,))
    log_in(client, nobody)
    for path in STORE_PAGES + ["/store/devices/", "/store/staff/"]:
        assert client.get(path).status_code == 403, path


def test_staff_cannot_manage_devices(client: Client, staff: Any, tablet: Device) -> None:
    log_in(client, staff)
    assert client.get("/store/devices/").status_code == 403
    assert client.post(f"/store/devices/{tablet.pk}/revoke/").status_code == 403
    assert client.post("/store/devices/", {"store": "1", "name": "Mine"}).status_code == 403
    tablet.refresh_from_db()
    assert tablet.revoked_at is None


def test_staff_never_reach_contacts_or_the_ledger_in_the_admin(
    client: Client, staff: Any, secret_contact: Any
) -> None:
    """Store staff accounts are signed in but have no admin access: every admin and contact
    page answers 403 and shows no data."""
    log_in(client, staff)
    for path in admin_pages():
        response = client.get(path)
        assert response.status_code == 403, path
        assert b"secret.person" not in response.content


def test_staff_flagged_is_staff_by_mistake_still_get_403_on_data_pages(
    client: Client, staff: Any, secret_contact: Any
) -> None:
    """Even an account wrongly given admin access holds only the capture permission: every
    model page of the admin answers 403 (or sends it to the admin's login), never data."""
    staff.is_staff = True
    staff.save()
    client.force_login(staff)
    for path in admin_pages()[1:]:
        response = client.get(path)
        assert response.status_code in (302, 403), (path, response.status_code)
        assert b"secret.person" not in response.content, path
        assert b"Secretname" not in response.content, path


def test_store_pages_show_no_contact_data(
    client: Client, staff: Any, tablet: Device, secret_contact: Any
) -> None:
    client.cookies[store.DEVICE_COOKIE] = store.device_cookie_value(tablet)
    log_in(client, staff)
    for path in STORE_PAGES:
        response = client.get(path)
        assert response.status_code == 200, path
        assert b"secret.person" not in response.content, path
        assert b"Secretname" not in response.content, path


def test_manager_enrols_this_browser_and_the_cookie_names_the_device(
    client: Client, manager: Any, shop: Any
) -> None:
    log_in(client, manager)
    response = client.post("/store/devices/", {"store": str(shop.pk), "name": "Till 2"})
    assert response.status_code == 302
    device = Device.objects.get(name="Till 2")
    assert device.store == shop and device.enrolled_by == manager
    cookie = client.cookies[store.DEVICE_COOKIE]
    assert cookie["httponly"]
    assert store.device_from_cookie(cookie.value) == device
    assert client.get("/store/capture/").status_code == 200

    client.post(f"/store/devices/{device.pk}/revoke/")
    device.refresh_from_db()
    assert device.revoked_at is not None
    assert store.device_from_cookie(cookie.value) is None
    assert client.get("/store/capture/").status_code == 403


def test_manager_cannot_enrol_for_a_store_they_do_not_belong_to(
    client: Client, manager: Any, other_shop: Any
) -> None:
    log_in(client, manager)
    response = client.post("/store/devices/", {"store": str(other_shop.pk), "name": "Sneaky"})
    assert response.status_code == 200  # the form says the choice is not valid
    assert not Device.objects.filter(name="Sneaky").exists()


def test_manager_cannot_revoke_another_stores_device(
    client: Client, manager: Any, make_user: Any, other_shop: Any
) -> None:
    lyon_manager = make_user("luc", group="Store manager", stores=(other_shop,))
    theirs = store.device_enrol(store=other_shop, name="Lyon", enrolled_by=lyon_manager)
    log_in(client, manager)
    assert client.post(f"/store/devices/{theirs.pk}/revoke/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None


def test_logout_is_a_post_and_ends_the_session(client: Client, staff: Any) -> None:
    log_in(client, staff)
    assert client.post("/store/logout/").status_code == 302
    assert client.get("/store/").status_code == 302
    assert not Event.objects.exists()
