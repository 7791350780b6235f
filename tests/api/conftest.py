"""API keys and clients for the integration API's tests."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from api import keys
from api.models import SCOPES, ApiKey

ALL_SCOPES = list(SCOPES)


class ApiClient:
    """A Django test client that sends a key and JSON."""

    def __init__(self, raw: str, key: ApiKey, **extra: Any) -> None:
        self.raw, self.key = raw, key
        self.client = Client(HTTP_AUTHORIZATION=f"Bearer {raw}", **extra)

    def get(self, path: str, **kw: Any) -> Any:
        return self.client.get(path, **kw)

    def post(self, path: str, data: Any = None, **kw: Any) -> Any:
        kw.setdefault("content_type", "application/json")
        return self.client.post(path, data, **kw)

    def patch(self, path: str, data: Any = None, **kw: Any) -> Any:
        return self.client.patch(path, data, content_type="application/json", **kw)


@pytest.fixture
def make_key(db: Any) -> Callable[..., tuple[ApiKey, str]]:
    def make(scopes: list[str] | None = None, **kw: Any) -> tuple[ApiKey, str]:
        kw.setdefault("name", f"system-{secrets.token_hex(3)}")
        return keys.key_create(scopes=scopes or ALL_SCOPES, **kw)

    return make


@pytest.fixture
def api(make_key: Callable[..., tuple[ApiKey, str]]) -> Callable[..., ApiClient]:
    def make(scopes: list[str] | None = None, **kw: Any) -> ApiClient:
        key, raw = make_key(scopes, **kw)
        return ApiClient(raw, key)

    return make


def problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    """The response is the problem ``slug`` with ``status``, as RFC 9457 says."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"] == "application/problem+json", response["Content-Type"]
    data = response.json()
    assert data["type"] == f"/api/v1/problems/{slug}", data
    assert data["status"] == status
    assert data["title"] and "detail" in data
    return data
