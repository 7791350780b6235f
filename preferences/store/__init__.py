"""The store: staff on shop tablets and agents on the phone record a customer's consent.

The room's modules, by concern:

- ``devices``: the stores a staff member works in, and the tablets enrolled for them;
- ``keys``: the key each capture form carries, so that a retry records nothing twice;
- ``owners``: the contacts that own the addresses typed, who receive the facts;
- ``services``: the captures themselves (tablet, purchase, phone);
- ``staff``: staff accounts, managed by the store managers of their stores;
- ``forms``, ``views`` (a package: access, tablet, purchase, phone, management) and ``urls``:
  the pages under /store/.

What the tests of the tablet and the phone use is named here (the device cookie, the captures and
their outcomes), so that ``from preferences import store`` reads as one room; code, inside the
room and out, imports the module that defines each name.
"""

from __future__ import annotations

from preferences.store.devices import (
    DEVICE_COOKIE,
    device_cookie_value,
    device_enrol,
    device_from_cookie,
    device_revoke,
)
from preferences.store.keys import CaptureKeyReused
from preferences.store.services import CaptureOutcome, phone_capture, store_capture

__all__ = [
    "DEVICE_COOKIE",
    "CaptureKeyReused",
    "CaptureOutcome",
    "device_cookie_value",
    "device_enrol",
    "device_from_cookie",
    "device_revoke",
    "phone_capture",
    "store_capture",
]
