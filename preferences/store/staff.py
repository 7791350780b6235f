"""Staff accounts, managed by the store managers of their stores.

A store manager creates plain staff accounts in their own stores, moves them between those
stores, deactivates them and sets a forgotten password; anything beyond (an account with admin
access, or one that also works in a store the manager does not manage) is for an administrator.
Every change is written to the compliance access log, never a password.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _

from consents import services
from consents.models import Store
from preferences.models import StoreMembership
from preferences.store.devices import is_member, stores_of

STAFF_GROUP = "Staff"


@dataclass(frozen=True)
class StaffRow:
    """One account as a store manager sees it: only the stores they manage themselves."""

    user: Any
    stores: list[Store]
    manageable: bool
    elsewhere: bool  # also works in a store this manager does not manage (not named)
    addable: list[Store]


def manageable_staff(manager: AbstractBaseUser) -> QuerySet[Any]:
    """The accounts a store manager may act on: plain staff accounts of one of their stores.

    Never the manager themselves, a superuser, an account with admin access (``is_staff``), one in
    any group but "Staff", or one holding a permission of its own: those are for an administrator.
    """
    User = get_user_model()
    return (
        User.objects.filter(store_memberships__store__memberships__user=manager)
        .exclude(pk=manager.pk)
        .filter(is_superuser=False, is_staff=False)
        .exclude(groups__in=Group.objects.exclude(name=STAFF_GROUP))
        .exclude(user_permissions__isnull=False)
        .distinct()
    )


def staff_rows(manager: AbstractBaseUser) -> list[StaffRow]:
    mine = stores_of(manager)
    ids = {s.pk for s in mine}
    manageable = set(manageable_staff(manager).values_list("pk", flat=True))
    memberships: dict[int, list[int]] = {}
    users = (
        get_user_model()
        .objects.filter(store_memberships__store__in=mine)
        .distinct()
        .order_by("username")
    )
    for user_id, store_id in StoreMembership.objects.filter(user__in=users).values_list(
        "user_id", "store_id"
    ):
        memberships.setdefault(user_id, []).append(store_id)
    rows = []
    for user in users:
        theirs = set(memberships.get(user.pk, []))
        rows.append(
            StaffRow(
                user=user,
                stores=[s for s in mine if s.pk in theirs],
                manageable=user.pk in manageable,
                elsewhere=bool(theirs - ids),
                addable=[s for s in mine if s.pk not in theirs],
            )
        )
    return rows


def _check_manages(manager: AbstractBaseUser, user: AbstractBaseUser) -> None:
    if not manageable_staff(manager).filter(pk=user.pk).exists():
        raise ValidationError({"user": _("You do not manage this account.")})


def _check_store(manager: AbstractBaseUser, store: Store) -> None:
    if not is_member(manager, store):
        raise ValidationError({"store": _("You do not belong to this store.")})


def _only_in_stores_of(manager: AbstractBaseUser, user: AbstractBaseUser) -> bool:
    return not (
        StoreMembership.objects.filter(user=user).exclude(store__memberships__user=manager).exists()
    )


def _locked_if_theirs_alone(manager: AbstractBaseUser, user: AbstractBaseUser, refusal: Any) -> Any:
    """The account, locked for a change only its own manager makes (deactivation, a new password):
    one this manager manages, that works in none but their stores; else ``refusal``."""
    _check_manages(manager, user)
    locked = get_user_model().objects.select_for_update().get(pk=user.pk)
    if not _only_in_stores_of(manager, locked):
        raise ValidationError({"user": refusal})
    return locked


@transaction.atomic
def staff_create(
    *,
    manager: AbstractBaseUser,
    store: Store,
    username: str,
    password: str,
    first_name: str = "",
    last_name: str = "",
    email: str = "",
) -> Any:
    """A staff account in one of the manager's stores: the "Staff" group, no admin access, the
    initial password chosen by the manager (checked by the password validators)."""
    _check_store(manager, store)
    User = get_user_model()
    username = username.strip()
    if not username:
        raise ValidationError({"username": _("This field is required.")})
    try:
        User.username_validator(username)
    except ValidationError as exc:
        raise ValidationError({"username": exc.messages}) from None
    # Told apart from existing names case-insensitively: "Alice" and "alice" would be confusing.
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationError({"username": _("This username is already taken.")})
    email = User.objects.normalize_email(email.strip()) if email.strip() else ""
    user = User(
        username=username,
        first_name=" ".join(first_name.split())[:150],
        last_name=" ".join(last_name.split())[:150],
        email=email,
        is_staff=False,
        is_superuser=False,
        is_active=True,
    )
    try:
        validate_password(password, user=user)
    except ValidationError as exc:
        raise ValidationError({"password": exc.messages}) from None
    user.set_password(password)
    try:
        with transaction.atomic():
            user.save(force_insert=True)
    except IntegrityError:
        raise ValidationError({"username": _("This username is already taken.")}) from None
    user.groups.add(Group.objects.get(name=STAFF_GROUP))
    StoreMembership.objects.create(user=user, store=store)
    _log(manager, "staff_create", user, [store])
    return user


@transaction.atomic
def staff_store_add(*, manager: AbstractBaseUser, user: AbstractBaseUser, store: Store) -> None:
    _check_manages(manager, user)
    _check_store(manager, store)
    _membership, created = StoreMembership.objects.get_or_create(user=user, store=store)
    if created:
        _log(manager, "staff_store_add", user, [store])


@transaction.atomic
def staff_store_remove(*, manager: AbstractBaseUser, user: AbstractBaseUser, store: Store) -> None:
    """Out of one of the manager's stores. Never out of the last one: an account in no store
    would be nobody's to manage; deactivate it instead."""
    _check_manages(manager, user)
    _check_store(manager, store)
    # Serialise changes to this account's stores (two managers, two tabs).
    get_user_model().objects.select_for_update().filter(pk=user.pk).first()
    memberships = StoreMembership.objects.filter(user=user)
    if not memberships.exclude(store=store).exists():
        raise ValidationError(
            {"store": _("This is the account’s only store: deactivate the account instead.")}
        )
    deleted, _rows = memberships.filter(store=store).delete()
    if deleted:
        _log(manager, "staff_store_remove", user, [store])


