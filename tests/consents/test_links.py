"""Signed links: one module, a scope per link, revocable, and bound to the address they went to."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core import signing
from django.test import Client

from consents import links, services
from consents.links import SCOPES, LinkError
from consents.models import Contact

ROOT = Path(settings.BASE_DIR)
# The parameters each scope's links carry.
PARAMS: dict[str, dict[str, Any]] = {
    "confirm": {"s": "nonce"},
    "reconfirm": {"r": 1},
    "email_change": {"e": "new@example.org"},
    "data_download": {"n": 0},
    "device": {"d": 1, "s": "secret"},
}
CONTACT_SCOPES = [name for name, scope in SCOPES.items() if scope.names_contact]


def make(scope: str, contact: Contact | None, **extra: Any) -> str:
    return links.make(scope, contact, **{**PARAMS.get(scope, {}), **extra})


def reason(scope: str, token: str) -> str:
    with pytest.raises(LinkError) as error:
        links.read(scope, token)
    return error.value.reason


@pytest.fixture
def marie(make_contact: Any) -> Contact:
    return make_contact(email="Marie@Example.fr")


def test_every_signed_value_is_made_and_read_in_one_module() -> None:
    signers = []
    for path in sorted([*ROOT.glob("consents/**/*.py"), *ROOT.glob("preferences/**/*.py")]):
        if "migrations" in path.parts:
            continue
        text = path.read_text()
        if re.search(r"\bsigning\.(dumps|loads|Signer|TimestampSigner)", text):
            signers.append(str(path.relative_to(ROOT)))
    assert signers == ["consents/links.py"]
    assert not (ROOT / "preferences" / "links.py").exists()


def test_consents_imports_nothing_from_preferences() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted(ROOT.glob("consents/**/*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.match(r"\s*(from preferences[. ]|import preferences\b)", line)
    ]
    assert offenders == []


@pytest.mark.django_db
@pytest.mark.parametrize("scope", list(SCOPES))
def test_a_link_grants_its_own_scope_and_no_other(scope: str, marie: Contact) -> None:
    token = make(scope, marie if SCOPES[scope].names_contact else None)
    link = links.read(scope, token)
    assert link.contact == (marie if SCOPES[scope].names_contact else None)
    for other in SCOPES:
        if other != scope:
            assert reason(other, token) == "invalid", other


@pytest.mark.django_db
def test_a_token_names_the_contact_its_version_and_a_keyed_hash_of_the_address(
    marie: Contact,
) -> None:
    payload = signing.loads(links.make("preferences", marie), salt=SCOPES["preferences"].salt)
    assert payload == {
        "c": marie.public_id,
        "v": marie.link_version,
        "a": links.binding("marie@example.fr"),
    }
    # Not the address itself, and the same whatever its case.
    assert "marie" not in payload["a"].lower() and len(payload["a"]) == 16
    assert links.bound_to("MARIE@example.FR", payload["a"])
    assert not links.bound_to("marie@example.org", payload["a"])


@pytest.mark.django_db
@pytest.mark.parametrize("scope", CONTACT_SCOPES)
def test_a_change_of_address_kills_every_link_sent_to_the_old_one(
    scope: str, marie: Contact
) -> None:
    token = make(scope, marie)
    services.contact_email_change(
        contact=marie, new_email="marie@new.example", proof=services.Proof(actor="person")
    )
    with pytest.raises(LinkError) as error:
        links.read(scope, token)
    assert error.value.reason == "revoked"
    # The page may not fill in the new address for whoever holds the old link.
    assert not error.value.same_address
    fresh = make(scope, Contact.objects.get(pk=marie.pk))
    assert links.read(scope, fresh).contact == marie


@pytest.mark.django_db
def test_a_link_minted_for_another_recipient_is_not_the_contacts(marie: Contact) -> None:
    token = links.make("preferences", marie, to="someone.else@example.org")
    assert reason("preferences", token) == "revoked"


@pytest.mark.django_db
def test_the_new_address_link_is_bound_to_the_address_it_replaces(marie: Contact) -> None:
    token = links.make("email_change", marie, to="new@example.org", e="new@example.org")
    assert links.read("email_change", token).payload["e"] == "new@example.org"
    services.contact_email_change(
        contact=marie, new_email="other@example.org", proof=services.Proof(actor="person")
    )
    assert reason("email_change", token) == "revoked"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("scope", "revoked"),
    [
        ("preferences", True),
        ("unsubscribe", True),
        ("keep", True),
        ("reconfirm", True),
        ("data_download", True),
        ("email_change", True),
        # Confirming gives nothing but the confirmation: it survives, bound to its sign-up.
        ("confirm", False),
    ],
)
def test_signing_out_of_all_links(scope: str, revoked: bool, marie: Contact) -> None:
    token = make(scope, marie)
    services.contact_revoke_links(contact=marie)
    if revoked:
        assert reason(scope, token) == "revoked"
    else:
        assert links.read(scope, token).contact == marie


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("scope", "setting"),
    [
        ("confirm", "DOI_CONFIRM_TTL"),
        ("preferences", "PREFERENCE_LINK_TTL"),
        ("unsubscribe", "UNSUBSCRIBE_LINK_TTL"),
        ("keep", "RETENTION_KEEP_LINK_TTL"),
        ("reconfirm", "RECONFIRM_LINK_TTL"),
        ("email_change", "RECTIFY_LINK_TTL"),
        ("data_download", "DATA_DOWNLOAD_LINK_TTL"),
    ],
)
def test_each_scope_lives_as_long_as_its_setting(
    scope: str, setting: str, marie: Contact, monkeypatch: pytest.MonkeyPatch
) -> None:
    lifetime = getattr(settings, setting).total_seconds()
    now = time.time()
    tokens = {}
    for age in (lifetime - 60, lifetime + 60):
        with monkeypatch.context() as m:
            m.setattr("django.core.signing.time.time", lambda age=age: now - age)
            tokens[age] = make(scope, marie)
    assert links.read(scope, tokens[lifetime - 60]).contact == marie
    with pytest.raises(LinkError) as error:
        links.read(scope, tokens[lifetime + 60])
    assert (error.value.reason, error.value.contact, error.value.same_address) == (
        "expired",
        marie,
        True,
    )
    assert links.read(scope, tokens[lifetime + 60], expired_ok=True).contact == marie


def test_unsubscribe_links_live_a_year_by_default() -> None:
    assert settings.UNSUBSCRIBE_LINK_TTL.days == 365


@pytest.mark.django_db
def test_links_survive_a_key_rotation(marie: Contact, settings: Any) -> None:
    token = links.make("preferences", marie)
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-new-key-" + "x" * 40
    assert links.read("preferences", token).contact == marie


# --- Links of the earlier format, already in mailboxes -------------------------------------------


def earlier_format(scope: str, contact: Contact, **extra: Any) -> str:
    """As the five earlier schemes signed them: no address binding."""
    payload = {"c": contact.public_id, "v": contact.link_version, **extra}
    return signing.dumps(payload, salt=SCOPES[scope].salt, compress=True)


@pytest.mark.django_db
def test_an_earlier_unsubscribe_link_still_unsubscribes_until_signed_out(
    marie: Contact,
) -> None:
    token = earlier_format("unsubscribe", marie)
    assert links.read("unsubscribe", token).contact == marie
    services.contact_revoke_links(contact=marie)
    assert reason("unsubscribe", token) == "revoked"


@pytest.mark.django_db
@pytest.mark.parametrize("scope", ["preferences", "confirm", "keep", "data_download"])
def test_other_earlier_links_read_as_expired_without_naming_the_address(
    scope: str, marie: Contact
) -> None:
    with pytest.raises(LinkError) as error:
        links.read(scope, earlier_format(scope, marie, **PARAMS.get(scope, {})))
    assert error.value.reason == "expired"
    assert not error.value.same_address


@pytest.mark.django_db
def test_an_earlier_reconfirm_link_reads_as_expired() -> None:
    token = signing.dumps({"r": 1, "v": 1}, salt="assent.notice.reconfirm")
    assert reason("reconfirm", token) == "expired"


@pytest.mark.django_db
def test_an_earlier_preference_link_offers_a_new_one_without_the_address(
    marie: Contact,
) -> None:
    response = Client().get(f"/preferences/{earlier_format('preferences', marie)}/")
    html = response.content.decode()
    assert response.status_code == 200 and "Ce lien ne fonctionne plus" in html
    assert 'action="/"' in html and "marie@example.fr" not in html.lower()


def test_an_earlier_device_cookie_still_reads() -> None:
    cookie = signing.dumps({"d": 7, "s": "secret"}, salt="assent.store.device")
    assert links.read("device", cookie).payload == {"d": 7, "s": "secret"}


# --- Pages ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_after_a_change_of_address_an_old_preference_link_does_not_reveal_the_new_one(
    marie: Contact,
) -> None:
    old = f"/preferences/{links.make('preferences', marie)}/"
    services.contact_email_change(
        contact=marie, new_email="marie@new.example", proof=services.Proof(actor="person")
    )
    client = Client()
    html = client.get(old).content.decode()
    assert "Ce lien ne fonctionne plus" in html
    assert "marie@new.example" not in html
    assert "preferences_contact" not in client.session


@pytest.mark.django_db
def test_an_open_preference_page_closes_when_the_address_changes(marie: Contact) -> None:
    client = Client()
    assert client.get(f"/preferences/{links.make('preferences', marie)}/").status_code == 302
    assert "Vos préférences" in client.get("/preferences/").content.decode()
    services.contact_email_change(
        contact=marie, new_email="marie@new.example", proof=services.Proof(actor="person")
    )
    page = client.get("/preferences/").content.decode()
    assert "ouvrez le lien en bas" in page and "marie@new.example" not in page
    assert client.post("/preferences/", {"action": "download_data"}).status_code == 403


@pytest.mark.django_db
@pytest.mark.parametrize("scope", ["keep", "email_change"])
def test_an_old_keep_or_new_address_link_says_why_it_no_longer_works(
    scope: str, marie: Contact
) -> None:
    old = earlier_format(scope, marie, **PARAMS.get(scope, {}))
    path = f"/{'keep' if scope == 'keep' else 'confirm-email'}/{old}/"
    for response in (Client().get(path), Client().post(path)):
        assert response.status_code == 400
        assert "ce lien a expiré" in response.content.decode()
    assert not marie.events.exists()


def test_the_address_binding_follows_the_key(settings) -> None:
    """Remembered per address and key: another key gives another binding, and a binding made
    under a key that became a fallback still names the address."""
    settings.SECRET_KEY = "k1" * 25
    before = links.binding("Marie@Example.fr ")
    assert before == links.binding("marie@example.fr")
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "k2" * 25, ["k1" * 25]
    assert links.binding("marie@example.fr") != before
    assert links.bound_to("marie@example.fr", before)
    settings.SECRET_KEY_FALLBACKS = []
    assert not links.bound_to("marie@example.fr", before)
