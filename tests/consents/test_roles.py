"""The roles stay whole: as the migrations made them, and again after a flush or a deletion."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib.auth.models import Group

from consents import roles

pytestmark = pytest.mark.django_db


def granted() -> dict[str, set[str]]:
    return {
        group.name: {
            f"{p.content_type.app_label}.{p.codename}"
            for p in group.permissions.select_related("content_type")
        }
        for group in Group.objects.filter(name__in=list(roles.ROLES))
    }


def test_the_migrations_made_exactly_the_roles_described() -> None:
    assert granted() == {name: set(perms) for name, perms in roles.ROLES.items()}


def test_a_deleted_role_and_a_lost_permission_come_back_after_migrate() -> None:
    Group.objects.filter(name="Staff").delete()
    manager = Group.objects.get(name="Store manager")
    manager.permissions.clear()
    roles.ensure_roles(apps.get_app_config("preferences"), using="default")
    assert granted() == {name: set(perms) for name, perms in roles.ROLES.items()}


def test_other_apps_migrating_change_nothing() -> None:
    Group.objects.filter(name="Staff").delete()
    roles.ensure_roles(apps.get_app_config("consents"), using="default")
    assert not Group.objects.filter(name="Staff").exists()
