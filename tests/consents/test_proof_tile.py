"""The dashboard tile an auditor reads first: how many consents have proof, how many do not."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.test import Client

from consents import services
from consents.models import Contact
from consents.selectors import dashboards


def test_the_tile_counts_proven_and_unproven_consent(
    make_topic: Callable[..., Any], make_contact: Callable[..., Contact], admin_client: Client
) -> None:
    make_topic("newsletter")

    def grant(email: str, **proof: Any) -> Contact:
        contact = make_contact(email=email)
        services.consent_grant(
            contact=contact, topic="newsletter", channel="email", proof=services.Proof(**proof)
        )
        return contact

    grant("web@example.fr", method="web_form", actor="person", ip_address="203.0.113.1")
    grant("imported@example.fr", method="import", actor="system", reference="file abc row 2")
    grant("bare@example.fr", method="web_form", actor="person")  # valid, but nothing to show
    grant("unproven@example.fr", method="import", actor="system")  # no proof: not consent
    gone = grant("gone@example.fr", method="web_form", actor="person", ip_address="203.0.113.2")
    services.consent_withdraw(
        contact=gone,
        topic="newsletter",
        channel="email",
        proof=services.Proof(method="unsubscribe_link", actor="person"),
    )
    tile = dashboards.proof_tile()
    assert (tile.consenting, tile.proven, tile.unproven) == (3, 2, 1)
    assert tile.share == 66.7
    page = admin_client.get("/admin/dashboard/")
    assert page.status_code == 200
    text = page.content.decode()
    assert 'id="proof-tile"' in text and "2 (66,7 %)" in text  # in French
