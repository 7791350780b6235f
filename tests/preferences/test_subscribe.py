"""The public sign-up form: what it records, what it sends, and what it refuses."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core import mail
from django.test import Client

from consents.models import ConsentState, Contact, Event, Evidence, Outbox
from preferences.models import PendingSignup
from preferences.services import notice_for
from tests.preferences.pages import CONFIRM_LINK, PREFERENCES_LINK, path_in, signup_data

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pages", "topics")]


def page(response: Any) -> str:
    return response.content.decode()


def nothing_written() -> bool:
    return not (
        Contact.objects.exists()
        or Event.objects.exists()
        or Outbox.objects.exists()
        or PendingSignup.objects.exists()
    )


# --- The page ---------------------------------------------------------------------------------


def test_signup_page_offers_each_topic_channel_unticked_with_its_notice(client: Client) -> None:
    response = client.get("/subscribe/", HTTP_ACCEPT_LANGUAGE="fr")
    assert response.status_code == 200
    html = page(response)
    assert '<html lang="fr">' in html
    for value in ("newsletter:email", "promotions:email", "promotions:sms"):
        assert f'value="{value}"' in html
    assert "promotions:push" not in html  # push needs an app: not offered on this form
    boxes = re.findall(r'<input type="checkbox"[^>]*>', html)
    assert len(boxes) == 3 and not any("checked" in box for box in boxes)
    assert "J&#x27;accepte de recevoir Bons plans." in html
    assert 'aria-describedby="notice-promotions"' in html
    # Confirmation needed, service messages unaffected.
    assert "e-mail pour confirmer" in html
    assert "commandes et votre compte" in html


def test_signup_page_renders_in_english(client: Client) -> None:
    response = client.get("/subscribe/", HTTP_ACCEPT_LANGUAGE="en-GB,en;q=0.9")
    html = page(response)
    assert '<html lang="en">' in html
    assert "<h1>Subscribe to our messages</h1>" in html
    assert "I agree to receive Deals." in html
    # The language of our messages follows the page's.
    assert re.search(r'value="en" id="id_language_1"[^>]* checked>', html)


def test_signup_page_defaults_to_french_and_the_language_switch_follows(client: Client) -> None:
    html = page(client.get("/subscribe/"))
    assert '<html lang="fr">' in html
    assert "<h1>Abonnez-vous à nos messages</h1>" in html
    switched = client.post("/i18n/setlang/", {"language": "en", "next": "/subscribe/"})
    assert switched.status_code == 302 and switched["Location"] == "/subscribe/"
    assert '<html lang="en">' in page(client.get("/subscribe/"))


def test_signup_page_has_a_honeypot_out_of_reach(client: Client) -> None:
    html = page(client.get("/subscribe/"))
    honeypot = html.split('class="honeypot"', 1)[1].split("</div>", 1)[0]
    assert 'tabindex="-1"' in honeypot and 'autocomplete="off"' in honeypot
    assert "Laissez ce champ vide" in honeypot


def test_an_address_in_the_query_string_stays_out_of_the_ledger(sign_up: Any) -> None:
    """A link such as ``/subscribe/?email=…`` must not write the address into the chain, which
    erasure cannot touch."""
    sign_up("/subscribe/?email=marie%40example.fr&source=mail", choice=["newsletter:email"])
    event = Event.objects.get()
    assert event.collection_point == "http://testserver/subscribe/"
    assert "marie" not in ledger_text(event)


def ledger_text(event: Event) -> str:
    """Every chained field of an event, as one text."""
    return " ".join(
        str(value)
        for value in (event.actor, event.collection_point, event.proof, event.data, event.topic)
    )


def test_email_is_prefilled_from_the_query_string(client: Client) -> None:
    html = page(client.get("/subscribe/?email=marie%40example.fr"))
    assert 'value="marie@example.fr"' in html


# --- The happy path -----------------------------------------------------------------------------


def test_signup_records_pending_opt_ins_with_their_proof_and_sends_one_email(
    sign_up: Any, topics: dict[str, Any]
) -> None:
    response = sign_up(
        "/subscribe/?source=spring-2026",
        choice=["newsletter:email", "promotions:sms"],
        phone="06 12 34 56 78",
    )
    assert response.status_code == 302
    assert response["Location"] == "/subscribe/done/"

    contact = Contact.objects.get()
    assert contact.email == "marie@example.fr"
    events = list(Event.objects.filter(contact=contact).order_by("seq"))
    assert [(e.type, e.topic, e.channel) for e in events] == [
        ("opt_in", "newsletter", "email"),
        ("opt_in", "promotions", "sms"),
    ]
    for event in events:
        assert event.data["doi"] == "pending"
        assert event.method == "web_form"
        assert event.actor == "person"
        # The page, without its query string: a chained field is never erased, and the query
        # string is the visitor's (``?email=…``). The source stays in the erasable evidence.
        assert event.collection_point == "http://testserver/subscribe/"
        assert event.notice == notice_for(topics[event.topic], "fr")
        evidence = Evidence.objects.get(event=event)
        assert evidence.ip_address == "203.0.113.7"
        assert evidence.user_agent == "Mozilla/5.0 (test)"
        assert evidence.details == {"source": "spring-2026"}
    assert set(ConsentState.objects.filter(contact=contact).values_list("topic", "status")) == {
        ("newsletter", "pending"),
        ("promotions", "pending"),
    }

    signup = PendingSignup.objects.get()
    assert (signup.phone, signup.first_name, signup.source) == (
        "+33612345678",
        "Marie",
        "spring-2026",
    )

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["marie@example.fr"]
    assert message.subject == "Confirmez votre abonnement à Assent"
    assert message.extra_headers["List-Unsubscribe"].startswith("<http")
    assert "/unsubscribe/" in message.extra_headers["List-Unsubscribe"]
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert path_in(CONFIRM_LINK, message).startswith("/confirm/")
    assert "Bonjour Marie," in message.body
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html" and '<html lang="fr">' in html
    assert Outbox.objects.get().status == "sent"


def test_done_page_says_check_your_inbox(client: Client) -> None:
    response = client.get("/subscribe/done/", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    assert "Check your inbox" in page(response)


def test_email_in_english_when_english_is_chosen(sign_up: Any) -> None:
    sign_up(language="en", first_name="")
    message = mail.outbox[0]
    assert message.subject == "Confirm your subscription to Assent"
    assert message.body.startswith("Hello,")
    assert "The newsletter — Email" in message.body
    assert "The link is valid for 7 days." in message.body
    assert "Unsubscribe from all our messages:" in message.body
    assert '<html lang="en">' in message.alternatives[0][0]


def test_already_confirmed_address_is_not_downgraded_and_is_told_so(
    sign_up: Any, client: Client
) -> None:
    sign_up()
    confirm = path_in(CONFIRM_LINK, mail.outbox[0])
    client.post(confirm)
    contact = Contact.objects.get()
    before = Event.objects.filter(contact=contact).count()

    response = sign_up(email="  marie@EXAMPLE.fr ")
    assert response.status_code == 302 and response["Location"] == "/subscribe/done/"
    assert Event.objects.filter(contact=contact).count() == before
    assert ConsentState.objects.get(contact=contact, topic="newsletter").status == "opted_in"
    assert PendingSignup.objects.count() == 1
    assert len(mail.outbox) == 2
    already = mail.outbox[1]
    assert already.subject == "Vous êtes déjà abonné(e) à Assent"
    assert path_in(PREFERENCES_LINK, already).startswith("/preferences/")
    assert already.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


# --- Abuse ----------------------------------------------------------------------------------------


def test_fourth_signup_of_an_address_in_a_day_sends_nothing_and_looks_the_same(
    sign_up: Any, client: Client
) -> None:
    answers = [sign_up() for _ in range(4)]
    assert len(mail.outbox) == 3
    assert {(a.status_code, a["Location"]) for a in answers} == {(302, "/subscribe/done/")}
    assert len({a.content for a in answers}) == 1
    assert PendingSignup.objects.count() == 3


def test_too_many_posts_from_one_address_get_a_429_page(sign_up: Any, settings: Any) -> None:
    settings.SIGNUP_MAX_PER_IP_PER_HOUR = 2
    sign_up(email="a@example.fr")
    sign_up(email="b@example.fr")
    response = sign_up(email="c@example.fr")
    assert response.status_code == 429
    assert "Merci de réessayer plus tard" in page(response)
    assert not Contact.objects.filter(email="c@example.fr").exists()
    assert len(mail.outbox) == 2


def test_honeypot_answers_like_a_success_and_writes_nothing(sign_up: Any) -> None:
    response = sign_up(website="https://spam.example")
    assert response.status_code == 302 and response["Location"] == "/subscribe/done/"
    assert nothing_written()
    assert mail.outbox == []


def test_known_and_new_addresses_get_identical_answers(sign_up: Any, make_contact: Any) -> None:
    make_contact(email="known@example.fr")
    known = sign_up(email="known@example.fr")
    new = sign_up(email="new@example.fr")
    assert (known.status_code, known["Location"], known.content) == (
        new.status_code,
        new["Location"],
        new.content,
    )


def test_missing_csrf_token_is_refused() -> None:
    client = Client(enforce_csrf_checks=True)
    response = client.post("/subscribe/", signup_data())
    assert response.status_code == 403
    assert "Ce formulaire a expiré" in page(response)  # our page, not Django's technical one
    assert nothing_written()


def test_embedded_form_posted_from_its_own_origin_needs_no_csrf_cookie(
    django_capture_on_commit_callbacks: Any,
) -> None:
    # Inside a brand's iframe the browser withholds our SameSite cookies; it does send Origin.
    client = Client(enforce_csrf_checks=True)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/subscribe/?embed=1&source=brand-site", signup_data(), HTTP_ORIGIN="http://testserver"
        )
    assert response.status_code == 302
    assert response["Location"] == "/subscribe/done/?embed=1"
    event = Event.objects.get(topic="newsletter")
    assert event.collection_point == "http://testserver/subscribe/"
    assert event.evidence.details == {"source": "brand-site"}
    forged = client.post(
        "/subscribe/?embed=1", signup_data(email="x@example.fr"), HTTP_ORIGIN="https://evil.example"
    )
    assert forged.status_code == 403
    assert not Contact.objects.filter(email="x@example.fr").exists()


def test_embedded_form_may_be_framed_by_the_named_sites_and_the_normal_page_may_not(
    client: Client, settings: Any
) -> None:
    settings.EMBED_FRAME_ANCESTORS = "https://www.brand.example https://shop.brand.example"
    embedded = client.get("/subscribe/?embed=1")
    html = page(embedded)
    assert "X-Frame-Options" not in embedded.headers
    assert embedded["Content-Security-Policy"].endswith(
        "; frame-ancestors https://www.brand.example https://shop.brand.example"
    )
    assert "script-src 'self';" in embedded["Content-Security-Policy"]
    assert 'class="site-header"' not in html and 'class="site-footer"' not in html
    assert 'action="/subscribe/?embed=1"' in html
    done = client.get("/subscribe/done/?embed=1")
    assert "X-Frame-Options" not in done.headers and 'class="site-header"' not in page(done)
    assert "frame-ancestors https://www.brand.example" in done["Content-Security-Policy"]

    normal = client.get("/subscribe/")
    assert normal["X-Frame-Options"] == "DENY"
    assert normal["Content-Security-Policy"].endswith("; frame-ancestors 'none'")
    assert 'class="site-header"' in page(normal)


def test_by_default_no_site_may_frame_the_embeddable_form(client: Client) -> None:
    from django.conf import settings

    assert settings.EMBED_FRAME_ANCESTORS == "'none'"  # nothing in the environment: nobody
    embedded = client.get("/subscribe/?embed=1")
    assert embedded.status_code == 200 and 'class="site-header"' not in page(embedded)
    assert embedded["Content-Security-Policy"].endswith("; frame-ancestors 'none'")
    assert embedded["X-Frame-Options"] == "DENY"


# --- Bad input, each shown next to its field, nothing written -------------------------------------


def errors_of(response: Any) -> str:
    assert response.status_code == 200
    html = page(response)
    assert 'class="error-summary"' in html
    return html


@pytest.mark.parametrize(
    "email",
    ["not-an-address", "marie@", "@example.fr", "marie@example", "a b@example.fr", ""],
)
def test_malformed_email_is_refused_next_to_the_field(sign_up: Any, email: str) -> None:
    html = errors_of(sign_up(email=email))
    assert 'id="id_email_error"' in html
    assert 'aria-describedby="id_email_error"' in html and 'aria-invalid="true"' in html
    assert nothing_written()


def test_overlong_email_is_refused(sign_up: Any) -> None:
    html = errors_of(sign_up(email="a" * 244 + "@example.fr"))  # 255 characters
    assert 'id="id_email_error"' in html
    assert nothing_written()


def test_uppercase_and_spaces_are_one_contact(sign_up: Any) -> None:
    sign_up(email="  Marie@EXAMPLE.FR ")
    sign_up(email="marie@example.fr")
    sign_up(email="MARIE@example.fr")
    assert Contact.objects.count() == 1
    assert Contact.objects.get().email == "Marie@example.fr"


def test_internationalised_domain_is_accepted(sign_up: Any) -> None:
    # An internationalised domain is kept in its one ASCII (IDNA) spelling, so that both
    # spellings of the same address are one contact, and mail goes out to it.
    response = sign_up(email="marie@EXÄMPLE.fr")
    assert response.status_code == 302
    assert Contact.objects.get().email == "marie@xn--exmple-cua.fr"
    assert mail.outbox[0].to == ["marie@xn--exmple-cua.fr"]
    sign_up(email="marie@xn--exmple-cua.fr")
    assert Contact.objects.count() == 1


def test_non_ascii_mailbox_name_is_refused(sign_up: Any) -> None:
    errors_of(sign_up(email="marié@example.fr"))
    assert nothing_written()


@pytest.mark.parametrize(
    "choices",
    [
        ["unknown:email"],
        ["newsletter:sms"],  # the newsletter is not offered by SMS
        ["promotions:push"],  # push is not offered on this form
        ["newsletter:email", "newsletter"],
        ["newsletter:email", "x" * 500],
    ],
)
def test_unknown_or_unoffered_choices_are_a_form_error(sign_up: Any, choices: list[str]) -> None:
    html = errors_of(sign_up(choice=choices))
    assert "proposé" in html
    assert nothing_written()


def test_too_many_choices_are_refused(sign_up: Any) -> None:
    errors_of(sign_up(choice=["newsletter:email"] * 101))
    assert nothing_written()


def test_sms_without_a_phone_number_is_an_error_on_the_phone_field(sign_up: Any) -> None:
    html = errors_of(sign_up(choice=["promotions:sms"], phone=""))
    assert 'id="id_phone_error"' in html
    assert 'aria-describedby="id_phone_helptext id_phone_error"' in html
    assert 'href="#id_phone"' in html  # the summary leads to the field
    assert 'value="promotions:sms" id="choice-promotions-sms" checked' in html  # kept ticked
    assert nothing_written()


def test_invalid_phone_is_refused(sign_up: Any) -> None:
    html = errors_of(sign_up(choice=["promotions:sms"], phone="12"))
    assert 'id="id_phone_error"' in html
    assert nothing_written()


def test_nothing_ticked_is_an_error(sign_up: Any) -> None:
    html = errors_of(sign_up(choice=[]))
    assert 'id="choices-error"' in html and 'aria-describedby="choices-error"' in html
    assert nothing_written()


@pytest.mark.parametrize(
    "field,value",
    [("first_name", "x" * 151), ("phone", "0" * 33), ("first_name", "Visit https://spam.example")],
)
def test_oversized_or_abusive_fields_are_refused(sign_up: Any, field: str, value: str) -> None:
    html = errors_of(sign_up(**{field: value}))
    assert f'id="id_{field}_error"' in html
    assert nothing_written()


def test_every_text_field_has_a_size_limit(client: Client) -> None:
    html = page(client.get("/subscribe/"))
    # A first name is short (35): the confirmation email greets it, nothing more.
    for name, limit in (("email", 254), ("first_name", 35), ("phone", 32), ("website", 200)):
        field = html.split(f'name="{name}"', 1)[1].split(">", 1)[0]
        assert f'maxlength="{limit}"' in field


def test_ledger_names_the_wording_of_the_page_language_not_the_email_language(
    client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    # The page is read in English; the person asks for emails in French.
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            "/subscribe/",
            signup_data(language="fr"),
            HTTP_ACCEPT_LANGUAGE="en",
            REMOTE_ADDR="203.0.113.7",
        )
    event = Event.objects.get(type="opt_in")
    assert event.notice.language == "en"
    assert Contact.objects.get().locale == "fr"


def test_behind_a_trusted_proxy_the_client_address_is_the_forwarded_one(
    sign_up: Any, settings: Any, client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.NUM_PROXIES = 1
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            "/subscribe/",
            signup_data(),
            REMOTE_ADDR="10.0.0.2",
            HTTP_X_FORWARDED_FOR="198.51.100.1, 192.0.2.44",
        )
    evidence = Event.objects.get(type="opt_in").evidence
    # The proxy appended the address it saw; anything before it is the client's own claim.
    assert evidence.ip_address == "192.0.2.44"


def test_the_embedded_form_offers_only_the_topics_named_in_the_language_named(
    client: Client,
) -> None:
    html = page(client.get("/subscribe/?embed=1&topics=newsletter&lang=en"))
    assert '<html lang="en">' in html
    assert 'value="newsletter:email"' in html and 'value="promotions:' not in html
    assert '<input type="hidden" name="language" value="en">' in html
    assert 'name="first_name"' not in html and 'name="phone"' not in html  # compact
    # Named topics that offer text messages bring the phone field back.
    sms = page(client.get("/subscribe/?embed=1&topics=promotions"))
    assert 'name="phone"' in sms and 'value="newsletter:email"' not in sms
    # Not embedded: the whole form, whatever the query says.
    full = page(client.get("/subscribe/?topics=newsletter&lang=en"))
    assert 'value="promotions:email"' in full and 'name="first_name"' in full
