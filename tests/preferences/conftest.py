"""Fixtures for the public pages' tests (sign-up, confirmation, unsubscribe, links).

None is autouse: the worker and webhook tests in this folder run their own way.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core import mail
from django.test import Client

from config.celery import app as celery_app
from consents import services
from consents.models import Contact, Topic
from tests.preferences.center_fixtures import open_session
from tests.preferences.pages import signup_data


@pytest.fixture
def pages(settings: Any) -> Iterator[None]:
    """A fresh rate-limit cache, mail kept in ``mail.outbox`` and tasks run in-process, even
    when REDIS_URL is set (CI's second run): these tests are about pages, not the broker."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"pages-{uuid.uuid4()}",
        }
    }
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox = []
    eager = celery_app.conf["task_always_eager"]
    celery_app.conf.task_always_eager = True
    try:
        yield
    finally:
        celery_app.conf["task_always_eager"] = eager


@pytest.fixture
def site(pages: None, settings: Any, tmp_path: Path, live_server: Any) -> None:
    """The embedded default for browser tests: mail written to files and shown at /dev/mail/."""
    settings.DEBUG = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = tmp_path
    settings.SITE_URL = live_server.url


@pytest.fixture
def topics(make_topic: Callable[..., Topic]) -> dict[str, Topic]:
    """Two topics with published notices in French and English; one offers SMS and push."""
    newsletter = make_topic(
        "newsletter",
        purpose="newsletter",
        channels=["email"],
        name_fr="La lettre d'information",
        name_en="The newsletter",
    )
    promotions = make_topic(
        "promotions",
        channels=["email", "sms", "push"],
        name_fr="Bons plans",
        name_en="Deals",
    )
    for topic in (newsletter, promotions):
        services.notice_publish(
            topic=topic, language="fr", text=f"J'accepte de recevoir {topic.name_fr}."
        )
        services.notice_publish(
            topic=topic, language="en", text=f"I agree to receive {topic.name_en}."
        )
    return {"newsletter": newsletter, "promotions": promotions}


@pytest.fixture
def sign_up(client: Client, django_capture_on_commit_callbacks: Any) -> Callable[..., Any]:
    """POST the sign-up form, running the outbox's on-commit sends."""

    def post(path: str = "/subscribe/", client: Client = client, **overrides: Any) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(
                path,
                signup_data(**overrides),
                REMOTE_ADDR="203.0.113.7",
                HTTP_USER_AGENT="Mozilla/5.0 (test)",
            )

    return post


@pytest.fixture
def marie(make_contact: Any, web_proof: services.Proof) -> Contact:
    """Subscribed to the newsletter by email (modules that need someone else define their own)."""
    contact = make_contact(email="marie@example.fr")
    services.consent_grant(contact=contact, topic="newsletter", channel="email", proof=web_proof)
    return contact


@pytest.fixture
def opened(client: Client, marie: Contact) -> Client:
    """A browser in which Marie opened her preference link."""
    open_session(client, marie)
    return client
