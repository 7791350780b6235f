"""RULES.md version 2, change by change ("Changes in version 2"), written from the text.

Plain unit tests of ``decide`` (no database); the builders are those of ``test_rules``.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from consents import rules
from consents.rules import MalformedMessage, Message, RuleSettings
from consents.vocab import Reason
from tests.consents.test_rules import (
    MID,
    NOW,
    OLD,
    ago,
    allowed,
    callback,
    contract_end,
    contract_start,
    denied,
    doi_confirmed,
    ev,
    msg,
    opt_in,
    opt_out,
    pause,
    person,
    pro,
    purchase,
    run,
)

PHONE_PROMO = {"channel": "phone", "category": "sofa"}


# --- A callback request no longer lifts an objection ---------------------------------------------


def test_callback_after_an_objection_allows_only_the_call_asked_for():
    history = [opt_out(ago(20)), callback(ago(5))]
    assert run(person(), history, msg(**PHONE_PROMO)) == allowed(Reason.CALLBACK_REQUESTED)
    # Nothing else: not an SMS, not a newsletter call, not an automated call.
    assert run(person(), history, msg(channel="sms")) == denied(Reason.OPTED_OUT)
    newsletter = msg(channel="phone", purpose="newsletter", topic="newsletter")
    assert run(person(), history, newsletter) == denied(Reason.OPTED_OUT)
    assert run(person(), history, msg(automated=True, **PHONE_PROMO)) == denied(Reason.OPTED_OUT)


def test_callback_after_an_objection_lasts_the_callback_validity_exactly():
    history = [opt_out(ago(40)), callback(ago(30))]
    assert run(person(), history, msg(**PHONE_PROMO)) == allowed(Reason.CALLBACK_REQUESTED)
    assert run(person(), history, msg(**PHONE_PROMO), now=NOW + timedelta(microseconds=1)) == (
        denied(Reason.OPTED_OUT)
    )
    short = RuleSettings(callback_validity=timedelta(days=10))
    assert run(person(), history, msg(**PHONE_PROMO), settings=short) == denied(Reason.OPTED_OUT)


def test_callback_before_the_objection_does_not_lift_it():
    history = [callback(ago(10)), opt_out(ago(5))]
    assert run(person(), history, msg(**PHONE_PROMO)) == denied(Reason.OPTED_OUT)


def test_callback_and_objection_at_one_instant_follow_the_recorded_order():
    at = ago(5)
    assert run(person(), [opt_out(at), callback(at)], msg(**PHONE_PROMO)) == allowed(
        Reason.CALLBACK_REQUESTED
    )
    assert run(person(), [callback(at), opt_out(at)], msg(**PHONE_PROMO)) == denied(
        Reason.OPTED_OUT
    )


def test_a_pause_still_stops_the_call_asked_for_after_an_objection():
    history = [opt_out(ago(20)), callback(ago(5)), pause(ago(1), ago(-10), channel="phone")]
    assert run(person(), history, msg(**PHONE_PROMO)) == denied(Reason.PAUSED)


def test_callback_after_an_objection_serves_any_kind_of_contact():
    history = [opt_out(ago(20)), callback(ago(5))]
    assert run(pro(), history, msg(**PHONE_PROMO)) == allowed(Reason.CALLBACK_REQUESTED)


def test_callback_does_not_reopen_the_contract_path():
    history = [
        contract_start(ago(300), category="mobile-plan"),
        opt_out(ago(60)),
        callback(ago(59)),
    ]
    m = msg(channel="phone", category="fibre")
    assert run(person(), history, m) == denied(Reason.OPTED_OUT)


def test_callback_does_not_reopen_the_b2b_path():
    history = [opt_out(ago(60)), callback(ago(59))]
    m = msg(channel="email", professions=("procurement",))
    assert run(pro(), history, m) == denied(Reason.OPTED_OUT)


# --- Retention: only the person's own acts extend it ---------------------------------------------


@pytest.mark.parametrize(
    "flaw",
    [
        {"doi": "pending"},
        {"prechecked": True},
        {"bundled": True},
        {"method": "api"},
        {"method": "admin"},
        {"method": "import", "proof": "crm export 2025"},
    ],
)
def test_an_opt_in_not_shown_to_come_from_the_person_does_not_extend_retention(flaw):
    history = [opt_in(MID, **flaw)]
    assert run(person(collected_at=OLD), history, msg(channel="postal")) == denied(
        Reason.RETENTION_EXPIRED
    )


def test_a_proven_opt_in_and_a_confirmation_extend_retention():
    postal = msg(channel="postal")
    old = person(collected_at=OLD)
    assert run(old, [opt_in(MID)], postal)[1] != Reason.RETENTION_EXPIRED
    assert run(old, [opt_in(MID, method="api", proof="crm:42")], postal)[1] != (
        Reason.RETENTION_EXPIRED
    )
    # A confirmed double opt-in counts through its doi_confirmed, even one confirmed too late.
    late = [opt_in(MID, doi="pending"), doi_confirmed(MID + timedelta(days=20))]
    assert run(old, late, postal)[1] != Reason.RETENTION_EXPIRED


# --- B2B and phone paths --------------------------------------------------------------------------


def test_professional_callback_outside_their_field_allows_the_call():
    history = [callback(ago(3))]
    m = msg(channel="phone", professions=("maintenance",))
    assert run(pro(), history, m) == allowed(Reason.CALLBACK_REQUESTED)
    # Without informed_at_collection too: step 9.4 needs none.
    assert run(pro(informed_at_collection=False), history, m) == allowed(Reason.CALLBACK_REQUESTED)


@pytest.mark.parametrize("purpose", ["newsletter", "cart_abandonment", "reactivation"])
def test_callback_and_contract_paths_serve_promotions_only(purpose):
    topic = {"newsletter": "newsletter", "cart_abandonment": "cart", "reactivation": "winback"}
    history = [contract_start(ago(30), category="mobile-plan"), callback(ago(3))]
    m = msg(channel="phone", purpose=purpose, topic=topic[purpose], category="fibre")
    assert run(person(), history, m)[0] is False


def test_a_promotion_in_a_service_message_takes_the_callback_path():
    history = [callback(ago(3))]
    m = msg(channel="phone", purpose="service", contains_promotion=True)
    assert run(person(), history, m) == allowed(Reason.CALLBACK_REQUESTED)


# --- Invalid opt-ins never lift an objection ------------------------------------------------------


@pytest.mark.parametrize(
    "flaw",
    [
        {"doi": "pending"},
        {"prechecked": True},
        {"bundled": True},
        {"method": "import"},
        {"method": "api"},
    ],
)
def test_an_invalid_opt_in_after_an_objection_leaves_it(flaw):
    history = [purchase(ago(100)), opt_out(ago(50)), opt_in(ago(10), **flaw)]
    assert run(person(), history, msg(category="dvd")) == denied(Reason.OPTED_OUT)


def test_a_confirmation_after_the_link_lifetime_does_not_lift_an_objection():
    history = [opt_out(ago(50)), opt_in(ago(20), doi="pending"), doi_confirmed(ago(10))]
    assert run(person(), history, msg()) == denied(Reason.OPTED_OUT)
    in_time = [opt_out(ago(50)), opt_in(ago(20), doi="pending"), doi_confirmed(ago(14))]
    assert run(person(), in_time, msg()) == allowed(Reason.OPT_IN)


def test_a_valid_opt_in_on_another_topic_does_not_lift_an_objection():
    history = [opt_out(ago(50)), opt_in(ago(10), topic="newsletter")]
    assert run(person(), history, msg()) == denied(Reason.OPTED_OUT)


def test_repermission_needs_a_valid_opt_in_to_lift_an_objection_to_everything():
    history = [opt_in(MID), opt_out(ago(400)), opt_in(ago(300), prechecked=True)]
    due = person(collected_at=OLD)
    m = msg(purpose="repermission", topic=None, category=None)
    assert run(due, history, m) == denied(Reason.OPTED_OUT)


# --- Automated calls ------------------------------------------------------------------------------


def test_automated_only_on_the_phone():
    with pytest.raises(MalformedMessage) as exc:
        run(person(), [], msg(channel="sms", automated=True))
    assert exc.value.field == "automated"


# --- Pauses ---------------------------------------------------------------------------------------


def test_the_latest_pause_replaces_every_earlier_one_whatever_their_ends():
    history = [opt_in(ago(100)), pause(ago(30), ago(-90)), pause(ago(20), ago(10), channel="email")]
    assert run(person(), history, msg()) == allowed(Reason.OPT_IN)
    # The later pause only speaks for email: SMS is still paused by the first one.
    sms = [opt_in(ago(100), channel="sms"), *history[1:]]
    assert run(person(), sms, msg(channel="sms")) == denied(Reason.PAUSED)


def test_a_pause_until_its_own_instant_is_a_resume():
    history = [opt_in(ago(100)), pause(ago(30), ago(-90)), pause(ago(5), ago(5), channel="email")]
    assert run(person(), history, msg()) == allowed(Reason.OPT_IN)


def test_pauses_at_one_instant_follow_the_recorded_order():
    at = ago(5)
    resume_last = [opt_in(ago(100)), pause(at, ago(-30)), pause(at, at)]
    assert run(person(), resume_last, msg()) == allowed(Reason.OPT_IN)
    pause_last = [opt_in(ago(100)), pause(at, at), pause(at, ago(-30))]
    assert run(person(), pause_last, msg()) == denied(Reason.PAUSED)


# --- Contracts ------------------------------------------------------------------------------------


def test_two_starts_of_one_contract_are_both_active_until_it_ends():
    starts = [
        contract_start(ago(300), contract="c-1", category="sofa"),
        contract_start(ago(200), contract="c-1", category="mobile-plan"),
    ]
    home = msg(channel="phone", category="lamp")
    assert run(person(), starts, home) == allowed(Reason.CONTRACT_IN_PROGRESS)
    ended = [*starts, contract_end(ago(100), contract="c-1")]
    assert run(person(), ended, home) == denied(Reason.NO_CONSENT)
    expiry = rules.retention_expiry(person(), rules.ordered(starts), RuleSettings())
    assert expiry is None


# --- Malformed questions --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"topic": ""}, "topic"),
        ({"category": ""}, "category"),
        ({"product": ""}, "product"),
        ({"professions": ("",)}, "professions"),
        ({"professions": ("procurement", "")}, "professions"),
        ({"topic": None}, "topic"),
        ({"channel": "fax"}, "channel"),
        ({"purpose": "spam"}, "purpose"),
    ],
)
def test_malformed_messages_are_refused_naming_the_field(fields, field):
    with pytest.raises(MalformedMessage) as exc:
        rules.check_message(msg(**fields))
    assert exc.value.field == field


def test_an_empty_profession_never_matches():
    # Before v2, professions [""] matched a professional with no profession in the audience only.
    with pytest.raises(MalformedMessage):
        run(pro(profession=None), [], msg(professions=("",)))


# --- "Later" is (instant, recorded order) everywhere ----------------------------------------------


def test_unsubscribed_from_everything_reads_instants_not_the_recorded_order():
    s = RuleSettings()
    # A back-dated opt-in, recorded after the unsubscribe but dated before it.
    out = opt_out(ago(5))
    backdated = opt_in(ago(10))
    assert rules.unsubscribed_from_everything(rules.ordered([out, backdated]), s)
    # A callback after it is no "yes"; a valid opt-in after it is.
    assert rules.unsubscribed_from_everything(rules.ordered([out, callback(ago(1))]), s)
    assert not rules.unsubscribed_from_everything(rules.ordered([out, opt_in(ago(1))]), s)
    pending = opt_in(ago(1), doi="pending")
    assert rules.unsubscribed_from_everything(rules.ordered([out, pending]), s)


def test_message_defaults_are_well_formed():
    rules.check_message(Message(channel="email", purpose="service"))
    rules.check_message(Message(channel="email", purpose="repermission"))
    assert ev  # the builders are shared with test_rules
