from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError

from consents import clock, services
from consents.models import ConsentState, Contact, ContactFacts, Event, Evidence
from tests.conftest import at


def _nothing_written(before: int) -> bool:
    return Event.objects.count() == before


@pytest.mark.django_db
class TestNormalisation:
    def test_email_is_trimmed_and_domain_lower_cased(self, make_contact):
        contact = make_contact(email="  Marie.Dupont@Example.FR ")
        assert contact.email == "Marie.Dupont@example.fr"

    def test_same_address_in_other_case_is_the_same_contact(self, make_contact):
        make_contact(email="marie@example.fr")
        with pytest.raises(ValidationError) as exc:
            make_contact(email=" marie@EXAMPLE.fr")
        assert "email" in exc.value.message_dict
        assert Contact.objects.count() == 1

    @pytest.mark.parametrize(
        "raw, expected",
        [
            ("06 12 34 56 78", "+33612345678"),
            ("06.12.34.56.78", "+33612345678"),
            ("0033 6 12 34 56 78", "+33612345678"),
            ("+44 20 7946 0958", "+442079460958"),
            ("(06) 12-34-56-78", "+33612345678"),
            # French overseas numbers in the national format: their own country codes.
            ("0690 12 34 56", "+590690123456"),  # Guadeloupe
            ("0696 12 34 56", "+596696123456"),  # Martinique
            ("0694 12 34 56", "+594694123456"),  # French Guiana
            ("0692 12 34 56", "+262692123456"),  # Réunion
            ("0639 01 23 45", "+262639012345"),  # Mayotte
            ("+590 690 12 34 56", "+590690123456"),
        ],
    )
    def test_phone_is_normalised_to_e164(self, raw, expected):
        assert services.normalize_phone(raw) == expected

    @pytest.mark.parametrize(
        "raw",
        [
            "12345",
            "+0612345678",
            "06 12 34",
            "phone",
            "+33 6 12 34 56 78 99 99 99",
            "\u0660\u0666\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668",  # Arabic-Indic
            "\uff10\uff16\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18",  # full-width
            "06 12 34 56 7\u0668",  # one digit of another script
            "0800 FLOWERS",
            "+33 7 00 00 00 00",  # no numbering plan allocates it
        ],
    )
    def test_phone_that_is_not_e164_is_refused(self, make_contact, raw):
        with pytest.raises(ValidationError) as exc:
            make_contact(phone=raw)
        assert "phone" in exc.value.message_dict
        assert Contact.objects.count() == 0

    @pytest.mark.parametrize("raw", ["not-an-email", "a@", "@example.fr", "a b@example.fr"])
    def test_malformed_email_is_refused(self, make_contact, raw):
        with pytest.raises(ValidationError) as exc:
            make_contact(email=raw)
        assert "email" in exc.value.message_dict


