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

OFFERED = ("newsletter:email", "promotions:email", "promotions:sms")


@pytest.fixture
def agent(client: Client, staff: Any) -> Client:
    log_in(client, staff)
    return client


def call(
    yes: tuple[str, ...] = ("promotions:sms",), no: tuple[str, ...] = (), **overrides: Any
) -> dict[str, Any]:
    """The phone form as posted: one radio group per topic x channel (yes, no, or not asked)."""
    data: dict[str, Any] = {
        "key": "c" * 32,
        "language": "fr",
        "call_reference": "CALL-2026-0042",
        "email": "",
        "phone": "06 12 34 56 78",
        "first_name": "",
        # Every group is posted, as a browser does: "not asked" is the empty value.
        **{f"answer:{value}": "" for value in OFFERED},
    }
    data.update({f"answer:{value}": "yes" for value in yes})
    data.update({f"answer:{value}": "no" for value in no})
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
        call(yes=("promotions:sms", "newsletter:email"), email="paul@example.fr"),
    )
    assert response.status_code == 302 and response["Location"] == "/store/phone/done/"
    contact = Contact.objects.get()
    assert contact.phone == "+33612345678" and contact.email == "paul@example.fr"
    events = list(Event.objects.order_by("seq"))
    assert sorted((e.type, e.topic, e.channel) for e in events) == [
        ("opt_in", "newsletter", "email"),
        ("opt_in", "promotions", "sms"),
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
    agent.post("/store/phone/", call(yes=(), callback="on"))
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
        ({"answer:promotions:sms": ""}, "choices-error"),  # nothing answered
        ({"answer:nosuchtopic:sms": "yes"}, "choices-error"),
        ({"answer:newsletter:sms": "no"}, "choices-error"),  # not offered on that channel
        ({"answer:promotions:email": "maybe"}, "choices-error"),
        ({"answer:promotions:email": ["yes", "no"]}, "choices-error"),
        ({"phone": "", "email": "a@example.fr", "answer:promotions:sms": ""}, "choices-error"),
        ({"phone": "", "email": "a@example.fr"}, "id_phone_error"),  # a yes to SMS needs one
        (
            {"phone": "", "email": "a@example.fr", "answer:promotions:sms": "", "callback": "on"},
            "id_phone_error",
        ),
    ],
)
def test_bad_input_names_the_field(agent: Client, overrides: dict[str, Any], field_id: str) -> None:
    response = agent.post("/store/phone/", call(**overrides))
    assert response.status_code == 400
    assert f'id="{field_id}"' in response.content.decode()
    assert not Event.objects.exists()


# --- Yes, no, not asked ---------------------------------------------------------------------------


def test_each_answer_is_a_radio_group_defaulting_to_not_asked(agent: Client) -> None:
    html = agent.get("/store/phone/").content.decode()
    for value in OFFERED:
        dom = "choice-" + value.replace(":", "-")
        name = f'name="answer:{value}"'
        assert html.count(name) == 3, value
        assert f'{name} value="yes" id="{dom}-yes">' in html
        assert f'{name} value="no" id="{dom}-no">' in html
        assert f'{name} value="" id="{dom}-not-asked" checked>' in html
        for answer in ("yes", "no", "not-asked"):
            assert f'<label for="{dom}-{answer}">' in html
    # Each group is a fieldset named by the question to ask, described by the text to say.
    assert '<fieldset class="answer" aria-describedby="say-promotions">' in html
    assert html.count(" checked") == len(OFFERED)  # only the "not asked" radios


def test_a_no_records_an_opt_out_by_phone_call_with_the_same_proof(
    agent: Client, topics: Any, shop: Any
) -> None:
    response = agent.post(
        "/store/phone/",
        call(yes=("promotions:sms",), no=("promotions:email", "newsletter:email"), email="p@x.fr"),
    )
    assert response.status_code == 302
    contact = Contact.objects.get()
    opt_outs = list(Event.objects.filter(type="opt_out").order_by("seq"))
    assert sorted((e.topic, e.channel) for e in opt_outs) == [
        ("newsletter", "email"),
        ("promotions", "email"),
    ]
    for event in opt_outs:
        assert event.contact == contact
        assert event.method == Method.PHONE_CALL
        assert event.actor == "staff:alice"
        assert event.proof == "CALL-2026-0042"
        assert event.collection_point == "call:CALL-2026-0042"
        assert event.notice == notice_for(topics[event.topic], "fr")  # the wording read
        assert event.store == shop
        details = Evidence.objects.get(event=event).details
        assert details["collected_by"] == "alice"
        assert details["call_reference"] == "CALL-2026-0042"
    assert Event.objects.get(type="opt_in").channel == "sms"
    result = Capture.objects.get().result
    assert sorted(result["opt_outs"]) == sorted(e.pk for e in opt_outs)


def test_a_no_takes_back_an_earlier_yes(agent: Client, make_contact: Any) -> None:
    from consents import services

    contact = make_contact(email="p@x.fr")
    services.consent_grant(
        contact=contact,
        topic="newsletter",
        channel="email",
        proof=services.Proof(method="web_form", actor="person"),
    )
    agent.post("/store/phone/", call(yes=(), no=("newsletter:email",), email="p@x.fr", phone=""))
    contact.refresh_from_db()
    state = contact.consent_states.get(topic="newsletter", channel="email")
    assert state.status == "opted_out"


