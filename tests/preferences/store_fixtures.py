"""Fixtures for the store tablet and phone capture tests: a store, its staff, an enrolled tablet."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.test import Client

from consents import services
from consents.models import Category, Store
from preferences import store
from preferences.models import Device, StoreMembership

# The fixtures, for ``from tests.preferences.store_fixtures import *`` in the test modules.
__all__ = ["make_user", "manager", "other_shop", "shop", "sofas", "staff", "staff_client", "tablet"]

PASSWORD = "a-long-test-password-42"


GROUP_PERMISSIONS = {
    "Staff": ["capture_consent"],
    "Store manager": ["capture_consent", "manage_devices", "manage_staff"],
}


def store_group(name: str) -> Group:
    """The group the data migration made; made again after a transactional test's flush."""
    group, created = Group.objects.get_or_create(name=name)
    if created:
        group.permissions.add(
            *Permission.objects.filter(
                content_type__app_label="preferences", codename__in=GROUP_PERMISSIONS[name]
            )
        )
    return group


@pytest.fixture
def shop(db: Any) -> Store:
    return Store.objects.create(code="paris-01", name="Paris Rivoli", address="75 rue de Rivoli")


@pytest.fixture
def other_shop(db: Any) -> Store:
    return Store.objects.create(code="lyon-01", name="Lyon Part-Dieu")


@pytest.fixture
def sofas(db: Any) -> Category:
    return services.category_set(slug="sofas", family="furniture", name="Sofas")


@pytest.fixture
def make_user(db: Any, settings: Any) -> Callable[..., User]:
    # Logins hash passwords: a fast hasher keeps these tests quick (2 shared cores).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

    def make(username: str, *, group: str | None = "Staff", stores: tuple[Store, ...] = ()) -> User:
        user = User.objects.create_user(username=username, password=PASSWORD)
        if group:
            user.groups.add(store_group(group))
        for s in stores:
            StoreMembership.objects.create(user=user, store=s)
        return user

    return make


@pytest.fixture
def staff(make_user: Callable[..., User], shop: Store) -> User:
    return make_user("alice", stores=(shop,))


@pytest.fixture
def manager(make_user: Callable[..., User], shop: Store) -> User:
    return make_user("marc", group="Store manager", stores=(shop,))


@pytest.fixture
def tablet(shop: Store, manager: User) -> Device:
    return store.device_enrol(store=shop, name="Till 1", enrolled_by=manager)


def log_in(client: Client, user: User) -> None:
    response = client.post("/store/login/", {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302, response.content


@pytest.fixture
def staff_client(client: Client, staff: User, tablet: Device) -> Client:
    """Alice, logged in on the enrolled tablet of her store."""
    client.cookies[store.DEVICE_COOKIE] = store.device_cookie_value(tablet)
    log_in(client, staff)
    return client


def capture_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "key": "k" * 32,
        "language": "fr",
        "email": "claire@example.fr",
        "phone": "",
        "first_name": "Claire",
        "choice": ["newsletter:email"],
        "confirm": "here",
    }
    data.update(overrides)
    return data