@pytest.mark.django_db
class TestValidationWritesNothing:
    def test_unknown_topic(self, make_contact, web_proof):
        contact = make_contact()
        before = Event.objects.count()
        with pytest.raises(ValidationError) as exc:
            services.consent_grant(contact=contact, topic="nope", channel="email", proof=web_proof)
        assert "topic" in exc.value.message_dict
        assert _nothing_written(before)

    def test_unknown_channel(self, make_topic, make_contact, web_proof):
        make_topic("promotions")
        contact = make_contact()
        with pytest.raises(ValidationError) as exc:
            services.consent_grant(
                contact=contact, topic="promotions", channel="fax", proof=web_proof
            )
        assert "channel" in exc.value.message_dict
        assert not Event.objects.exists()

    def test_channel_the_topic_does_not_offer(self, make_topic, make_contact, web_proof):
        make_topic("newsletter", purpose="newsletter", channels=["email"])
        contact = make_contact()
        with pytest.raises(ValidationError) as exc:
            services.consent_grant(
                contact=contact, topic="newsletter", channel="sms", proof=web_proof
            )
        assert "channel" in exc.value.message_dict
        assert not Event.objects.exists()

    def test_naive_timestamp(self, make_topic, make_contact, web_proof):
        make_topic()
        contact = make_contact()
        with pytest.raises(ValidationError) as exc:
            services.consent_grant(
                contact=contact,
                topic="promotions",
                channel="email",
                proof=web_proof,
                occurred_at=datetime(2026, 2, 1, 10, 0),
            )
        assert "occurred_at" in exc.value.message_dict
        assert not Event.objects.exists()

    def test_far_future_timestamp(self, make_topic, make_contact, web_proof):
        make_topic()
        contact = make_contact()
        with pytest.raises(ValidationError) as exc:
            services.consent_grant(
                contact=contact,
                topic="promotions",
                channel="email",
                proof=web_proof,
                occurred_at=clock.now() + timedelta(days=365),
            )
        assert "occurred_at" in exc.value.message_dict
        assert not Event.objects.exists()

    def test_frequency_not_offered(self, make_topic, make_contact, web_proof):
        make_topic(frequencies=["weekly"])
        contact = make_contact()
        with pytest.raises(ValidationError) as exc:
            services.consent_grant(
                contact=contact,
                topic="promotions",
                channel="email",
                proof=web_proof,
                frequency="daily",
            )
        assert "frequency" in exc.value.message_dict
        assert not Event.objects.exists()

    def test_opt_in_without_method(self, make_topic, make_contact):
        make_topic()
        contact = make_contact()
        with pytest.raises(ValidationError) as exc:
            services.consent_grant(
                contact=contact,
                topic="promotions",
                channel="email",
                proof=services.Proof(actor="person"),
            )
        assert "method" in exc.value.message_dict

    def test_unknown_method(self, make_topic, make_contact):
        make_topic()
        contact = make_contact()
        with pytest.raises(ValidationError) as exc:
            services.consent_grant(
                contact=contact,
                topic="promotions",
                channel="email",
                proof=services.Proof(method="telepathy", actor="person"),
            )
        assert "method" in exc.value.message_dict
        assert not Event.objects.exists()

    def test_pause_that_ends_before_it_starts(self, make_contact, web_proof):
        contact = make_contact()
        with pytest.raises(ValidationError) as exc:
            services.marketing_pause(
                contact=contact,
                channel="*",
                until=clock.now() - timedelta(days=1),
                proof=web_proof,
            )
        assert "until" in exc.value.message_dict
        assert not Event.objects.exists()

    def test_resume_ends_the_pause_at_the_instant_it_is_recorded(
        self, make_topic, make_contact, web_proof
    ):
        from consents import rules
        from consents.projections import fact_from_event, person_from_contact

        make_topic()
        contact = make_contact()
        start = at("2026-03-01T10:00")
        services.consent_grant(
            contact=contact,
            topic="promotions",
            channel="email",
            proof=web_proof,
            occurred_at=start - timedelta(days=1),
        )
        services.marketing_pause(
            contact=contact,
            channel="*",
            until=start + timedelta(days=30),
            proof=web_proof,
            occurred_at=start,
        )
        resumed = services.marketing_resume(
            contact=contact, channel="*", proof=web_proof, occurred_at=start + timedelta(days=2)
        )
        assert (resumed.type, resumed.channel) == ("pause", "*")
        assert resumed.data == {"until": "2026-03-03T10:00:00.000000Z", "resume": True}
        history = [fact_from_event(e) for e in Event.objects.filter(contact=contact)]
        message = rules.Message(channel="email", purpose="promotion", topic="promotions")
        person = person_from_contact(contact)
        paused = rules.decide(person, history, message, start + timedelta(days=1))
        after = rules.decide(person, history, message, start + timedelta(days=2))
        assert (paused.allowed, paused.reason) == (False, "PAUSED")
        assert after.allowed and after.reason == "OPT_IN"

    def test_resume_on_an_unknown_channel_is_refused(self, make_contact, web_proof):
        contact = make_contact()
        with pytest.raises(ValidationError) as exc:
            services.marketing_resume(contact=contact, channel="fax", proof=web_proof)
        assert "channel" in exc.value.message_dict
        assert not Event.objects.exists()

    def test_wildcard_opt_out_is_accepted_but_wildcard_opt_in_is_not(
        self, make_topic, make_contact, web_proof
    ):
        make_topic()
        contact = make_contact()
        services.consent_withdraw(contact=contact, topic="*", channel="*", proof=web_proof)
        with pytest.raises(ValidationError):
            services.consent_grant(contact=contact, topic="*", channel="email", proof=web_proof)
        assert Event.objects.count() == 1


