"""Email-service events reach the ledger through anymail's tracking webhooks (issue 3).

Payloads follow each ESP's documented shape, as anymail's own webhook tests build them; they go
through the real URLs, anymail's authentication (basic auth, Mailgun's HMAC signature) and parsing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.test import Client

from consents import clock, services
from consents.models import Contact, ContactFacts, Event
from preferences import tracking, webhooks
from tests.conftest import at

WEBHOOK_SECRET = "assent-esp:0F3x9-webhook-secret"
MAILGUN_SIGNING_KEY = "test-mailgun-webhook-signing-key"
AUTH = {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(WEBHOOK_SECRET.encode()).decode()}
NOW = at("2026-11-28T12:00")
CLICK_AT = at("2026-11-28T09:30")


@pytest.fixture(autouse=True)
def anymail_settings(settings: Any) -> None:
    settings.ANYMAIL = {
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_SIGNING_KEY,
    }


@pytest.fixture(autouse=True)
def frozen_now() -> Iterator[datetime]:
    with clock.frozen(NOW) as now:
        yield now


@pytest.fixture
def alice(make_contact: Callable[..., Contact]) -> Contact:
    return make_contact(email="alice@example.fr")


def events(contact: Contact) -> list[Event]:
    return list(Event.objects.filter(contact=contact).order_by("seq"))


# --- Mailgun (JSON webhooks, signed with the webhook signing key) ------------------------------


def mailgun_payload(
    event: str,
    recipient: str,
    when: datetime | None = CLICK_AT,
    signing_key: str = MAILGUN_SIGNING_KEY,
    **extra: Any,
) -> dict[str, Any]:
    token = secrets.token_hex(25)
    timestamp = str(int(NOW.timestamp()))
    event_data: dict[str, Any] = {
        "event": event,
        "id": secrets.token_urlsafe(12),
        "recipient": recipient,
        "log-level": "info",
        "message": {
            "headers": {
                "to": recipient,
                "message-id": "20261128093000.1.DF5966851B4BAA99@mg.example.org",
                "from": "news@example.org",
                "subject": "Nouveautés",
            }
        },
        "tags": [],
        "user-variables": {},
        **extra,
    }
    if when is not None:
        event_data["timestamp"] = when.timestamp()
    signature = hmac.new(
        signing_key.encode("ascii"), f"{timestamp}{token}".encode("ascii"), hashlib.sha256
    ).hexdigest()
    return {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": event_data,
    }


def post_mailgun(client: Client, payload: dict[str, Any], **headers: Any) -> Any:
    """Post the event, then drain the inbox into the ledger (as the worker does)."""
    response = client.post(
        "/webhooks/anymail/mailgun/tracking/",
        data=json.dumps(payload),
        content_type="application/json",
        **(AUTH | headers),
    )
    tracking.drain_all()
    return response


# --- Postmark (JSON webhooks, basic auth only) --------------------------------------------------


def postmark_bounce(recipient: str, bounce_type: str = "HardBounce", **extra: Any) -> dict:
    return {
        "RecordType": "Bounce",
        "ID": 901542550,
        "Type": bounce_type,
        "TypeCode": 1 if bounce_type == "HardBounce" else 4096,
        "ServerID": 23,
        "Name": "Hard bounce" if bounce_type == "HardBounce" else "Soft bounce",
        "MessageID": "2706ee8a-737c-4285-b032-ccd317af53ed",
        "Description": "The server was unable to deliver your message.",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": recipient,
        "From": "news@example.org",
        "BouncedAt": "2026-11-28T10:28:50.3963933+01:00",
        "DumpAvailable": True,
        "Inactive": bounce_type == "HardBounce",
        "CanActivate": True,
        "Subject": "Nouveautés",
        **extra,
    }


def postmark_click(recipient: str) -> dict[str, Any]:
    return {
        "RecordType": "Click",
        "ClickLocation": "HTML",
        "Platform": "Desktop",
        "UserAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_7_5) etc.",
        "OriginalLink": "https://shop.example/promo",
        "MessageID": "f4830d10-9c35-4f0c-bca3-3d9b459821f8",
        "ReceivedAt": "2026-11-28T09:30:11.9065619Z",
        "Tag": "welcome-email",
        "Recipient": recipient,
    }


def postmark_spam(recipient: str) -> dict[str, Any]:
    return {
        "RecordType": "SpamComplaint",
        "ID": 901542551,
        "Type": "SpamComplaint",
        "TypeCode": 512,
        "Name": "Spam complaint",
        "MessageID": "2706ee8a-737c-4285-b032-ccd317af53ed",
        "ServerID": 1234,
        "Description": "",
        "Details": "Test spam complaint details",
        "Email": recipient,
        "From": "news@example.org",
        "BouncedAt": "2026-11-28T10:28:50.3963933+01:00",
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": False,
        "Subject": "Nouveautés",
    }


def postmark_unsubscribe(recipient: str, origin: str = "Recipient") -> dict[str, Any]:
    return {
        "RecordType": "SubscriptionChange",
        "MessageID": "a4909a96-73d7-4c49-b148-a54522d3f7ac",
        "ServerID": 23,
        "MessageStream": "broadcast",
        "ChangedAt": "2026-11-28T09:17:32Z",
        "Recipient": recipient,
        "Origin": origin,
        "SuppressSending": True,
        "SuppressionReason": "ManualSuppression",
        "Tag": "newsletter",
        "Metadata": {},
    }


def post_postmark(client: Client, payload: dict[str, Any], **headers: Any) -> Any:
    """Post the event, then drain the inbox into the ledger (as the worker does)."""
    response = client.post(
        "/webhooks/anymail/postmark/tracking/",
        data=json.dumps(payload),
        content_type="application/json",
        **(AUTH | headers),
    )
    tracking.drain_all()
    return response


# --- The mapping --------------------------------------------------------------------------------


def test_mailgun_permanent_failure_records_a_hard_bounce(client: Client, alice: Contact) -> None:
    payload = mailgun_payload(
        "failed",
        "alice@example.fr",
        severity="permanent",
        reason="bounce",
        **{"delivery-status": {"code": 550, "message": "5.1.1 No such user", "description": ""}},
    )
    assert post_mailgun(client, payload).status_code == 200

    [event] = events(alice)
    assert (event.type, event.channel, event.data) == ("bounce", "email", {"hard": True})
    assert event.method == ""
    assert event.actor == "esp:Mailgun"
    assert event.collection_point == "Mailgun"
    token = payload["signature"]["token"]
    assert event.proof == (
        f"event:{token} message:<20261128093000.1.DF5966851B4BAA99@mg.example.org>"
    )
    assert event.occurred_at == CLICK_AT
    assert ContactFacts.objects.get(contact=alice).undeliverable_email is True


def test_mailgun_temporary_failure_is_a_deferral_not_a_bounce(
    client: Client, alice: Contact
) -> None:
    # Anymail reports it as "deferred": the ESP retries, and sends "bounced" if it gives up.
    payload = mailgun_payload("failed", "alice@example.fr", severity="temporary", reason="generic")
    assert post_mailgun(client, payload).status_code == 200
    assert events(alice) == []


def test_mailgun_complaint_records_a_complaint_on_email(client: Client, alice: Contact) -> None:
    assert (
        post_mailgun(client, mailgun_payload("complained", "alice@example.fr")).status_code == 200
    )
    [event] = events(alice)
    assert (event.type, event.channel, event.method) == ("complaint", "email", "")
    assert event.actor == "esp:Mailgun"


def test_mailgun_unsubscribe_records_an_opt_out_of_everything_on_email(
    client: Client, alice: Contact
) -> None:
    response = post_mailgun(client, mailgun_payload("unsubscribed", "alice@example.fr"))
    assert response.status_code == 200
    [event] = events(alice)
    assert (event.type, event.topic, event.channel) == ("opt_out", "*", "email")
    assert event.method == "unsubscribe_link"
    assert event.actor == "esp:Mailgun"
    assert alice.channel_states.get(channel="email").opted_out is True


def test_mailgun_click_extends_retention(client: Client, alice: Contact) -> None:
    before = ContactFacts.objects.get(contact=alice)
    assert before.retention_anchor == at("2026-01-10T10:00")  # collected_at

    payload = mailgun_payload("clicked", "alice@example.fr", url="https://shop.example/promo")
    assert post_mailgun(client, payload).status_code == 200

    [event] = events(alice)
    assert (event.type, event.data) == ("interaction", {"kind": "click"})
    after = ContactFacts.objects.get(contact=alice)
    assert after.retention_anchor == CLICK_AT
    assert after.expires_at == at("2029-11-28T09:30")
    assert after.expires_at > before.expires_at


def test_mailgun_open_is_recorded_but_does_not_extend_retention(
    client: Client, alice: Contact, settings: Any
) -> None:
    settings.TRACKING_OPENS_PER_PERSON = True  # a sender that collects that consent
    before = ContactFacts.objects.get(contact=alice)
    assert post_mailgun(client, mailgun_payload("opened", "alice@example.fr")).status_code == 200

    [event] = events(alice)
    assert (event.type, event.data) == ("interaction", {"kind": "open"})
    after = ContactFacts.objects.get(contact=alice)
    assert (after.retention_anchor, after.expires_at) == (
        before.retention_anchor,
        before.expires_at,
    )


def test_postmark_hard_bounce(client: Client, alice: Contact) -> None:
    assert post_postmark(client, postmark_bounce("alice@example.fr")).status_code == 200
    [event] = events(alice)
    assert (event.type, event.data) == ("bounce", {"hard": True})
    assert event.actor == "esp:Postmark"
    assert event.collection_point == "Postmark"
    assert event.proof == "event:901542550 message:2706ee8a-737c-4285-b032-ccd317af53ed"
    assert event.occurred_at == at("2026-11-28T09:28:50.396393")
    assert ContactFacts.objects.get(contact=alice).undeliverable_email is True


def test_postmark_soft_bounce_is_recorded_as_not_hard(client: Client, alice: Contact) -> None:
    # Anymail reports Postmark's SoftBounce as "bounced"; Postmark's Type says it is soft.
    payload = postmark_bounce("alice@example.fr", "SoftBounce")
    assert post_postmark(client, payload).status_code == 200
    [event] = events(alice)
    assert (event.type, event.data) == ("bounce", {"hard": False})
    assert ContactFacts.objects.get(contact=alice).undeliverable_email is False


def test_postmark_spam_complaint(client: Client, alice: Contact) -> None:
    assert post_postmark(client, postmark_spam("alice@example.fr")).status_code == 200
    [event] = events(alice)
    assert (event.type, event.channel, event.actor) == ("complaint", "email", "esp:Postmark")


def test_postmark_unsubscribe_by_the_recipient_is_an_opt_out(
    client: Client, alice: Contact
) -> None:
    assert post_postmark(client, postmark_unsubscribe("alice@example.fr")).status_code == 200
    [event] = events(alice)
    assert (event.type, event.topic, event.channel, event.method) == (
        "opt_out",
        "*",
        "email",
        "unsubscribe_link",
    )
    assert event.occurred_at == at("2026-11-28T09:17:32")


def test_postmark_suppression_added_by_the_account_is_not_the_persons_opt_out(
    client: Client, alice: Contact
) -> None:
    payload = postmark_unsubscribe("alice@example.fr", origin="Customer")
    assert post_postmark(client, payload).status_code == 200
    assert events(alice) == []


def test_postmark_click_extends_retention(client: Client, alice: Contact) -> None:
    assert post_postmark(client, postmark_click("alice@example.fr")).status_code == 200
    [event] = events(alice)
    assert (event.type, event.data) == ("interaction", {"kind": "click"})
    assert ContactFacts.objects.get(contact=alice).retention_anchor == at(
        "2026-11-28T09:30:11.906561"
    )


# --- Redelivery, unknown recipients, authentication ---------------------------------------------


def test_mailgun_redelivery_records_once(client: Client, alice: Contact) -> None:
    payload = mailgun_payload("complained", "alice@example.fr")
    assert post_mailgun(client, payload).status_code == 200
    assert post_mailgun(client, payload).status_code == 200
    assert [e.type for e in events(alice)] == ["complaint"]


def test_postmark_redelivery_without_event_id_records_once(client: Client, alice: Contact) -> None:
    # Postmark clicks carry no event id: the message id and Postmark's instant identify them.
    assert post_postmark(client, postmark_click("alice@example.fr")).status_code == 200
    assert post_postmark(client, postmark_click("alice@example.fr")).status_code == 200
    [event] = events(alice)
    assert event.proof == (
        "message:f4830d10-9c35-4f0c-bca3-3d9b459821f8 at:2026-11-28T09:30:11.906561+00:00"
    )


def test_two_distinct_clicks_are_two_facts(client: Client, alice: Contact) -> None:
    assert post_mailgun(client, mailgun_payload("clicked", "alice@example.fr")).status_code == 200
    assert post_mailgun(client, mailgun_payload("clicked", "alice@example.fr")).status_code == 200
    assert len(events(alice)) == 2


@pytest.mark.parametrize("provider", ["mailgun", "postmark"])
def test_unknown_recipient_answers_200_and_writes_nothing(
    client: Client, alice: Contact, caplog: pytest.LogCaptureFixture, provider: str
) -> None:
    caplog.set_level(logging.INFO, logger="preferences.tracking")
    if provider == "mailgun":
        response = post_mailgun(client, mailgun_payload("complained", "nobody@example.fr"))
    else:
        response = post_postmark(client, postmark_spam("nobody@example.fr"))
    assert response.status_code == 200
    assert Event.objects.count() == 0
    [record] = [r for r in caplog.records if r.name == "preferences.tracking"]
    assert record.levelno == logging.INFO
    assert "unknown recipient" in record.getMessage()


def test_recipient_is_found_by_normalised_email(
    client: Client, make_contact: Callable[..., Contact]
) -> None:
    contact = make_contact(email="Alice.Martin@example.fr")
    # Domain case and surrounding spaces (normalisation), local-part case (some ESPs lower it).
    for recipient in (" Alice.Martin@EXAMPLE.FR ", "alice.martin@example.fr"):
        payload = mailgun_payload("clicked", recipient)
        assert post_mailgun(client, payload).status_code == 200
    assert len(events(contact)) == 2


def test_missing_basic_auth_is_rejected_and_writes_nothing(client: Client, alice: Contact) -> None:
    # A correctly signed Mailgun payload without the webhook secret:
    response = post_mailgun(
        client, mailgun_payload("unsubscribed", "alice@example.fr"), HTTP_AUTHORIZATION=""
    )
    assert response.status_code in (400, 403)
    response = post_postmark(
        client, postmark_unsubscribe("alice@example.fr"), HTTP_AUTHORIZATION=""
    )
    assert response.status_code in (400, 403)
    wrong = "Basic " + base64.b64encode(b"assent-esp:guess").decode()
    response = post_postmark(client, postmark_spam("alice@example.fr"), HTTP_AUTHORIZATION=wrong)
    assert response.status_code in (400, 403)
    assert Event.objects.count() == 0


def test_mailgun_bad_signature_is_rejected_and_writes_nothing(
    client: Client, alice: Contact
) -> None:
    payload = mailgun_payload("unsubscribed", "alice@example.fr", signing_key="not-the-key")
    assert post_mailgun(client, payload).status_code in (400, 403)
    assert Event.objects.count() == 0


# --- Instants and errors ------------------------------------------------------------------------


def test_missing_timestamp_is_now(client: Client, alice: Contact) -> None:
    assert (
        post_mailgun(client, mailgun_payload("clicked", "alice@example.fr", when=None)).status_code
        == 200
    )
    [event] = events(alice)
    assert event.occurred_at == NOW


def test_future_timestamp_beyond_skew_is_clamped_to_now(client: Client, alice: Contact) -> None:
    payload = mailgun_payload("clicked", "alice@example.fr", when=NOW + timedelta(hours=2))
    assert post_mailgun(client, payload).status_code == 200
    [event] = events(alice)
    assert event.occurred_at == NOW


def test_future_timestamp_within_skew_is_clamped_to_now(client: Client, alice: Contact) -> None:
    # RULES.md v2: an event is never dated after the moment it is recorded.
    payload = mailgun_payload("clicked", "alice@example.fr", when=NOW + timedelta(minutes=2))
    assert post_mailgun(client, payload).status_code == 200
    [event] = events(alice)
    assert event.occurred_at == NOW == event.recorded_at


def test_validation_error_is_logged_and_answers_200(
    client: Client,
    alice: Contact,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from django.core.exceptions import ValidationError

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise ValidationError({"kind": "refused"})

    monkeypatch.setattr(services, "append_batch", refuse)
    caplog.set_level(logging.INFO, logger="preferences.tracking")
    assert post_mailgun(client, mailgun_payload("clicked", "alice@example.fr")).status_code == 200
    assert Event.objects.count() == 0
    assert any(
        r.levelno == logging.WARNING and "not recorded" in r.getMessage() for r in caplog.records
    )


def test_events_that_are_not_facts_are_ignored(client: Client, alice: Contact) -> None:
    assert post_mailgun(client, mailgun_payload("delivered", "alice@example.fr")).status_code == 200
    assert post_mailgun(client, mailgun_payload("accepted", "alice@example.fr")).status_code == 200
    assert events(alice) == []


@pytest.mark.parametrize(
    ("esp_name", "raw", "hard"),
    [
        ("Mailgun", {}, True),
        ("Postmark", {"RecordType": "Bounce", "Type": "HardBounce"}, True),
        ("Postmark", {"RecordType": "Bounce", "Type": "SoftBounce"}, False),
        ("Postmark", {"RecordType": "SubscriptionChange", "SuppressionReason": "HardBounce"}, True),
        ("Brevo", {"event": "hard_bounce"}, True),
        ("Brevo", {"event": "soft_bounce"}, False),
        ("Mandrill", {"event": "soft_bounce"}, False),
        ("MailerSend", {"data": {"type": "hard_bounced"}}, True),
        ("MailerSend", {"data": {"type": "soft_bounced"}}, False),
        ("Amazon SES", {"bounce": {"bounceType": "Permanent"}}, True),
        ("Amazon SES", {"bounce": {"bounceType": "Transient"}}, False),
        ("Resend", {"data": {"bounce": {"type": "Permanent"}}}, True),
        ("SendGrid", {"event": "bounce", "type": "bounce"}, True),
        ("SendGrid", {"event": "bounce", "type": "blocked"}, False),
        ("Mailjet", {"event": "bounce", "hard_bounce": True}, True),
        ("Mailjet", {"event": "bounce", "hard_bounce": False}, False),
        ("SparkPost", {"msys": {"message_event": {"type": "bounce", "bounce_class": "10"}}}, True),
        ("SparkPost", {"msys": {"message_event": {"type": "bounce", "bounce_class": "22"}}}, False),
        ("SparkPost", {"msys": {}}, False),
    ],
)
def test_bounce_is_hard_follows_the_esps_own_bounce_type(
    esp_name: str, raw: dict[str, Any], hard: bool
) -> None:
    from anymail.signals import AnymailTrackingEvent

    event = AnymailTrackingEvent(event_type="bounced", esp_event=raw)
    assert webhooks.bounce_is_hard(esp_name, event) is hard


# --- Payloads that are no event ------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"null",
        b"1",
        b'"text"',
        b"\xff\xfe",
        b'{"RecordType": "Bounce", "BouncedAt": 5}',
    ],
)
def test_a_payload_that_is_not_an_event_is_refused_not_retried_forever(
    client: Client, alice: Contact, body: bytes
) -> None:
    response = client.post(
        "/webhooks/anymail/postmark/tracking/", data=body, content_type="application/json", **AUTH
    )
    assert response.status_code == 400
    assert events(alice) == []


def test_an_instant_beyond_the_platform_is_refused(client: Client, alice: Contact) -> None:
    payload = {"event": "hard_bounce", "email": "alice@example.fr", "ts_epoch": 10**20}
    response = client.post(
        "/webhooks/anymail/brevo/tracking/",
        data=json.dumps(payload),
        content_type="application/json",
        **AUTH,
    )
    assert response.status_code == 400
    assert events(alice) == []


def test_a_nul_in_the_esp_reference_is_dropped(client: Client, alice: Contact) -> None:
    response = post_postmark(client, postmark_bounce("alice@example.fr", MessageID="ab\x00cd"))
    assert response.status_code == 200
    (bounce,) = events(alice)
    assert "\x00" not in bounce.proof and "abcd" in bounce.proof
