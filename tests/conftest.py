from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, connection

from consents import services
from consents.models import Contact, Topic

REQUIRE_SERVICES = os.environ.get("ASSENT_REQUIRE_SERVICES") == "1"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "var" / "screenshots"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    on_postgres = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    for item in items:
        if "postgres" in item.keywords and not on_postgres:
            item.add_marker(pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL"))
        if "redis" in item.keywords and not settings.REDIS_URL:
            item.add_marker(pytest.mark.skip(reason="needs Redis: set REDIS_URL"))
        if "browser" in item.keywords and not Path(CHROMIUM).exists():
            item.add_marker(pytest.mark.skip(reason=f"needs Chromium at {CHROMIUM}"))


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


# On PostgreSQL the ledger, its heads and its anchors refuse TRUNCATE (migration consents.0012),
# and Django empties the tables with one TRUNCATE after each transactional test. That flush, and
# nothing else, lifts the guard, inside its own transaction: every test runs with it in place.
TRUNCATE_GUARDS = {
    "consents_event": "consents_event_no_truncate",
    "consents_chainhead": "consents_chainhead_no_truncate",
    "consents_ledgeranchor": "consents_ledgeranchor_no_truncate",
}


@pytest.fixture(scope="session", autouse=True)
def _test_flush_lifts_the_truncate_guard() -> Iterator[None]:
    if not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        yield
        return
    from django.db.backends.postgresql.operations import DatabaseOperations

    original = DatabaseOperations.sql_flush

    def sql_flush(self: Any, style: Any, tables: Any, **kwargs: Any) -> list[str]:
        statements = original(self, style, tables, **kwargs)
        guarded = [(t, g) for t, g in TRUNCATE_GUARDS.items() if t in tables]
        if not statements or not guarded:
            return statements
        return [
            *(f"ALTER TABLE {t} DISABLE TRIGGER {g};" for t, g in guarded),
            *statements,
            *(f"ALTER TABLE {t} ENABLE TRIGGER {g};" for t, g in guarded),
        ]

    DatabaseOperations.sql_flush = sql_flush  # type: ignore[method-assign]
    yield
    DatabaseOperations.sql_flush = original  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _fresh_page_cache() -> None:
    """A new catalog version per test: no preference page kept by an earlier test can match
    (CI's Redis outlives the test database, and primary keys come round again)."""
    from django.core.cache import cache

    from consents import catalogue

    cache.delete(catalogue.CATALOG_KEY)
    catalogue._untrusted.clear()
    catalogue._checked["version"] = None
    # The histories this process read (a test database's ids come round again on SQLite).
    from preferences import center

    center.HISTORIES.clear()


@pytest.fixture(autouse=True)
def _fresh_login_counters(monkeypatch: pytest.MonkeyPatch) -> None:
    """Logins are counted per client address and every test client is 127.0.0.1 (and CI's Redis
    outlives a test): each test counts its own attempts from zero."""
    from preferences import logins

    monkeypatch.setattr(logins, "SCOPE", f"login-test-{secrets.token_hex(8)}")


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


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (never a downloaded browser)."""
    # Playwright's sync API runs an event loop; Django must allow sync DB calls beside it.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


# Chromium reports each Content-Security-Policy violation on the console; the page's own
# securitypolicyviolation event is logged there too, with the directive and what it blocked.
CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (e) => console.error(
  `CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline"} ` +
  `(${e.sourceFile || document.location.href}:${e.lineNumber})`));
"""


def browser_context(browser: Any, **options: Any) -> Any:
    """A browser context that records every CSP violation of its pages (``csp_violations``)."""
    context = browser.new_context(**options)
    context.csp_violations = []
    context.add_init_script(CSP_LISTENER)

    def on_console(message: Any) -> None:
        text = message.text
        if "Content Security Policy" in text or text.startswith("CSP violation:"):
            where = message.page.url if message.page else "?"
            context.csp_violations.append(f"{where}: {text}")

    context.on("console", on_console)
    return context


def close_checking_csp(context: Any) -> None:
    """Close the context; fail if any page it showed broke the Content-Security-Policy."""
    violations = list(context.csp_violations)
    context.close()
    assert violations == [], "Content-Security-Policy violations:\n" + "\n".join(violations)


@pytest.fixture
def page(browser: Any, live_server: Any) -> Iterator[Any]:
    context = browser_context(
        browser, base_url=live_server.url, viewport={"width": 1280, "height": 900}
    )
    page = context.new_page()
    yield page
    close_checking_csp(context)


def axe_violations(page: Any) -> list[dict]:
    """Run axe-core (WCAG 2.x A and AA rules) on the page; return its violations."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(
        page,
        options={
            "runOnly": {
                "type": "tag",
                "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"],
            },
            # axe would copy the stylesheets into <style> elements of its own, which the pages'
            # Content-Security-Policy refuses (and reports as a violation of the page).
            "preload": False,
        },
    )
    return results.response["violations"]


def accessible(page: Any) -> None:
    """axe-core finds nothing on the page; otherwise the rules and elements that fail."""
    violations = axe_violations(page)
    assert violations == [], [(v["id"], [n["target"] for n in v["nodes"]]) for v in violations]


@pytest.fixture
def connection_kept() -> Iterator[None]:
    """For requests made through the WSGI application itself, as Django's test client does: the
    test's connection (and its transaction) outlives each request, instead of being closed when
    the request finishes."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
