"""Admin logins with the second factor: every admin test signs in with a verified TOTP device."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice


def verified_login(client: Client, user: Any) -> TOTPDevice:
    """Log ``user`` in as the admin login does after password and TOTP code."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="test", confirmed=True)
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return device


@pytest.fixture
def admin_client(db: Any, admin_user: Any) -> Client:
    """pytest-django's superuser client, signed in with a verified second factor."""
    client = Client()
    verified_login(client, admin_user)
    return client


@pytest.fixture
def verified_client(client: Client) -> Any:
    def login(user: Any) -> Client:
        verified_login(client, user)
        return client

    return login
