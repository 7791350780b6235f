"""The key every capture form carries, so that a retry records nothing twice.

The key's ``Capture`` row is written first, in the capture's transaction: a retry (a lost
response, a double tap) finds it and records nothing more; the same key sent with other details
is refused. The row keeps a keyed digest of what was submitted for a day, then forgets it.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.crypto import constant_time_compare, salted_hmac

from consents import clock
from preferences.models import Capture, Device


class CaptureKeyReused(Exception):
    """This tablet and staff member already sent this form's key with other details (a form
    kept from an earlier customer): nothing was recorded for these."""


def capture_scope(kind: str, device: Device | None, user: AbstractBaseUser) -> str:
    """Where a capture key is unique: one tablet (or the phone) and one staff member. Another
    tablet or colleague that happens to send the same key records its own capture."""
    return f"{kind}:device:{device.pk if device else '-'}:user:{user.pk}"


def capture_digest(**data: Any) -> str:
    """What was submitted, keyed (it holds personal details): a retry sends the same."""
    text = json.dumps(data, sort_keys=True, default=str, ensure_ascii=False)
    return salted_hmac("assent.store.capture", text).hexdigest()


# What a capture's digest becomes once a retry can no longer come: it hashed what the person typed.
DIGEST_FORGOTTEN = "forgotten"
DIGEST_KEPT = timedelta(days=1)


def captures_forget(older_than: timedelta = DIGEST_KEPT) -> int:
    """Forget the digests of captures older than a day (the hourly purge): no retry of the same
    form comes that late, and a key sent again after that is refused, never taken as a retry."""
    return (
        Capture.objects.filter(created_at__lt=clock.now() - older_than)
        .exclude(digest__in=("", DIGEST_FORGOTTEN))
        .update(digest=DIGEST_FORGOTTEN)
    )


def claim(
    *, key: str, kind: str, device: Device | None, user: AbstractBaseUser, digest: str
) -> tuple[Capture, bool]:
    """Write the capture's key first: (the new row, True), or (the earlier one, False) when this
    tablet and staff member already sent that key with the same details (a retry). The same key
    with other details is refused (``CaptureKeyReused``): never a silent "thank you" that
    dropped the customer."""
    if not key or len(key) > 64:
        raise ValidationError({"key": "This capture has no valid key."})
    scope = capture_scope(kind, device, user)
    try:
        with transaction.atomic():
            capture = Capture.objects.create(
                key=key,
                scope=scope,
                digest=digest,
                kind=kind,
                device=device,
                user=user,
                created_at=clock.now(),
            )
            return capture, True
    except IntegrityError:
        earlier = Capture.objects.get(scope=scope, key=key)
    # Rows written before captures kept a digest cannot be compared: taken as the retry.
    if earlier.digest and not constant_time_compare(earlier.digest, digest):
        raise CaptureKeyReused
    return earlier, False
