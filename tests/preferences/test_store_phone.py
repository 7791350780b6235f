"""On the phone: the agent reads the script, records the caller's answers and the call reference."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from consents.models import Contact, Event, Evidence
from consents.vocab import Method
from preferences.models import Capture
from preferences.services import notice_for
from tests.preferences.store_fixtures import *  # noqa: F403  (the store fixtures)
from tests.preferences.store_fixtures import log_in

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pages", "topics")]


@pytest.fixture
def agent(client: Client, staff: Any) -> Client:
    log_in(client, staff)
    return client


def call(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "key": "c" * 32,
        "language": "fr",
        "call_reference": "CALL-2026-0042",
        "email": "",
        "phone": "06 12 34 56 78",
        "first_name": "",
        "choice": ["promotions:sms"],
    }
    data.update(overrides)
    return data


def test_the_script_is_the_published_notice_text(agent: Client, topics: Any) -> None:
    html = agent.get("/store/phone/").content.decode()
    assert "J&#x27;accepte de recevoir Bons plans." in html
    assert 'autocomplete="off"' in html
    english = agent.post("/store/phone/", call(switch_language="en")).content.decode()
    assert "I agree to receive Deals." in english
    assert 'value="CALL-2026-0042"' in english


def test_answers_record_phone_call_opt_ins_with_the_call_reference(
    agent: Client, topics: Any, shop: Any
) -> None:
    response = agent.post(
        "/store/phone/",
        call(choice=["promotions:sms", "newsletter:email"], email="paul@example.fr"),
    )
    assert response.status_code == 302 and response["Location"] == "/store/phone/done/"
    contact = Contact.objects.get()
    assert contact.phone == "+33612345678" and contact.email == "paul@example.fr"
    events = list(Event.objects.order_by("seq"))
    assert [(e.type, e.topic, e.channel) for e in events] == [
        ("opt_in", "promotions", "sms"),
        ("opt_in", "newsletter", "email"),
    ]
    for event in events:
        assert event.method == Method.PHONE_CALL
        assert event.actor == "staff:alice"
        assert event.proof == "CALL-2026-0042"
        assert event.collection_point == "call:CALL-2026-0042"
        assert event.notice == notice_for(topics[event.topic], "fr")
        assert event.store == shop  # the agent's only store
        assert Evidence.objects.get(event=event).details["collected_by"] == "alice"
    assert not Event.objects.filter(type="callback_request").exists()


def test_a_callback_request_is_recorded(agent: Client) -> None:
    agent.post("/store/phone/", call(choice=[], callback="on"))
    event = Event.objects.get()
    assert (event.type, event.channel) == ("callback_request", "phone")
    assert event.proof == "CALL-2026-0042"
    assert Contact.objects.get().facts.callback_until is not None


def test_a_retry_never_records_twice(agent: Client) -> None:
    agent.post("/store/phone/", call())
    agent.post("/store/phone/", call())
    assert Event.objects.count() == 1 and Capture.objects.count() == 1


@pytest.mark.parametrize(
    ("overrides", "field_id"),
    [
        ({"call_reference": ""}, "id_call_reference_error"),
        ({"phone": "", "email": ""}, "id_email_error"),
        ({"phone": "not a phone"}, "id_phone_error"),
        ({"email": "nope@", "phone": ""}, "id_email_error"),
        ({"choice": []}, "choices-error"),
        ({"choice": ["nosuchtopic:sms"]}, "choices-error"),
        ({"choice": ["newsletter:sms"]}, "choices-error"),  # not offered on that channel
        ({"phone": "", "email": "a@example.fr", "choice": [], "callback": "on"}, "id_phone_error"),
    ],
)
def test_bad_input_names_the_field(agent: Client, overrides: dict[str, Any], field_id: str) -> None:
    response = agent.post("/store/phone/", call(**overrides))
    assert response.status_code == 400
    assert f'id="{field_id}"' in response.content.decode()
    assert not Event.objects.exists()