def test_only_answers_given_are_recorded_not_asked_is_nothing(agent: Client) -> None:
    response = agent.post("/store/phone/", call(yes=(), no=("promotions:sms",)))
    assert response.status_code == 302
    event = Event.objects.get()
    assert (event.type, event.topic, event.channel) == ("opt_out", "promotions", "sms")
    assert event.contact.phone == "+33612345678"


def test_a_no_to_sms_needs_no_phone_number(agent: Client) -> None:
    response = agent.post(
        "/store/phone/", call(yes=(), no=("promotions:sms",), phone="", email="p@x.fr")
    )
    assert response.status_code == 302
    event = Event.objects.get()
    assert (event.type, event.channel) == ("opt_out", "sms")
    assert event.contact.email == "p@x.fr"


def test_answers_are_kept_on_errors_and_on_a_language_switch(agent: Client) -> None:
    posted = call(yes=("newsletter:email",), no=("promotions:sms",), call_reference="")
    html = agent.post("/store/phone/", posted).content.decode()
    assert 'id="id_call_reference_error"' in html
    assert 'value="yes" id="choice-newsletter-email-yes" checked' in html
    assert 'value="no" id="choice-promotions-sms-no" checked' in html
    assert 'value="" id="choice-promotions-email-not-asked" checked' in html
    assert 'value="" id="choice-promotions-sms-not-asked" checked' not in html
    english = agent.post("/store/phone/", {**posted, "switch_language": "en"}).content.decode()
    assert "I agree to receive Deals." in english
    assert 'value="no" id="choice-promotions-sms-no" checked' in english
    assert 'value="yes" id="choice-newsletter-email-yes" checked' in english
    assert not Event.objects.exists()


def test_service_refuses_the_same_answer_as_yes_and_no(staff: Any) -> None:
    from django.core.exceptions import ValidationError

    from preferences import store

    with pytest.raises(ValidationError) as info:
        store.phone_capture(
            key="k",
            user=staff,
            call_reference="C1",
            email="p@x.fr",
            phone="",
            answers=[("newsletter", "email")],
            refusals=[("newsletter", "email")],
        )
    assert "choices" in info.value.message_dict
    assert not Event.objects.exists() and not Capture.objects.exists()


# --- Email and phone of two different contacts ----------------------------------------------------


def test_each_answer_goes_to_the_owner_of_the_address_it_uses(
    agent: Client, make_contact: Any
) -> None:
    by_email = make_contact(email="emma@example.fr", first_name="Emma")
    by_phone = make_contact(email=None, phone="+33612345678", first_name="Paul")
    blank = agent.post("/store/phone/", call(key="blank", phone="0699999999"))
    response = agent.post(
        "/store/phone/",
        call(
            yes=("newsletter:email", "promotions:sms"),
            no=("promotions:email",),
            email="emma@example.fr",
            callback="on",
        ),
    )
    assert response.status_code == 302
    assert response["Location"] == blank["Location"]  # the same screen: nothing revealed
    mine = {(e.type, e.topic, e.channel) for e in Event.objects.filter(contact=by_email)}
    assert mine == {("opt_in", "newsletter", "email"), ("opt_out", "promotions", "email")}
    theirs = {(e.type, e.topic, e.channel) for e in Event.objects.filter(contact=by_phone)}
    assert theirs == {("opt_in", "promotions", "sms"), ("callback_request", "", "phone")}
    by_email.refresh_from_db()
    by_phone.refresh_from_db()
    assert by_email.phone == "" and by_phone.email is None  # no address moved or copied
    assert Contact.objects.filter(phone="+33612345678").count() == 1


@pytest.fixture
def calls(make_topic: Any) -> Any:
    """A topic offered by phone, with its notices."""
    from consents import services

    topic = make_topic("calls", channels=["phone", "email"], name_fr="Appels", name_en="Calls")
    services.notice_publish(topic=topic, language="fr", text="J'accepte d'être appelé.")
    services.notice_publish(topic=topic, language="en", text="I agree to be called.")
    return topic


def test_consent_to_automated_calls_is_recorded_only_on_the_phone_channel(
    agent: Client, calls: Any
) -> None:
    # L34-5 CPCE: a yes to calls covers live calls; recorded or automated calls need their own.
    html = agent.get("/store/phone/").content.decode()
    assert 'name="automated"' in html
    data = call(yes=("calls:phone", "calls:email"), email="paul@example.fr", automated="on")
    assert agent.post("/store/phone/", data).status_code == 302
    opt_ins = {e.channel: e.data for e in Event.objects.filter(type="opt_in")}
    assert opt_ins["phone"].get("automated") is True
    assert "automated" not in opt_ins["email"]


def test_a_yes_to_calls_without_automated_is_live_calls_only(agent: Client, calls: Any) -> None:
    assert agent.post("/store/phone/", call(yes=("calls:phone",))).status_code == 302
    [event] = Event.objects.filter(type="opt_in")
    assert "automated" not in event.data
