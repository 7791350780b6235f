"""A new notice version: who consented under an older one, and asking them to re-confirm."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from consents import notices, services
from consents.models import ConsentState, Contact, Notice, Outbox, ReconfirmRequest, Topic


@pytest.fixture
def setup(make_topic: Callable[..., Topic], make_contact: Callable[..., Contact]) -> Any:
    topic = make_topic("promotions")
    v1 = services.notice_publish(topic=topic, language="fr", text="Version 1.")
    people = []
    for _ in range(3):
        contact = make_contact()
        services.consent_grant(
            contact=contact,
            topic="promotions",
            channel="email",
            proof=services.Proof(method="web_form", actor="person", notice=v1),
        )
        people.append(contact)
    # One consent by SMS under v1 (counted, not emailed) and one without any notice (not counted).
    services.consent_grant(
        contact=people[0],
        topic="promotions",
        channel="sms",
        proof=services.Proof(method="web_form", actor="person", notice=v1),
    )
    services.consent_grant(
        contact=make_contact(),
        topic="promotions",
        channel="email",
        proof=services.Proof(method="web_form", actor="person"),
    )
    draft = services.notice_draft_create(topic=topic, language="fr", text="Version 2.")
    v2 = services.notice_draft_publish(notice=draft)
    return v2, people


def test_a_new_version_counts_the_consents_given_under_older_ones(setup: Any) -> None:
    v2, _ = setup
    assert notices.older_consents(v2).count() == 4
    v1 = Notice.objects.get(version=1)
    assert notices.older_consents(v1).count() == 0


def test_the_campaign_is_rate_limited_and_a_click_reconfirms(
    setup: Any,
    admin_client: Client,
    django_capture_on_commit_callbacks: Any,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from consents import tasks

    v2, people = setup
    settings.RECONFIRM_MAX_PER_RUN = 2
    # The beat task sends the batches; here the test runs them, one a "minute".
    monkeypatch.setattr(tasks.reconfirm_campaigns, "apply_async", lambda **kw: None)
    page = admin_client.get(reverse("admin:consents_notice_change", args=[v2.pk]))
    assert "4 consentements actuels" in page.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("admin:consents_notice_reconfirm", args=[v2.pk]))
    assert response.status_code == 302
    assert not ReconfirmRequest.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        assert notices.campaigns_run() == 2
    assert ReconfirmRequest.objects.count() == 2  # one batch at a time
    with django_capture_on_commit_callbacks(execute=True):
        assert notices.campaigns_run() == 1
        assert notices.campaigns_run() == 0
    assert Outbox.objects.filter(template="notice-reconfirm").count() == 3
    request = ReconfirmRequest.objects.get(contact=people[1])
    link = notices.link(request).removeprefix("http://127.0.0.1:8000")
    client = Client()
    assert "Version 2." in client.get(link).content.decode()
    assert not request.contact.events.filter(notice=v2).exists()
    client.post(link)
    client.post(link)  # a second click does nothing more
    event = request.contact.events.get(notice=v2)
    assert (event.type, event.method, event.actor) == ("opt_in", "double_opt_in", "person")
    state = ConsentState.objects.get(contact=people[1], topic="promotions", channel="email")
    assert state.status == "opted_in"
    assert notices.older_consents(v2).count() == 3