@transaction.atomic
def staff_set_active(*, manager: AbstractBaseUser, user: AbstractBaseUser, active: bool) -> Any:
    """Deactivate (the account can no longer log in; its sessions end) or reactivate. Only for
    an account that works in none but the manager's stores."""
    locked = _locked_if_theirs_alone(
        manager,
        user,
        refusal=_("This account also works in another store: remove it from yours instead."),
    )
    if locked.is_active != active:
        locked.is_active = active
        locked.save(update_fields=["is_active"])
        _log(
            manager, "staff_reactivate" if active else "staff_deactivate", locked, stores_of(locked)
        )
    return locked


@transaction.atomic
def staff_password_set(*, manager: AbstractBaseUser, user: AbstractBaseUser, password: str) -> Any:
    """A new password for a staff member who forgot theirs, checked by the password validators.

    The same reach as deactivation: an account that also works in a store this manager does not
    manage is not theirs to take over. Every session of the account ends: the session keeps a
    hash of the password, which no longer matches."""
    locked = _locked_if_theirs_alone(
        manager,
        user,
        refusal=_("This account also works in another store: an administrator sets its password."),
    )
    _set_password(locked, password)
    _log(manager, "staff_password_set", locked, stores_of(locked))
    return locked


@transaction.atomic
def staff_password_change(*, user: AbstractBaseUser, old_password: str, password: str) -> Any:
    """A staff member's own new password, given the current one. The caller keeps its own
    session (``update_session_auth_hash``); the account's other sessions end.

    In the compliance access log like a manager's change, by the account itself; a refused
    change (wrong current password, a password the validators refuse) is not."""
    locked = get_user_model().objects.select_for_update().get(pk=user.pk)
    if not locked.check_password(old_password):
        raise ValidationError({"old_password": _("This is not your current password.")})
    _set_password(locked, password)
    _log(locked, "staff_password_change", locked, stores_of(locked))
    return locked


PASSWORD_RATE_SCOPE = "store-password"
PASSWORD_ATTEMPTS = 5  # per account, every 15 minutes


def password_change_allowed(user: AbstractBaseUser) -> bool:
    """A session left open on a shared tablet must not become a way to guess the password."""
    from preferences import ratelimit

    return ratelimit.allow(
        PASSWORD_RATE_SCOPE, f"user:{user.pk}", limit=PASSWORD_ATTEMPTS, window_seconds=900
    )


def _set_password(user: Any, password: str) -> None:
    try:
        validate_password(password, user=user)
    except ValidationError as exc:
        raise ValidationError({"password": exc.messages}) from None
    user.set_password(password)
    user.save(update_fields=["password"])


def _log(manager: AbstractBaseUser, action: str, user: Any, stores: Sequence[Store]) -> None:
    """In the compliance access log: who changed which account, in which of their stores.
    Never a password."""
    where = ", ".join(f"{s.name} ({s.code})" for s in stores) or "-"
    detail = f"account: {user.get_username()} (#{user.pk}); store: {where}"
    services.access_log(user=manager, action=action, contact=None, detail=detail)
