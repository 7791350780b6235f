from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from consents import services
from consents.models import Contact, Topic

REQUIRE_SERVICES = os.environ.get("ASSENT_REQUIRE_SERVICES") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    on_postgres = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    for item in items:
        if "postgres" in item.keywords and not on_postgres:
            item.add_marker(pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL"))
        if "redis" in item.keywords and not settings.REDIS_URL:
            item.add_marker(pytest.mark.skip(reason="needs Redis: set REDIS_URL"))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # In CI's run against the real services, a skipped test is a test that did not run.
    if not REQUIRE_SERVICES:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        reporter.write_line(
            f"ASSENT_REQUIRE_SERVICES=1 and {len(skipped)} test(s) were skipped: failing the run."
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def at(text: str) -> datetime:
    """A UTC instant from a short ISO string, e.g. at("2026-01-10T10:00")."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def make_topic(db: Any) -> Callable[..., Topic]:
    def make(slug: str = "promotions", **kwargs: Any) -> Topic:
        kwargs.setdefault("purpose", "promotion")
        kwargs.setdefault("channels", ["email", "sms", "push", "phone", "postal"])
        kwargs.setdefault("name_fr", slug.title())
        kwargs.setdefault("name_en", slug.title())
        kwargs.setdefault("frequencies", ["weekly", "monthly"])
        return services.topic_create(slug=slug, **kwargs)

    return make


@pytest.fixture
def make_contact(db: Any) -> Callable[..., Contact]:
    counter = iter(range(1, 10**6))

    def make(**kwargs: Any) -> Contact:
        if "email" not in kwargs:
            kwargs["email"] = f"person{next(counter)}@example.fr"
        kwargs.setdefault("collected_at", at("2026-01-10T10:00"))
        kwargs.setdefault("informed_at_collection", True)
        return services.contact_create(**kwargs)

    return make


@pytest.fixture
def web_proof() -> services.Proof:
    return services.Proof(
        method="web_form",
        actor="person",
        collection_point="https://shop.example/subscribe/",
        ip_address="203.0.113.7",
        user_agent="Mozilla/5.0 (test)",
    )


@pytest.fixture
def on_postgres() -> bool:
    return connection.vendor == "postgresql"