@pytest.mark.django_db
class TestLedgerAppend:
    def test_events_are_chained_per_contact(self, make_topic, make_contact, web_proof):
        make_topic()
        alice, bob = make_contact(), make_contact()
        a1 = services.consent_grant(
            contact=alice, topic="promotions", channel="email", proof=web_proof
        )
        b1 = services.consent_grant(
            contact=bob, topic="promotions", channel="email", proof=web_proof
        )
        a2 = services.consent_withdraw(
            contact=alice, topic="promotions", channel="email", proof=web_proof
        )
        assert (a1.seq, a2.seq, b1.seq) == (1, 2, 1)
        assert a1.prev_hash == "0" * 64 and b1.prev_hash == "0" * 64
        assert a2.prev_hash == a1.hash
        assert len({a1.hash, a2.hash, b1.hash}) == 3

    def test_personal_evidence_is_kept_beside_the_event(self, make_topic, make_contact, web_proof):
        make_topic()
        contact = make_contact()
        event = services.consent_grant(
            contact=contact, topic="promotions", channel="email", proof=web_proof
        )
        evidence = Evidence.objects.get(event=event)
        assert evidence.ip_address == "203.0.113.7"
        assert evidence.user_agent == "Mozilla/5.0 (test)"
        assert len(event.evidence_digest) == 64
        assert "203.0.113.7" not in str(event.data)

    def test_projections_follow_each_append(self, make_topic, make_contact, web_proof):
        make_topic()
        contact = make_contact()
        services.consent_grant(
            contact=contact, topic="promotions", channel="email", proof=web_proof, doi="pending"
        )

        def status() -> str:
            return ConsentState.objects.get(
                contact=contact, topic="promotions", channel="email"
            ).status

        assert status() == "pending"
        services.consent_confirm(
            contact=contact, topic="promotions", channel="email", proof=web_proof
        )
        assert status() == "opted_in"
        services.consent_withdraw(contact=contact, topic="*", channel="*", proof=web_proof)
        assert status() == "opted_out"

    def test_events_recorded_out_of_time_order_are_projected_in_time_order(
        self, make_topic, make_contact, web_proof
    ):
        make_topic()
        contact = make_contact()
        services.consent_withdraw(
            contact=contact,
            topic="promotions",
            channel="email",
            proof=web_proof,
            occurred_at=at("2026-03-01T10:00"),
        )
        # An older opt-in arrives later (an import): the later opt-out still wins.
        services.consent_grant(
            contact=contact,
            topic="promotions",
            channel="email",
            occurred_at=at("2026-02-01T10:00"),
            proof=services.Proof(method="import", actor="api:crm", reference="crm form 12"),
        )
        state = ConsentState.objects.get(contact=contact, topic="promotions", channel="email")
        assert state.status == "opted_out"

    def test_retention_expiry_is_stored_as_an_instant(self, make_contact, web_proof):
        contact = make_contact(collected_at=at("2024-02-29T10:00"))
        facts = ContactFacts.objects.get(contact=contact)
        assert facts.expires_at == datetime(2027, 2, 28, 10, 0, tzinfo=UTC)
        services.contract_start(
            contact=contact,
            contract="c-1",
            category="fibre",
            proof=web_proof,
            occurred_at=at("2024-03-01T10:00"),
        )
        facts.refresh_from_db()
        assert facts.expires_at is None  # an active contract: never expires

    def test_revoking_links_bumps_the_link_version(self, make_contact):
        contact = make_contact()
        assert (
            services.contact_revoke_links(contact=contact).link_version == contact.link_version + 1
        )


@pytest.mark.django_db
def test_an_address_in_other_case_is_the_same_person(make_contact):
    first = make_contact(email="Marie.Dupont@example.fr")
    with pytest.raises(ValidationError):
        make_contact(email="marie.dupont@EXAMPLE.FR")
    found, created = services.contact_get_or_create(email=" MARIE.DUPONT@example.fr ")
    assert (found.pk, created) == (first.pk, False)
    assert services.contact_find(email="marie.dupont@example.fr") == first
    assert Contact.objects.count() == 1
