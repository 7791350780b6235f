"""Unit tests of the contactability engine, written from RULES.md (not from the implementation).

Each test builds a person, a history and a message, and asserts the exact ``(allowed, reason)``
that RULES.md prescribes. Tests are grouped by the step of "Decision: the first step that applies
wins", then by derived fact. Plain unit tests: no database.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone

import pytest

from consents.rules import Fact, Message, Person, RuleSettings, decide
from consents.vocab import Reason

# --- Builders ------------------------------------------------------------------------------------

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
# A prospect collected then (and nothing person-initiated since) has expired by NOW (2026-01-01).
OLD = datetime(2023, 1, 1, 12, 0, tzinfo=UTC)
# Recent enough to keep an OLD person's data: anchor 2025-01-01 -> expiry 2028-01-01.
MID = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
# Anchor whose expiry (2026-12-09) is 10 days after NOW: inside the 30-day repermission window.
DUE = datetime(2023, 12, 9, 12, 0, tzinfo=UTC)

CATALOG = {
    "books": "culture",
    "dvd": "culture",
    "music": "culture",
    "sofa": "home",
    "lamp": "home",
    "mobile-plan": "telecom",
    "fibre": "telecom",
}

_SEQ = itertools.count(1)


def ago(days: float = 0, **kw: float) -> datetime:
    return NOW - timedelta(days=days, **kw)


def later(days: float = 0, **kw: float) -> datetime:
    return NOW + timedelta(days=days, **kw)


def person(**kw) -> Person:
    """A consumer prospect with every address, informed at collection 100 days ago."""
    fields = {
        "kind": "consumer",
        "collected_at": ago(100),
        "informed_at_collection": True,
        "email": "marie.dupont@example.fr",
        "phone": "+33612345678",
        "postal_address": "1 rue de la Paix, 75002 Paris",
        "push_token": "push-token-1",
        "profession": None,
    }
    fields.update(kw)
    return Person(**fields)


def pro(**kw) -> Person:
    """A professional (procurement) with a personal work address."""
    fields = {"kind": "professional", "email": "j.martin@acme.fr", "profession": "procurement"}
    fields.update(kw)
    return person(**fields)


def ev(type_: str, at: datetime, **kw) -> Fact:
    """One event; events are recorded in the order they are built (increasing ``seq``)."""
    return Fact(type=type_, at=at, seq=next(_SEQ), **kw)


def opt_in(at, topic="promotions", channel="email", method="web_form", **kw) -> Fact:
    return ev("opt_in", at, topic=topic, channel=channel, method=method, **kw)


def opt_out(at, topic="*", channel="*", method="preference_center") -> Fact:
    return ev("opt_out", at, topic=topic, channel=channel, method=method)


def doi_confirmed(at, topic="promotions", channel="email") -> Fact:
    return ev("doi_confirmed", at, topic=topic, channel=channel)


def complaint(at, channel="email") -> Fact:
    return ev("complaint", at, channel=channel)


def pause(at, until, channel="*") -> Fact:
    return ev("pause", at, channel=channel, until=until)


def purchase(at, category="books", product="sku-book-1", warranty_until=None) -> Fact:
    return ev("purchase", at, category=category, product=product, warranty_until=warranty_until)


def contract_start(at, contract="c-1", category="mobile-plan") -> Fact:
    return ev("contract_start", at, contract=contract, category=category)


def contract_end(at, contract="c-1") -> Fact:
    return ev("contract_end", at, contract=contract)


def interaction(at, kind="click") -> Fact:
    return ev("interaction", at, kind=kind)


def bounce(at, hard=True, channel="email") -> Fact:
    return ev("bounce", at, channel=channel, hard=hard)


def address_changed(at, channel="email") -> Fact:
    return ev("address_changed", at, channel=channel)


def callback(at, channel="phone") -> Fact:
    return ev("callback_request", at, channel=channel)


def repermission_sent(at, channel="email") -> Fact:
    return ev("repermission_sent", at, channel=channel)


def msg(**kw) -> Message:
    """A promotion by email on topic ``promotions`` promoting books."""
    fields = {
        "channel": "email",
        "purpose": "promotion",
        "topic": "promotions",
        "category": "books",
    }
    fields.update(kw)
    return Message(**fields)


def service(**kw) -> Message:
    fields = {"purpose": "service", "topic": None, "category": None}
    fields.update(kw)
    return msg(**fields)


def reperm(channel="email") -> Message:
    return Message(channel=channel, purpose="repermission")


def run(p, history, m, now=NOW, *, settings=None, catalog=None):
    d = decide(
        p,
        list(history),
        m,
        now,
        catalog=CATALOG if catalog is None else catalog,
        settings=settings or RuleSettings(),
    )
    assert isinstance(d.allowed, bool)
    return (d.allowed, d.reason)


def allowed(reason: str) -> tuple[bool, str]:
    return (True, reason)


def denied(reason: str) -> tuple[bool, str]:
    return (False, reason)


# --- Step 1: NO_ADDRESS --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "missing"),
    [
        ("email", "email"),
        ("sms", "phone"),
        ("phone", "phone"),
        ("postal", "postal_address"),
        ("push", "push_token"),
    ],
)
def test_no_address_for_the_channel_is_denied(channel, missing):
    p = person(**{missing: None})
    history = [opt_in(ago(10), channel=channel)]
    assert run(p, history, msg(channel=channel)) == denied(Reason.NO_ADDRESS)


def test_sms_uses_the_phone_number_not_the_email():
    p = person(email=None)
    history = [opt_in(ago(10), channel="sms")]
    assert run(p, history, msg(channel="sms")) == allowed(Reason.OPT_IN)


def test_no_address_applies_to_service_messages():
    assert run(person(email=None), [], service()) == denied(Reason.NO_ADDRESS)


def test_no_address_beats_retention_expired():
    p = person(email=None, collected_at=OLD)
    assert run(p, [], msg()) == denied(Reason.NO_ADDRESS)


def test_no_address_beats_repermission():
    p = person(email=None, collected_at=DUE)
    assert run(p, [opt_in(DUE)], reperm()) == denied(Reason.NO_ADDRESS)


# --- Step 2: RETENTION_EXPIRED and the retention anchor ------------------------------------------


def test_prospect_expires_three_years_after_collection():
    p = person(collected_at=OLD)
    assert run(p, [], service()) == denied(Reason.RETENTION_EXPIRED)


def test_retention_expired_beats_valid_consent():
    p = person(collected_at=OLD)
    history = [opt_in(OLD)]
    assert run(p, history, msg()) == denied(Reason.RETENTION_EXPIRED)


def test_retention_applies_to_service_messages():
    assert run(person(collected_at=OLD), [], service()) == denied(Reason.RETENTION_EXPIRED)


def test_retention_applies_to_repermission():
    p = person(collected_at=OLD)
    assert run(p, [opt_in(OLD)], reperm()) == denied(Reason.RETENTION_EXPIRED)


def test_expiry_exactly_now_means_expired():
    p = person(collected_at=datetime(2023, 11, 29, 12, 0, tzinfo=UTC))
    assert run(p, [], service()) == denied(Reason.RETENTION_EXPIRED)


def test_one_second_before_expiry_is_not_expired():
    p = person(collected_at=datetime(2023, 11, 29, 12, 0, 1, tzinfo=UTC))
    assert run(p, [], service()) == allowed(Reason.SERVICE)


def test_29_february_plus_three_years_is_28_february():
    p = person(collected_at=datetime(2024, 2, 29, 12, 0, tzinfo=UTC))
    expiry = datetime(2027, 2, 28, 12, 0, tzinfo=UTC)
    assert run(p, [], service(), now=expiry) == denied(Reason.RETENTION_EXPIRED)
    assert run(p, [], service(), now=expiry - timedelta(seconds=1)) == allowed(Reason.SERVICE)


def test_years_are_calendar_years_not_365_days():
    # 2023-03-01 + 3 years = 2026-03-01; 3 x 365 days would be 2026-02-28.
    p = person(collected_at=datetime(2023, 3, 1, 12, 0, tzinfo=UTC))
    now = datetime(2026, 2, 28, 12, 0, tzinfo=UTC)
    assert run(p, [], service(), now=now) == allowed(Reason.SERVICE)


def test_years_are_added_to_the_utc_date():
    # 29 Feb 00:30 in Paris is 28 Feb 23:30 UTC: expiry is 28 Feb 2027 23:30 UTC, not 27 Feb.
    paris = timezone(timedelta(hours=1))
    p = person(collected_at=datetime(2024, 2, 29, 0, 30, tzinfo=paris))
    now = datetime(2027, 2, 28, 0, 0, tzinfo=UTC)
    assert run(p, [], service(), now=now) == allowed(Reason.SERVICE)
    now = datetime(2027, 2, 28, 23, 30, tzinfo=UTC)
    assert run(p, [], service(), now=now) == denied(Reason.RETENTION_EXPIRED)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda at: opt_in(at), id="opt_in-web_form"),
        pytest.param(lambda at: opt_in(at, method="api", proof="crm#1"), id="opt_in-api"),
        pytest.param(lambda at: opt_in(at, method="admin", proof="form#1"), id="opt_in-admin"),
        pytest.param(lambda at: opt_in(at, method="store_tablet"), id="opt_in-store_tablet"),
        pytest.param(lambda at: doi_confirmed(at), id="doi_confirmed"),
        pytest.param(lambda at: pause(at, until=at + timedelta(days=10)), id="pause"),
        pytest.param(lambda at: callback(at), id="callback_request"),
        pytest.param(lambda at: interaction(at, "click"), id="click"),
        pytest.param(lambda at: interaction(at, "reply"), id="reply"),
        pytest.param(lambda at: interaction(at, "contact"), id="contact"),
    ],
)
def test_person_initiated_event_extends_prospect_retention(make):
    p = person(collected_at=OLD)
    assert run(p, [make(MID)], service()) == allowed(Reason.SERVICE)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda at: opt_in(at, method="import", proof="legacy#1"), id="opt_in-import"),
        pytest.param(lambda at: interaction(at, "open"), id="open"),
        pytest.param(lambda at: bounce(at, hard=False), id="soft-bounce"),
        pytest.param(lambda at: complaint(at), id="complaint"),
        pytest.param(lambda at: opt_out(at), id="opt_out"),
        pytest.param(lambda at: address_changed(at), id="address_changed"),
        pytest.param(lambda at: repermission_sent(at), id="repermission_sent"),
    ],
)
def test_other_events_do_not_extend_prospect_retention(make):
    p = person(collected_at=OLD)
    assert run(p, [make(MID)], service()) == denied(Reason.RETENTION_EXPIRED)


def test_click_extends_retention_but_open_does_not():
    p = person(collected_at=OLD)
    consent = opt_in(OLD)
    assert run(p, [consent, interaction(MID, "click")], msg()) == allowed(Reason.OPT_IN)
    assert run(p, [consent, interaction(MID, "open")], msg()) == denied(Reason.RETENTION_EXPIRED)


def test_import_opt_in_is_not_person_initiated_so_does_not_extend_retention():
    p = person(collected_at=OLD)
    history = [opt_in(MID, method="import", proof="legacy-crm export 2025-01-01")]
    assert run(p, history, msg()) == denied(Reason.RETENTION_EXPIRED)


def test_customer_expires_three_years_after_last_purchase():
    p = person(collected_at=OLD)
    history = [purchase(OLD + timedelta(days=30))]
    assert run(p, history, msg(category="dvd")) == denied(Reason.RETENTION_EXPIRED)


def test_recent_purchase_keeps_customer_data():
    p = person(collected_at=OLD)
    history = [purchase(MID)]
    assert run(p, history, msg(category="dvd")) == allowed(Reason.SOFT_OPT_IN)


def test_customer_anchor_ignores_collected_at():
    # RULES.md: for a customer the anchor is the latest of purchase, warranty, contract_end and
    # person-initiated events; collected_at only counts for a prospect.
    p = person(collected_at=MID)
    history = [purchase(OLD)]
    assert run(p, history, service()) == denied(Reason.RETENTION_EXPIRED)


def test_warranty_until_extends_customer_retention():
    p = person(collected_at=OLD)
    history = [purchase(OLD, category="sofa", warranty_until=MID)]
    assert run(p, history, msg(category="lamp")) == allowed(Reason.SOFT_OPT_IN)


def test_warranty_until_on_29_february_plus_three_years_is_28_february():
    p = person(collected_at=OLD)
    history = [purchase(OLD, warranty_until=datetime(2024, 2, 29, 12, 0, tzinfo=UTC))]
    expiry = datetime(2027, 2, 28, 12, 0, tzinfo=UTC)
    assert run(p, history, service(), now=expiry) == denied(Reason.RETENTION_EXPIRED)
    assert run(p, history, service(), now=expiry - timedelta(seconds=1)) == allowed(Reason.SERVICE)


def test_contract_end_extends_customer_retention():
    p = person(collected_at=OLD)
    history = [contract_start(OLD), contract_end(MID)]
    assert run(p, history, service()) == allowed(Reason.SERVICE)


def test_ended_contract_expires_three_years_after_its_end():
    p = person(collected_at=datetime(2020, 1, 1, tzinfo=UTC))
    history = [contract_start(datetime(2020, 1, 1, tzinfo=UTC)), contract_end(OLD)]
    assert run(p, history, service()) == denied(Reason.RETENTION_EXPIRED)


def test_active_contract_never_expires():
    start = datetime(2015, 1, 1, tzinfo=UTC)
    p = person(collected_at=start)
    history = [contract_start(start, category="mobile-plan")]
    assert run(p, history, service()) == allowed(Reason.SERVICE)
    phone_call = msg(channel="phone", category="fibre")
    assert run(p, history, phone_call) == allowed(Reason.CONTRACT_IN_PROGRESS)


def test_end_of_another_contract_leaves_a_contract_active():
    start = datetime(2015, 1, 1, tzinfo=UTC)
    p = person(collected_at=start)
    history = [
        contract_start(start, contract="c-1"),
        contract_start(start, contract="c-2"),
        contract_end(datetime(2016, 1, 1, tzinfo=UTC), contract="c-2"),
    ]
    assert run(p, history, service()) == allowed(Reason.SERVICE)


def test_settings_retention_years_is_honoured():
    p = person(collected_at=OLD)
    settings = RuleSettings(retention_years=5)
    assert run(p, [], service(), settings=settings) == allowed(Reason.SERVICE)


# --- Step 3: UNDELIVERABLE -----------------------------------------------------------------------


def test_hard_bounce_makes_email_undeliverable():
    history = [opt_in(ago(50)), bounce(ago(10))]
    assert run(person(), history, msg()) == denied(Reason.UNDELIVERABLE)


def test_soft_bounce_is_not_undeliverable():
    history = [opt_in(ago(50)), bounce(ago(10), hard=False)]
    assert run(person(), history, msg()) == allowed(Reason.OPT_IN)


def test_undeliverable_applies_to_service_messages():
    assert run(person(), [bounce(ago(10))], service()) == denied(Reason.UNDELIVERABLE)


def test_undeliverable_beats_repermission():
    p = person(collected_at=DUE)
    history = [opt_in(DUE), bounce(ago(5))]
    assert run(p, history, reperm()) == denied(Reason.UNDELIVERABLE)


def test_retention_expired_beats_undeliverable():
    p = person(collected_at=OLD)
    assert run(p, [bounce(OLD)], msg()) == denied(Reason.RETENTION_EXPIRED)


def test_hard_bounce_on_email_does_not_affect_sms():
    history = [opt_in(ago(50), channel="sms"), bounce(ago(10))]
    assert run(person(), history, msg(channel="sms")) == allowed(Reason.OPT_IN)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda at: doi_confirmed(at, topic="newsletter"), id="doi_confirmed"),
        pytest.param(lambda at: interaction(at, "click"), id="click"),
        pytest.param(lambda at: interaction(at, "reply"), id="reply"),
        pytest.param(lambda at: address_changed(at, channel="email"), id="address_changed"),
    ],
)
def test_later_sign_of_life_clears_a_hard_bounce(make):
    history = [opt_in(ago(50)), bounce(ago(10)), make(ago(5))]
    assert run(person(), history, msg()) == allowed(Reason.OPT_IN)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda at: interaction(at, "open"), id="open"),
        pytest.param(lambda at: interaction(at, "contact"), id="contact"),
        pytest.param(lambda at: address_changed(at, channel="sms"), id="address_changed-sms"),
        pytest.param(lambda at: doi_confirmed(at, channel="sms"), id="doi_confirmed-sms"),
    ],
)
def test_other_events_do_not_clear_a_hard_bounce(make):
    history = [opt_in(ago(50)), bounce(ago(10)), make(ago(5))]
    assert run(person(), history, msg()) == denied(Reason.UNDELIVERABLE)


def test_click_before_the_hard_bounce_does_not_clear_it():
    history = [opt_in(ago(50)), interaction(ago(20), "click"), bounce(ago(10))]
    assert run(person(), history, msg()) == denied(Reason.UNDELIVERABLE)


def test_same_instant_bounce_and_click_keep_recorded_order():
    t = ago(10)
    bounce_then_click = [opt_in(ago(50)), bounce(t), interaction(t, "click")]
    assert run(person(), bounce_then_click, msg()) == allowed(Reason.OPT_IN)
    click_then_bounce = [opt_in(ago(50)), interaction(t, "click"), bounce(t)]
    assert run(person(), click_then_bounce, msg()) == denied(Reason.UNDELIVERABLE)


# --- Step 4: repermission ------------------------------------------------------------------------


def test_repermission_allowed_in_the_last_30_days_before_expiry():
    p = person(collected_at=DUE)
    assert run(p, [opt_in(DUE)], reperm()) == allowed(Reason.REPERMISSION)


def test_repermission_window_start_is_inclusive():
    anchor = datetime(2023, 12, 29, 12, 0, tzinfo=UTC)  # expiry - 30 days == NOW
    p = person(collected_at=anchor)
    assert run(p, [opt_in(anchor)], reperm()) == allowed(Reason.REPERMISSION)


def test_repermission_one_second_before_the_window_is_not_due():
    anchor = datetime(2023, 12, 29, 12, 0, 1, tzinfo=UTC)
    p = person(collected_at=anchor)
    assert run(p, [opt_in(anchor)], reperm()) == denied(Reason.REPERMISSION_NOT_DUE)


def test_repermission_not_due_for_recent_contact():
    history = [opt_in(ago(100))]
    assert run(person(), history, reperm()) == denied(Reason.REPERMISSION_NOT_DUE)


def test_repermission_only_once_since_last_person_initiated_event():
    p = person(collected_at=DUE)
    history = [opt_in(DUE), repermission_sent(ago(5))]
    assert run(p, history, reperm()) == denied(Reason.REPERMISSION_NOT_DUE)


def test_repermission_sent_on_another_channel_counts():
    p = person(collected_at=DUE)
    history = [opt_in(DUE), opt_in(DUE, channel="sms"), repermission_sent(ago(5), channel="sms")]
    assert run(p, history, reperm()) == denied(Reason.REPERMISSION_NOT_DUE)


def test_repermission_due_again_after_a_later_person_initiated_event():
    start = datetime(2020, 6, 1, 12, 0, tzinfo=UTC)
    p = person(collected_at=start)
    history = [
        opt_in(start),
        repermission_sent(datetime(2023, 5, 10, tzinfo=UTC)),
        interaction(DUE, "click"),
    ]
    assert run(p, history, reperm()) == allowed(Reason.REPERMISSION)


def test_repermission_ever_sent_blocks_when_no_person_initiated_event():
    p = person(collected_at=DUE)  # postal basis: informed at collection; no events at all
    assert run(p, [], reperm("postal")) == allowed(Reason.REPERMISSION)
    history = [repermission_sent(DUE + timedelta(days=1), channel="postal")]
    assert run(p, history, reperm("postal")) == denied(Reason.REPERMISSION_NOT_DUE)


def test_import_opt_in_is_not_an_event_after_which_repermission_may_be_sent_again():
    p = person(collected_at=DUE)
    history = [
        repermission_sent(DUE + timedelta(days=1)),
        opt_in(DUE + timedelta(days=2), method="import", proof="legacy#7"),
    ]
    assert run(p, history, reperm()) == denied(Reason.REPERMISSION_NOT_DUE)


def test_repermission_by_phone_is_no_consent():
    p = person(collected_at=DUE)
    history = [opt_in(DUE, channel="phone")]
    assert run(p, history, reperm("phone")) == denied(Reason.NO_CONSENT)


def test_repermission_opted_out_by_wildcard_opt_out():
    p = person(collected_at=DUE)
    history = [opt_in(DUE), opt_out(DUE + timedelta(days=1), topic="*", channel="*")]
    assert run(p, history, reperm()) == denied(Reason.OPTED_OUT)


def test_repermission_opted_out_by_all_topics_on_the_channel():
    p = person(collected_at=DUE)
    history = [opt_in(DUE), opt_out(DUE + timedelta(days=1), topic="*", channel="email")]
    assert run(p, history, reperm()) == denied(Reason.OPTED_OUT)


def test_repermission_opted_out_by_complaint():
    p = person(collected_at=DUE)
    history = [opt_in(DUE), complaint(DUE + timedelta(days=1))]
    assert run(p, history, reperm()) == denied(Reason.OPTED_OUT)


def test_repermission_opted_out_without_any_opt_in_on_the_channel():
    # Basis from soft opt-in facts; a '*' opt-out with no opt-in at all on the channel still wins.
    p = person(collected_at=DUE)
    history = [purchase(DUE), opt_out(DUE + timedelta(days=1), topic="*", channel="email")]
    assert run(p, history, reperm()) == denied(Reason.OPTED_OUT)


def test_repermission_not_opted_out_by_a_single_topic_opt_out():
    p = person(collected_at=DUE)
    history = [
        purchase(DUE),
        opt_in(DUE),
        opt_out(DUE + timedelta(days=1), topic="promotions", channel="email"),
    ]
    assert run(p, history, reperm()) == allowed(Reason.REPERMISSION)


def test_repermission_not_opted_out_by_an_opt_out_on_another_channel():
    p = person(collected_at=DUE)
    history = [opt_in(DUE), opt_out(DUE + timedelta(days=1), topic="*", channel="sms")]
    assert run(p, history, reperm()) == allowed(Reason.REPERMISSION)


def test_repermission_after_opt_in_later_than_wildcard_opt_out():
    start = datetime(2020, 6, 1, 12, 0, tzinfo=UTC)
    p = person(collected_at=start)
    history = [
        opt_in(start),
        opt_out(datetime(2022, 1, 1, tzinfo=UTC)),
        opt_in(DUE, topic="newsletter"),
    ]
    assert run(p, history, reperm()) == allowed(Reason.REPERMISSION)


def test_repermission_opted_out_beats_no_marketing_basis():
    # A consumer prospect with no consent left has no basis either: OPTED_OUT comes first.
    p = person(collected_at=DUE)
    history = [opt_in(DUE), opt_out(DUE + timedelta(days=1))]
    assert run(p, history, reperm()) == denied(Reason.OPTED_OUT)


def test_repermission_no_consent_beats_not_due():
    p = person()  # consumer prospect, informed, no consent, recent
    assert run(p, [], reperm()) == denied(Reason.NO_CONSENT)


@pytest.mark.parametrize(
    ("who", "events", "channel", "expected"),
    [
        ("consumer", [], "email", denied(Reason.NO_CONSENT)),
        ("consumer", ["opt_in_email"], "email", allowed(Reason.REPERMISSION)),
        ("consumer", ["opt_in_sms"], "email", denied(Reason.NO_CONSENT)),
        ("consumer", ["prechecked_email"], "email", denied(Reason.NO_CONSENT)),
        ("consumer", ["opt_in_push"], "push", allowed(Reason.REPERMISSION)),
        ("consumer", ["purchase"], "email", allowed(Reason.REPERMISSION)),
        ("consumer", ["purchase"], "sms", allowed(Reason.REPERMISSION)),
        ("consumer", ["purchase"], "push", denied(Reason.NO_CONSENT)),
        ("consumer-uninformed", ["purchase"], "email", denied(Reason.NO_CONSENT)),
        ("consumer", [], "postal", allowed(Reason.REPERMISSION)),
        ("consumer-uninformed", [], "postal", denied(Reason.NO_CONSENT)),
        ("professional", [], "sms", allowed(Reason.REPERMISSION)),
        ("professional", [], "push", allowed(Reason.REPERMISSION)),
        ("professional-uninformed", [], "email", denied(Reason.NO_CONSENT)),
    ],
)
def test_repermission_needs_a_marketing_basis_on_the_channel(who, events, channel, expected):
    informed = not who.endswith("-uninformed")
    maker = pro if who.startswith("professional") else person
    p = maker(collected_at=DUE, informed_at_collection=informed)
    builders = {
        "opt_in_email": lambda: opt_in(DUE),
        "opt_in_sms": lambda: opt_in(DUE, channel="sms"),
        "opt_in_push": lambda: opt_in(DUE, channel="push"),
        "prechecked_email": lambda: opt_in(DUE, prechecked=True),
        "purchase": lambda: purchase(DUE),
    }
    history = [builders[name]() for name in events]
    assert run(p, history, reperm(channel)) == expected


def test_repermission_never_due_with_an_active_contract():
    start = datetime(2015, 1, 1, tzinfo=UTC)
    p = person(collected_at=start)
    history = [contract_start(start)]
    assert run(p, history, reperm()) == denied(Reason.REPERMISSION_NOT_DUE)


def test_repermission_is_decided_before_pause():
    # Step 4 decides every repermission; the pause of step 7 is never reached.
    p = person(collected_at=DUE)
    history = [opt_in(DUE), pause(DUE, until=later(60))]
    assert run(p, history, reperm()) == allowed(Reason.REPERMISSION)


# --- Step 5: service -----------------------------------------------------------------------------


def test_service_message_allowed_without_consent():
    assert run(person(), [], service()) == allowed(Reason.SERVICE)


def test_service_message_allowed_after_unsubscribe_all():
    history = [opt_out(ago(10)), complaint(ago(5))]
    assert run(person(), history, service()) == allowed(Reason.SERVICE)


def test_service_message_allowed_while_paused():
    history = [pause(ago(1), until=later(30))]
    assert run(person(), history, service()) == allowed(Reason.SERVICE)


def test_service_message_allowed_on_push():
    assert run(person(), [], service(channel="push")) == allowed(Reason.SERVICE)


def test_service_with_promotion_needs_consent():
    m = service(contains_promotion=True, topic="promotions", category="books")
    assert run(person(), [], m) == denied(Reason.NO_CONSENT)


def test_service_with_promotion_honours_opt_out():
    m = service(contains_promotion=True, topic="promotions", category="books")
    assert run(person(), [opt_out(ago(5))], m) == denied(Reason.OPTED_OUT)


def test_service_with_promotion_honours_pause():
    m = service(contains_promotion=True, topic="promotions", category="books")
    history = [opt_in(ago(50)), pause(ago(1), until=later(30))]
    assert run(person(), history, m) == denied(Reason.PAUSED)


def test_service_with_promotion_allowed_by_opt_in():
    m = service(contains_promotion=True, topic="promotions", category="books")
    assert run(person(), [opt_in(ago(50))], m) == allowed(Reason.OPT_IN)


def test_service_with_promotion_takes_the_soft_opt_in_path():
    m = service(contains_promotion=True, topic="promotions", category="dvd")
    assert run(person(), [purchase(ago(30))], m) == allowed(Reason.SOFT_OPT_IN)


# --- Step 6: OPTED_OUT and covering opt-outs -----------------------------------------------------


def test_opt_out_after_opt_in_is_opted_out():
    history = [opt_in(ago(50)), opt_out(ago(10), topic="promotions", channel="email")]
    assert run(person(), history, msg()) == denied(Reason.OPTED_OUT)


def test_wildcard_topic_opt_out_covers_every_topic_on_the_channel():
    history = [opt_in(ago(50), topic="newsletter"), opt_out(ago(10), topic="*", channel="email")]
    assert run(person(), history, msg(purpose="newsletter", topic="newsletter")) == denied(
        Reason.OPTED_OUT
    )


def test_wildcard_channel_opt_out_covers_every_channel_for_the_topic():
    history = [opt_in(ago(50), channel="sms"), opt_out(ago(10), topic="promotions", channel="*")]
    assert run(person(), history, msg(channel="sms")) == denied(Reason.OPTED_OUT)


def test_opt_out_of_another_topic_does_not_cover():
    history = [opt_in(ago(50)), opt_out(ago(10), topic="newsletter", channel="email")]
    assert run(person(), history, msg()) == allowed(Reason.OPT_IN)


def test_opt_out_on_another_channel_does_not_cover():
    history = [opt_in(ago(50)), opt_out(ago(10), topic="*", channel="sms")]
    assert run(person(), history, msg()) == allowed(Reason.OPT_IN)


def test_complaint_is_an_opt_out_of_every_topic_on_email():
    history = [opt_in(ago(50), topic="newsletter"), complaint(ago(10))]
    m = msg(purpose="newsletter", topic="newsletter")
    assert run(person(), history, m) == denied(Reason.OPTED_OUT)


def test_email_complaint_does_not_cover_sms():
    history = [opt_in(ago(50), channel="sms"), complaint(ago(10))]
    assert run(person(), history, msg(channel="sms")) == allowed(Reason.OPT_IN)


def test_valid_opt_in_after_complaint_is_consent():
    history = [complaint(ago(50)), opt_in(ago(10))]
    assert run(person(), history, msg()) == allowed(Reason.OPT_IN)


def test_opt_in_after_unsubscribe_all_is_consent_for_that_topic_only():
    history = [opt_out(ago(50)), opt_in(ago(10))]
    assert run(person(), history, msg()) == allowed(Reason.OPT_IN)
    newsletter = msg(purpose="newsletter", topic="newsletter")
    assert run(person(), history, newsletter) == denied(Reason.OPTED_OUT)


def test_opt_out_beats_soft_opt_in():
    history = [purchase(ago(50)), opt_out(ago(49), topic="*", channel="email")]
    assert run(person(), history, msg(category="dvd")) == denied(Reason.OPTED_OUT)


def test_opt_out_beats_generic_address():
    p = pro(email="info@acme.fr")
    assert run(p, [opt_out(ago(5))], msg()) == denied(Reason.OPTED_OUT)


def test_opt_out_beats_postal_legitimate_interest():
    history = [opt_out(ago(5), topic="*", channel="postal")]
    assert run(person(), history, msg(channel="postal")) == denied(Reason.OPTED_OUT)


def test_opt_out_beats_b2b_professional():
    m = msg(professions=("procurement",))
    assert run(pro(), [opt_out(ago(5))], m) == denied(Reason.OPTED_OUT)


def test_opt_out_beats_contract_in_progress():
    history = [contract_start(ago(200)), opt_out(ago(5), topic="*", channel="phone")]
    m = msg(channel="phone", category="fibre")
    assert run(person(), history, m) == denied(Reason.OPTED_OUT)


def test_opted_out_beats_paused():
    history = [opt_in(ago(50)), opt_out(ago(10)), pause(ago(5), until=later(30))]
    assert run(person(), history, msg()) == denied(Reason.OPTED_OUT)


def test_opt_out_later_than_the_callback_request_wins():
    history = [callback(ago(5)), opt_out(ago(2), topic="*", channel="phone")]
    assert run(person(), history, msg(channel="phone")) == denied(Reason.OPTED_OUT)


def test_callback_request_cancels_an_earlier_phone_opt_out():
    history = [opt_out(ago(20), topic="*", channel="*"), callback(ago(5))]
    assert run(person(), history, msg(channel="phone")) == allowed(Reason.CALLBACK_REQUESTED)


def test_callback_request_does_not_cancel_an_email_opt_out():
    history = [opt_in(ago(50)), opt_out(ago(20)), callback(ago(5))]
    assert run(person(), history, msg()) == denied(Reason.OPTED_OUT)


def test_callback_request_does_not_cancel_an_sms_opt_out():
    history = [opt_in(ago(50), channel="sms"), opt_out(ago(20)), callback(ago(5))]
    assert run(person(), history, msg(channel="sms")) == denied(Reason.OPTED_OUT)


def test_callback_after_phone_opt_out_does_not_allow_an_automated_call():
    # v2, step 6: the callback's exception covers the live call asked for, never an automated one.
    history = [opt_out(ago(20), topic="*", channel="phone"), callback(ago(5))]
    m = msg(channel="phone", automated=True)
    assert run(person(), history, m) == denied(Reason.OPTED_OUT)


def test_doi_confirmation_after_opt_out_lifts_it_but_is_not_consent():
    # Opted out: the latest of {opt-outs, opt_in, doi_confirmed} is the confirmation, so not
    # opted out; valid consent needs an opt_in later than the opt-out, and there is none.
    history = [
        opt_in(ago(10), doi="pending"),
        opt_out(ago(9), topic="promotions", channel="email"),
        doi_confirmed(ago(8)),
    ]
    assert run(person(), history, msg()) == denied(Reason.NO_CONSENT)


def test_opt_out_exactly_now_counts():
    history = [opt_in(ago(50)), opt_out(NOW)]
    assert run(person(), history, msg()) == denied(Reason.OPTED_OUT)


def test_opt_out_after_now_is_ignored():
    history = [opt_in(ago(50)), opt_out(later(seconds=1))]
    assert run(person(), history, msg()) == allowed(Reason.OPT_IN)


def test_decision_as_of_a_past_date_ignores_later_events():
    history = [opt_in(ago(50)), opt_out(ago(10))]
    assert run(person(), history, msg(), now=ago(20)) == allowed(Reason.OPT_IN)
    assert run(person(), history, msg()) == denied(Reason.OPTED_OUT)


def test_same_instant_opt_in_then_opt_out_is_opted_out():
    t = ago(10)
    history = [opt_in(t), opt_out(t)]
    assert run(person(), history, msg()) == denied(Reason.OPTED_OUT)


def test_same_instant_opt_out_then_opt_in_is_consent():
    t = ago(10)
    history = [opt_out(t), opt_in(t)]
    assert run(person(), history, msg()) == allowed(Reason.OPT_IN)


def test_recorded_order_is_seq_not_list_position():
    t = ago(10)
    history = [opt_out(t), opt_in(t)]  # opt_in recorded last
    assert run(person(), list(reversed(history)), msg()) == allowed(Reason.OPT_IN)


def test_instants_are_compared_in_utc():
    # Recorded first, the opt-in at 12:00 UTC is later than the opt-out at 13:00+02:00 (11:00 UTC).
    paris_summer = timezone(timedelta(hours=2))
    history = [
        opt_in(datetime(2026, 10, 1, 12, 0, tzinfo=UTC)),
        opt_out(datetime(2026, 10, 1, 13, 0, tzinfo=paris_summer)),
    ]
    assert run(person(), history, msg()) == allowed(Reason.OPT_IN)


# --- Step 7: PAUSED ------------------------------------------------------------------------------


def test_active_pause_denies_marketing():
    history = [opt_in(ago(50)), pause(ago(1), until=later(10), channel="email")]
    assert run(person(), history, msg()) == denied(Reason.PAUSED)


def test_wildcard_pause_covers_every_channel():
    history = [opt_in(ago(50), channel="sms"), pause(ago(1), until=later(10), channel="*")]
    assert run(person(), history, msg(channel="sms")) == denied(Reason.PAUSED)


def test_pause_on_another_channel_does_not_apply():
    history = [opt_in(ago(50)), pause(ago(1), until=later(10), channel="sms")]
    assert run(person(), history, msg()) == allowed(Reason.OPT_IN)


def test_pause_ending_exactly_now_is_over():
    history = [opt_in(ago(50)), pause(ago(10), until=NOW)]
    assert run(person(), history, msg()) == allowed(Reason.OPT_IN)


def test_pause_in_the_past_is_over():
    history = [opt_in(ago(50)), pause(ago(20), until=ago(10))]
    assert run(person(), history, msg()) == allowed(Reason.OPT_IN)


def test_latest_pause_decides():
    history = [opt_in(ago(50)), pause(ago(20), until=later(60)), pause(ago(5), until=ago(1))]
    assert run(person(), history, msg()) == allowed(Reason.OPT_IN)


def test_latest_pause_on_the_channel_overrides_an_earlier_wildcard_pause():
    history = [
        opt_in(ago(50)),
        pause(ago(20), until=later(60), channel="*"),
        pause(ago(5), until=ago(1), channel="email"),
    ]
    assert run(person(), history, msg()) == allowed(Reason.OPT_IN)


def test_pause_recorded_after_now_is_ignored():
    history = [opt_in(ago(50)), pause(later(1), until=later(30))]
    assert run(person(), history, msg()) == allowed(Reason.OPT_IN)


def test_pause_beats_valid_consent():
    history = [opt_in(ago(1)), pause(ago(2), until=later(10))]
    assert run(person(), history, msg()) == denied(Reason.PAUSED)


def test_pause_beats_soft_opt_in():
    history = [purchase(ago(50)), pause(ago(1), until=later(10))]
    assert run(person(), history, msg(category="dvd")) == denied(Reason.PAUSED)


def test_pause_beats_postal_legitimate_interest():
    history = [pause(ago(1), until=later(10), channel="postal")]
    assert run(person(), history, msg(channel="postal")) == denied(Reason.PAUSED)


def test_pause_beats_generic_address():
    p = pro(email="contact@acme.fr")
    assert run(p, [pause(ago(1), until=later(10))], msg()) == denied(Reason.PAUSED)


def test_pause_beats_callback_request():
    history = [callback(ago(2)), pause(ago(1), until=later(10), channel="phone")]
    assert run(person(), history, msg(channel="phone")) == denied(Reason.PAUSED)


# --- Step 8: OPT_IN and valid opt-ins ------------------------------------------------------------


def test_valid_opt_in_allows():
    assert run(person(), [opt_in(ago(10))], msg()) == allowed(Reason.OPT_IN)


def test_consent_is_per_channel():
    assert run(person(), [opt_in(ago(10))], msg(channel="sms")) == denied(Reason.NO_CONSENT)


def test_consent_on_phone_does_not_cover_sms():
    history = [opt_in(ago(10), channel="phone")]
    assert run(person(), history, msg(channel="sms")) == denied(Reason.NO_CONSENT)


def test_consent_is_per_topic():
    history = [opt_in(ago(10), topic="newsletter")]
    assert run(person(), history, msg()) == denied(Reason.NO_CONSENT)


def test_opt_in_after_now_is_ignored():
    assert run(person(), [opt_in(later(1))], msg()) == denied(Reason.NO_CONSENT)


@pytest.mark.parametrize("method", ["import", "api", "admin"])
def test_opt_in_by_method_needing_proof_is_consent_with_proof(method):
    history = [opt_in(ago(10), method=method, proof="crm export 2026-01-02, form v3")]
    assert run(person(), history, msg()) == allowed(Reason.OPT_IN)


@pytest.mark.parametrize("method", ["import", "api", "admin"])
def test_opt_in_by_method_needing_proof_without_proof_is_invalid(method):
    history = [opt_in(ago(10), method=method)]
    assert run(person(), history, msg()) == denied(Reason.INVALID_CONSENT)


@pytest.mark.parametrize(
    "method", ["web_form", "double_opt_in", "preference_center", "store_tablet", "phone_call"]
)
def test_other_methods_need_no_proof(method):
    history = [opt_in(ago(10), method=method)]
    assert run(person(), history, msg()) == allowed(Reason.OPT_IN)


def test_doi_confirmed_within_the_link_lifetime_is_consent():
    history = [opt_in(ago(10), doi="pending"), doi_confirmed(ago(9))]
    assert run(person(), history, msg()) == allowed(Reason.OPT_IN)


def test_doi_confirmed_exactly_seven_days_later_is_consent():
    history = [opt_in(ago(10), doi="pending"), doi_confirmed(ago(3))]
    assert run(person(), history, msg()) == allowed(Reason.OPT_IN)


def test_doi_confirmed_after_the_link_expired_is_still_pending():
    history = [opt_in(ago(10), doi="pending"), doi_confirmed(ago(3, seconds=-1))]
    assert run(person(), history, msg()) == denied(Reason.CONSENT_PENDING)


def test_doi_confirmation_for_another_topic_does_not_confirm():
    history = [opt_in(ago(10), doi="pending"), doi_confirmed(ago(9), topic="newsletter")]
    assert run(person(), history, msg()) == denied(Reason.CONSENT_PENDING)


def test_doi_confirmation_on_another_channel_does_not_confirm():
    history = [opt_in(ago(10), doi="pending"), doi_confirmed(ago(9), channel="sms")]
    assert run(person(), history, msg()) == denied(Reason.CONSENT_PENDING)


def test_doi_confirmation_before_the_opt_in_does_not_confirm():
    history = [doi_confirmed(ago(11)), opt_in(ago(10), doi="pending")]
    assert run(person(), history, msg()) == denied(Reason.CONSENT_PENDING)


def test_doi_confirmation_after_now_is_ignored():
    history = [opt_in(ago(2), doi="pending"), doi_confirmed(later(1))]
    assert run(person(), history, msg()) == denied(Reason.CONSENT_PENDING)


def test_doi_link_lifetime_setting_is_honoured():
    history = [opt_in(ago(10), doi="pending"), doi_confirmed(ago(1))]
    assert run(person(), history, msg()) == denied(Reason.CONSENT_PENDING)
    settings = RuleSettings(doi_ttl=timedelta(days=10))
    assert run(person(), history, msg(), settings=settings) == allowed(Reason.OPT_IN)


def test_later_pending_opt_in_keeps_earlier_valid_consent():
    history = [opt_in(ago(50)), opt_in(ago(1), doi="pending")]
    assert run(person(), history, msg()) == allowed(Reason.OPT_IN)


@pytest.mark.parametrize(
    "flaw",
    [
        pytest.param({"prechecked": True}, id="prechecked"),
        pytest.param({"bundled": True}, id="bundled"),
        pytest.param({"method": "import"}, id="import-without-proof"),
    ],
)
def test_later_invalid_opt_in_keeps_earlier_valid_consent(flaw):
    history = [opt_in(ago(50)), opt_in(ago(1), **flaw)]
    assert run(person(), history, msg()) == allowed(Reason.OPT_IN)


def test_valid_consent_wins_before_generic_address():
    p = pro(email="info@acme.fr")
    assert run(p, [opt_in(ago(10))], msg()) == allowed(Reason.OPT_IN)


def test_valid_consent_wins_before_postal_legitimate_interest():
    history = [opt_in(ago(10), channel="postal")]
    assert run(person(), history, msg(channel="postal")) == allowed(Reason.OPT_IN)


def test_valid_consent_wins_before_b2b_professional():
    m = msg(professions=("procurement",))
    assert run(pro(), [opt_in(ago(10))], m) == allowed(Reason.OPT_IN)


def test_valid_consent_wins_before_callback_request():
    history = [opt_in(ago(50), channel="phone"), callback(ago(1))]
    assert run(person(), history, msg(channel="phone")) == allowed(Reason.OPT_IN)


def test_valid_consent_wins_before_soft_opt_in():
    history = [purchase(ago(50)), opt_in(ago(10))]
    assert run(person(), history, msg(category="dvd")) == allowed(Reason.OPT_IN)


def test_valid_consent_wins_before_cart_path():
    history = [purchase(ago(50)), opt_in(ago(10), topic="cart")]
    m = msg(purpose="cart_abandonment", topic="cart", product="sku-book-1")
    assert run(person(), history, m) == allowed(Reason.OPT_IN)


def test_automated_call_allowed_with_consent_to_automated_calls():
    history = [opt_in(ago(10), channel="phone", automated=True)]
    assert run(person(), history, msg(channel="phone", automated=True)) == allowed(Reason.OPT_IN)


def test_consent_to_live_calls_does_not_cover_automated_calls():
    # v2, step 8: consent "by this means" (L34-5).
    history = [opt_in(ago(10), channel="phone")]
    assert run(person(), history, msg(channel="phone", automated=True)) == denied(Reason.NO_CONSENT)
    assert run(person(), history, msg(channel="phone")) == allowed(Reason.OPT_IN)


def test_a_later_live_only_opt_in_keeps_an_earlier_automated_consent():
    history = [
        opt_in(ago(20), channel="phone", automated=True),
        opt_in(ago(10), channel="phone"),
    ]
    assert run(person(), history, msg(channel="phone", automated=True)) == allowed(Reason.OPT_IN)


def test_automated_consent_after_an_opt_out_is_needed_again():
    history = [
        opt_in(ago(30), channel="phone", automated=True),
        opt_out(ago(20), channel="phone"),
        opt_in(ago(10), channel="phone"),
    ]
    assert run(person(), history, msg(channel="phone", automated=True)) == denied(Reason.NO_CONSENT)


def test_push_allowed_with_consent():
    history = [opt_in(ago(10), channel="push")]
    assert run(person(), history, msg(channel="push")) == allowed(Reason.OPT_IN)


@pytest.mark.parametrize(
    ("purpose", "topic"),
    [
        ("newsletter", "newsletter"),
        ("loyalty_enrolment", "loyalty"),
        ("reactivation", "winback"),
        ("partner_offer", "partners"),
    ],
)
def test_consent_allows_purposes_without_consumer_exception(purpose, topic):
    history = [opt_in(ago(10), topic=topic)]
    assert run(person(), history, msg(purpose=purpose, topic=topic)) == allowed(Reason.OPT_IN)


# --- Step 9.1: GENERIC_ADDRESS -------------------------------------------------------------------


def test_generic_address_of_a_professional_needs_no_consent_nor_information():
    p = pro(email="info@acme.fr", informed_at_collection=False)
    assert run(p, [], msg()) == allowed(Reason.GENERIC_ADDRESS)


@pytest.mark.parametrize(
    "email", ["Contact@ACME.fr", "SALES+promo@acme.fr", "equipe+2026+q1@acme.fr"]
)
def test_generic_address_ignores_case_and_plus_tag(email):
    p = pro(email=email, informed_at_collection=False)
    assert run(p, [], msg()) == allowed(Reason.GENERIC_ADDRESS)


@pytest.mark.parametrize("email", ["info.team@acme.fr", "jean.info@acme.fr", "infos@acme.fr"])
def test_local_part_not_exactly_in_the_list_is_not_generic(email):
    p = pro(email=email, informed_at_collection=False)
    assert run(p, [], msg()) == denied(Reason.NOT_INFORMED)


def test_generic_address_of_a_consumer_is_not_an_exception():
    p = person(email="contact@example.fr")
    assert run(p, [], msg()) == denied(Reason.NO_CONSENT)


def test_generic_address_path_is_email_only():
    p = pro(email="info@acme.fr", informed_at_collection=False)
    assert run(p, [], msg(channel="sms")) == denied(Reason.NOT_INFORMED)


def test_generic_address_beats_b2b_professional():
    p = pro(email="sales@acme.fr")
    assert run(p, [], msg(professions=("procurement",))) == allowed(Reason.GENERIC_ADDRESS)


def test_generic_address_for_any_marketing_purpose():
    p = pro(email="info@acme.fr")
    m = msg(purpose="newsletter", topic="newsletter")
    assert run(p, [], m) == allowed(Reason.GENERIC_ADDRESS)


def test_generic_address_beats_consent_pending():
    p = pro(email="info@acme.fr")
    assert run(p, [opt_in(ago(1), doi="pending")], msg()) == allowed(Reason.GENERIC_ADDRESS)


def test_generic_local_parts_setting_is_honoured():
    p = pro(email="achats@acme.fr", informed_at_collection=False)
    settings = RuleSettings(generic_local_parts=frozenset({"achats"}))
    assert run(p, [], msg(), settings=settings) == allowed(Reason.GENERIC_ADDRESS)
    assert run(p, [], msg()) == denied(Reason.NOT_INFORMED)


# --- Step 9.2: LEGITIMATE_INTEREST (postal) ------------------------------------------------------


@pytest.mark.parametrize(
    ("purpose", "topic"),
    [
        ("promotion", "promotions"),
        ("newsletter", "newsletter"),
        ("loyalty_enrolment", "loyalty"),
        ("reactivation", "winback"),
        ("partner_offer", "partners"),
        ("cart_abandonment", "cart"),
    ],
)
def test_postal_for_an_informed_consumer_is_legitimate_interest(purpose, topic):
    m = msg(channel="postal", purpose=purpose, topic=topic)
    assert run(person(), [], m) == allowed(Reason.LEGITIMATE_INTEREST)


def test_postal_for_an_informed_professional_is_legitimate_interest_before_b2b():
    m = msg(channel="postal", professions=("procurement",))
    assert run(pro(), [], m) == allowed(Reason.LEGITIMATE_INTEREST)


def test_postal_without_information_is_not_informed():
    p = person(informed_at_collection=False)
    assert run(p, [], msg(channel="postal")) == denied(Reason.NOT_INFORMED)


# --- Step 9.3: B2B_PROFESSIONAL ------------------------------------------------------------------


@pytest.mark.parametrize("channel", ["email", "sms", "phone", "push"])
def test_informed_professional_relevant_to_the_message_on_any_channel(channel):
    m = msg(channel=channel, professions=("marketing", "procurement"))
    assert run(pro(), [], m) == allowed(Reason.B2B_PROFESSIONAL)


def test_b2b_professional_never_covers_automated_calls():
    # v2, step 9.3: automated calls need consent, professionals included.
    m = msg(channel="phone", automated=True, professions=("procurement",))
    assert run(pro(), [], m) == denied(Reason.NO_CONSENT)
    assert run(pro(informed_at_collection=False), [], m) == denied(Reason.NO_CONSENT)
    assert run(pro(), [], msg(channel="phone", professions=("procurement",))) == allowed(
        Reason.B2B_PROFESSIONAL
    )


def test_b2b_professional_applies_to_newsletters():
    m = msg(purpose="newsletter", topic="newsletter", professions=("procurement",))
    assert run(pro(), [], m) == allowed(Reason.B2B_PROFESSIONAL)


def test_professional_whose_profession_is_not_targeted_is_not_relevant():
    m = msg(professions=("marketing",))
    assert run(pro(), [], m) == denied(Reason.NOT_PROFESSIONAL_RELEVANT)


def test_professional_without_profession_is_not_relevant():
    m = msg(professions=("procurement",))
    assert run(pro(profession=None), [], m) == denied(Reason.NOT_PROFESSIONAL_RELEVANT)


def test_message_without_professions_is_relevant_to_no_professional():
    assert run(pro(), [], msg()) == denied(Reason.NOT_PROFESSIONAL_RELEVANT)


def test_uninformed_relevant_professional_is_not_informed():
    p = pro(informed_at_collection=False)
    assert run(p, [], msg(professions=("procurement",))) == denied(Reason.NOT_INFORMED)


def test_not_informed_beats_not_professional_relevant():
    p = pro(informed_at_collection=False)
    assert run(p, [], msg(professions=("marketing",))) == denied(Reason.NOT_INFORMED)


def test_professional_customer_has_no_soft_opt_in():
    history = [purchase(ago(50))]
    m = msg(category="dvd", professions=("marketing",))
    assert run(pro(), history, m) == denied(Reason.NOT_PROFESSIONAL_RELEVANT)


# --- Step 9.4: phone, CONTRACT_IN_PROGRESS and CALLBACK_REQUESTED --------------------------------


def test_phone_canvassing_of_a_consumer_needs_consent():
    assert run(person(), [], msg(channel="phone")) == denied(Reason.NO_CONSENT)


def test_active_contract_in_the_same_family_allows_a_call():
    history = [contract_start(ago(200), category="mobile-plan")]
    m = msg(channel="phone", category="fibre")
    assert run(person(), history, m) == allowed(Reason.CONTRACT_IN_PROGRESS)


def test_contract_in_progress_needs_no_information():
    p = person(informed_at_collection=False)
    history = [contract_start(ago(200), category="mobile-plan")]
    m = msg(channel="phone", category="mobile-plan")
    assert run(p, history, m) == allowed(Reason.CONTRACT_IN_PROGRESS)


def test_contract_in_progress_only_for_an_analogous_family():
    history = [contract_start(ago(200), category="mobile-plan")]
    m = msg(channel="phone", category="sofa")
    assert run(person(), history, m) == denied(Reason.NO_CONSENT)


def test_ended_contract_does_not_allow_a_call():
    history = [contract_start(ago(200)), contract_end(ago(10))]
    m = msg(channel="phone", category="fibre")
    assert run(person(), history, m) == denied(Reason.NO_CONSENT)


def test_analogous_purchase_is_not_a_contract_in_progress():
    history = [purchase(ago(10), category="mobile-plan")]
    m = msg(channel="phone", category="fibre")
    assert run(person(), history, m) == denied(Reason.NO_CONSENT)


def test_call_without_category_is_analogous_to_no_contract():
    history = [contract_start(ago(200), category="mobile-plan")]
    m = msg(channel="phone", category=None)
    assert run(person(), history, m) == denied(Reason.NO_CONSENT)


def test_category_missing_from_catalog_is_its_own_family_for_contracts():
    history = [contract_start(ago(200), category="gym")]
    same = msg(channel="phone", category="gym")
    assert run(person(), history, same) == allowed(Reason.CONTRACT_IN_PROGRESS)
    other_unknown = msg(channel="phone", category="yoga")
    assert run(person(), history, other_unknown) == denied(Reason.NO_CONSENT)


def test_automated_call_to_a_consumer_under_contract_needs_consent():
    history = [contract_start(ago(200), category="mobile-plan")]
    m = msg(channel="phone", category="fibre", automated=True)
    assert run(person(), history, m) == denied(Reason.NO_CONSENT)


def test_callback_request_allows_the_call():
    history = [callback(ago(10))]
    assert run(person(), history, msg(channel="phone")) == allowed(Reason.CALLBACK_REQUESTED)


def test_callback_request_needs_no_information():
    p = person(informed_at_collection=False)
    history = [callback(ago(10))]
    assert run(p, history, msg(channel="phone")) == allowed(Reason.CALLBACK_REQUESTED)


def test_callback_request_exactly_30_days_old_counts():
    history = [callback(ago(30))]
    assert run(person(), history, msg(channel="phone")) == allowed(Reason.CALLBACK_REQUESTED)


def test_callback_request_older_than_30_days_does_not_count():
    history = [callback(ago(30, seconds=1))]
    assert run(person(), history, msg(channel="phone")) == denied(Reason.NO_CONSENT)


def test_latest_callback_request_decides():
    history = [callback(ago(60)), callback(ago(5))]
    assert run(person(), history, msg(channel="phone")) == allowed(Reason.CALLBACK_REQUESTED)


def test_callback_validity_setting_is_honoured():
    history = [callback(ago(40))]
    settings = RuleSettings(callback_validity=timedelta(days=45))
    m = msg(channel="phone")
    assert run(person(), history, m, settings=settings) == allowed(Reason.CALLBACK_REQUESTED)


def test_automated_call_after_a_callback_request_needs_consent():
    history = [callback(ago(5))]
    m = msg(channel="phone", automated=True)
    assert run(person(), history, m) == denied(Reason.NO_CONSENT)


def test_callback_request_does_not_allow_sms():
    assert run(person(), [callback(ago(5))], msg(channel="sms")) == denied(Reason.NO_CONSENT)


def test_expired_callback_after_phone_opt_out_leaves_the_opt_out():
    # v2, step 6: a callback no longer lifts an objection; once its 30 days are over, the
    # opt-out is all that is left.
    history = [opt_out(ago(60), topic="*", channel="phone"), callback(ago(45))]
    assert run(person(), history, msg(channel="phone")) == denied(Reason.OPTED_OUT)


def test_contract_in_progress_checked_before_callback():
    history = [contract_start(ago(200)), callback(ago(5))]
    m = msg(channel="phone", category="fibre")
    assert run(person(), history, m) == allowed(Reason.CONTRACT_IN_PROGRESS)


@pytest.mark.parametrize(
    ("purpose", "topic"),
    [
        ("newsletter", "newsletter"),
        ("loyalty_enrolment", "loyalty"),
        ("reactivation", "winback"),
        ("partner_offer", "partners"),
    ],
)
def test_purposes_without_consumer_exception_cannot_use_the_phone_exceptions(purpose, topic):
    history = [contract_start(ago(200)), callback(ago(5))]
    m = msg(channel="phone", purpose=purpose, topic=topic, category="fibre")
    assert run(person(), history, m) == denied(Reason.NO_CONSENT)


# --- Step 9.5: SOFT_OPT_IN -----------------------------------------------------------------------


@pytest.mark.parametrize("channel", ["email", "sms"])
def test_informed_customer_gets_analogous_promotions(channel):
    history = [purchase(ago(50), category="books")]
    m = msg(channel=channel, category="dvd")
    assert run(person(), history, m) == allowed(Reason.SOFT_OPT_IN)


def test_soft_opt_in_for_the_same_category():
    assert run(person(), [purchase(ago(50))], msg(category="books")) == allowed(Reason.SOFT_OPT_IN)


def test_soft_opt_in_not_on_push():
    history = [purchase(ago(50))]
    assert run(person(), history, msg(channel="push", category="dvd")) == denied(Reason.NO_CONSENT)


def test_soft_opt_in_not_on_phone():
    history = [purchase(ago(50))]
    assert run(person(), history, msg(channel="phone", category="dvd")) == denied(Reason.NO_CONSENT)


def test_soft_opt_in_from_any_of_the_purchases():
    history = [purchase(ago(50), category="sofa"), purchase(ago(40), category="books")]
    assert run(person(), history, msg(category="music")) == allowed(Reason.SOFT_OPT_IN)


def test_soft_opt_in_from_an_ended_contract():
    history = [contract_start(ago(300), category="mobile-plan"), contract_end(ago(30))]
    assert run(person(), history, msg(category="fibre")) == allowed(Reason.SOFT_OPT_IN)


def test_soft_opt_in_from_an_active_contract():
    history = [contract_start(ago(300), category="mobile-plan")]
    assert run(person(), history, msg(category="fibre")) == allowed(Reason.SOFT_OPT_IN)


def test_soft_opt_in_with_account_first_and_purchase_later():
    p = person(collected_at=ago(400))
    history = [purchase(ago(10))]
    assert run(p, history, msg(category="dvd")) == allowed(Reason.SOFT_OPT_IN)


def test_soft_opt_in_not_analogous():
    history = [purchase(ago(50), category="books")]
    assert run(person(), history, msg(category="sofa")) == denied(Reason.NOT_ANALOGOUS)


def test_promotion_without_category_is_analogous_to_nothing():
    history = [purchase(ago(50), category="books")]
    assert run(person(), history, msg(category=None)) == denied(Reason.NOT_ANALOGOUS)


def test_purchase_and_message_without_category_are_not_analogous():
    history = [purchase(ago(50), category=None)]
    assert run(person(), history, msg(category=None)) == denied(Reason.NOT_ANALOGOUS)


def test_category_missing_from_catalog_is_its_own_family():
    history = [purchase(ago(50), category="gym")]
    assert run(person(), history, msg(category="gym")) == allowed(Reason.SOFT_OPT_IN)
    assert run(person(), history, msg(category="yoga")) == denied(Reason.NOT_ANALOGOUS)
    assert run(person(), history, msg(category="books")) == denied(Reason.NOT_ANALOGOUS)


def test_empty_catalog_makes_only_equal_categories_analogous():
    history = [purchase(ago(50), category="books")]
    assert run(person(), history, msg(category="books"), catalog={}) == allowed(Reason.SOFT_OPT_IN)
    assert run(person(), history, msg(category="dvd"), catalog={}) == denied(Reason.NOT_ANALOGOUS)


def test_uninformed_customer_on_the_soft_opt_in_path_is_not_informed():
    p = person(informed_at_collection=False)
    assert run(p, [purchase(ago(50))], msg(category="dvd")) == denied(Reason.NOT_INFORMED)


def test_not_informed_beats_not_analogous():
    p = person(informed_at_collection=False)
    assert run(p, [purchase(ago(50))], msg(category="sofa")) == denied(Reason.NOT_INFORMED)


def test_account_without_purchase_has_no_soft_opt_in():
    assert run(person(), [], msg(category="books")) == denied(Reason.NO_CONSENT)


def test_uninformed_prospect_is_no_consent_not_not_informed():
    p = person(informed_at_collection=False)
    assert run(p, [], msg()) == denied(Reason.NO_CONSENT)


def test_purchase_after_now_does_not_make_a_customer():
    history = [purchase(later(1))]
    assert run(person(), history, msg(category="dvd")) == denied(Reason.NO_CONSENT)


@pytest.mark.parametrize(
    ("purpose", "topic"),
    [
        ("newsletter", "newsletter"),
        ("loyalty_enrolment", "loyalty"),
        ("reactivation", "winback"),
        ("partner_offer", "partners"),
    ],
)
def test_customer_needs_consent_for_purposes_without_consumer_exception(purpose, topic):
    history = [purchase(ago(50))]
    m = msg(purpose=purpose, topic=topic, category="dvd")
    assert run(person(), history, m) == denied(Reason.NO_CONSENT)


def test_uninformed_customer_off_the_soft_opt_in_path_is_no_consent():
    p = person(informed_at_collection=False)
    m = msg(purpose="newsletter", topic="newsletter", category="dvd")
    assert run(p, [purchase(ago(50))], m) == denied(Reason.NO_CONSENT)


def test_invalid_opt_in_does_not_block_soft_opt_in():
    history = [purchase(ago(50)), opt_in(ago(5), prechecked=True)]
    assert run(person(), history, msg(category="dvd")) == allowed(Reason.SOFT_OPT_IN)


# --- Step 9.6: ALREADY_BOUGHT_PRODUCT (cart path) ------------------------------------------------


def cart(**kw) -> Message:
    fields = {"purpose": "cart_abandonment", "topic": "cart", "product": "sku-book-1"}
    fields.update(kw)
    return msg(**fields)


@pytest.mark.parametrize("channel", ["email", "sms"])
def test_cart_abandonment_for_an_already_bought_product(channel):
    history = [purchase(ago(50), product="sku-book-1")]
    assert run(person(), history, cart(channel=channel)) == allowed(Reason.ALREADY_BOUGHT_PRODUCT)


def test_cart_abandonment_of_another_product_needs_consent():
    history = [purchase(ago(50), product="sku-book-2")]
    assert run(person(), history, cart()) == denied(Reason.NO_CONSENT)


def test_cart_abandonment_is_prospecting_for_a_prospect():
    assert run(person(), [], cart()) == denied(Reason.NO_CONSENT)


def test_cart_abandonment_uninformed_buyer_is_not_informed():
    p = person(informed_at_collection=False)
    history = [purchase(ago(50), product="sku-book-1")]
    assert run(p, history, cart()) == denied(Reason.NOT_INFORMED)


def test_cart_abandonment_uninformed_non_buyer_is_no_consent():
    p = person(informed_at_collection=False)
    history = [purchase(ago(50), product="sku-book-2")]
    assert run(p, history, cart()) == denied(Reason.NO_CONSENT)


def test_cart_abandonment_not_on_push():
    history = [purchase(ago(50), product="sku-book-1")]
    assert run(person(), history, cart(channel="push")) == denied(Reason.NO_CONSENT)


def test_cart_abandonment_is_not_the_soft_opt_in_path():
    # Same family bought, but not the product: no NOT_ANALOGOUS / SOFT_OPT_IN on the cart path.
    history = [purchase(ago(50), category="books", product="sku-book-2")]
    assert run(person(), history, cart(category="books")) == denied(Reason.NO_CONSENT)


# --- Step 10: the reason of a denial -------------------------------------------------------------


def test_pending_opt_in_is_consent_pending():
    history = [opt_in(ago(2), doi="pending")]
    assert run(person(), history, msg()) == denied(Reason.CONSENT_PENDING)


def test_pending_opt_in_with_expired_link_is_still_consent_pending():
    history = [opt_in(ago(20), doi="pending")]
    assert run(person(), history, msg()) == denied(Reason.CONSENT_PENDING)


@pytest.mark.parametrize(
    "flaw",
    [
        pytest.param({"prechecked": True}, id="prechecked"),
        pytest.param({"bundled": True}, id="bundled"),
        pytest.param({"method": "import"}, id="import-without-proof"),
        pytest.param({"method": "api"}, id="api-without-proof"),
        pytest.param({"method": "admin"}, id="admin-without-proof"),
    ],
)
def test_flawed_opt_in_is_invalid_consent(flaw):
    history = [opt_in(ago(2), **flaw)]
    assert run(person(), history, msg()) == denied(Reason.INVALID_CONSENT)


def test_latest_flawed_opt_in_decides_between_pending_and_invalid():
    pending_last = [opt_in(ago(5), prechecked=True), opt_in(ago(2), doi="pending")]
    assert run(person(), pending_last, msg()) == denied(Reason.CONSENT_PENDING)
    invalid_last = [opt_in(ago(5), doi="pending"), opt_in(ago(2), prechecked=True)]
    assert run(person(), invalid_last, msg()) == denied(Reason.INVALID_CONSENT)


def test_consent_pending_beats_invalid_consent():
    history = [opt_in(ago(2), doi="pending", prechecked=True)]
    assert run(person(), history, msg()) == denied(Reason.CONSENT_PENDING)


def test_consent_pending_beats_not_informed():
    p = person(informed_at_collection=False)
    history = [purchase(ago(50)), opt_in(ago(2), doi="pending")]
    assert run(p, history, msg(category="dvd")) == denied(Reason.CONSENT_PENDING)


def test_invalid_consent_beats_not_informed():
    p = person(informed_at_collection=False)
    history = [opt_in(ago(2), channel="postal", bundled=True)]
    assert run(p, history, msg(channel="postal")) == denied(Reason.INVALID_CONSENT)


def test_invalid_consent_beats_not_professional_relevant():
    history = [opt_in(ago(2), prechecked=True)]
    m = msg(professions=("marketing",))
    assert run(pro(), history, m) == denied(Reason.INVALID_CONSENT)


def test_invalid_consent_beats_not_analogous():
    history = [purchase(ago(50)), opt_in(ago(2), prechecked=True)]
    assert run(person(), history, msg(category="sofa")) == denied(Reason.INVALID_CONSENT)


def test_flawed_opt_in_on_another_topic_or_channel_is_ignored():
    history = [
        opt_in(ago(2), topic="newsletter", prechecked=True),
        opt_in(ago(2), channel="sms", doi="pending"),
    ]
    assert run(person(), history, msg()) == denied(Reason.NO_CONSENT)


def test_prechecked_opt_in_after_opt_out_does_not_lift_it():
    # v2, "Opted out of": only valid opt-ins (and the confirmations that make one valid) count.
    history = [opt_in(ago(50)), opt_out(ago(10)), opt_in(ago(2), prechecked=True)]
    assert run(person(), history, msg()) == denied(Reason.OPTED_OUT)


def test_pending_opt_in_after_opt_out_does_not_lift_it_until_confirmed():
    history = [opt_in(ago(50)), opt_out(ago(10)), opt_in(ago(2), doi="pending")]
    assert run(person(), history, msg()) == denied(Reason.OPTED_OUT)
    assert run(person(), [*history, doi_confirmed(ago(1))], msg()) == allowed(Reason.OPT_IN)


def test_confirming_a_flawed_opt_in_does_not_lift_an_opt_out():
    # v2: the confirmation of a pre-checked opt-in makes nothing valid, so it lifts nothing.
    history = [
        opt_in(ago(12), prechecked=True, doi="pending"),
        opt_out(ago(11), topic="promotions", channel="email"),
        doi_confirmed(ago(10)),
    ]
    assert run(person(), history, msg()) == denied(Reason.OPTED_OUT)


def test_confirming_a_clean_opt_in_after_an_opt_out_lifts_it_without_giving_consent():
    # The confirmation makes the earlier opt-in valid, so it is the latest of the set: not opted
    # out; but no valid opt-in is later than the opt-out, so step 10 says why not.
    history = [
        opt_in(ago(12), doi="pending"),
        opt_out(ago(11), topic="promotions", channel="email"),
        doi_confirmed(ago(10)),
    ]
    assert run(person(), history, msg()) == denied(Reason.NO_CONSENT)


@pytest.mark.parametrize(
    ("p", "m"),
    [
        pytest.param(person(), msg(channel="push"), id="push"),
        pytest.param(person(), msg(purpose="newsletter", topic="newsletter"), id="newsletter"),
        pytest.param(person(), msg(channel="phone"), id="phone"),
        pytest.param(person(informed_at_collection=False), msg(), id="uninformed-prospect"),
        pytest.param(
            person(informed_at_collection=False),
            msg(channel="phone"),
            id="uninformed-phone",
        ),
    ],
)
def test_everything_else_is_no_consent(p, m):
    assert run(p, [], m) == denied(Reason.NO_CONSENT)
