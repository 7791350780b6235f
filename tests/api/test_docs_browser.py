"""The API's reference page works in a browser, from this server alone, within the site's CSP."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_docs_page_shows_every_operation_without_a_cdn(page: Any, live_server: Any) -> None:
    outside: list[str] = []
    page.on(
        "request",
        lambda r: outside.append(r.url) if not r.url.startswith(live_server.url) else None,
    )
    page.goto("/api/v1/docs/")
    page.get_by_text("/api/v1/decisions", exact=True).first.wait_for(timeout=20000)
    assert page.get_by_text("/api/v1/audiences", exact=True).count() >= 1
    assert outside == []
