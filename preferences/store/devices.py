"""The stores a staff member works in, and the tablets enrolled for them.

A tablet is a browser enrolled by a manager: it carries a signed cookie (``consents.links``,
scope "device") naming the device and its secret, and stops working the moment it is revoked.
"""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.crypto import constant_time_compare

from consents import clock, links
from consents.models import Store
from preferences.models import Device, StoreMembership

DEVICE_COOKIE = "assent_device"
# Signed like every other credential we hand out (``consents.links``, scope "device").
DEVICE_COOKIE_MAX_AGE = int(links.DEVICE_TTL.total_seconds())


def stores_of(user: AbstractBaseUser) -> list[Store]:
    return list(Store.objects.filter(memberships__user=user).order_by("name"))


def is_member(user: AbstractBaseUser, store: Store) -> bool:
    return StoreMembership.objects.filter(user=user, store=store).exists()


def member_required(user: AbstractBaseUser, store: Store) -> None:
    """Refuse (a field error on ``store``) what a staff member does for a store not theirs."""
    if not is_member(user, store):
        raise ValidationError({"store": "You do not belong to this store."})


def staff_actor(user: AbstractBaseUser) -> str:
    return f"staff:{user.get_username()}"


@transaction.atomic
def device_enrol(*, store: Store, name: str, enrolled_by: AbstractBaseUser) -> Device:
    name = " ".join(name.split())[:100]
    if not name:
        raise ValidationError({"name": "This field is required."})
    member_required(enrolled_by, store)
    return Device.objects.create(
        store=store, name=name, enrolled_by=enrolled_by, enrolled_at=clock.now()
    )


def device_required(device: Device, store: Store) -> None:
    """Refuse a capture from a tablet revoked, or enrolled for another store."""
    if device.revoked_at is not None or device.store_id != store.pk:
        raise ValidationError({"device": "This tablet is not enrolled for this store."})


@transaction.atomic
def device_revoke(*, device: Device) -> Device:
    locked = Device.objects.select_for_update().get(pk=device.pk)
    if locked.revoked_at is None:
        locked.revoked_at = clock.now()
        locked.save(update_fields=["revoked_at"])
    return locked


def device_cookie_value(device: Device) -> str:
    return links.make("device", d=device.pk, s=device.secret)


def device_from_cookie(value: str | None) -> Device | None:
    """The enrolled, unrevoked device a cookie names, or None."""
    if not value:
        return None
    try:
        payload = links.read("device", value).payload
    except links.LinkError:
        return None
    if not isinstance(payload.get("d"), int):
        return None
    device = Device.objects.select_related("store").filter(pk=payload["d"]).first()
    if device is None or device.revoked_at is not None:
        return None
    if not constant_time_compare(device.secret, str(payload.get("s", ""))):
        return None
    return device
