"""API keys in the admin: made with scopes, shown once, revoked at once."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from api.models import ApiKey
from tests.api.conftest import problem
from tests.consents.conftest import verified_login

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(admin_user: Any) -> Client:
    """A superuser signed in with a verified second factor, as the admin requires."""
    client = Client()
    verified_login(client, admin_user)
    return client


def test_an_administrator_makes_a_key_sees_it_once_and_revokes_it(
    admin_client: Any, client: Any, make_topic: Any
) -> None:
    r = admin_client.post(
        "/admin/api/apikey/add/",
        {
            "name": "online shop",
            "scopes": ["events:write", "decisions:read"],
            "allowed_networks": "203.0.113.0/24\n2001:db8::/32",
            "rate_per_minute": "600",
        },
    )
    assert r.status_code == 200, r.content[:2000]
    raw = re.search(r'value="(ak_[^"]+)"', r.content.decode()).group(1)
    assert "no-store" in r["Cache-Control"]
    key = ApiKey.objects.get(name="online shop")
    assert key.scopes == ["events:write", "decisions:read"]
    assert key.allowed_networks == ["203.0.113.0/24", "2001:db8::/32"]
    assert raw not in admin_client.get(f"/admin/api/apikey/{key.pk}/change/").content.decode()
    ok = client.get("/api/v1/topics", HTTP_AUTHORIZATION=f"Bearer {raw}", REMOTE_ADDR="203.0.113.4")
    assert ok.status_code == 200
    admin_client.post("/admin/api/apikey/", {"action": "revoke", "_selected_action": [key.pk]})
    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None
    gone = client.get(
        "/api/v1/topics", HTTP_AUTHORIZATION=f"Bearer {raw}", REMOTE_ADDR="203.0.113.4"
    )  # noqa: E501
    problem(gone, 401, "unauthenticated")


def test_a_bad_network_is_a_field_error(admin_client: Any) -> None:
    r = admin_client.post(
        "/admin/api/apikey/add/",
        {
            "name": "crm",
            "scopes": ["contacts:read"],
            "allowed_networks": "nope",
            "rate_per_minute": "60",
        },  # noqa: E501
    )
    assert r.status_code == 200 and "is not an IP network" in r.content.decode()
    assert not ApiKey.objects.exists()
