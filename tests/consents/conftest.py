"""Admin logins with the second factor (every admin test signs in with a verified TOTP device),
and the proven consents of the person whose page the admin tests open."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from consents import services
from consents.models import Contact, Event, Notice, Store
from tests.conftest import at

PROMOTIONS_NOTICE = "J'accepte les promos."
SIGNUP_PAGE = "https://shop.example/subscribe/"


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
def fast_passwords(settings: Any) -> None:
    """Logins hash passwords, and the production hasher is slow on purpose."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


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


# --- A person with proven consents ----------------------------------------------------------------
# Plain functions, not fixtures: the admin's browser tests build their data in transactional
# tests, the others in fixtures of their own; each keeps its own person and store.


def publish_promotions_notice(topic: Any) -> Notice:
    return services.notice_publish(topic=topic, language="fr", text=PROMOTIONS_NOTICE)


def web_form_opt_in(contact: Contact, notice: Notice, **proof: Any) -> Event:
    """Promotions by email, on the sign-up page under ``notice``, on 1 February 2026."""
    return services.consent_grant(
        contact=contact,
        topic="promotions",
        channel="email",
        proof=services.Proof(
            method="web_form",
            actor="person",
            collection_point=SIGNUP_PAGE,
            notice=notice,
            ip_address="203.0.113.7",
            **proof,
        ),
        occurred_at=at("2026-02-01T10:00"),
    )


def store_tablet_opt_in(contact: Contact, notice: Notice, store: Store, **proof: Any) -> Event:
    """Promotions by SMS, on a tablet of ``store`` with staff member alice, on 2 February 2026."""
    return services.consent_grant(
        contact=contact,
        topic="promotions",
        channel="sms",
        proof=services.Proof(
            method="store_tablet", actor="staff:alice", store=store, notice=notice, **proof
        ),
        occurred_at=at("2026-02-02T10:00"),
    )


def unsubscribe_link_opt_out(contact: Contact, channel: str, when: str) -> Event:
    """Out of promotions on ``channel`` by the link in a message, at ``when`` (UTC)."""
    return services.consent_withdraw(
        contact=contact,
        topic="promotions",
        channel=channel,
        proof=services.Proof(method="unsubscribe_link", actor="person"),
        occurred_at=at(when),
    )
